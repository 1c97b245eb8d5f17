//! [`PaywallBuilder`]: every setting of the engine, validated once in
//! [`build`](PaywallBuilder::build), where the usage recorder starts.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};

use super::cache::{CheckoutLinks, CustomerCache};
use super::lease::SharedState;
use super::{Engine, Paywall, RejectionFn, SuccessFn};
use crate::backend::DynBackend;
use crate::error::ConfigError;
use crate::identity::DynResolver;
use crate::outbox::{DynOutbox, Outbox};
use crate::policy::FailPolicy;
use crate::recorder::{RecorderConfig, UsageRecorder};
use crate::rejection::Rejection;
use crate::shared::{DynShared, LeaseConfig, SharedBudgets};
use crate::telemetry::{Decisions, Instrumented};

/// Builds a [`Paywall`]; see [`Paywall::builder`].
pub struct PaywallBuilder {
    resolver: Box<dyn DynResolver>,
    backend: Arc<dyn DynBackend>,
    customer_ttl: Duration,
    refusal_backoff: Duration,
    limits_ttl: Duration,
    max_customers: u64,
    fail_policy: FailPolicy,
    failure_backoff: Duration,
    recorder: RecorderConfig,
    success: Arc<SuccessFn>,
    on_rejection: Option<Arc<RejectionFn>>,
    outbox: Option<Arc<dyn DynOutbox>>,
    shared: Option<Arc<dyn DynShared>>,
    leases: LeaseConfig,
    ratelimit_headers: bool,
}

impl fmt::Debug for PaywallBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaywallBuilder")
            .field("customer_ttl", &self.customer_ttl)
            .field("limits_ttl", &self.limits_ttl)
            .field("fail_policy", &self.fail_policy)
            .field("recorder", &self.recorder)
            .field("shared_budgets", &self.shared.is_some())
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl PaywallBuilder {
    pub(super) fn new(resolver: Box<dyn DynResolver>, backend: Arc<dyn DynBackend>) -> Self {
        Self {
            resolver,
            backend,
            customer_ttl: Duration::from_secs(3600),
            refusal_backoff: Duration::from_secs(5),
            limits_ttl: Duration::from_secs(30),
            max_customers: 100_000,
            fail_policy: FailPolicy::Closed,
            failure_backoff: Duration::from_secs(2),
            recorder: RecorderConfig::default(),
            success: Arc::new(|status: StatusCode| status.is_success()),
            on_rejection: None,
            outbox: None,
            shared: None,
            leases: LeaseConfig::default(),
            ratelimit_headers: false,
        }
    }

    /// How long an externalRef → customer mapping is cached (default 1 hour).
    pub fn customer_ttl(mut self, ttl: Duration) -> Self {
        self.customer_ttl = ttl;
        self
    }

    /// After the billing backend refuses a caller's customer (answered 403), how long
    /// before it is asked again for that externalRef (default 5 s, doubling with each
    /// refusal up to 10 minutes). Requests in between cost no backend call.
    pub fn refusal_backoff(mut self, first: Duration) -> Self {
        self.refusal_backoff = first;
        self
    }

    /// How long a budget is used before the backend is asked again (default 30 s).
    /// Between refreshes the local countdown is exact for this process. A budget in
    /// use is refreshed in the background during the last fifth of its TTL, so
    /// requests do not wait for the backend; one idle past its TTL is refreshed by the
    /// request that finds it expired. When the backend says when the allowance resets
    /// ([`Limits::resets_at`](crate::backend::Limits::resets_at)) and that comes first,
    /// the budget is refreshed a second after the reset instead, so a caller told to
    /// retry then (a 402's `Retry-After`) finds the new period.
    pub fn limits_ttl(mut self, ttl: Duration) -> Self {
        self.limits_ttl = ttl;
        self
    }

    /// Most customers cached (default 100,000). Each cached customer holds its budgets
    /// (one per product and meter its routes used), so this bounds budgets too.
    pub fn max_customers(mut self, max: u64) -> Self {
        self.max_customers = max;
        self
    }

    /// What to do when the backend is unreachable (default [`FailPolicy::Closed`]).
    pub fn fail_policy(mut self, policy: FailPolicy) -> Self {
        self.fail_policy = policy;
        self
    }

    /// After a failed limits refresh, how long to wait before asking the backend again
    /// (default 2 s); also the `Retry-After` of 503s when the backend gave none.
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.failure_backoff = backoff;
        self
    }

    /// How usage is batched and retried.
    pub fn recorder(mut self, config: RecorderConfig) -> Self {
        self.recorder = config;
        self
    }

    /// Which handler statuses consume allowance (default: 2xx). Other statuses give the
    /// reserved units back.
    pub fn success_when(mut self, f: impl Fn(StatusCode) -> bool + Send + Sync + 'static) -> Self {
        self.success = Arc::new(f);
        self
    }

    /// Replaces the default 401/402/503 responses.
    ///
    /// ```
    /// # use paywall::{PaywallBuilder, Rejection};
    /// # fn configure(builder: PaywallBuilder) -> PaywallBuilder {
    /// builder.on_rejection(|rejection: &Rejection| {
    ///     let mut response = rejection.to_response();
    ///     response.headers_mut().insert("x-paywall", http::HeaderValue::from_static("1"));
    ///     response
    /// })
    /// # }
    /// ```
    pub fn on_rejection(
        mut self,
        f: impl Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.on_rejection = Some(Arc::new(f));
        self
    }

    /// Sends what the caller has left as the IETF `RateLimit` and `RateLimit-Policy`
    /// fields on admitted responses and 402s (see [`Quota`](crate::adapter::Quota)). Off by
    /// default; it costs two small header strings per response.
    pub fn ratelimit_headers(mut self, on: bool) -> Self {
        self.ratelimit_headers = on;
        self
    }

    /// Stores every committed usage event durably before its response goes out, and
    /// sends again at start whatever a previous run left unacknowledged (see
    /// [`Outbox`]). Off by default.
    pub fn outbox(mut self, outbox: impl Outbox) -> Self {
        self.outbox = Some(Arc::new(outbox));
        self
    }

    /// Shares budgets with other instances through `store` (for example
    /// `paywall_redis::RedisBudgets`): the instances together admit at most what the
    /// backend allows, instead of each admitting up to all of it. See
    /// [`shared`](crate::shared) for the protocol and [`leases`](Self::leases) for its
    /// settings. Off by default.
    pub fn shared_budgets(mut self, store: impl SharedBudgets) -> Self {
        self.shared = Some(Arc::new(store));
        self
    }

    /// How units are leased from the shared store, and what to do while it is
    /// unreachable (see [`LeaseConfig`]; used only with
    /// [`shared_budgets`](Self::shared_budgets)).
    pub fn leases(mut self, config: LeaseConfig) -> Self {
        self.leases = config;
        self
    }

    /// Builds the paywall and starts its usage recorder on the current Tokio runtime.
    pub fn build(self) -> Result<Paywall, ConfigError> {
        self.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let backend: Arc<dyn DynBackend> = Arc::new(Instrumented::new(self.backend));
        let max_retry_after = self.recorder.max_retry_after;
        let recorder =
            UsageRecorder::spawn(Arc::clone(&backend), self.recorder, self.outbox, &runtime);
        let engine = |me: &std::sync::Weak<Engine>| Engine {
            me: me.clone(),
            resolver: self.resolver,
            backend,
            cache: CustomerCache::new(self.max_customers, self.customer_ttl, self.refusal_backoff),
            checkout_links: CheckoutLinks::new(self.max_customers),
            meters: Mutex::new(HashMap::new()),
            recorder,
            limits_ttl: self.limits_ttl,
            fail_policy: self.fail_policy,
            failure_backoff: self.failure_backoff,
            max_retry_after,
            success: self.success,
            on_rejection: self.on_rejection,
            clock: super::clock::Clock::start(),
            shared: self
                .shared
                .map(|store| SharedState::new(store, self.leases)),
            decisions: Decisions::new(),
            token_refusals: crate::telemetry::RefusalLog::new(Duration::from_secs(60)),
            ratelimit_headers: self.ratelimit_headers,
            invalidations: std::sync::atomic::AtomicU64::new(0),
        };
        Ok(Paywall {
            engine: Arc::new_cyclic(engine),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |name: &'static str, value: Duration| {
            if value.is_zero() {
                Err(ConfigError::InvalidSetting {
                    name,
                    reason: "must be greater than zero",
                })
            } else {
                Ok(())
            }
        };
        positive("customer_ttl", self.customer_ttl)?;
        positive("refusal_backoff", self.refusal_backoff)?;
        positive("limits_ttl", self.limits_ttl)?;
        positive("recorder.flush_interval", self.recorder.flush_interval)?;
        positive("recorder.enqueue_timeout", self.recorder.enqueue_timeout)?;
        positive("leases.idle", self.leases.idle)?;
        positive("leases.retry", self.leases.retry)?;
        if self.leases.units == 0 || self.leases.max_units < self.leases.units {
            return Err(ConfigError::InvalidSetting {
                name: "leases.units/max_units",
                reason: "units must be greater than zero and at most max_units",
            });
        }
        if self.max_customers == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_customers",
                reason: "must be greater than zero",
            });
        }
        if self.recorder.capacity == 0 || self.recorder.max_batch == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "recorder",
                reason: "capacity and max_batch must be greater than zero",
            });
        }
        Ok(())
    }
}
