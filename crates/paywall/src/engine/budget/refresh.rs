//! A budget's refresh from the billing backend: when it is due (its limits TTL has
//! passed), ahead of expiry in the background while it is warm, and after a failure
//! (a back-off before the backend is asked again). Concurrent refreshes of one budget
//! share one backend call.

use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use super::Budget;
use crate::backend::BackendError;
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::engine::clock::millis;
use crate::engine::Engine;

impl Engine {
    /// Refreshes `budget` when its TTL has passed. Returns the failure to act on: the
    /// refresh's, or the back-off still running after an earlier failed one.
    pub(in crate::engine) async fn refresh_if_due(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Budget,
    ) -> Option<BackendError> {
        if budget.needs_refresh(self.now_ms()) {
            let err = self.refresh(customer, route, budget).await.err()?;
            debug!(error = %err, customer = %customer.reference(), "limits refresh failed");
            Some(err)
        } else if !budget.is_healthy() {
            Some(BackendError::Unavailable {
                message: "backing off after a failed refresh".into(),
                retry_after: Some(Duration::from_millis(
                    budget.refresh_at().saturating_sub(self.now_ms()),
                )),
            })
        } else {
            None
        }
    }

    /// In the last fifth of a warm budget's TTL, refreshes it in the background (one
    /// task per budget), so that no request waits for the backend while the budget is
    /// still valid. A background failure changes nothing: the budget stays healthy,
    /// is not tried ahead again, and is refreshed on the request path when it expires,
    /// as without this.
    pub(in crate::engine) fn refresh_ahead(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Arc<Budget>,
        now: u64,
    ) {
        let lead = millis(self.limits_ttl) / 5;
        if budget.refresh_at().saturating_sub(now) > lead || !budget.start_refill() {
            return;
        }
        let (Some(engine), Ok(runtime)) =
            (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            budget.stop_refill();
            return;
        };
        let (customer, route, budget) = (customer.clone(), route.clone(), Arc::clone(budget));
        runtime.spawn(async move {
            // Success clears the budget's refill flag; a failure leaves it set until
            // the refresh at expiry succeeds.
            if let Err(err) = engine.refresh_with(&customer, &route, &budget, true).await {
                debug!(error = %err, customer = %customer.reference(), "refresh ahead of expiry failed");
            }
        });
    }

    /// Refreshes `budget` from the backend; concurrent callers share one call.
    async fn refresh(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Budget,
    ) -> Result<(), BackendError> {
        self.refresh_with(customer, route, budget, false).await
    }

    /// [`refresh`](Self::refresh); `ahead`: a refresh before expiry, whose failure
    /// leaves the budget as it was (still valid) for the request path to retry.
    async fn refresh_with(
        &self,
        customer: &Customer,
        route: &RouteCharge,
        budget: &Budget,
        ahead: bool,
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
                budget.stop_refill(); // a refresh ahead of the next expiry may start again
                debug!(customer = %customer.reference(), remaining = budget.remaining(), "budget refreshed");
            }
            Err(_) if ahead => return result.map(drop),
            Err(err) => {
                let wait = self.wait_after(err);
                budget.mark_failed(self.now_ms().saturating_add(millis(wait)));
            }
        }
        budget.bump_attempts();
        result.map(drop)
    }

    /// When a budget fetched now must be refreshed.
    pub(in crate::engine) fn refresh_deadline(&self) -> u64 {
        self.now_ms().saturating_add(millis(self.limits_ttl))
    }
}
