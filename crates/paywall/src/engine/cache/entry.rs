//! A cached customer and its budgets: [`CustomerEntry`] (one per user, holding the
//! budget of every meter its routes used), their keys, and [`Revivable`], the registry
//! of every budget still alive, through which a budget whose entry was evicted while
//! usage was in flight is found again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;

use crate::charge::RouteCharge;
use crate::customer::{Customer, CustomerRef};
use crate::engine::Budget;

/// A cached customer with the budgets its routes have used: the only place budgets are
/// cached, so the warm path finds both with one lookup and a user costs one cache
/// entry. Slots are indexed by the route's interned meter id and read without a lock:
/// the first meter's inline, the others in a vector allocated only when a customer uses
/// more than one.
pub(in crate::engine) struct CustomerEntry {
    pub(in crate::engine) customer: Customer,
    first: ArcSwapOption<Budget>,
    others: ArcSwapOption<Vec<Option<Arc<Budget>>>>,
    /// When the cache's time to live ends for it, on the engine's clock (no later than
    /// the cache's own expiry): a [`Recall`] does not use it after that.
    expires_ms: u64,
    /// Set when the cache lets it go (evicted, invalidated, replaced, expired).
    retired: AtomicBool,
}

impl CustomerEntry {
    pub(super) fn new(customer: Customer, expires_ms: u64) -> Self {
        Self {
            customer,
            first: ArcSwapOption::empty(),
            others: ArcSwapOption::empty(),
            expires_ms,
            retired: AtomicBool::new(false),
        }
    }

    /// The cache has let it go.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the cache still holds it, for `external_ref`, at `now_ms`.
    pub(in crate::engine) fn is_current(&self, external_ref: &str, now_ms: u64) -> bool {
        now_ms < self.expires_ms
            && !self.retired.load(Ordering::Acquire)
            && self.customer.external_ref() == external_ref
    }

    pub(in crate::engine) fn budget(&self, meter: u32) -> Option<Arc<Budget>> {
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
    pub(super) fn remember(&self, meter: u32, budget: &Arc<Budget>) {
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
pub(in crate::engine) struct BudgetKey {
    pub(in crate::engine) customer: CustomerRef,
    pub(in crate::engine) meter: u32,
}

impl BudgetKey {
    pub(in crate::engine) fn new(customer: &Customer, route: &RouteCharge) -> Self {
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

    /// The budgets still alive.
    pub(super) fn live(&self) -> Vec<(BudgetKey, Arc<Budget>)> {
        self.budgets
            .iter()
            .filter_map(|(key, weak)| weak.upgrade().map(|budget| (key.clone(), budget)))
            .collect()
    }

    /// The budgets of `customer` still alive.
    pub(super) fn of_customer(&self, customer: &CustomerRef) -> Vec<Arc<Budget>> {
        self.budgets
            .iter()
            .filter(|(key, _)| key.customer == *customer)
            .filter_map(|(_, weak)| weak.upgrade())
            .collect()
    }

    pub(super) fn live_count(&self) -> usize {
        self.budgets
            .values()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }
}
