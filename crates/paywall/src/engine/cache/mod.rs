//! What the engine caches and how a miss is filled: customer entries, each holding the
//! budgets its routes used (one cache entry per user, so the warm path is one lookup),
//! and checkout links for 402s. Concurrent misses for one key share one backend call.
//! Transient errors are not cached; a backend's refusal of a caller's customer is
//! remembered per externalRef, with a doubling back-off, so a hostile caller cannot
//! turn requests into backend calls. A budget whose customer entry was evicted while
//! usage is still in flight is revived on the next miss, so its counters are not lost.

mod checkout;
mod entry;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use moka::future::Cache;
use tracing::{debug, warn};

use super::budget::Due;
use super::clock::{millis, Clock};
use super::recall::{next_cache_id, Recall};
use super::Budget;
use crate::backend::{BackendError, DynBackend};
use crate::charge::RouteCharge;
use crate::customer::{Customer, CustomerRef};
use crate::identity::Identity;

pub(super) use checkout::CheckoutLinks;
use entry::Revivable;
pub(super) use entry::{BudgetKey, CustomerEntry};

/// A backend's refusal of an externalRef's customer, remembered until `until_ms`.
#[derive(Clone)]
struct Refusal {
    until_ms: u64,
    strikes: u32,
    error: Arc<BackendError>,
}

/// The longest a refusal is remembered before the backend is asked again.
const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(600);

/// How long a budget load's single-flight entry may live (a load is forgotten as soon
/// as it finishes; this only bounds one that never does).
const LOAD_TTL: Duration = Duration::from_secs(60);

/// The engine's cache of customers and their budgets: the customer entries (one per
/// user, holding its budgets), remembered refusals, the single-flight of budget loads,
/// and the registry of every budget still alive. Its fields are its own: the engine
/// asks it for a customer or a budget, and tells it to forget or mark stale.
pub(super) struct CustomerCache {
    /// This cache's identity in the [`Recall`]s it fills.
    id: u64,
    /// The customers' time to live, in milliseconds.
    customer_ttl_ms: u64,
    /// Read on every request: moka's synchronous cache, so the warm lookup is a call,
    /// not a future held in every request's state (moka's `get` future is 752 bytes).
    /// Hashed with foldhash, seeded per process, not SipHash: looked up on every
    /// request, and filled only with callers the identity resolver vouched for.
    customers: moka::sync::Cache<Arc<str>, Arc<CustomerEntry>, foldhash::quality::RandomState>,
    /// Single-flight for ensure-customer only: an entry is forgotten here as soon as
    /// it is in `customers`.
    customer_loads: Cache<Arc<str>, Arc<CustomerEntry>>,
    refusals: Cache<String, Refusal>,
    refusal_backoff: Duration,
    /// Single-flight for budget loads only: a budget lives in its customer's entry,
    /// and a load is forgotten here as soon as it is there.
    budget_loads: Cache<BudgetKey, Arc<Budget>>,
    registry: Mutex<Revivable>,
}

impl CustomerCache {
    /// At most `max_customers` customers, each kept at most `customer_ttl`; a refused
    /// customer is asked for again after `refusal_backoff`, doubling per refusal.
    pub(super) fn new(
        max_customers: u64,
        customer_ttl: Duration,
        refusal_backoff: Duration,
    ) -> Self {
        Self {
            id: next_cache_id(),
            customer_ttl_ms: millis(customer_ttl),
            customers: moka::sync::Cache::builder()
                .max_capacity(max_customers)
                .time_to_live(customer_ttl)
                .eviction_listener(|_, entry: Arc<CustomerEntry>, _| {
                    entry.retire();
                })
                .build_with_hasher(foldhash::quality::RandomState::default()),
            customer_loads: Cache::builder()
                .max_capacity(max_customers)
                .time_to_live(LOAD_TTL)
                .build(),
            refusals: Cache::builder()
                .max_capacity(max_customers)
                .time_to_live(MAX_REFUSAL_BACKOFF)
                .build(),
            refusal_backoff,
            budget_loads: Cache::builder()
                .max_capacity(max_customers)
                .time_to_live(LOAD_TTL)
                .build(),
            registry: Mutex::new(Revivable::default()),
        }
    }

    /// The customer entry of `identity`, when it is cached: from the identity's
    /// [`Recall`] when it remembers the entry, looked up (and remembered) otherwise.
    pub(super) fn cached(&self, identity: &Identity, now_ms: u64) -> Option<Arc<CustomerEntry>> {
        let external_ref = identity.external_ref.as_str();
        let Some(recall) = identity.recall() else {
            return self.customers.get(external_ref);
        };
        if let Some(entry) = recall.entry(self.id, external_ref, now_ms) {
            return Some(entry);
        }
        let entry = self.customers.get(external_ref)?;
        self.remember(recall, &entry, now_ms);
        Some(entry)
    }

    /// Remembers `entry` in `recall`, unless it is no longer current.
    fn remember(&self, recall: &Recall, entry: &Arc<CustomerEntry>, now_ms: u64) {
        if entry.is_current(entry.customer.external_ref(), now_ms) {
            recall.remember(self.id, entry);
        }
    }

    /// The caller's customer entry: cached, or ensured at `backend` (one call for
    /// concurrent first requests). A refusal is answered from memory while its
    /// back-off runs.
    pub(super) async fn customer(
        &self,
        identity: &Identity,
        backend: &dyn DynBackend,
        clock: &Clock,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        if let Some(entry) = self.cached(identity, clock.now_ms()) {
            return Ok(entry);
        }
        let entry = Box::pin(self.customer_miss(identity, backend, clock)).await?;
        if let Some(recall) = identity.recall() {
            self.remember(recall, &entry, clock.now_ms());
        }
        Ok(entry)
    }

    /// The cold path of [`customer`](Self::customer): a remembered refusal, or
    /// ensure-customer at the backend.
    async fn customer_miss(
        &self,
        identity: &Identity,
        backend: &dyn DynBackend,
        clock: &Clock,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        let external_ref = identity.external_ref.as_str();
        let refused = self.refusals.get(external_ref).await;
        if let Some(refusal) = &refused {
            if clock.now_ms() < refusal.until_ms {
                return Err(Arc::clone(&refusal.error));
            }
        }
        let result = self.ensure(identity, backend, clock).await;
        if let Err(err) = &result {
            if err.is_refusal() {
                let strikes = refused.map_or(0, |r| r.strikes.saturating_add(1));
                let wait = self
                    .refusal_backoff
                    .saturating_mul(2u32.saturating_pow(strikes.min(16)))
                    .min(MAX_REFUSAL_BACKOFF);
                warn!(error = %err, retry_in_s = wait.as_secs(), "the billing backend refused a caller's customer");
                let refusal = Refusal {
                    until_ms: clock.now_ms().saturating_add(millis(wait)),
                    strikes,
                    error: Arc::clone(err),
                };
                self.refusals.insert(external_ref.to_owned(), refusal).await;
            }
        }
        result
    }

    /// Ensure-customer at the backend, one call for concurrent misses.
    async fn ensure(
        &self,
        identity: &Identity,
        backend: &dyn DynBackend,
        clock: &Clock,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        // The key's string is the customer's external reference too: one copy per user.
        let key: Arc<str> = Arc::from(identity.external_ref.as_str());
        let entry = self
            .customer_loads
            .try_get_with(Arc::clone(&key), async {
                // A load that finished just before this one began has put its entry in
                // the cache (before forgetting the load): use it, call nobody.
                if let Some(entry) = self.customers.get(&key) {
                    return Ok(entry);
                }
                // Read before the entry enters the cache: its expiry is no later
                // than the cache's.
                let expires_ms = clock.now_ms().saturating_add(self.customer_ttl_ms);
                let reference = backend.ensure_customer_boxed(identity).await?;
                debug!(customer = %reference, "customer ensured");
                Customer::new(reference, Arc::clone(&key))
                    .map(|customer| Arc::new(CustomerEntry::new(customer, expires_ms)))
                    .ok_or_else(|| {
                        BackendError::Rejected(
                            "customer reference is not a valid header value".into(),
                        )
                    })
            })
            .await?;
        // Into the cache every request reads, then out of the single-flight: a miss
        // after this finds the entry, never starts a second ensure.
        if self.customers.get(&key).is_none() {
            self.customers.insert(Arc::clone(&key), Arc::clone(&entry));
        }
        self.customer_loads.invalidate(&key).await;
        Ok(self.customers.get(&key).unwrap_or(entry))
    }

    /// The entry's local budget for the route: in its slot, revived, or fetched from
    /// `backend` (one call for concurrent misses of the same customer and meter), due
    /// for a refresh `ttl` after the answer.
    pub(super) async fn budget(
        &self,
        entry: &CustomerEntry,
        route: &RouteCharge,
        backend: &dyn DynBackend,
        clock: &Clock,
        ttl: Duration,
    ) -> Result<Arc<Budget>, Arc<BackendError>> {
        if let Some(budget) = entry.budget(route.meter_id) {
            return Ok(budget);
        }
        let key = BudgetKey::new(&entry.customer, route);
        let budget = self
            .budget_loads
            .try_get_with(key.clone(), async {
                if let Some((budget, revived)) = self.existing(entry, &key) {
                    if revived {
                        // Its counters are kept; what the backend says may have moved.
                        budget.mark_stale();
                    }
                    return Ok(budget);
                }
                let limits = backend
                    .check_limits_boxed(entry.customer.reference(), &route.product, &route.meter)
                    .await?;
                let due = Due::after(clock.now_ms(), ttl, &limits, SystemTime::now());
                Ok(self.created(&key, Budget::new(limits, 0, due)))
            })
            .await?;
        Ok(self.loaded(entry, &key, budget).await)
    }

    /// The budget of a shared budget: in the entry's slot, revived, or created without a
    /// backend call (the store holds the allowance); one for concurrent misses.
    pub(super) async fn leased_budget(
        &self,
        entry: &CustomerEntry,
        route: &RouteCharge,
    ) -> Arc<Budget> {
        if let Some(budget) = entry.budget(route.meter_id) {
            return budget;
        }
        let key = BudgetKey::new(&entry.customer, route);
        let budget = self
            .budget_loads
            .get_with(key.clone(), async {
                match self.existing(entry, &key) {
                    Some((budget, _)) => budget,
                    None => self.created(&key, Budget::leased()),
                }
            })
            .await;
        self.loaded(entry, &key, budget).await
    }

    /// A budget the key already has, inside a load: in the entry's slot (loaded just
    /// before, by a load already forgotten), or alive elsewhere (`true`: revived, its
    /// customer entry was evicted while usage was in flight).
    fn existing(&self, entry: &CustomerEntry, key: &BudgetKey) -> Option<(Arc<Budget>, bool)> {
        if let Some(budget) = entry.budget(key.meter) {
            return Some((budget, false));
        }
        self.registry().revive(key).map(|budget| (budget, true))
    }

    /// A new budget, registered so that it can be revived and reached at shutdown.
    fn created(&self, key: &BudgetKey, budget: Budget) -> Arc<Budget> {
        let budget = Arc::new(budget);
        self.registry().remember(key.clone(), &budget);
        budget
    }

    /// Finishes a budget load: the budget goes into the entry's slot (the one every
    /// later request reads) and the load is forgotten, so the single-flight cache
    /// holds nothing between loads. A load that starts after this finds the budget in
    /// the slot, or alive through [`Revivable`], never makes a second one.
    async fn loaded(
        &self,
        entry: &CustomerEntry,
        key: &BudgetKey,
        budget: Arc<Budget>,
    ) -> Arc<Budget> {
        entry.remember(key.meter, &budget);
        self.budget_loads.invalidate(key).await;
        // Another load may have filled the slot first: use what the slot holds.
        entry.budget(key.meter).unwrap_or(budget)
    }

    /// Forgets the customer of `external_ref`: it is ensured again on next use. Its
    /// budgets stay alive while usage is in flight and are revived then.
    pub(super) async fn forget(&self, external_ref: &str) {
        self.customers.invalidate(external_ref);
    }

    /// Marks every budget of `customer` stale; returns how many there were.
    pub(super) fn mark_stale(&self, customer: &CustomerRef) -> usize {
        let budgets = self.registry().of_customer(customer);
        for budget in &budgets {
            budget.mark_stale();
        }
        budgets.len()
    }

    /// Every budget still alive, cached or kept alive by usage in flight.
    pub(super) fn live_budgets(&self) -> Vec<(BudgetKey, Arc<Budget>)> {
        self.registry().live()
    }

    /// How many budgets are alive.
    pub(super) fn live_budget_count(&self) -> usize {
        self.registry().live_count()
    }

    /// How many customers are cached (moka's estimate).
    pub(super) fn customer_count(&self) -> u64 {
        self.customers.entry_count()
    }

    fn registry(&self) -> MutexGuard<'_, Revivable> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
