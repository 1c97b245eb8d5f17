//! The REST client: [`SolvaPayClient`], with timeouts, a deadline and retries.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use crate::config::{ConfigError, SecretKey, SolvaPayConfig};
use crate::error::SolvaPayError;
use crate::wire;

/// The header carrying a creation call's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A client of SolvaPay's `/v1/sdk` API. Cheap to clone (connection pool shared).
///
/// Every call has a per-request timeout and an overall deadline. Transient failures
/// (connection errors, timeouts, 408, 429, 5xx) are retried with jittered exponential
/// backoff that honours `Retry-After`, up to the configured number of attempts. Calls
/// that create or record something carry an idempotency key that stays the same across
/// retries, so a retry never creates or counts twice.
#[derive(Clone)]
pub struct SolvaPayClient {
    http: reqwest::Client,
    base: url::Url,
    key: SecretKey,
    config: SolvaPayConfig,
}

impl fmt::Debug for SolvaPayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SolvaPayClient")
            .field("base_url", &self.base.as_str())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Which lookup to make with [`SolvaPayClient::find_customer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerLookup<'a> {
    /// `?externalRef=`.
    ExternalRef(&'a str),
    /// `?email=`.
    Email(&'a str),
    /// `?reference=`.
    Reference(&'a str),
}

impl SolvaPayClient {
    /// A client for `config`.
    pub fn new(config: SolvaPayConfig) -> Result<Self, ConfigError> {
        let base = config.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("paywall-solvapay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ConfigError::Client(err.to_string()))?;
        Ok(Self {
            http,
            base,
            key: config.key.clone(),
            config,
        })
    }

    /// Finds a customer; `Ok(None)` on 404.
    pub async fn find_customer(
        &self,
        lookup: CustomerLookup<'_>,
    ) -> Result<Option<wire::Customer>, SolvaPayError> {
        let (name, value) = match lookup {
            CustomerLookup::ExternalRef(value) => ("externalRef", value),
            CustomerLookup::Email(value) => ("email", value),
            CustomerLookup::Reference(value) => ("reference", value),
        };
        let mut url = self.url(&["v1", "sdk", "customers"]);
        url.query_pairs_mut().append_pair(name, value);
        match self.call(Method::GET, url, None::<&()>, None).await {
            Ok(answer) => answer.json().map(Some),
            Err(SolvaPayError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates a customer (201); 409 when the email is taken.
    pub async fn create_customer(
        &self,
        request: &wire::CreateCustomer,
    ) -> Result<wire::Customer, SolvaPayError> {
        let key = uuid::Uuid::new_v4().to_string();
        self.call(
            Method::POST,
            self.url(&["v1", "sdk", "customers"]),
            Some(request),
            Some(&key),
        )
        .await?
        .json()
    }

    /// Updates a customer.
    pub async fn update_customer(
        &self,
        reference: &str,
        patch: &wire::UpdateCustomer,
    ) -> Result<wire::Customer, SolvaPayError> {
        self.call(
            Method::PATCH,
            self.url(&["v1", "sdk", "customers", reference]),
            Some(patch),
            None,
        )
        .await?
        .json()
    }

    /// Checks a customer's limits (read-only).
    pub async fn check_limits(
        &self,
        request: &wire::CheckLimits,
    ) -> Result<wire::LimitResponse, SolvaPayError> {
        self.call(
            Method::POST,
            self.url(&["v1", "sdk", "limits"]),
            Some(request),
            None,
        )
        .await?
        .json()
    }

    /// Records usage events in one call. Each event should carry its own
    /// `idempotencyKey`; SolvaPay ignores replays.
    pub async fn record_usage_bulk(
        &self,
        events: &[wire::Usage],
    ) -> Result<wire::BulkUsageResponse, SolvaPayError> {
        #[derive(Serialize)]
        struct Bulk<'a> {
            events: &'a [wire::Usage],
        }
        let answer = self
            .call(
                Method::POST,
                self.url(&["v1", "sdk", "usages", "bulk"]),
                Some(&Bulk { events }),
                None,
            )
            .await?;
        // The schema leaves the answer open; an empty or unknown body is still a 2xx.
        Ok(answer.json().unwrap_or_default())
    }

    /// Creates a checkout session for a customer.
    pub async fn create_checkout_session(
        &self,
        request: &wire::CreateCheckoutSession,
    ) -> Result<wire::CheckoutSession, SolvaPayError> {
        let key = uuid::Uuid::new_v4().to_string();
        self.call(
            Method::POST,
            self.url(&["v1", "sdk", "checkout-sessions"]),
            Some(request),
            Some(&key),
        )
        .await?
        .json()
    }

    pub(crate) fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// One logical call: attempts until success, a permanent error, the attempt limit
    /// or the deadline.
    pub(crate) async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, SolvaPayError> {
        let body = match body {
            Some(body) => Some(Bytes::from(serde_json::to_vec(body).map_err(|err| {
                SolvaPayError::BadRequest {
                    status: 0,
                    body: format!("cannot encode the request: {err}"),
                }
            })?)),
            None => None,
        };
        let deadline = Instant::now() + self.config.deadline;
        let mut attempt: u32 = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SolvaPayError::Timeout);
            }
            let result = self
                .attempt(&method, &url, body.clone(), idempotency_key, remaining)
                .await;
            let err = match result {
                Ok(answer) => return Ok(answer),
                Err(err) if !err.is_transient() => return Err(err),
                Err(err) => err,
            };
            attempt += 1;
            let retry_after = match &err {
                SolvaPayError::RateLimited { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = self.config.backoff.delay(attempt - 1, retry_after);
            let remaining = deadline.saturating_duration_since(Instant::now());
            if attempt >= self.config.max_attempts || wait >= remaining {
                warn!(%method, path = url.path(), attempts = attempt, error = %err, "SolvaPay call failed");
                return Err(err);
            }
            debug!(%method, path = url.path(), attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying SolvaPay call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &url::Url,
        body: Option<Bytes>,
        idempotency_key: Option<&str>,
        remaining: Duration,
    ) -> Result<Answer, SolvaPayError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.config.request_timeout.min(remaining))
            .header(AUTHORIZATION, format!("Bearer {}", self.key.expose()))
            .header(http::header::ACCEPT, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return Ok(Answer { status, bytes });
        }
        let body = SolvaPayError::body_text(&bytes);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SolvaPayError::Unauthorized {
                status: status.as_u16(),
                body,
            },
            StatusCode::NOT_FOUND => SolvaPayError::NotFound { body },
            StatusCode::CONFLICT => SolvaPayError::Conflict { body },
            StatusCode::TOO_MANY_REQUESTS => SolvaPayError::RateLimited { retry_after, body },
            // Not offered (a dev server without card payments): asking again will not help.
            StatusCode::NOT_IMPLEMENTED => SolvaPayError::BadRequest {
                status: status.as_u16(),
                body,
            },
            StatusCode::REQUEST_TIMEOUT => SolvaPayError::Server {
                status: status.as_u16(),
                body,
            },
            s if s.is_server_error() => SolvaPayError::Server {
                status: s.as_u16(),
                body,
            },
            s => SolvaPayError::BadRequest {
                status: s.as_u16(),
                body,
            },
        })
    }
}

fn transport_error(err: reqwest::Error) -> SolvaPayError {
    if err.is_timeout() {
        SolvaPayError::Timeout
    } else {
        // Without the URL: it is ours, and the message stays short.
        SolvaPayError::Transport(err.without_url().to_string())
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A successful answer.
pub(crate) struct Answer {
    status: StatusCode,
    bytes: Bytes,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, SolvaPayError> {
        serde_json::from_slice(&self.bytes).map_err(|err| SolvaPayError::UnexpectedBody {
            status: self.status.as_u16(),
            reason: err.to_string(),
            body: SolvaPayError::body_text(&self.bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).expect("date");
        assert!(parsed <= Duration::from_secs(120) && parsed >= Duration::from_secs(110));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
