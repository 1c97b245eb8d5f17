//! The caller's billing as the billing routes show it, for a resolved caller: its
//! customer, what is left of each product (from the budget the paywall already holds
//! when it is fresh, refreshed single-flight otherwise, so admitted requests show at
//! once), and the backend's account calls, counted and timed like every other.

use super::{Engine, Paywall, Route};
use crate::backend::{BackendError, DynBackend, Limits};
use crate::identity::Identity;
use crate::policy::FailPolicy;
use crate::rejection::Rejection;

/// What is left of one product for a customer.
#[derive(Clone, Debug)]
pub(crate) struct ProductState {
    /// Units left, counting every request admitted here.
    pub(crate) remaining: u64,
    /// The backend's last limits answer (plan, allowance, reset time).
    pub(crate) limits: Limits,
}

impl Paywall {
    /// What `identity`'s customer has left of `route`'s product.
    pub(crate) async fn product_state(
        &self,
        identity: &Identity,
        route: &Route,
    ) -> Result<ProductState, Rejection> {
        self.engine.product_state(identity, route).await
    }

    /// The backend, for the account calls of the billing routes.
    pub(crate) fn account_backend(&self) -> &dyn DynBackend {
        self.engine.backend.as_ref()
    }

    /// The 503 for a backend failure.
    pub(crate) fn unavailable(&self, err: &BackendError) -> Rejection {
        self.engine.unavailable(err)
    }
}

impl Engine {
    async fn product_state(
        &self,
        identity: &Identity,
        route: &Route,
    ) -> Result<ProductState, Rejection> {
        let charge = &route.charge;
        let Some(entry) = self.ensure_customer(identity, FailPolicy::Closed).await? else {
            return Err(Rejection::BillingUnavailable {
                retry_after: self.failure_backoff,
            });
        };
        if self.shared.is_some() {
            // Budgets shared with other instances: this instance's counters are only
            // its part, so ask the backend (which the instances acknowledge to).
            let limits = self
                .backend
                .check_limits_boxed(entry.customer.reference(), &charge.product, &charge.meter)
                .await
                .map_err(|err| self.unavailable(&err))?;
            return Ok(ProductState {
                remaining: limits.allowed(),
                limits,
            });
        }
        let budget = self
            .cache
            .budget(&entry, charge, &*self.backend, &self.clock, self.limits_ttl)
            .await
            .map_err(|err| self.unavailable(&err))?;
        if let Some(err) = self.refresh_if_due(&entry.customer, charge, &budget).await {
            return Err(self.unavailable(&err));
        }
        let remaining = budget.remaining();
        Ok(ProductState {
            remaining,
            limits: budget.with_answer(|answer| answer.to_limits(remaining)),
        })
    }
}
