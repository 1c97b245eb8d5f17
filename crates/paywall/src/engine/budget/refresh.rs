//! A budget's refresh from the billing backend: when it is due (its limits TTL has
//! passed, or the allowance has just reset), ahead of expiry in the background while it
//! is warm, and after a failure (a back-off before the backend is asked again).
//! Concurrent refreshes of one budget share one backend call.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::debug;

use super::Budget;
use crate::backend::{BackendError, Limits};
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
        if budget.refresh_at().saturating_sub(now) > lead
            || !budget.refreshes_ahead()
            || !budget.start_refill()
        {
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
                budget.apply(limits.clone(), acked_before, self.due(limits));
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

    /// When a budget fetched now with `limits` must be refreshed.
    pub(in crate::engine) fn due(&self, limits: &Limits) -> Due {
        Due::after(self.now_ms(), self.limits_ttl, limits, SystemTime::now())
    }
}

/// How long after an allowance's reset its budget is refreshed: the backend's clock
/// may run a little behind ours, and an answer from just before its reset would
/// still be the old period's.
const AFTER_RESET: Duration = Duration::from_secs(1);

/// When a budget must be refreshed (engine-clock milliseconds), and whether that may
/// happen ahead of time in the background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) at_ms: u64,
    pub(crate) ahead: bool,
}

impl Due {
    /// For an answer `limits` fetched at `now_ms` (`wall`: the same moment on the
    /// wall clock): after `ttl`, or just after the allowance resets when that comes
    /// first, so that a caller told to retry at the reset (`Retry-After`) finds the new
    /// period rather than waiting out the TTL. A reset is not refreshed ahead of
    /// time: before it, the backend would give the same answer.
    pub(crate) fn after(now_ms: u64, ttl: Duration, limits: &Limits, wall: SystemTime) -> Self {
        let by_ttl = Self {
            at_ms: now_ms.saturating_add(millis(ttl)),
            ahead: true,
        };
        let Some(until_reset) = limits
            .resets_at
            .and_then(|at| at.duration_since(wall).ok())
            .filter(|until| !until.is_zero())
        else {
            return by_ttl;
        };
        let at_reset = now_ms.saturating_add(millis(until_reset.saturating_add(AFTER_RESET)));
        if at_reset < by_ttl.at_ms {
            Self {
                at_ms: at_reset,
                ahead: false,
            }
        } else {
            by_ttl
        }
    }
}

impl From<u64> for Due {
    /// A refresh at `at_ms`, which may run ahead of time.
    fn from(at_ms: u64) -> Self {
        Self { at_ms, ahead: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resetting_in(wall: SystemTime, secs: Option<i64>) -> Limits {
        let resets_at = secs.map(|secs| match u64::try_from(secs) {
            Ok(ahead) => wall + Duration::from_secs(ahead),
            Err(_) => wall - Duration::from_secs(secs.unsigned_abs()),
        });
        Limits {
            resets_at,
            ..Limits::remaining(0)
        }
    }

    #[test]
    fn a_budget_is_refreshed_after_its_ttl_or_just_after_its_reset_whichever_comes_first() {
        let wall = SystemTime::now();
        let ttl = Duration::from_secs(30);
        let due = |secs| Due::after(5_000, ttl, &resetting_in(wall, secs), wall);
        let by_ttl = Due {
            at_ms: 35_000,
            ahead: true,
        };
        assert_eq!(due(None), by_ttl, "no reset time known");
        assert_eq!(due(Some(3_600)), by_ttl, "resets after the TTL");
        assert_eq!(due(Some(-10)), by_ttl, "a reset in the past is ignored");
        assert_eq!(due(Some(0)), by_ttl, "a reset now is ignored");
        assert_eq!(
            due(Some(10)),
            Due {
                at_ms: 16_000,
                ahead: false
            },
            "resets in 10 s: refreshed 1 s after, never ahead"
        );
        assert_eq!(due(Some(29)), by_ttl, "reset + 1 s is the TTL itself");
    }
}
