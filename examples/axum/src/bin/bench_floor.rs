//! Benchmark floor: the least a metered paywall must do on each request, written
//! directly on the named dependencies, so that `benches/e2e.sh` can tell what the
//! paywall's own code costs from what any metered paywall adds on this machine.
//!
//! Per request, and nothing else:
//! - the bearer token looked up in a moka cache of verified tokens, with the same
//!   settings as `paywall-jwt`'s (entries expire at the token's `exp`); a miss is
//!   verified with jsonwebtoken (HS256) and finds the caller's state by `sub`;
//! - one unit taken from the caller's budget (an atomic counter; 402 once it is spent);
//! - `x-customer-ref` replaced by the caller's (a header value built once per user);
//! - the `RateLimit` field formatted and the `RateLimit-Policy` field (built once per
//!   user) added to the response;
//! - the unit added to the caller's usage counter, which a task drains into an
//!   in-memory ledger once a second (as the quickstart's recorder sums usage for its
//!   own in-memory ledger).
//!
//! It has no billing backend (customers are `cus_<sub>`), no limits refresh, no outbox
//! and no tracing: a measuring stick, not a paywall. Refusals (401, 402) carry the
//! quickstarts' JSON error body. The handler is the bare servers' (`bench-bare-axum`).
//! Configured like the quickstarts (`paywall_examples::config`): `PORT`,
//! `PAYWALL_JWT_SECRET` (required here), `PAYWALL_PRODUCT`, `PAYWALL_FREE_UNITS`,
//! `PAYWALL_MAX_CUSTOMERS`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::Expiry;
use paywall::adapter::error_body;
use paywall_examples::responses;
use paywall_examples::startup;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

const PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);
const X_CUSTOMER_REF: HeaderName = HeaderName::from_static("x-customer-ref");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// One caller's state: shared by all their tokens.
struct User {
    product: Arc<str>,
    customer: HeaderValue,
    policy: HeaderValue,
    resets_at: u64,
    remaining: AtomicU64,
    unmetered: AtomicU64,
}

/// A verified token: its caller, until its `exp`.
#[derive(Clone)]
struct Verified {
    user: Arc<User>,
    exp: u64,
    ttl: Duration,
}

struct UntilExp;

impl Expiry<String, Verified> for UntilExp {
    fn expire_after_create(&self, _: &String, value: &Verified, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

struct Floor {
    tokens: moka::sync::Cache<String, Verified>,
    users: Mutex<HashMap<String, Arc<User>>>,
    ledger: Mutex<HashMap<String, u64>>,
    key: DecodingKey,
    validation: Validation,
    product: Arc<str>,
    allowance: u64,
}

impl Floor {
    /// The caller's state and their remaining units after this request, or the status
    /// that refuses it.
    fn admit(&self, headers: &HeaderMap) -> Result<(Arc<User>, u64, u64), StatusCode> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let now = paywall_jwt::unix_now();
        let verified = match self.tokens.get(token) {
            Some(verified) => verified,
            None => self.verify(token, now)?,
        };
        if verified.exp <= now {
            return Err(StatusCode::UNAUTHORIZED);
        }
        let user = verified.user;
        match user
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
        {
            Ok(before) => Ok((user, before - 1, now)),
            Err(_) => Err(StatusCode::PAYMENT_REQUIRED),
        }
    }

    fn verify(&self, token: &str, now: u64) -> Result<Verified, StatusCode> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?
            .claims;
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let user = match users.get(&claims.sub) {
            Some(user) => Arc::clone(user),
            // A subject that cannot make a header value is refused, not merged.
            None => {
                let user = self.new_user(&claims.sub, now)?;
                users.insert(claims.sub, Arc::clone(&user));
                user
            }
        };
        drop(users);
        let verified = Verified {
            user,
            exp: claims.exp,
            ttl: Duration::from_secs(claims.exp.saturating_sub(now)),
        };
        self.tokens.insert(token.to_owned(), verified.clone());
        Ok(verified)
    }

    fn new_user(&self, sub: &str, now: u64) -> Result<Arc<User>, StatusCode> {
        let policy = format!(
            "\"{}\";q={};w={}",
            self.product,
            self.allowance,
            PERIOD.as_secs()
        );
        Ok(Arc::new(User {
            product: Arc::clone(&self.product),
            customer: HeaderValue::try_from(format!("cus_{sub}"))
                .map_err(|_| StatusCode::UNAUTHORIZED)?,
            policy: HeaderValue::try_from(policy).map_err(|_| StatusCode::UNAUTHORIZED)?,
            resets_at: now + PERIOD.as_secs(),
            remaining: AtomicU64::new(self.allowance),
            unmetered: AtomicU64::new(0),
        }))
    }

    /// Moves every caller's counted units into the ledger.
    fn drain(&self) {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        for (sub, user) in users.iter() {
            let units = user.unmetered.swap(0, Ordering::AcqRel);
            if units > 0 {
                *ledger.entry(sub.clone()).or_default() += units;
            }
        }
    }
}

/// `"<product>";r=<remaining>;t=<seconds>`, formatted on the stack (`None` for a
/// product name too long for it: the field is left out).
fn ratelimit(product: &str, remaining: u64, reset: u64) -> Option<HeaderValue> {
    let mut buf = [0u8; 160];
    let mut rest = &mut buf[..];
    write!(rest, "\"{product}\";r={remaining};t={reset}").ok()?;
    let len = 160 - rest.len();
    HeaderValue::from_bytes(&buf[..len]).ok()
}

/// A refusal with the quickstarts' JSON error body.
fn refusal(status: StatusCode) -> Response {
    let body = if status == StatusCode::PAYMENT_REQUIRED {
        error_body(
            "Payment Required",
            "payment_required",
            "The allowance is spent.",
        )
    } else {
        error_body(
            "Unauthorized",
            "unauthenticated",
            "A valid bearer token is required.",
        )
    };
    (status, Json(body)).into_response()
}

#[derive(Clone)]
struct FloorLayer(Arc<Floor>);

impl<S> Layer<S> for FloorLayer {
    type Service = FloorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FloorService {
            inner,
            floor: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
struct FloorService<S> {
    inner: S,
    floor: Arc<Floor>,
}

impl<S> Service<Request> for FloorService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.floor.admit(request.headers()) {
            Ok((user, remaining, now)) => {
                request
                    .headers_mut()
                    .insert(X_CUSTOMER_REF, user.customer.clone());
                FloorFuture::Admitted {
                    inner: self.inner.call(request),
                    user: Some(user),
                    remaining,
                    now,
                }
            }
            Err(status) => FloorFuture::Refused { status },
        }
    }
}

pin_project! {
    #[project = FloorProjection]
    enum FloorFuture<F> {
        Admitted { #[pin] inner: F, user: Option<Arc<User>>, remaining: u64, now: u64 },
        Refused { status: StatusCode },
    }
}

impl<F> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FloorProjection::Admitted {
                inner,
                user,
                remaining,
                now,
            } => {
                let Ok(mut response) = ready!(inner.poll(cx));
                if let Some(user) = user.take() {
                    if response.status().is_success() {
                        user.unmetered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        user.remaining.fetch_add(1, Ordering::Relaxed);
                    }
                    let headers = response.headers_mut();
                    let reset = user.resets_at.saturating_sub(*now);
                    if let Some(value) = ratelimit(&user.product, *remaining, reset) {
                        headers.insert(RATELIMIT, value);
                    }
                    headers.insert(RATELIMIT_POLICY, user.policy.clone());
                }
                Poll::Ready(Ok(response))
            }
            FloorProjection::Refused { status } => Poll::Ready(Ok(refusal(*status))),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match paywall_examples::config::load("bench-floor") {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(secret) = config.jwt_secret.as_deref() else {
        eprintln!("bench-floor: PAYWALL_JWT_SECRET is required");
        return std::process::ExitCode::from(2);
    };
    let (listener, base) = match startup::listen("bench-floor", config.port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let floor = Arc::new(Floor {
        tokens: moka::sync::Cache::builder()
            .max_capacity(config.cache_capacity())
            .expire_after(UntilExp)
            .build(),
        users: Mutex::default(),
        ledger: Mutex::default(),
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation: Validation::new(Algorithm::HS256),
        product: Arc::from(config.product.as_str()),
        allowance: config.free_units,
    });
    let drained = Arc::clone(&floor);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            drained.drain();
        }
    });
    let body = responses::hello_body(Some("cus_benchbenchbenchbench1"), "demo-user");
    let app = Router::new()
        .route("/api/hello", get(move || async move { Json(body.clone()) }))
        .layer(FloorLayer(floor));
    println!("bench-floor listening on {base}");
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}
