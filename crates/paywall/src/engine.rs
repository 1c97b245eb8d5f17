//! The engine every adapter drives: [`Paywall`], its builder and [`Admission`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use moka::future::Cache;
use tracing::{debug, error, info, warn};

use crate::backend::{BackendError, BillingBackend, CustomerRef, DynBackend, Outcome, UsageEvent};
use crate::budget::Budget;
use crate::charge::{Charge, ConfigError, RouteCharge};
use crate::customer::Customer;
use crate::identity::{DynResolver, Identity, IdentityError, IdentityResolver};
use crate::layer::PaywallLayer;
use crate::outbox::{DynOutbox, Outbox};
use crate::policy::FailPolicy;
use crate::recorder::{FlushReport, Pending, RecorderConfig, UsageRecorder};
use crate::rejection::{PaymentRequired, Rejection, Unauthenticated};
use crate::shared::{
    BudgetId, DynShared, LeaseAnswer, LeaseRequest, SharedBudgets, SharedError, SharedFallback,
};

/// Interned (product, meter) pairs of the routes.
type MeterIds = HashMap<(Arc<str>, Arc<str>), u32>;
type SuccessFn = dyn Fn(StatusCode) -> bool + Send + Sync;
type RejectionFn = dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync;

/// The paywall engine: identity resolver, billing backend, caches, usage recorder and
/// policy. Cheap to clone (an `Arc`); every layer and adapter shares one.
///
/// ```
/// use paywall::{Charge, Paywall};
/// # use paywall::{BackendError, BillingBackend, CustomerRef, Identity, IdentityError, IdentityResolver, Limits, UsageEvent};
/// # struct Header;
/// # impl IdentityResolver for Header {
/// #     async fn resolve(&self, p: &http::request::Parts) -> Result<Option<Identity>, IdentityError> {
/// #         Ok(p.headers.get("x-user").and_then(|v| v.to_str().ok()).map(Identity::new))
/// #     }
/// # }
/// # struct Free;
/// # impl BillingBackend for Free {
/// #     async fn ensure_customer(&self, i: &Identity) -> Result<CustomerRef, BackendError> { Ok(CustomerRef::new(format!("cus_{}", i.external_ref))) }
/// #     async fn check_limits(&self, _: &CustomerRef, _: &str, _: &str) -> Result<Limits, BackendError> { Ok(Limits::remaining(5)) }
/// #     async fn record_usage(&self, _: &[UsageEvent]) -> Result<(), BackendError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), paywall::ConfigError> {
/// let paywall = Paywall::builder(Header, Free)
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
            .field("cached_customers", &self.engine.customers.entry_count())
            .field("cached_budgets", &self.engine.budgets.entry_count())
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

    /// Units per admitted request.
    pub fn units(&self) -> u64 {
        self.charge.units
    }
}

/// Builds a [`Paywall`]; see [`Paywall::builder`].
pub struct PaywallBuilder {
    resolver: Box<dyn DynResolver>,
    backend: Arc<dyn DynBackend>,
    customer_ttl: Duration,
    limits_ttl: Duration,
    idle_timeout: Duration,
    max_customers: u64,
    max_budgets: u64,
    fail_policy: FailPolicy,
    failure_backoff: Duration,
    recorder: RecorderConfig,
    success: Arc<SuccessFn>,
    on_rejection: Option<Arc<RejectionFn>>,
    outbox: Option<Arc<dyn DynOutbox>>,
    shared: Option<Arc<dyn DynShared>>,
    shared_fallback: SharedFallback,
    lease_units: u64,
    lease_idle: Duration,
    shared_retry: Duration,
}

impl fmt::Debug for PaywallBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaywallBuilder")
            .field("customer_ttl", &self.customer_ttl)
            .field("limits_ttl", &self.limits_ttl)
            .field("fail_policy", &self.fail_policy)
            .finish_non_exhaustive()
    }
}

impl PaywallBuilder {
    /// How long an externalRef → customer mapping is cached (default 1 hour).
    pub fn customer_ttl(mut self, ttl: Duration) -> Self {
        self.customer_ttl = ttl;
        self
    }

    /// How long a budget is used before the backend is asked again (default 30 s).
    /// Between refreshes the local countdown is exact for this process.
    pub fn limits_ttl(mut self, ttl: Duration) -> Self {
        self.limits_ttl = ttl;
        self
    }

    /// Budgets unused for this long are evicted (default 1 hour).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Most customers cached (default 100,000).
    pub fn max_customers(mut self, max: u64) -> Self {
        self.max_customers = max;
        self
    }

    /// Most budgets cached (default 100,000).
    pub fn max_budgets(mut self, max: u64) -> Self {
        self.max_budgets = max;
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
    /// # use paywall::{Rejection, PaywallBuilder};
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

    /// Stores every committed usage event durably before its response goes out, and
    /// sends again at start whatever a previous run left unacknowledged (see
    /// [`Outbox`](crate::Outbox)). Off by default.
    pub fn outbox(mut self, outbox: impl Outbox) -> Self {
        self.outbox = Some(Arc::new(outbox));
        self
    }

    /// Shares budgets with other instances through `store` (for example
    /// `paywall_redis::RedisBudgets`): the instances together admit at most what the
    /// backend allows, instead of each admitting up to all of it. See
    /// [`shared`](crate::shared) for the protocol. Off by default.
    pub fn shared_budgets(mut self, store: impl SharedBudgets) -> Self {
        self.shared = Some(Arc::new(store));
        self
    }

    /// What to do while the shared store is unreachable (default
    /// [`SharedFallback::Local`]: this instance's own budget).
    pub fn shared_fallback(mut self, fallback: SharedFallback) -> Self {
        self.shared_fallback = fallback;
        self
    }

    /// Units an instance leases from the shared store at a time (default 16). Fewer are
    /// granted when little is left (a quarter of what remains, at least the request's
    /// units), so idle leases strand little. `1` asks the store on every request.
    pub fn lease_units(mut self, units: u64) -> Self {
        self.lease_units = units;
        self
    }

    /// Leased units are given back after the budget has been idle this long (default
    /// 500 ms), so other instances can use them.
    pub fn lease_idle(mut self, idle: Duration) -> Self {
        self.lease_idle = idle;
        self
    }

    /// After the shared store failed, how long to use the fallback before trying it
    /// again (default 1 s).
    pub fn shared_retry(mut self, retry: Duration) -> Self {
        self.shared_retry = retry;
        self
    }

    /// Builds the paywall and starts its usage recorder on the current Tokio runtime.
    pub fn build(self) -> Result<Paywall, ConfigError> {
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
        positive("limits_ttl", self.limits_ttl)?;
        positive("idle_timeout", self.idle_timeout)?;
        positive("recorder.flush_interval", self.recorder.flush_interval)?;
        positive("lease_idle", self.lease_idle)?;
        positive("shared_retry", self.shared_retry)?;
        if self.lease_units == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "lease_units",
                reason: "must be greater than zero",
            });
        }
        if self.max_customers == 0 || self.max_budgets == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_customers/max_budgets",
                reason: "must be greater than zero",
            });
        }
        if self.recorder.capacity == 0 || self.recorder.max_batch == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "recorder",
                reason: "capacity and max_batch must be greater than zero",
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let recorder = UsageRecorder::spawn(
            Arc::clone(&self.backend),
            self.recorder,
            self.outbox,
            &runtime,
        );
        let engine = Engine {
            resolver: self.resolver,
            backend: self.backend,
            customers: Cache::builder()
                .max_capacity(self.max_customers)
                .time_to_live(self.customer_ttl)
                .build(),
            budgets: Cache::builder()
                .max_capacity(self.max_budgets)
                .time_to_idle(self.idle_timeout)
                .build(),
            revivable: Mutex::new(Revivable::default()),
            meters: Mutex::new(HashMap::new()),
            recorder,
            limits_ttl: self.limits_ttl,
            fail_policy: self.fail_policy,
            failure_backoff: self.failure_backoff,
            success: self.success,
            on_rejection: self.on_rejection,
            origin: Instant::now(),
            shared: self.shared.map(|store| SharedConfig {
                store,
                fallback: self.shared_fallback,
                lease_units: self.lease_units,
                lease_idle: self.lease_idle,
                retry: self.shared_retry,
                down_until: AtomicU64::new(0),
                degraded: AtomicBool::new(false),
            }),
        };
        Ok(Paywall {
            engine: Arc::new(engine),
        })
    }
}

/// A cached customer with the budgets its routes have used, so the warm path finds
/// both with one cache lookup. Slots are indexed by the route's interned meter id and
/// read without a lock.
struct CustomerEntry {
    customer: Customer,
    budgets: ArcSwap<Vec<Option<Arc<Budget>>>>,
}

impl CustomerEntry {
    fn new(customer: Customer) -> Self {
        Self {
            customer,
            budgets: ArcSwap::from_pointee(Vec::new()),
        }
    }

    fn budget(&self, meter: u32) -> Option<Arc<Budget>> {
        self.budgets.load().get(meter as usize).cloned().flatten()
    }

    fn remember(&self, meter: u32, budget: &Arc<Budget>) {
        let index = meter as usize;
        self.budgets.rcu(|slots| {
            let mut slots = Vec::clone(slots);
            if slots.len() <= index {
                slots.resize(index + 1, None);
            }
            slots[index] = Some(Arc::clone(budget));
            slots
        });
    }

    fn budgets(&self) -> Vec<Arc<Budget>> {
        self.budgets.load().iter().flatten().cloned().collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BudgetKey {
    customer: CustomerRef,
    meter: u32,
}

/// Budgets evicted from the cache while usage is still in flight stay alive through
/// those events; a later cache miss revives them so their counters are not lost.
#[derive(Default)]
struct Revivable {
    budgets: HashMap<BudgetKey, Weak<Budget>>,
    sweep_at: usize,
}

impl Revivable {
    fn remember(&mut self, key: BudgetKey, budget: &Arc<Budget>) {
        self.budgets.insert(key, Arc::downgrade(budget));
        if self.budgets.len() >= self.sweep_at {
            self.budgets.retain(|_, weak| weak.strong_count() > 0);
            self.sweep_at = (self.budgets.len() * 2).max(1024);
        }
    }

    fn revive(&self, key: &BudgetKey) -> Option<Arc<Budget>> {
        self.budgets.get(key).and_then(Weak::upgrade)
    }
}

pub(crate) struct Engine {
    resolver: Box<dyn DynResolver>,
    backend: Arc<dyn DynBackend>,
    customers: Cache<String, Arc<CustomerEntry>>,
    budgets: Cache<BudgetKey, Arc<Budget>>,
    revivable: Mutex<Revivable>,
    meters: Mutex<MeterIds>,
    recorder: UsageRecorder,
    limits_ttl: Duration,
    fail_policy: FailPolicy,
    failure_backoff: Duration,
    success: Arc<SuccessFn>,
    on_rejection: Option<Arc<RejectionFn>>,
    origin: Instant,
    shared: Option<SharedConfig>,
}

/// The shared store and how the engine uses it.
struct SharedConfig {
    store: Arc<dyn DynShared>,
    fallback: SharedFallback,
    lease_units: u64,
    lease_idle: Duration,
    retry: Duration,
    /// Engine-clock milliseconds before which the store is not tried again.
    down_until: AtomicU64,
    /// Whether the last call to the store failed (to log transitions once).
    degraded: AtomicBool,
}

impl SharedConfig {
    fn failed(&self, err: &SharedError, now_ms: u64) {
        let retry = u64::try_from(self.retry.as_millis()).unwrap_or(u64::MAX);
        self.down_until
            .store(now_ms.saturating_add(retry), Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            warn!(error = %err, fallback = ?self.fallback,
                  "shared budget store unreachable; using the fallback until it is back");
        } else {
            debug!(error = %err, "shared budget store still unreachable");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            info!("shared budget store reachable again; budgets are shared");
        }
    }

    fn resting(&self, now_ms: u64) -> bool {
        now_ms < self.down_until.load(Ordering::Acquire)
    }
}

impl Paywall {
    /// Starts configuring a paywall that identifies callers with `resolver` and bills
    /// them through `backend`.
    pub fn builder(
        resolver: impl IdentityResolver,
        backend: impl BillingBackend,
    ) -> PaywallBuilder {
        PaywallBuilder {
            resolver: Box::new(resolver),
            backend: Arc::new(backend),
            customer_ttl: Duration::from_secs(3600),
            limits_ttl: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            max_customers: 100_000,
            max_budgets: 100_000,
            fail_policy: FailPolicy::Closed,
            failure_backoff: Duration::from_secs(2),
            recorder: RecorderConfig::default(),
            success: Arc::new(|status: StatusCode| status.is_success()),
            on_rejection: None,
            outbox: None,
            shared: None,
            shared_fallback: SharedFallback::default(),
            lease_units: 16,
            lease_idle: Duration::from_millis(500),
            shared_retry: Duration::from_secs(1),
        }
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
                units: charge.units,
                fail_policy: charge.fail_policy.unwrap_or(self.engine.fail_policy),
                meter_id,
            }),
        })
    }

    /// A tower [`Layer`](tower_layer::Layer) that protects a service with `charge`.
    pub fn layer(&self, charge: Charge) -> Result<PaywallLayer, ConfigError> {
        Ok(PaywallLayer::new(self.clone(), self.route(charge)?))
    }

    /// Decides on a request from its head: resolves the caller, ensures the customer and
    /// reserves the route's units. Adapters call this, forward the request on `Ok`, then
    /// call [`Admission::finish`] with the handler's status. The head is not modified:
    /// stripping a client-sent `x-customer-ref` and inserting the admitted customer are
    /// the adapter's job (the tower layer does both).
    pub async fn admit(&self, parts: &Parts, route: &Route) -> Result<Admission, Rejection> {
        let result = self.engine.admit(parts, &route.charge).await;
        match &result {
            Ok(admission) => debug!(
                product = %route.charge.product,
                customer = admission.customer.as_ref().map(|c| c.reference().as_str()),
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
        result.map(|grant| self.admission(grant, route))
    }

    fn admission(&self, grant: Grant, route: &Route) -> Admission {
        Admission {
            customer: grant.customer,
            reservation: grant.reservation,
            charge: Arc::clone(&route.charge),
            engine: Arc::clone(&self.engine),
            admitted_at: SystemTime::now(),
            started: Instant::now(),
        }
    }

    /// The response for `rejection`: the `on_rejection` hook's, or the default.
    pub fn rejection_response(&self, rejection: &Rejection) -> Response<Bytes> {
        match &self.engine.on_rejection {
            Some(hook) => hook(rejection),
            None => rejection.to_response(),
        }
    }

    /// Forces the budgets of `customer` to be refreshed on their next use: call it when
    /// the customer buys or changes a plan.
    ///
    /// With a shared store the budgets are marked stale there too, for every instance;
    /// a store failure is logged (the budgets refresh within the limits TTL anyway).
    pub async fn invalidate_customer(&self, customer: &CustomerRef) {
        let mut count = 0;
        for (key, budget) in self.engine.budgets.iter() {
            if key.customer == *customer {
                budget.mark_stale();
                count += 1;
            }
        }
        // Budgets may outlive their cache entry in the customer's slots.
        for (_, entry) in self.engine.customers.iter() {
            if entry.customer.reference() == customer {
                for budget in entry.budgets() {
                    budget.mark_stale();
                }
            }
        }
        if let Some(shared) = &self.engine.shared {
            for (product, meter) in self.engine.meter_names() {
                let id = BudgetId {
                    customer,
                    product: &product,
                    meter: &meter,
                };
                if let Err(err) = shared.store.mark_stale_boxed(id).await {
                    warn!(error = %err, customer = %customer, "shared budget not marked stale");
                }
            }
        }
        info!(customer = %customer, budgets = count, "customer budgets invalidated");
    }

    /// Forgets the cached customer of `external_ref` (it is ensured again on next use).
    pub async fn forget_external_ref(&self, external_ref: &str) {
        self.engine.customers.invalidate(external_ref).await;
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

/// What admission decided, before it is tied to a request.
struct Grant {
    customer: Option<Customer>,
    reservation: Option<Reservation>,
}

impl Engine {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn unavailable(&self, err: &BackendError) -> Rejection {
        Rejection::BillingUnavailable {
            retry_after: err.retry_after().unwrap_or(self.failure_backoff),
        }
    }

    async fn admit(&self, parts: &Parts, route: &RouteCharge) -> Result<Grant, Rejection> {
        let identity = match self.resolver.resolve_boxed(parts).await {
            Ok(Some(identity)) if !identity.external_ref.is_empty() => identity,
            Ok(Some(_)) => {
                debug!("identity with an empty external reference");
                return Err(Rejection::Unauthenticated(
                    Unauthenticated::InvalidCredentials,
                ));
            }
            Ok(None) => {
                return Err(Rejection::Unauthenticated(
                    Unauthenticated::MissingCredentials,
                ))
            }
            Err(IdentityError::Invalid(reason)) => {
                debug!(%reason, "credentials rejected");
                return Err(Rejection::Unauthenticated(
                    Unauthenticated::InvalidCredentials,
                ));
            }
            Err(IdentityError::Unavailable(reason)) => {
                warn!(%reason, "identity provider unavailable");
                return Err(Rejection::IdentityUnavailable {
                    retry_after: self.failure_backoff,
                });
            }
        };
        self.admit_identity(&identity, route).await
    }

    async fn admit_identity(
        &self,
        identity: &Identity,
        route: &RouteCharge,
    ) -> Result<Grant, Rejection> {
        let policy = route.fail_policy;

        let entry = match self.customer(identity).await {
            Ok(entry) => entry,
            Err(err) => {
                warn!(error = %err, external_ref = %identity.external_ref, "ensure-customer failed");
                return match policy {
                    FailPolicy::Open => Ok(Grant {
                        customer: None,
                        reservation: None,
                    }),
                    _ => Err(self.unavailable(&err)),
                };
            }
        };

        let customer = entry.customer.clone();
        if let Some(shared) = &self.shared {
            if let Some(decision) = self.admit_shared(shared, &entry, &customer, route).await {
                return decision;
            }
            // The store is unreachable: fall back to this instance's own budget.
        }
        let cached = entry.budget(route.meter_id);
        let found = match cached {
            Some(budget) => Ok(budget),
            None => self.budget(&customer, route).await.inspect(|budget| {
                entry.remember(route.meter_id, budget);
            }),
        };
        let budget = match found {
            Ok(budget) => budget,
            Err(err) => {
                warn!(error = %err, customer = %customer.reference(), "limits check failed");
                if let BackendError::NotFound(_) = &*err {
                    self.customers.invalidate(customer.external_ref()).await;
                }
                return match policy {
                    FailPolicy::Open => Ok(Grant {
                        customer: Some(customer),
                        reservation: None,
                    }),
                    _ => Err(self.unavailable(&err)),
                };
            }
        };

        let mut failure = None;
        if budget.needs_refresh(self.now_ms()) {
            if let Err(err) = self.refresh(&customer, route, &budget).await {
                warn!(error = %err, customer = %customer.reference(), "limits refresh failed");
                failure = Some(err);
            }
        } else if !budget.is_healthy() {
            failure = Some(BackendError::Unavailable {
                message: "backing off after a failed refresh".into(),
                retry_after: Some(Duration::from_millis(
                    budget.refresh_at().saturating_sub(self.now_ms()),
                )),
            });
        }
        if let Some(err) = failure {
            match policy {
                FailPolicy::Closed => return Err(self.unavailable(&err)),
                FailPolicy::Open => {
                    budget.force_reserve(route.units);
                    return Ok(Grant {
                        customer: Some(customer),
                        reservation: Some(Reservation::local(budget, route.units)),
                    });
                }
                FailPolicy::ServeStale => {}
            }
        }

        if budget.try_reserve(route.units) {
            Ok(Grant {
                customer: Some(customer),
                reservation: Some(Reservation::local(budget, route.units)),
            })
        } else {
            Err(Rejection::PaymentRequired(
                self.payment_required(&budget, route),
            ))
        }
    }

    async fn customer(&self, identity: &Identity) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        if let Some(entry) = self.customers.get(identity.external_ref.as_str()).await {
            return Ok(entry);
        }
        self.customers
            .try_get_with(identity.external_ref.clone(), async {
                let reference = self.backend.ensure_customer_boxed(identity).await?;
                debug!(customer = %reference, "customer ensured");
                Customer::new(reference, &identity.external_ref)
                    .map(|customer| Arc::new(CustomerEntry::new(customer)))
                    .ok_or_else(|| {
                        BackendError::Rejected(
                            "customer reference is not a valid header value".into(),
                        )
                    })
            })
            .await
    }

    async fn budget(
        &self,
        customer: &Customer,
        route: &RouteCharge,
    ) -> Result<Arc<Budget>, Arc<BackendError>> {
        let key = BudgetKey {
            customer: customer.reference().clone(),
            meter: route.meter_id,
        };
        if let Some(budget) = self.budgets.get(&key).await {
            return Ok(budget);
        }
        self.budgets
            .try_get_with(key.clone(), async {
                let revived = self
                    .revivable
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .revive(&key);
                if let Some(budget) = revived {
                    // Evicted while usage was in flight: keep its counters, refresh it.
                    budget.mark_stale();
                    return Ok(budget);
                }
                let limits = self
                    .backend
                    .check_limits_boxed(customer.reference(), &route.product, &route.meter)
                    .await?;
                let budget = Arc::new(Budget::new(limits, 0, self.refresh_deadline()));
                self.revivable
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remember(key.clone(), &budget);
                Ok(budget)
            })
            .await
    }

    fn refresh_deadline(&self) -> u64 {
        self.now_ms()
            .saturating_add(u64::try_from(self.limits_ttl.as_millis()).unwrap_or(u64::MAX))
    }

    /// Refreshes `budget` from the backend; concurrent callers share one call.
    async fn refresh(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Budget,
    ) -> Result<(), BackendError> {
        let seen = budget.attempts();
        let _gate = budget.gate().lock().await;
        if budget.attempts() != seen {
            // Someone refreshed while we waited; use their outcome.
            return if budget.is_healthy() {
                Ok(())
            } else {
                Err(BackendError::unavailable("the concurrent refresh failed"))
            };
        }
        let acked_before = budget.acked();
        let result = self
            .backend
            .check_limits_boxed(customer.reference(), &route.product, &route.meter)
            .await;
        match &result {
            Ok(limits) => {
                budget.apply(limits.clone(), acked_before, self.refresh_deadline());
                debug!(customer = %customer.reference(), remaining = budget.remaining(), "budget refreshed");
            }
            Err(err) => {
                let wait = err.retry_after().unwrap_or(self.failure_backoff);
                budget.mark_failed(
                    self.now_ms()
                        .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                );
            }
        }
        budget.bump_attempts();
        result.map(drop)
    }

    /// Admission through the shared store. `None`: the store is unreachable and the
    /// fallback is the local budget.
    async fn admit_shared(
        &self,
        shared: &SharedConfig,
        entry: &CustomerEntry,
        customer: &Customer,
        route: &RouteCharge,
    ) -> Option<Result<Grant, Rejection>> {
        let budget = match entry.budget(route.meter_id) {
            Some(budget) => budget,
            None => {
                let budget = self.leased_budget(customer, route).await;
                entry.remember(route.meter_id, &budget);
                budget
            }
        };
        // Warm path: units already leased to this instance.
        if budget.try_take_leased(shared.store.current_session(), route.units) {
            // Lease the next units before these run out, off the request's path.
            if budget.spare() < shared.lease_units / 2 && budget.start_refill() {
                self.refill(shared, customer, route, &budget);
            }
            return Some(Ok(Grant {
                customer: Some(customer.clone()),
                reservation: Some(Reservation::leased(budget, route.units)),
            }));
        }
        let fallback = |retry_after: Duration| match shared.fallback {
            SharedFallback::Closed => Some(Err(Rejection::BillingUnavailable { retry_after })),
            _ => None,
        };
        if shared.resting(self.now_ms()) {
            return fallback(shared.retry);
        }
        match self.lease(shared, customer, route, &budget).await {
            Ok(decision) => {
                shared.recovered();
                Some(decision)
            }
            Err(err) => {
                shared.failed(&err, self.now_ms());
                fallback(shared.retry)
            }
        }
    }

    /// The budget object for a shared budget: created without a backend call (the
    /// store holds the allowance).
    async fn leased_budget(&self, customer: &Customer, route: &RouteCharge) -> Arc<Budget> {
        let key = BudgetKey {
            customer: customer.reference().clone(),
            meter: route.meter_id,
        };
        self.budgets
            .get_with(key.clone(), async {
                let mut revivable = self
                    .revivable
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(budget) = revivable.revive(&key) {
                    return budget;
                }
                let budget = Arc::new(Budget::leased());
                revivable.remember(key.clone(), &budget);
                budget
            })
            .await
    }

    /// Leases units from the store for a request the local spare cannot cover, with
    /// one lease call at a time per budget. `Err` only when the store failed.
    async fn lease(
        &self,
        shared: &SharedConfig,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
    ) -> Result<Result<Grant, Rejection>, SharedError> {
        let id = BudgetId {
            customer: customer.reference(),
            product: &route.product,
            meter: &route.meter,
        };
        let units = route.units;
        let admitted = |budget: &Arc<Budget>| Grant {
            customer: Some(customer.clone()),
            reservation: Some(Reservation::leased(Arc::clone(budget), units)),
        };
        let forced = |budget: &Arc<Budget>| {
            budget.force_reserve(units);
            Grant {
                customer: Some(customer.clone()),
                reservation: Some(Reservation::local(Arc::clone(budget), units)),
            }
        };
        let mut sync = budget.gate().lock().await;
        let mut stale_ok = false;
        let mut remaining = 0;
        for _ in 0..4 {
            let session = shared.store.current_session();
            if budget.try_take_leased(session, units) {
                return Ok(Ok(admitted(budget)));
            }
            // Spare units too few for this request go back; void ones are dropped.
            let give_back = match session {
                Some(_) if budget.lease_is_current(session) => budget.take_spare(),
                Some(_) => {
                    budget.take_spare();
                    0
                }
                None => 0,
            };
            let acks = budget.acked().saturating_sub(sync.acked_pushed);
            let request = LeaseRequest {
                need: units,
                want: units.max(shared.lease_units),
                acks,
                give_back,
                stale_ok,
            };
            let answer = match shared.store.lease_boxed(id, request).await {
                Ok(answer) => answer,
                Err(err) => {
                    budget.restore_spare(give_back);
                    return Err(err);
                }
            };
            sync.acked_pushed = sync.acked_pushed.saturating_add(acks);
            match answer {
                LeaseAnswer::Granted {
                    units: granted,
                    generation,
                    session,
                } => {
                    if shared.store.current_session() != Some(session) {
                        // The session changed while we asked: those units are void
                        // (the store forgets them with the old session).
                        continue;
                    }
                    if generation != sync.generation || !budget.lease_is_current(Some(session)) {
                        // Units leased from another incarnation are void.
                        budget.take_spare();
                        sync.generation = generation;
                    }
                    budget.grow_lease(session, granted);
                    // Spare units go back, and acknowledgements are reported, once the
                    // budget is idle; until then other instances count them as leased.
                    self.watch_lease(shared, customer, route, budget);
                    if budget.try_take_leased(Some(session), units) {
                        return Ok(Ok(admitted(budget)));
                    }
                    // Warm-path requests took the new units first; lease again.
                }
                LeaseAnswer::Exhausted {
                    remaining: left,
                    limits,
                } => {
                    if let Some(limits) = limits {
                        budget.set_info(limits);
                    }
                    remaining = left;
                    break;
                }
                LeaseAnswer::Refresh(ticket) => {
                    if stale_ok {
                        // Nothing stale to serve: the budget is missing from the store.
                        return Ok(Err(self.unavailable(&BackendError::unavailable(
                            "no budget known while the backend is down",
                        ))));
                    }
                    let answer = self
                        .backend
                        .check_limits_boxed(customer.reference(), &route.product, &route.meter)
                        .await;
                    match answer {
                        Ok(limits) => {
                            shared
                                .store
                                .install_boxed(id, &ticket, &limits, self.limits_ttl)
                                .await?;
                            debug!(customer = %customer.reference(), remaining = limits.remaining,
                                   "shared budget refreshed");
                            budget.set_info(limits);
                        }
                        Err(err) => {
                            warn!(error = %err, customer = %customer.reference(), "limits refresh failed");
                            if let BackendError::NotFound(_) = &err {
                                self.customers.invalidate(customer.external_ref()).await;
                            }
                            let wait = err.retry_after().unwrap_or(self.failure_backoff);
                            if let Err(store_err) =
                                shared.store.refresh_failed_boxed(id, &ticket, wait).await
                            {
                                debug!(error = %store_err, "refresh failure not recorded in the store");
                            }
                            match route.fail_policy {
                                FailPolicy::Open => return Ok(Ok(forced(budget))),
                                FailPolicy::ServeStale => stale_ok = true,
                                _ => return Ok(Err(self.unavailable(&err))),
                            }
                        }
                    }
                }
                LeaseAnswer::Unavailable { retry_after } => match route.fail_policy {
                    FailPolicy::Open => return Ok(Ok(forced(budget))),
                    FailPolicy::ServeStale if !stale_ok => stale_ok = true,
                    _ => return Ok(Err(Rejection::BillingUnavailable { retry_after })),
                },
            }
        }
        let mut required = self.payment_required(budget, route);
        required.remaining = remaining;
        Ok(Err(Rejection::PaymentRequired(required)))
    }

    /// Starts a task (one per budget at a time) that gives back this budget's spare
    /// units once it has been idle for `lease_idle`, and reports acknowledgements,
    /// until nothing is outstanding.
    fn watch_lease(
        &self,
        shared: &SharedConfig,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
    ) {
        if !budget.start_returning() {
            return;
        }
        let store = Arc::clone(&shared.store);
        let budget = Arc::clone(budget);
        let customer = customer.reference().clone();
        let product = Arc::clone(&route.product);
        let meter = Arc::clone(&route.meter);
        let idle = shared.lease_idle;
        tokio::spawn(async move {
            let id = BudgetId {
                customer: &customer,
                product: &product,
                meter: &meter,
            };
            loop {
                let mut seen = budget.consumed();
                // Bounded: a budget whose acknowledgements never come (backend down)
                // stops being watched; its next lease starts a new watch.
                for _ in 0..WATCH_ROUNDS {
                    tokio::time::sleep(idle).await;
                    let now = budget.consumed();
                    if now != seen {
                        seen = now;
                        continue;
                    }
                    if settle(&*store, id, &budget).await {
                        break;
                    }
                }
                budget.stop_returning();
                // A lease granted while we were stopping found the watch taken.
                if budget.spare() == 0 || !budget.start_returning() {
                    break;
                }
            }
        });
    }

    /// Leases more units for `budget` in the background, so that a busy budget's
    /// requests do not wait for Redis when the spare runs out. Only grants are used:
    /// refreshes and exhaustion are left to the request that finds the spare empty.
    fn refill(
        &self,
        shared: &SharedConfig,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
    ) {
        let store = Arc::clone(&shared.store);
        let budget = Arc::clone(budget);
        let customer = customer.reference().clone();
        let product = Arc::clone(&route.product);
        let meter = Arc::clone(&route.meter);
        let want = shared.lease_units;
        tokio::spawn(async move {
            let id = BudgetId {
                customer: &customer,
                product: &product,
                meter: &meter,
            };
            {
                let mut sync = budget.gate().lock().await;
                let session = store.current_session();
                if budget.lease_is_current(session) && budget.spare() < want / 2 {
                    let acks = budget.acked().saturating_sub(sync.acked_pushed);
                    let request = LeaseRequest {
                        need: 0,
                        want,
                        acks,
                        give_back: 0,
                        stale_ok: false,
                    };
                    match store.lease_boxed(id, request).await {
                        Ok(answer) => {
                            sync.acked_pushed = sync.acked_pushed.saturating_add(acks);
                            if let LeaseAnswer::Granted {
                                units,
                                generation,
                                session,
                            } = answer
                            {
                                if generation == sync.generation
                                    && store.current_session() == Some(session)
                                    && budget.lease_is_current(Some(session))
                                {
                                    budget.grow_lease(session, units);
                                }
                                // Otherwise the units are void; the store forgets them
                                // with the old session or generation.
                            }
                        }
                        Err(err) => debug!(error = %err, "background lease failed"),
                    }
                }
            }
            budget.stop_refill();
        });
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

    /// At shutdown: give every spare unit back and report acknowledgements.
    async fn give_back_leases(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let meters: HashMap<u32, (Arc<str>, Arc<str>)> = self
            .meters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(names, id)| (*id, names.clone()))
            .collect();
        let mut settled = 0usize;
        for (key, budget) in self.budgets.iter() {
            let Some((product, meter)) = meters.get(&key.meter) else {
                continue;
            };
            let id = BudgetId {
                customer: &key.customer,
                product,
                meter,
            };
            if settle(&*shared.store, id, &budget).await {
                settled += 1;
            }
        }
        debug!(budgets = settled, "leases given back");
    }

    fn payment_required(&self, budget: &Budget, route: &RouteCharge) -> PaymentRequired {
        let info = budget.info();
        PaymentRequired {
            activation_required: info.activation_required,
            product: route.product.to_string(),
            checkout_url: info.checkout_url.clone().unwrap_or_default(),
            confirmation_url: info.confirmation_url.clone(),
            plan: info.plan.clone(),
            remaining: budget.remaining(),
            units: route.units,
            retry_after: info
                .resets_at
                .and_then(|at| at.duration_since(SystemTime::now()).ok()),
        }
    }
}

/// How many idle periods a lease watch lasts at most.
const WATCH_ROUNDS: u32 = 240;

/// Gives back the spare units of `budget` (when still valid) and reports its
/// acknowledgements. True when nothing is left outstanding.
async fn settle(store: &dyn DynShared, id: BudgetId<'_>, budget: &Budget) -> bool {
    let mut sync = budget.gate().lock().await;
    let session = store.current_session();
    let spare = if budget.lease_is_current(session) {
        budget.take_spare()
    } else {
        0
    };
    let acks = budget.acked().saturating_sub(sync.acked_pushed);
    if spare > 0 || acks > 0 {
        match store.settle_boxed(id, acks, spare).await {
            Ok(()) => sync.acked_pushed = sync.acked_pushed.saturating_add(acks),
            Err(err) => {
                budget.restore_spare(spare);
                debug!(error = %err, "lease not settled; trying again later");
                return false;
            }
        }
    }
    budget.spare() == 0 && budget.unacknowledged() == 0 && budget.acked() == sync.acked_pushed
}

/// Units held for an admitted request; given back on drop unless committed.
struct Reservation {
    budget: Arc<Budget>,
    units: u64,
    /// Taken from units leased from the shared store (given back to the lease).
    leased: bool,
}

impl Reservation {
    fn local(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: false,
        }
    }

    fn leased(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: true,
        }
    }

    /// Keeps the units consumed and hands the budget on, to be acknowledged later.
    fn commit(mut self) -> Arc<Budget> {
        self.units = 0; // nothing to give back on drop
        Arc::clone(&self.budget)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.units > 0 {
            if self.leased {
                self.budget.release_leased(self.units);
            } else {
                self.budget.release(self.units);
            }
        }
    }
}

/// An admitted request: its customer and the units held for it.
///
/// Finish it with the handler's status to commit or give back the units. Dropping it
/// unfinished (the request was cancelled, the inner service failed) gives them back.
pub struct Admission {
    customer: Option<Customer>,
    reservation: Option<Reservation>,
    charge: Arc<RouteCharge>,
    engine: Arc<Engine>,
    admitted_at: SystemTime,
    started: Instant,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("customer", &self.customer)
            .field("product", &self.charge.product)
            .field("units", &self.charge.units)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The billed customer; `None` only when a fail-open policy admitted a caller whose
    /// customer could not be ensured.
    pub fn customer(&self) -> Option<&Customer> {
        self.customer.as_ref()
    }

    /// Settles the admission with the handler's status: a success (2xx unless
    /// configured otherwise) commits the units and queues a usage event; anything else
    /// gives the units back. Waits only if the usage queue is full.
    pub async fn finish(mut self, status: StatusCode) {
        if !(self.engine.success)(status) {
            debug!(%status, "handler did not succeed; units given back");
            return; // the reservation's drop gives the units back
        }
        if self.customer.is_none() {
            return;
        }
        let engine = Arc::clone(&self.engine);
        if let Some(outbox) = engine.recorder.outbox().cloned() {
            return self.finish_durably(outbox).await;
        }
        // Wait for room first: if this future is dropped while waiting, the admission
        // drops with it and its units are given back (the client got no response).
        let slot = engine.recorder.slot().await;
        let Some((event, budget)) = self.commit() else {
            return;
        };
        match slot {
            Ok(slot) => slot.send(Pending { event, budget }),
            // Shutting down: the event is logged with its key and counted as pending.
            Err(_) => engine.recorder.refuse(&event),
        }
    }

    /// Commits the reservation and builds the usage event.
    fn commit(&mut self) -> Option<(UsageEvent, Option<Arc<Budget>>)> {
        let customer = self.customer.take()?;
        let budget = self.reservation.take().map(Reservation::commit);
        let event = UsageEvent {
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            customer: customer.reference().clone(),
            product: Arc::clone(&self.charge.product),
            meter: Arc::clone(&self.charge.meter),
            units: self.charge.units,
            outcome: Outcome::Success,
            timestamp: self.admitted_at,
            duration: Some(self.started.elapsed()),
        };
        Some((event, budget))
    }

    /// With an outbox: store, then queue, in a task the request cannot cancel halfway.
    async fn finish_durably(mut self, outbox: Arc<dyn DynOutbox>) {
        let engine = Arc::clone(&self.engine);
        let slot = engine.recorder.slot().await;
        let Some((event, budget)) = self.commit() else {
            return;
        };
        let recorder = engine.recorder.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = outbox.store_boxed(&event).await {
                error!(idempotency_key = %event.idempotency_key, error = %err,
                       "usage event not stored in the outbox; kept in memory only");
            }
            match slot {
                Ok(slot) => slot.send(Pending { event, budget }),
                Err(_) => recorder.refuse(&event),
            }
        });
        let _ = task.await;
    }
}
