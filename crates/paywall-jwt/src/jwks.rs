//! Keys fetched from a JWKS endpoint: [`JwksCache`].
//!
//! The key set lives behind an `ArcSwap`: verification loads it without a lock, and a
//! refresh swaps in a new set without ever blocking readers. Refreshes happen:
//!
//! * on demand, when a token names an unknown `kid` or no key is known yet: concurrent
//!   requests share one fetch, and at most one on-demand fetch starts per cooldown, so
//!   tokens with forged `kid`s cannot make the service hammer the identity provider;
//! * periodically, every `Cache-Control: max-age` (clamped), in a background task.
//!
//! A failed refresh keeps the old keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::header::CACHE_CONTROL;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::keys::KeySet;

/// Where the JWKS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JwksSource {
    /// A JWKS URL.
    Url(String),
    /// OIDC discovery: `<issuer>/.well-known/openid-configuration` names the `jwks_uri`.
    Discovery(String),
}

/// JWKS fetching settings.
#[derive(Clone, Debug)]
pub(crate) struct JwksSettings {
    pub(crate) cooldown: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) default_refresh: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 3600),
            default_refresh: Duration::from_secs(3600),
        }
    }
}

/// Why keys could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("fetching {url} failed: {reason}")]
    Failed { url: String, reason: String },
}

/// A JWKS endpoint's keys, cached.
pub struct JwksCache {
    source: JwksSource,
    settings: JwksSettings,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    jwks_uri: ArcSwapOption<String>,
    /// Bumped whenever a refresh removes a `kid`: tokens verified before are re-checked.
    epoch: AtomicU64,
    /// Milliseconds since `origin` of the last on-demand fetch attempt (0: never).
    last_attempt: AtomicU64,
    /// Milliseconds until the next periodic refresh, from `max-age`.
    refresh_every: AtomicU64,
    fetches: AtomicU64,
    gate: tokio::sync::Mutex<()>,
    origin: Instant,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("keys", &self.keys.load().kids().collect::<Vec<_>>())
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
    #[serde(default)]
    issuer: Option<String>,
}

impl JwksCache {
    pub(crate) fn new(source: JwksSource, settings: JwksSettings) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .build()
            .map_err(|err| err.to_string())?;
        let default_refresh = millis(settings.default_refresh);
        let cache = Arc::new(Self {
            source,
            settings,
            http,
            keys: ArcSwap::from_pointee(KeySet::default()),
            jwks_uri: ArcSwapOption::empty(),
            epoch: AtomicU64::new(0),
            last_attempt: AtomicU64::new(0),
            refresh_every: AtomicU64::new(default_refresh),
            fetches: AtomicU64::new(0),
            gate: tokio::sync::Mutex::new(()),
            origin: Instant::now(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(periodic(Arc::downgrade(&cache)));
        }
        Ok(cache)
    }

    /// The current keys, without a lock.
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// How many times the JWKS (or discovery document) was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        millis(self.origin.elapsed()).saturating_add(1)
    }

    /// Refreshes on demand, unless one started less than a cooldown ago; concurrent
    /// callers share one fetch. Returns once the keys are as fresh as they will get.
    pub(crate) async fn refresh_on_demand(&self) {
        let seen = self.last_attempt.load(Ordering::Acquire);
        if seen != 0 && self.now_ms().saturating_sub(seen) < millis(self.settings.cooldown) {
            // A fetch started less than a cooldown ago: if it is still running, wait for
            // its keys; never start another.
            drop(self.gate.lock().await);
            return;
        }
        let _gate = self.gate.lock().await;
        if self.last_attempt.load(Ordering::Acquire) != seen {
            return; // someone fetched while we waited
        }
        self.last_attempt.store(self.now_ms(), Ordering::Release);
        if let Err(err) = self.fetch().await {
            warn!(error = %err, "JWKS refresh failed; keeping the previous keys");
        }
    }

    async fn periodic_refresh(&self) {
        let _gate = self.gate.lock().await;
        if let Err(err) = self.fetch().await {
            warn!(error = %err, "periodic JWKS refresh failed; keeping the previous keys");
        }
    }

    async fn jwks_url(&self) -> Result<String, FetchError> {
        match &self.source {
            JwksSource::Url(url) => Ok(url.clone()),
            JwksSource::Discovery(issuer) => {
                if let Some(uri) = self.jwks_uri.load_full() {
                    return Ok((*uri).clone());
                }
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                self.fetches.fetch_add(1, Ordering::AcqRel);
                let failed = |reason: String| FetchError::Failed {
                    url: url.clone(),
                    reason,
                };
                let response = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|err| failed(err.without_url().to_string()))?;
                if !response.status().is_success() {
                    return Err(failed(format!("status {}", response.status())));
                }
                let document: Discovery = response
                    .json()
                    .await
                    .map_err(|err| failed(err.without_url().to_string()))?;
                if let Some(named) = &document.issuer {
                    if named.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(failed(format!("the document names issuer {named}")));
                    }
                }
                self.jwks_uri
                    .store(Some(Arc::new(document.jwks_uri.clone())));
                Ok(document.jwks_uri)
            }
        }
    }

    /// Fetches the keys, counted in `paywall_identity_key_fetches_total{result}`.
    async fn fetch(&self) -> Result<(), FetchError> {
        let result = self.fetch_keys().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("paywall_identity_key_fetches_total", "result" => outcome).increment(1);
        result
    }

    async fn fetch_keys(&self) -> Result<(), FetchError> {
        let url = self.jwks_url().await?;
        let failed = |reason: String| FetchError::Failed {
            url: url.clone(),
            reason,
        };
        self.fetches.fetch_add(1, Ordering::AcqRel);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|err| failed(err.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let set: JwkSet = response
            .json()
            .await
            .map_err(|err| failed(err.without_url().to_string()))?;
        let (keys, skipped) = KeySet::from_jwks(&set);
        if keys.is_empty() {
            return Err(failed("no usable public key in the set".into()));
        }
        let previous = self.keys.load();
        let removed = previous.kids().any(|kid| !keys.has_kid(kid));
        info!(
            keys = keys.kids().collect::<Vec<_>>().join(","),
            skipped, "JWKS fetched"
        );
        self.keys.store(Arc::new(keys));
        if removed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            debug!("a key left the JWKS: tokens it verified are checked again");
        }
        let every = max_age
            .unwrap_or(self.settings.default_refresh)
            .clamp(self.settings.min_refresh, self.settings.max_refresh);
        self.refresh_every.store(millis(every), Ordering::Release);
        Ok(())
    }
}

/// Refreshes in the background until the cache is dropped.
async fn periodic(cache: Weak<JwksCache>) {
    // Fetch once at start so the first request rarely waits.
    if let Some(cache) = cache.upgrade() {
        cache.refresh_on_demand().await;
    }
    loop {
        let wait = match cache.upgrade() {
            Some(cache) => Duration::from_millis(cache.refresh_every.load(Ordering::Acquire)),
            None => return,
        };
        tokio::time::sleep(wait).await;
        match cache.upgrade() {
            Some(cache) => cache.periodic_refresh().await,
            None => return,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            secs.trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age("max-age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
