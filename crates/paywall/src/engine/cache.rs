//! What the engine caches and how a miss is filled: customer entries (with the budgets
//! their routes used, so the warm path is one lookup) and budgets. Concurrent misses
//! for one key share one backend call; errors are not cached. A budget evicted while
//! usage is still in flight is revived on the next miss, so its counters are not lost.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use tracing::debug;

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

impl Engine {
    /// The caller's customer entry: cached, or ensured at the backend (one call for
    /// concurrent first requests).
    pub(super) async fn customer(
        &self,
        identity: &Identity,
    ) -> Result<Arc<CustomerEntry>, Arc<BackendError>> {
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
