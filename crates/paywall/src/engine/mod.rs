//! The engine every adapter drives: the [`Paywall`] handle and its [`Route`]s.
//!
//! One decision per protected request, made here and nowhere else. The engine is split
//! along its seams:
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the [`Paywall`] handle, [`Route`], and the `Engine` state behind the `Arc` |
//! | `builder.rs` | [`PaywallBuilder`]: settings, their validation, start-up |
//! | `admit.rs` | **the request flow**, top to bottom: identity → customer → budget → refresh → reserve |
//! | `cache/` | `CustomerCache`: the cached customer entries and budgets (`entry.rs`), their single-flight loading, remembered refusals; checkout links (`checkout.rs`) |
//! | `recall.rs` | [`Recall`]: a verified credential's customer entry, remembered so the warm path looks up once |
//! | `clock.rs` | the one clock (`tokio::time`): milliseconds since the engine started |
//! | `lease.rs` | admission through a shared store: leases, refills, giving back |
//! | `budget/` | the exact local countdown of one (customer, product, meter), and its refresh from the backend (`refresh.rs`) |
//! | `admission.rs` | [`Admission`]: the units held for a request, committed or given back |
//! | `reservation.rs` | units held in a budget, given back on drop unless committed |
//! | `usage.rs` | [`Usage`]: reserve, report and settle what a request consumed |

mod account;
mod admission;
mod admit;
mod budget;
mod builder;
mod cache;
mod clock;
mod lease;
mod recall;
mod reservation;
mod usage;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use tracing::{debug, info};

use crate::backend::DynBackend;
use crate::charge::{Charge, RouteCharge};
use crate::customer::CustomerRef;
use crate::error::ConfigError;
use crate::identity::{DynResolver, Identity};
use crate::recorder::{FlushReport, UsageRecorder};
use crate::rejection::Rejection;

pub use admission::{Admission, Settlement};
pub(crate) use budget::{Answer, Budget};
pub use builder::PaywallBuilder;
pub use recall::Recall;
pub use usage::Usage;

pub(crate) use account::ProductState;
pub(crate) use admit::Grant;
use cache::{CheckoutLinks, CustomerCache};
use lease::SharedState;

/// Interned (product, meter) pairs of the routes.
type MeterIds = HashMap<(Arc<str>, Arc<str>), u32>;
type SuccessFn = dyn Fn(StatusCode) -> bool + Send + Sync;
type RejectionFn = dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync;

/// The paywall engine: identity resolver, billing backend, caches, usage recorder and
/// policy. Cheap to clone (an `Arc`); every layer and adapter shares one.
///
/// ```
/// use paywall::{Charge, Paywall};
/// use paywall::test_util::{HeaderResolver, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), paywall::ConfigError> {
/// let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(5))
///     .limits_ttl(std::time::Duration::from_secs(10))
///     .build()?;
/// let layer = paywall.layer(Charge::new("prd_quickstart"))?;
/// # let _ = layer;
/// let report = paywall.shutdown(std::time::Duration::from_secs(5)).await;
/// assert!(report.is_complete());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Paywall {
    pub(crate) engine: Arc<Engine>,
}

impl fmt::Debug for Paywall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paywall")
            .field("fail_policy", &self.engine.fail_policy)
            .field("limits_ttl", &self.engine.limits_ttl)
            .field("cached_customers", &self.engine.cache.customer_count())
            .field("budgets", &self.engine.cache.live_budget_count())
            .finish_non_exhaustive()
    }
}

/// A validated [`Charge`], bound to one paywall. Obtained from [`Paywall::route`].
#[derive(Clone, Debug)]
pub struct Route {
    pub(crate) charge: Arc<RouteCharge>,
}

impl Route {
    /// The product this route charges.
    pub fn product(&self) -> &str {
        &self.charge.product
    }

    /// The meter this route counts on.
    pub fn meter(&self) -> &str {
        &self.charge.meter
    }

    /// How the route is priced.
    pub fn price(&self) -> crate::Price {
        self.charge.price
    }
}

/// What the `Arc` behind a [`Paywall`] holds. Its methods live with the step they
/// implement (`admit.rs`, `cache.rs`, `lease.rs`).
pub(crate) struct Engine {
    /// The engine itself, for background tasks (a refresh ahead of expiry).
    me: std::sync::Weak<Engine>,
    resolver: Box<dyn DynResolver>,
    backend: Arc<dyn DynBackend>,
    cache: CustomerCache,
    checkout_links: CheckoutLinks,
    meters: Mutex<MeterIds>,
    recorder: UsageRecorder,
    limits_ttl: Duration,
    fail_policy: crate::FailPolicy,
    failure_backoff: Duration,
    /// The longest `Retry-After` of the billing backend honoured, on limits as on usage
    /// ([`RecorderConfig::max_retry_after`](crate::recorder::RecorderConfig::max_retry_after)).
    max_retry_after: Duration,
    success: Arc<SuccessFn>,
    on_rejection: Option<Arc<RejectionFn>>,
    clock: clock::Clock,
    shared: Option<SharedState>,
    decisions: crate::telemetry::Decisions,
    /// Refused credentials, summarised in the logs once a minute.
    token_refusals: crate::telemetry::RefusalLog,
    ratelimit_headers: bool,
    /// Customer invalidations so far (see `Paywall::invalidations`).
    invalidations: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// The response for `rejection`: the `on_rejection` hook's, or the default.
    fn rejection_response(&self, rejection: &Rejection) -> Response<Bytes> {
        let mut response = match &self.on_rejection {
            Some(hook) => hook(rejection),
            None => rejection.to_response(),
        };
        if let (true, Rejection::PaymentRequired(payment)) = (self.ratelimit_headers, rejection) {
            let quota = crate::quota::Quota {
                product: payment.product.clone(),
                remaining: payment.remaining,
                reset: payment.retry_after,
                allowance: payment.allowance,
                period: payment.period,
            };
            quota.apply(response.headers_mut());
        }
        response
    }

    /// Milliseconds since the engine started: the clock budgets are timed with.
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Every (product, meter) pair of the routes.
    fn meter_names(&self) -> Vec<(Arc<str>, Arc<str>)> {
        self.meters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

impl Paywall {
    /// Starts configuring a paywall that identifies callers with `resolver` and bills
    /// them through `backend`.
    pub fn builder(
        resolver: impl crate::IdentityResolver,
        backend: impl crate::backend::BillingBackend,
    ) -> PaywallBuilder {
        PaywallBuilder::new(Box::new(resolver), Arc::new(backend))
    }

    /// Validates `charge` and binds it to this paywall.
    pub fn route(&self, charge: Charge) -> Result<Route, ConfigError> {
        charge.validate()?;
        let product: Arc<str> = Arc::from(charge.product);
        let meter: Arc<str> = Arc::from(charge.meter);
        let meter_id = {
            let mut meters = self
                .engine
                .meters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let next = u32::try_from(meters.len()).map_err(|_| ConfigError::InvalidSetting {
                name: "route",
                reason: "too many distinct (product, meter) pairs",
            })?;
            *meters
                .entry((Arc::clone(&product), Arc::clone(&meter)))
                .or_insert(next)
        };
        Ok(Route {
            charge: Arc::new(RouteCharge {
                product,
                meter,
                price: charge.price,
                fail_policy: charge.fail_policy.unwrap_or(self.engine.fail_policy),
                meter_id,
                quota_policy: crate::quota::PolicyCache::default(),
            }),
        })
    }

    /// Decides on a request from its head: resolves the caller, ensures the customer and
    /// reserves the route's units. The head is not modified; adapters use
    /// [`admit_head`](Self::admit_head), which also strips a client-sent
    /// `x-customer-ref` and inserts the admitted customer.
    pub async fn admit(&self, parts: &Parts, route: &Route) -> Result<Admission, Rejection> {
        let result = self.engine.admit(parts, &route.charge).await;
        self.decided(result, route)
    }

    /// [`admit`](Self::admit) when it need not wait (a warm request: the resolver
    /// answers at once, the customer and a fresh budget are cached); `None` otherwise,
    /// with nothing decided, counted or charged. Adapters use
    /// [`admit_head_now`](Self::admit_head_now).
    pub(crate) fn admit_now(
        &self,
        parts: &Parts,
        route: &Route,
    ) -> Option<Result<Admission, Rejection>> {
        let result = self.engine.admit_now(parts, &route.charge)?;
        Some(self.decided(result, route))
    }

    /// Counts and logs a decision; an admission holds what was granted.
    #[allow(clippy::result_large_err)]
    fn decided(
        &self,
        result: Result<Grant, Rejection>,
        route: &Route,
    ) -> Result<Admission, Rejection> {
        self.engine
            .decisions
            .count(result.as_ref().map(Grant::customer));
        match &result {
            Ok(grant) => debug!(
                product = %route.charge.product,
                customer = grant.customer().map(|c| c.reference().as_str()),
                "admitted"
            ),
            Err(rejection) => debug!(
                product = %route.charge.product,
                kind = rejection.kind(),
                "rejected"
            ),
        }
        result.map(|grant| self.admission(grant, route))
    }

    /// Decides for a caller whose identity is already resolved (by an adapter or an
    /// application that authenticates some other way): ensures the customer and reserves
    /// the route's units. Finish the admission as with [`admit`](Self::admit).
    pub async fn admit_identity(
        &self,
        identity: &Identity,
        route: &Route,
    ) -> Result<Admission, Rejection> {
        let result = self.engine.admit_identity(identity, &route.charge).await;
        self.decided(result, route)
    }

    /// Resolves the caller, without ensuring its billing customer or charging anything:
    /// for transports that admit a connection before any priced call, so that a
    /// billing outage does not lock callers out of what is free (MCP: `initialize`,
    /// `tools/list`, free tools). Refusals are counted like an admission's.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Identity, Rejection> {
        let result = self.engine.authenticate(parts).await;
        if let Err(rejection) = &result {
            self.engine.decisions.count(Err(rejection));
            debug!(kind = rejection.kind(), "caller not authenticated");
        }
        result
    }

    /// Resolves the caller and ensures its billing customer, without charging anything:
    /// for transports that price each message of a request rather than the request
    /// (MCP tool calls). Refusals are counted like an admission's.
    /// `Ok((identity, None))`: the backend is unreachable and the policy is fail-open.
    pub async fn identify(
        &self,
        parts: &Parts,
    ) -> Result<(Identity, Option<crate::Customer>), Rejection> {
        let result = self.engine.identify(parts).await;
        if let Err(rejection) = &result {
            self.engine.decisions.count(Err(rejection));
            debug!(kind = rejection.kind(), "caller not identified");
        }
        result
    }

    fn admission(&self, grant: Grant, route: &Route) -> Admission {
        Admission::new(
            grant,
            Arc::clone(&route.charge),
            Arc::clone(&self.engine),
            SystemTime::now(),
        )
    }

    /// The response for `rejection`: the `on_rejection` hook's, or the default.
    pub fn rejection_response(&self, rejection: &Rejection) -> Response<Bytes> {
        self.engine.rejection_response(rejection)
    }

    /// Forces the budgets of `customer` to be refreshed on their next use: call it when
    /// the customer buys or changes a plan.
    ///
    /// With a shared store the budgets are marked stale there too, for every instance;
    /// a store failure is logged (the budgets refresh within the limits TTL anyway).
    pub async fn invalidate_customer(&self, customer: &CustomerRef) {
        self.engine
            .invalidations
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let count = self.engine.cache.mark_stale(customer);
        self.engine.mark_shared_stale(customer).await;
        info!(customer = %customer, budgets = count, "customer budgets invalidated");
    }

    /// How many customer invalidations (webhooks, purchases, cancellations) this paywall
    /// has seen: what is cached about customers beside the budgets is valid only while
    /// it has not changed.
    pub(crate) fn invalidations(&self) -> u64 {
        self.engine
            .invalidations
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets the cached customer of `external_ref` (it is ensured again on next use).
    pub async fn forget_external_ref(&self, external_ref: &str) {
        self.engine.cache.forget(external_ref).await;
    }

    /// The usage recorder, for flushing or reading its counts.
    pub fn recorder(&self) -> &UsageRecorder {
        &self.engine.recorder
    }

    /// Waits until every usage event accepted so far is recorded.
    pub async fn flush(&self) -> FlushReport {
        self.engine.recorder.flush().await
    }

    /// Stops accepting usage and flushes, waiting at most `deadline`. Call it after the
    /// server has stopped taking requests.
    pub async fn shutdown(&self, deadline: Duration) -> FlushReport {
        let report = self.engine.recorder.shutdown(deadline).await;
        self.engine.give_back_leases().await;
        info!(
            recorded = report.recorded,
            rejected = report.rejected,
            pending = report.pending,
            "paywall shut down"
        );
        report
    }
}
