//! Keys fetched from a JWKS endpoint: [`JwksCache`].
//!
//! The key set lives behind an `ArcSwap`: verification loads it without a lock, and a
//! fetch swaps in a new set without ever blocking readers. Fetches happen:
//!
//! * once at start-up (or when [`JwtResolver::preload`](crate::JwtResolver::preload)
//!   asks), and periodically, every `Cache-Control: max-age` (clamped), in a background
//!   task; after a failure the background task retries on the back-off schedule, so
//!   keys come back without waiting for a request;
//! * on demand, when a token names an unknown `kid` or no key is known yet: concurrent
//!   requests share one fetch, and the [`schedule`] decides whether one may start
//!   (a small budget for unknown `kid`s, a back-off after failures). When it may not,
//!   the caller learns how long to wait, which becomes the 503's `Retry-After`.
//!
//! A failed fetch keeps the previous keys. The provider becoming unreachable is logged
//! once (a warning naming the URL and the cause), and its return once.

mod fetch;
pub(crate) mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use tracing::{debug, info, warn};

use crate::keys::KeySet;
pub use fetch::{JwksError, MAX_DOCUMENT_BYTES};
use schedule::{Budget, Permit, Schedule};

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
    pub(crate) budget: Budget,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) default_refresh: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            budget: Budget::default(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 3600),
            default_refresh: Duration::from_secs(3600),
        }
    }
}

/// What an on-demand refresh came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// This caller's fetch ran: the keys are as fresh as they get.
    Fetched,
    /// Another caller's fetch ended while this one waited; it may have started before
    /// the key this caller needs was published.
    Shared,
    /// No fetch may start before this long.
    Refused(Duration),
}

/// A JWKS endpoint's keys, cached.
pub struct JwksCache {
    source: JwksSource,
    settings: JwksSettings,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    jwks_uri: ArcSwapOption<String>,
    /// Bumped whenever a fetch withdraws or replaces a key: tokens verified before are
    /// checked again.
    epoch: AtomicU64,
    /// Bumped when a fetch attempt ends, so that waiters know one ran.
    generation: AtomicU64,
    schedule: Mutex<Schedule>,
    /// Milliseconds until the next periodic refresh, from `max-age`.
    refresh_every: AtomicU64,
    fetches: AtomicU64,
    gate: tokio::sync::Mutex<()>,
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

impl JwksCache {
    pub(crate) fn new(source: JwksSource, settings: JwksSettings) -> Result<Arc<Self>, String> {
        let http = fetch::client(settings.connect_timeout, settings.timeout)?;
        let default_refresh = millis(settings.default_refresh);
        let cache = Arc::new(Self {
            source,
            schedule: Mutex::new(Schedule::new(settings.budget.clone(), Instant::now())),
            settings,
            http,
            keys: ArcSwap::from_pointee(KeySet::default()),
            jwks_uri: ArcSwapOption::empty(),
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            refresh_every: AtomicU64::new(default_refresh),
            fetches: AtomicU64::new(0),
            gate: tokio::sync::Mutex::new(()),
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

    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long until a fetch may be tried again (at least 1 s): the honest
    /// `Retry-After` when no key can verify a token right now.
    pub(crate) fn retry_after(&self) -> Duration {
        self.schedule()
            .backing_off(Instant::now())
            .unwrap_or(Duration::from_secs(1))
    }

    /// Refreshes on demand when the schedule allows; concurrent callers share one
    /// fetch. Returns once the keys are as fresh as they will get, or how long to wait.
    pub(crate) async fn refresh_on_demand(&self) -> Refresh {
        let seen = self.generation.load(Ordering::Acquire);
        let _gate = self.gate.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return Refresh::Shared;
        }
        let keys_known = !self.keys.load().is_empty();
        if let Permit::Wait(wait) = self.schedule().on_demand(Instant::now(), keys_known) {
            debug!(?wait, "on-demand JWKS fetch not allowed yet");
            return Refresh::Refused(wait);
        }
        match self.fetch().await {
            Ok(_) => Refresh::Fetched,
            Err(_) => Refresh::Refused(self.retry_after()),
        }
    }

    /// Fetches now unless keys were fetched already and the last fetch succeeded.
    pub(crate) async fn preload(&self) -> Result<usize, JwksError> {
        let _gate = self.gate.lock().await;
        let keys = self.keys.load();
        if !keys.is_empty() && !self.schedule().failing() {
            return Ok(keys.len());
        }
        drop(keys);
        self.fetch().await
    }

    /// The periodic refresh (and the one at start-up, unless a fetch already ran).
    async fn scheduled_refresh(&self, at_start: bool) {
        let _gate = self.gate.lock().await;
        if at_start && self.generation.load(Ordering::Acquire) != 0 {
            return;
        }
        let _ = self.fetch().await;
    }

    /// How long the background task sleeps: until the back-off ends after a failure,
    /// `max-age` otherwise.
    fn next_refresh(&self) -> Duration {
        self.schedule()
            .backing_off(Instant::now())
            .unwrap_or_else(|| Duration::from_millis(self.refresh_every.load(Ordering::Acquire)))
    }

    async fn jwks_url(&self) -> Result<String, JwksError> {
        match &self.source {
            JwksSource::Url(url) => Ok(url.clone()),
            JwksSource::Discovery(issuer) => {
                if let Some(uri) = self.jwks_uri.load_full() {
                    return Ok((*uri).clone());
                }
                self.fetches.fetch_add(1, Ordering::AcqRel);
                let uri = fetch::discover(&self.http, issuer).await?;
                self.jwks_uri.store(Some(Arc::new(uri.clone())));
                Ok(uri)
            }
        }
    }

    /// One fetch attempt, under the gate: counted in
    /// `paywall_identity_key_fetches_total{result}`, the schedule and the logs told.
    async fn fetch(&self) -> Result<usize, JwksError> {
        let result = self.fetch_keys().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("paywall_identity_key_fetches_total", "result" => outcome).increment(1);
        match &result {
            Ok(_) => {
                let was_failing = {
                    let mut schedule = self.schedule();
                    let failing = schedule.failing();
                    schedule.succeeded();
                    failing
                };
                if was_failing {
                    info!(source = ?self.source, "identity provider keys reachable again");
                }
            }
            Err(err) => {
                let (was_failing, retry_in) = {
                    let mut schedule = self.schedule();
                    (schedule.failing(), schedule.failed(Instant::now()))
                };
                if !was_failing {
                    let kept = if self.keys.load().is_empty() {
                        "no keys yet: tokens are answered 503 until a fetch succeeds"
                    } else {
                        "keeping the previous keys"
                    };
                    warn!(error = %err, ?retry_in, "identity provider keys cannot be fetched; {kept}");
                } else {
                    debug!(error = %err, ?retry_in, "identity provider keys still cannot be fetched");
                }
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn fetch_keys(&self) -> Result<usize, JwksError> {
        let url = self.jwks_url().await?;
        self.fetches.fetch_add(1, Ordering::AcqRel);
        let mut fetched = fetch::keys(&self.http, &url).await?;
        let count = fetched.keys.len();
        let previous = self.keys.load_full();
        let withdrawn = fetched.keys.withdraws_from(&previous);
        fetched.keys.remember_withdrawn(&previous);
        debug!(
            keys = fetched.keys.kids().collect::<Vec<_>>().join(","),
            skipped = fetched.skipped,
            "JWKS fetched"
        );
        self.keys.store(Arc::new(fetched.keys));
        if withdrawn {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            debug!("a key was withdrawn or replaced: tokens it verified are checked again");
        }
        let every = fetched
            .max_age
            .unwrap_or(self.settings.default_refresh)
            .clamp(self.settings.min_refresh, self.settings.max_refresh);
        self.refresh_every.store(millis(every), Ordering::Release);
        Ok(count)
    }
}

/// Fetches at start, then refreshes in the background until the cache is dropped.
async fn periodic(cache: Weak<JwksCache>) {
    let mut at_start = true;
    loop {
        let wait = match cache.upgrade() {
            Some(cache) => {
                cache.scheduled_refresh(at_start).await;
                cache.next_refresh()
            }
            None => return,
        };
        at_start = false;
        tokio::time::sleep(wait).await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
