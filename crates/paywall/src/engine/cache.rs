//! What the engine caches and how a miss is filled: customer entries (with the budgets
//! their routes used, so the warm path is one lookup), budgets, and checkout links for
//! 402s. Concurrent misses for one key share one backend call. Transient errors are not
//! cached; a backend's refusal of a caller's customer is remembered per externalRef,
//! with a doubling back-off, so a hostile caller cannot turn requests into backend
//! calls. A budget evicted while usage is still in flight is revived on the next miss,
//! so its counters are not lost.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{debug, warn};

use super::{Budget, Engine};
use crate::backend::{BackendError, CustomerRef};
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::identity::Identity;

/// A cached customer with the budgets its routes have used, so the warm path finds
/// both with one cache lookup. Slots are indexed by the route's interned meter id and
/// read without a lock.
pub(super) struct CustomerEntry {
    pub(super) customer: Customer,
    budgets: ArcSwap<Vec<Option<Arc<Budget>>>>,
}

impl CustomerEntry {
    fn new(customer: Customer) -> Self {
        Self {
            customer,
            budgets: ArcSwap::from_pointee(Vec::new()),
        }
    }

    pub(super) fn budget(&self, meter: u32) -> Option<Arc<Budget>> {
        self.budgets.load().get(meter as usize).cloned().flatten()
    }

    pub(super) fn remember(&self, meter: u32, budget: &Arc<Budget>) {
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

/// Budgets evicted from the cache while usage is still in flight stay alive through
/// those events; a later cache miss revives them so their counters are not lost.
#[derive(Default)]
pub(super) struct Revivable {
    budgets: HashMap<BudgetKey, Weak<Budget>>,
    sweep_at: usize,
}

impl Revivable {
    pub(super) fn remember(&mut self, key: BudgetKey, budget: &Arc<Budget>) {
        self.budgets.insert(key, Arc::downgrade(budget));
        if self.budgets.len() >= self.sweep_at {
            self.budgets.retain(|_, weak| weak.strong_count() > 0);
            self.sweep_at = (self.budgets.len() * 2).max(1024);
        }
    }

    pub(super) fn revive(&self, key: &BudgetKey) -> Option<Arc<Budget>> {
        self.budgets.get(key).and_then(Weak::upgrade)
    }
}

/// A backend's refusal of an externalRef's customer, remembered until `until_ms`.
#[derive(Clone)]
pub(super) struct Refusal {
    until_ms: u64,
    strikes: u32,
    error: Arc<BackendError>,
}

/// The longest a refusal is remembered before the backend is asked again.
pub(super) const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(600);

/// How long a 402 waits for a checkout link before it is answered without one.
const CHECKOUT_LINK_TIMEOUT: Duration = Duration::from_secs(3);

impl Engine {
    /// The caller's customer entry: cached, or ensured at the backend (one call for
    /// concurrent first requests). A refusal is answered from memory while its
    /// back-off runs.
    pub(super) async fn customer(
        &self,
        identity: &Identity,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        let external_ref = identity.external_ref.as_str();
        if let Some(entry) = self.customers.get(external_ref).await {
            return Ok(entry);
        }
        Box::pin(self.customer_miss(identity)).await
    }

    /// The cold path of [`customer`](Self::customer): a remembered refusal, or
    /// ensure-customer at the backend.
    async fn customer_miss(
        &self,
        identity: &Identity,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
        let external_ref = identity.external_ref.as_str();
        let refused = self.refusals.get(external_ref).await;
        if let Some(refusal) = &refused {
            if self.now_ms() < refusal.until_ms {
                return Err(Arc::clone(&refusal.error));
            }
        }
        let result = self.ensure(identity).await;
        if let Err(err) = &result {
            if err.is_refusal() {
                let strikes = refused.map_or(0, |r| r.strikes.saturating_add(1));
                let wait = self
                    .refusal_backoff
                    .saturating_mul(2u32.saturating_pow(strikes.min(16)))
                    .min(MAX_REFUSAL_BACKOFF);
                warn!(error = %err, retry_in_s = wait.as_secs(), "the billing backend refused a caller's customer");
                let refusal = Refusal {
                    until_ms: self.now_ms().saturating_add(super::admit::millis(wait)),
                    strikes,
                    error: Arc::clone(err),
                };
                self.refusals.insert(external_ref.to_owned(), refusal).await;
            }
        }
        result
    }

    /// Ensure-customer at the backend, one call for concurrent misses.
    async fn ensure(&self, identity: &Identity) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
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

    /// The customer's local budget for the route: cached, revived, or fetched from the
    /// backend (one call for concurrent misses).
    pub(super) async fn budget(
        &self,
        customer: &Customer,
        route: &RouteCharge,
    ) -> Result<Arc<Budget>, Arc<BackendError>> {
        let key = BudgetKey::new(customer, route);
        if let Some(budget) = self.budgets.get(&key).await {
            return Ok(budget);
        }
        self.budgets
            .try_get_with(key.clone(), async {
                if let Some(budget) = self.revive(&key) {
                    // Evicted while usage was in flight: keep its counters, refresh it.
                    budget.mark_stale();
                    return Ok(budget);
                }
                let limits = self
                    .backend
                    .check_limits_boxed(customer.reference(), &route.product, &route.meter)
                    .await?;
                let budget = Arc::new(Budget::new(limits, 0, self.refresh_deadline()));
                self.remember(key.clone(), &budget);
                Ok(budget)
            })
            .await
    }

    /// The budget of a shared budget: created without a backend call (the store holds
    /// the allowance), or revived.
    pub(super) async fn leased_budget(
        &self,
        customer: &Customer,
        route: &RouteCharge,
    ) -> Arc<Budget> {
        let key = BudgetKey::new(customer, route);
        self.budgets
            .get_with(key.clone(), async {
                if let Some(budget) = self.revive(&key) {
                    return budget;
                }
                let budget = Arc::new(Budget::leased());
                self.remember(key.clone(), &budget);
                budget
            })
            .await
    }

    /// Where `customer` can pay for the route's product, for a 402 that has no link:
    /// asked of the backend once for concurrent 402s, kept briefly, and given up on
    /// (the 402 omits the link) when the backend has none, fails or is slow.
    pub(super) async fn checkout_link(
        &self,
        customer: &Customer,
        route: &RouteCharge,
    ) -> Option<String> {
        let key = (customer.reference().clone(), Arc::clone(&route.product));
        let link = self
            .checkout_links
            .try_get_with(key, async {
                let asked = self
                    .backend
                    .checkout_url_boxed(customer.reference(), &route.product);
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

    fn revive(&self, key: &BudgetKey) -> Option<Arc<Budget>> {
        self.revivable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .revive(key)
    }

    fn remember(&self, key: BudgetKey, budget: &Arc<Budget>) {
        self.revivable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remember(key, budget);
    }

    /// Marks every cached budget of `customer` stale; returns how many budget cache
    /// entries there were.
    pub(super) fn mark_customer_stale(&self, customer: &CustomerRef) -> usize {
        let mut count = 0;
        for (key, budget) in self.budgets.iter() {
            if key.customer == *customer {
                budget.mark_stale();
                count += 1;
            }
        }
        // Budgets may outlive their cache entry in the customer's slots.
        for (_, entry) in self.customers.iter() {
            if entry.customer.reference() == customer {
                for budget in entry.budgets() {
                    budget.mark_stale();
                }
            }
        }
        count
    }
}
