//! What the engine caches and how a miss is filled: customer entries, each holding the
//! budgets its routes used (one cache entry per user, so the warm path is one lookup),
//! and checkout links for 402s. Concurrent misses for one key share one backend call.
//! Transient errors are not cached; a backend's refusal of a caller's customer is
//! remembered per externalRef, with a doubling back-off, so a hostile caller cannot
//! turn requests into backend calls. A budget whose customer entry was evicted while
//! usage is still in flight is revived on the next miss, so its counters are not lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use moka::future::Cache;
use tracing::{debug, warn};

use super::budget::Due;
use super::clock::{millis, Clock};
use super::Budget;
use crate::backend::{BackendError, DynBackend};
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::customer::CustomerRef;
use crate::identity::Identity;

/// A cached customer with the budgets its routes have used: the only place budgets are
/// cached, so the warm path finds both with one lookup and a user costs one cache
/// entry. Slots are indexed by the route's interned meter id and read without a lock:
/// the first meter's inline, the others in a vector allocated only when a customer uses
/// more than one.
pub(super) struct CustomerEntry {
    pub(super) customer: Customer,
    first: ArcSwapOption<Budget>,
    others: ArcSwapOption<Vec<Option<Arc<Budget>>>>,
}

impl CustomerEntry {
    fn new(customer: Customer) -> Self {
        Self {
            customer,
            first: ArcSwapOption::empty(),
            others: ArcSwapOption::empty(),
        }
    }

    pub(super) fn budget(&self, meter: u32) -> Option<Arc<Budget>> {
        match meter.checked_sub(1) {
            None => self.first.load_full(),
            Some(index) => self
                .others
                .load()
                .as_ref()
                .and_then(|slots| slots.get(index as usize).cloned().flatten()),
        }
    }

    /// Puts `budget` in the meter's slot unless one is there already.
    fn remember(&self, meter: u32, budget: &Arc<Budget>) {
        let Some(index) = meter.checked_sub(1) else {
            self.first
                .rcu(|slot| slot.clone().or_else(|| Some(Arc::clone(budget))));
            return;
        };
        let index = index as usize;
        self.others.rcu(|slots| {
            let mut slots = slots.as_deref().cloned().unwrap_or_default();
            if slots.len() <= index {
                slots.resize(index + 1, None);
            }
            if slots[index].is_none() {
                slots[index] = Some(Arc::clone(budget));
            }
            Some(Arc::new(slots))
        });
    }
}

/// A budget's cache key: the customer and the route's interned (product, meter).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct BudgetKey {
    pub(super) customer: CustomerRef,
    pub(super) meter: u32,
}

impl BudgetKey {
    pub(super) fn new(customer: &Customer, route: &RouteCharge) -> Self {
        Self {
            customer: customer.reference().clone(),
            meter: route.meter_id,
        }
    }
}

/// Every budget still alive, by key: those in cached customer entries, and those whose
/// entry was evicted while usage is still in flight (the events keep them alive). A
/// later miss revives such a budget so its counters are not lost; shutdown and
/// invalidation reach every budget through it.
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

    /// The budgets still alive.
    fn live(&self) -> Vec<(BudgetKey, Arc<Budget>)> {
        self.budgets
            .iter()
            .filter_map(|(key, weak)| weak.upgrade().map(|budget| (key.clone(), budget)))
            .collect()
    }

    /// The budgets of `customer` still alive.
    fn of_customer(&self, customer: &CustomerRef) -> Vec<Arc<Budget>> {
        self.budgets
            .iter()
            .filter(|(key, _)| key.customer == *customer)
            .filter_map(|(_, weak)| weak.upgrade())
            .collect()
    }

    fn live_count(&self) -> usize {
        self.budgets
            .values()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }
}

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

/// How long a 402 waits for a checkout link before it is answered without one.
const CHECKOUT_LINK_TIMEOUT: Duration = Duration::from_secs(3);

/// The engine's cache of customers and their budgets: the customer entries (one per
/// user, holding its budgets), remembered refusals, the single-flight of budget loads,
/// and the registry of every budget still alive. Its fields are its own: the engine
/// asks it for a customer or a budget, and tells it to forget or mark stale.
pub(super) struct CustomerCache {
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
            customers: moka::sync::Cache::builder()
                .max_capacity(max_customers)
                .time_to_live(customer_ttl)
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

    /// The customer entry of `external_ref`, when it is cached.
    pub(super) fn cached(&self, external_ref: &str) -> Option<Arc<CustomerEntry>> {
        self.customers.get(external_ref)
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
        if let Some(entry) = self.cached(&identity.external_ref) {
            return Ok(entry);
        }
        Box::pin(self.customer_miss(identity, backend, clock)).await
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
        let result = self.ensure(identity, backend).await;
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
                let reference = backend.ensure_customer_boxed(identity).await?;
                debug!(customer = %reference, "customer ensured");
                Customer::new(reference, Arc::clone(&key))
                    .map(|customer| Arc::new(CustomerEntry::new(customer)))
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

/// Checkout links for 402s that have none: asked of the backend once for concurrent
/// 402s of a customer and product, kept briefly.
pub(super) struct CheckoutLinks {
    links: Cache<(CustomerRef, Arc<str>), Arc<str>>,
}

impl CheckoutLinks {
    /// At most `capacity` links, each kept a minute.
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            links: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Where `customer` can pay for the route's product, or `None` (the 402 omits the
    /// link) when the backend has none, fails or is slow.
    pub(super) async fn get(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        backend: &dyn DynBackend,
    ) -> Option<String> {
        let key = (customer.reference().clone(), Arc::clone(&route.product));
        let link = self
            .links
            .try_get_with(key, async {
                let asked = backend.checkout_url_boxed(customer.reference(), &route.product);
                match tokio::time::timeout(CHECKOUT_LINK_TIMEOUT, asked).await {
                    Ok(Ok(Some(url))) if !url.is_empty() => Ok(Arc::<str>::from(url)),
                    Ok(Ok(_)) => Err(()),
                    Ok(Err(err)) => {
                        warn!(error = %err, customer = %customer.reference(), "no checkout link for a 402");
                        Err(())
                    }
                    Err(_) => {
                        warn!(customer = %customer.reference(), "checkout link timed out; the 402 has none");
                        Err(())
                    }
                }
            })
            .await;
        link.ok().map(|url| url.to_string())
    }
}
