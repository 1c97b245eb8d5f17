//! Admission through a shared store (see [`crate::shared`]): an instance leases a few
//! units at a time from the store, admits requests from them locally, refills ahead of
//! need in the background, and gives back what it did not use once the budget is idle.
//! While the store is unreachable the engine falls back per [`SharedFallback`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use tracing::{debug, info, warn};

use super::cache::CustomerEntry;
use super::clock::millis;
use super::reservation::Reservation;
use super::{Budget, Engine};
use crate::backend::BackendError;
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::customer::CustomerRef;
use crate::policy::FailPolicy;
use crate::rejection::Rejection;
use crate::shared::{
    BudgetId, DynShared, LeaseAnswer, LeaseConfig, LeaseRequest, SharedError, SharedFallback,
};

/// The shared store, its settings, and whether it is answering.
pub(super) struct SharedState {
    store: Arc<dyn DynShared>,
    config: LeaseConfig,
    /// Engine-clock milliseconds before which the store is not tried again.
    down_until: AtomicU64,
    /// Whether the last call to the store failed (to log transitions once).
    degraded: AtomicBool,
}

impl SharedState {
    pub(super) fn new(store: Arc<dyn DynShared>, config: LeaseConfig) -> Self {
        Self {
            store,
            config,
            down_until: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        }
    }

    fn failed(&self, err: &SharedError, now_ms: u64) {
        counter!(crate::telemetry::SHARED_LEASES_TOTAL, "result" => "error").increment(1);
        gauge!(crate::telemetry::SHARED_FALLBACK).set(1.0);
        self.down_until.store(
            now_ms.saturating_add(millis(self.config.retry)),
            Ordering::Release,
        );
        if !self.degraded.swap(true, Ordering::AcqRel) {
            warn!(error = %err, fallback = ?self.config.fallback,
                  "shared budget store unreachable; using the fallback until it is back");
        } else {
            debug!(error = %err, "shared budget store still unreachable");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            gauge!(crate::telemetry::SHARED_FALLBACK).set(0.0);
            info!("shared budget store reachable again; budgets are shared");
        }
    }

    fn resting(&self, now_ms: u64) -> bool {
        now_ms < self.down_until.load(Ordering::Acquire)
    }
}

impl Engine {
    /// The shared store's current lease session, if a store is configured.
    pub(super) fn shared_session(&self) -> Option<u64> {
        self.shared.as_ref().and_then(|s| s.store.current_session())
    }

    /// Marks the customer's budgets stale in the shared store, for every instance.
    pub(super) async fn mark_shared_stale(&self, customer: &CustomerRef) {
        let Some(shared) = &self.shared else {
            return;
        };
        for (product, meter) in self.meter_names() {
            let id = BudgetId {
                customer,
                product: &product,
                meter: &meter,
            };
            if let Err(err) = shared.store.mark_stale_boxed(id).await {
                warn!(error = %err, customer = %customer, "shared budget not marked stale");
            }
        }
        // Units this instance leased ahead of need for the customer go back: from now
        // on its requests are admitted from a refreshed budget only.
        let meters = self.meter_map();
        for (key, budget) in self.cache.live_budgets() {
            if key.customer != *customer {
                continue;
            }
            if let Some((product, meter)) = meters.get(&key.meter) {
                let id = BudgetId {
                    customer,
                    product,
                    meter,
                };
                settle(&*shared.store, id, &budget).await;
            }
        }
    }

    /// The (product, meter) names of the interned meter ids.
    fn meter_map(&self) -> HashMap<u32, (Arc<str>, Arc<str>)> {
        self.meters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(names, id)| (*id, names.clone()))
            .collect()
    }

    /// Admission through the shared store. `None`: the store is unreachable and the
    /// fallback is the local budget.
    pub(super) async fn admit_shared(
        &self,
        shared: &SharedState,
        entry: &CustomerEntry,
        route: &RouteCharge,
        units: u64,
    ) -> Option<Result<Option<Reservation>, Rejection>> {
        let customer = &entry.customer;
        let budget = match entry.budget(route.meter_id) {
            Some(budget) => budget,
            None => Box::pin(self.cache.leased_budget(entry, route)).await,
        };
        // Warm path: units already leased to this instance.
        if budget.try_take_leased(shared.store.current_session(), units) {
            // Lease the next units before these run out, off the request's path.
            if budget.spare() < budget.lease_size(shared.config.units) / 2 && budget.start_refill()
            {
                self.refill(shared, customer, route, &budget);
            }
            return Some(Ok(Some(Reservation::leased(budget, units))));
        }
        let fallback = |retry_after: Duration| match shared.config.fallback {
            SharedFallback::Closed => Some(Err(Rejection::BillingUnavailable { retry_after })),
            _ => None,
        };
        if shared.resting(self.now_ms()) {
            return fallback(shared.config.retry);
        }
        match self.lease(shared, customer, route, &budget, units).await {
            Ok(decision) => {
                shared.recovered();
                Some(decision)
            }
            Err(err) => {
                shared.failed(&err, self.now_ms());
                fallback(shared.config.retry)
            }
        }
    }

    /// Leases units from the store for a request the local spare cannot cover, with
    /// one lease call at a time per budget. `Err` only when the store failed.
    async fn lease(
        &self,
        shared: &SharedState,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
        units: u64,
    ) -> Result<Result<Option<Reservation>, Rejection>, SharedError> {
        let id = budget_id(customer.reference(), route);
        let admitted = |budget: &Arc<Budget>| Some(Reservation::leased(Arc::clone(budget), units));
        let forced = |budget: &Arc<Budget>| {
            budget.force_reserve(units);
            Some(Reservation::local(Arc::clone(budget), units))
        };
        let mut sync = budget.gate().lock().await;
        let mut stale_ok = false;
        let (mut remaining, mut exhausted) = (0, false);
        for _ in 0..4 {
            let session = shared.store.current_session();
            if budget.try_take_leased(session, units) {
                return Ok(Ok(admitted(budget)));
            }
            // Spare units too few for this request go back; void ones are dropped.
            let give_back = match session {
                Some(s) if budget.lease_is_current(session) => {
                    budget.take_spare() + sync.take_pending(s)
                }
                Some(s) => {
                    budget.take_spare();
                    sync.take_pending(s);
                    0
                }
                None => 0,
            };
            let acks = budget.acked().saturating_sub(sync.acked_pushed);
            let request = LeaseRequest {
                need: units,
                want: units.max(budget.lease_size(shared.config.units)),
                acks,
                give_back,
                stale_ok,
            };
            let answer = match shared.store.lease_boxed(id, request).await {
                Ok(answer) => answer,
                Err(err) => {
                    sync.hold_back(session, give_back);
                    return Err(err);
                }
            };
            sync.acked_pushed = sync.acked_pushed.saturating_add(acks);
            let result = match &answer {
                LeaseAnswer::Granted { .. } => "granted",
                LeaseAnswer::Exhausted { .. } => "exhausted",
                LeaseAnswer::Refresh(_) => "refresh",
                _ => "unavailable",
            };
            counter!(crate::telemetry::SHARED_LEASES_TOTAL, "result" => result).increment(1);
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
                    let taken = budget.grow_lease_for(session, granted, units);
                    // Spare units go back, and acknowledgements are reported, once the
                    // budget is idle; until then other instances count them as leased.
                    self.watch_lease(shared, customer, route, budget);
                    if taken {
                        return Ok(Ok(Some(Reservation::leased(Arc::clone(budget), units))));
                    }
                }
                LeaseAnswer::Exhausted {
                    remaining: left,
                    limits,
                } => {
                    if let Some(limits) = limits {
                        budget.set_answer(limits);
                    }
                    remaining = left;
                    exhausted = true;
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
                            budget.set_answer(limits);
                        }
                        Err(err) => {
                            debug!(error = %err, customer = %customer.reference(), "limits refresh failed");
                            if let BackendError::NotFound(_) = &err {
                                self.cache.forget(customer.external_ref()).await;
                            }
                            let wait = self.wait_after(&err);
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
        if !exhausted {
            // Four rounds without a decision (sessions or budgets replaced under us):
            // nothing says the allowance is spent, so this is not a 402.
            return Ok(Err(Rejection::BillingUnavailable {
                retry_after: shared.config.retry,
            }));
        }
        let mut required = self.payment_required(customer, budget, route, units).await;
        required.remaining = remaining;
        Ok(Err(Rejection::PaymentRequired(required)))
    }

    /// Starts a task (one per budget at a time) that gives back this budget's spare
    /// units once it has been idle for `lease_idle`, and reports acknowledgements,
    /// until nothing is outstanding.
    fn watch_lease(
        &self,
        shared: &SharedState,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
    ) {
        if !budget.start_returning() {
            return;
        }
        let store = Arc::clone(&shared.store);
        let budget = Arc::clone(budget);
        let (customer, route) = (customer.reference().clone(), route.clone());
        let idle = shared.config.idle;
        tokio::spawn(async move {
            let id = budget_id(&customer, &route);
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
                    // Idle: the next lease starts small again.
                    budget.cool_lease();
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
        shared: &SharedState,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
    ) {
        let store = Arc::clone(&shared.store);
        let budget = Arc::clone(budget);
        let (customer, route) = (customer.reference().clone(), route.clone());
        // A hot budget leases more at a time, so it calls the store less often.
        let want = budget.pace_lease(self.now_ms(), shared.config.units, shared.config.max_units);
        tokio::spawn(async move {
            let id = budget_id(&customer, &route);
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

    /// At shutdown: give every spare unit back and report acknowledgements.
    pub(super) async fn give_back_leases(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let meters = self.meter_map();
        let mut settled = 0usize;
        for (key, budget) in self.cache.live_budgets() {
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
}

/// How many idle periods a lease watch lasts at most.
const WATCH_ROUNDS: u32 = 240;

/// Gives back the spare units of `budget` (when still valid) and reports its
/// acknowledgements. True when nothing is left outstanding.
async fn settle(store: &dyn DynShared, id: BudgetId<'_>, budget: &Budget) -> bool {
    let mut sync = budget.gate().lock().await;
    let session = store.current_session();
    let spare = match session {
        Some(s) if budget.lease_is_current(session) => budget.take_spare() + sync.take_pending(s),
        _ => 0,
    };
    let acks = budget.acked().saturating_sub(sync.acked_pushed);
    if spare > 0 || acks > 0 {
        match store.settle_boxed(id, acks, spare).await {
            Ok(()) => sync.acked_pushed = sync.acked_pushed.saturating_add(acks),
            Err(err) => {
                sync.hold_back(session, spare);
                debug!(error = %err, "lease not settled; trying again later");
                return false;
            }
        }
    }
    budget.spare() == 0
        && !sync.holds_back()
        && budget.unacknowledged() == 0
        && budget.acked() == sync.acked_pushed
}

/// How the shared store names `customer`'s budget for `route`.
fn budget_id<'a>(customer: &'a CustomerRef, route: &'a RouteCharge) -> BudgetId<'a> {
    BudgetId {
        customer,
        product: &route.product,
        meter: &route.meter,
    }
}
