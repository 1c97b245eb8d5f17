//! The request flow, top to bottom: who is calling ([`Engine::admit`]), which customer
//! that is, which budget the route draws from, whether it must be refreshed, and the
//! reservation that admits the request, or the rejection that refuses it.
//!
//! With a shared store the budget step goes through `lease.rs` instead; when the store
//! is unreachable it comes back here, to this instance's own budget.

use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use tracing::debug;

use super::cache::CustomerEntry;
use super::reservation::Reservation;
use super::{Budget, Engine};
use crate::backend::BackendError;
use crate::charge::{Price, RouteCharge};
use crate::customer::Customer;
use crate::identity::{Identity, IdentityError};
use crate::policy::FailPolicy;
use crate::rejection::{PaymentRequired, Rejection, Unauthenticated};

/// What admission decided, before it is tied to a request.
pub(crate) struct Grant {
    /// The customer's entry; `None` only when a fail-open policy admitted a caller
    /// whose customer could not be ensured.
    pub(super) entry: Option<Arc<CustomerEntry>>,
    pub(crate) reservation: Option<Reservation>,
    /// A route priced by consumption: its `Usage` reserves from the entry's budgets
    /// later.
    pub(super) by_consumption: bool,
}

impl Grant {
    /// Admitted without holding units (fail-open with no customer known).
    fn unmetered() -> Self {
        Self {
            entry: None,
            reservation: None,
            by_consumption: false,
        }
    }

    /// Admitted to a route priced by consumption: nothing held yet.
    fn metered(entry: Arc<CustomerEntry>) -> Self {
        Self {
            entry: Some(entry),
            reservation: None,
            by_consumption: true,
        }
    }

    /// Admitted holding `reservation` (or nothing, under a fail-open policy).
    fn reserved(entry: Arc<CustomerEntry>, reservation: Option<Reservation>) -> Self {
        Self {
            entry: Some(entry),
            reservation,
            by_consumption: false,
        }
    }

    /// The admitted customer.
    pub(crate) fn customer(&self) -> Option<&Customer> {
        self.entry.as_deref().map(|entry| &entry.customer)
    }
}

impl Engine {
    /// Step 1: who is calling. No identity → 401; the resolver cannot decide → 503.
    pub(super) async fn admit(
        &self,
        parts: &Parts,
        route: &RouteCharge,
    ) -> Result<Grant, Rejection> {
        // The mappings are plain functions: no extra future on the warm path.
        let identity = self.caller(self.resolver.resolve_boxed(parts).await)?;
        self.admit_identity(&identity, route).await
    }

    /// Steps 1 to 4 when nothing needs waiting for: the resolver answers at once, the
    /// customer is cached and its budget is fresh and holds the units. `None`: some
    /// step would wait, or the answer is a 402 (whose checkout link may); the caller
    /// runs [`admit`](Self::admit), which decides the same request anew. Nothing is
    /// charged or counted before this can return `None` (a refresh ahead of expiry it
    /// starts is one the full path would start too, and starts once).
    pub(super) fn admit_now(
        &self,
        parts: &Parts,
        route: &RouteCharge,
    ) -> Option<Result<Grant, Rejection>> {
        let identity = match self.caller(self.resolver.resolve_now(parts)?) {
            Ok(identity) => identity,
            Err(rejection) => return Some(Err(rejection)),
        };
        let now = self.now_ms();
        let entry = self.cache.cached(&identity, now)?;
        let Price::PerRequest(units) = route.price else {
            return Some(Ok(Grant::metered(entry)));
        };
        let reservation = self.reserve_now(&entry, route, units, now)?;
        Some(Ok(Grant::reserved(entry, Some(reservation))))
    }

    /// Steps 3 and 4 on this instance's own budget, when it is cached, fresh and holds
    /// `units` at `now` (the engine's clock): what [`reserve`](Self::reserve) does
    /// then, without a future.
    fn reserve_now(
        &self,
        entry: &CustomerEntry,
        route: &RouteCharge,
        units: u64,
        now: u64,
    ) -> Option<Reservation> {
        if self.shared.is_some() {
            return None;
        }
        let budget = entry.budget(route.meter_id)?;
        if budget.needs_refresh(now) || !budget.is_healthy() {
            return None;
        }
        self.refresh_ahead(&entry.customer, route, &budget, now);
        budget
            .try_reserve(units)
            .then(|| Reservation::local(budget, units))
    }

    /// Step 1 alone: the caller, with no customer ensured and nothing charged.
    pub(super) async fn authenticate(&self, parts: &Parts) -> Result<Identity, Rejection> {
        self.caller(self.resolver.resolve_boxed(parts).await)
    }

    /// Steps 1 and 2 without a charge: the caller and its customer (`None` when a
    /// fail-open policy lets a caller through whose customer cannot be ensured).
    pub(super) async fn identify(
        &self,
        parts: &Parts,
    ) -> Result<(Identity, Option<Customer>), Rejection> {
        let identity = self.caller(self.resolver.resolve_boxed(parts).await)?;
        let entry = self.ensure_customer(&identity, self.fail_policy).await?;
        Ok((identity, entry.map(|entry| entry.customer.clone())))
    }

    /// Step 1's verdict on the identity resolver's answer: the caller, or the
    /// rejection when it is not one.
    // The admission's own error type: returned by value as the callers' futures do.
    #[allow(clippy::result_large_err)]
    fn caller(
        &self,
        resolved: Result<Option<Identity>, IdentityError>,
    ) -> Result<Identity, Rejection> {
        match resolved {
            Ok(Some(identity)) if !identity.external_ref.is_empty() => Ok(identity),
            Ok(Some(_)) => {
                debug!("identity with an empty external reference");
                Err(Rejection::Unauthenticated(
                    Unauthenticated::InvalidCredentials,
                ))
            }
            Ok(None) => Err(Rejection::Unauthenticated(
                Unauthenticated::MissingCredentials,
            )),
            Err(IdentityError::Invalid(reason)) => {
                self.token_refusals.refused(&reason);
                Err(Rejection::Unauthenticated(
                    Unauthenticated::InvalidCredentials,
                ))
            }
            Err(IdentityError::Unavailable {
                reason,
                retry_after,
            }) => {
                // The resolver logs its provider's outage and recovery once each.
                debug!(%reason, "identity provider unavailable");
                Err(Rejection::IdentityUnavailable {
                    retry_after: retry_after.unwrap_or(self.failure_backoff),
                })
            }
        }
    }

    /// Step 2: the billing customer (cached; find-or-create at the backend). A refusal
    /// is the caller's problem, not an outage: 403 under every policy. `Ok(None)`: the
    /// backend is unreachable and the policy is fail-open.
    pub(super) async fn ensure_customer(
        &self,
        identity: &Identity,
        policy: FailPolicy,
    ) -> Result<Option<Arc<CustomerEntry>>, Rejection> {
        self.customer_verdict(
            self.cache
                .customer(identity, &*self.backend, &self.clock)
                .await,
            policy,
        )
    }

    /// Step 2's verdict on the customer cache's answer.
    #[allow(clippy::result_large_err)]
    fn customer_verdict(
        &self,
        found: Result<Arc<CustomerEntry>, Arc<BackendError>>,
        policy: FailPolicy,
    ) -> Result<Option<Arc<CustomerEntry>>, Rejection> {
        match found {
            Ok(entry) => Ok(Some(entry)),
            Err(err) if err.is_refusal() => Err(match &*err {
                BackendError::CustomerConflict(_) => Rejection::CustomerConflict,
                _ => Rejection::CustomerRejected,
            }),
            Err(err) => {
                // The outage itself is logged once, by the instrumented backend.
                debug!(error = %err, "ensure-customer failed");
                match policy {
                    FailPolicy::Open => Ok(None),
                    _ => Err(self.unavailable(&err)),
                }
            }
        }
    }

    /// Steps 2 to 4 for a resolved caller: customer, budget, reservation.
    pub(super) async fn admit_identity(
        &self,
        identity: &Identity,
        route: &RouteCharge,
    ) -> Result<Grant, Rejection> {
        let found = self
            .cache
            .customer(identity, &*self.backend, &self.clock)
            .await;
        let Some(entry) = self.customer_verdict(found, route.fail_policy)? else {
            return Ok(Grant::unmetered());
        };
        let Price::PerRequest(units) = route.price else {
            // Priced by consumption: admitted holding nothing; the handler reserves
            // through the request's `Usage`.
            return Ok(Grant::metered(entry));
        };
        let reservation = self.reserve(&entry, route, units).await?;
        Ok(Grant::reserved(entry, reservation))
    }

    /// Steps 3 and 4: holds `units` of the route's budget for the entry's customer, or
    /// says why not. `Ok(None)`: a fail-open policy admits with no budget to count
    /// against.
    pub(super) async fn reserve(
        &self,
        entry: &CustomerEntry,
        route: &RouteCharge,
        units: u64,
    ) -> Result<Option<Reservation>, Rejection> {
        let policy = route.fail_policy;
        let customer = &entry.customer;

        // Step 3a: budgets shared with other instances, when a store is configured.
        // Cold and rare paths are boxed, so the warm path's future stays small.
        if let Some(shared) = &self.shared {
            if let Some(decision) = Box::pin(self.admit_shared(shared, entry, route, units)).await {
                return decision;
            }
            // The store is unreachable: fall back to this instance's own budget.
        }

        // Step 3b: this instance's budget for the route (cached with the customer).
        let found = match entry.budget(route.meter_id) {
            Some(budget) => Ok(budget),
            None => {
                Box::pin(self.cache.budget(
                    entry,
                    route,
                    &*self.backend,
                    &self.clock,
                    self.limits_ttl,
                ))
                .await
            }
        };
        let budget = match found {
            Ok(budget) => budget,
            Err(err) => {
                debug!(error = %err, customer = %customer.reference(), "limits check failed");
                if let BackendError::NotFound(_) = &*err {
                    self.cache.forget(customer.external_ref()).await;
                }
                return match policy {
                    FailPolicy::Open => Ok(None),
                    _ => Err(self.unavailable(&err)),
                };
            }
        };

        // Step 3c: refresh the budget when it is due, or honour the back-off of a
        // failed refresh, per the route's fail policy.
        let now = self.now_ms();
        let due = budget.needs_refresh(now) || !budget.is_healthy();
        let failure = if due {
            Box::pin(self.refresh_if_due(customer, route, &budget)).await
        } else {
            self.refresh_ahead(customer, route, &budget, now);
            None
        };
        if let Some(err) = failure {
            match policy {
                FailPolicy::Closed => return Err(self.unavailable(&err)),
                FailPolicy::Open => {
                    budget.force_reserve(units);
                    return Ok(Some(Reservation::local(budget, units)));
                }
                FailPolicy::ServeStale => {}
            }
        }

        // Step 4: reserve the units, exactly, or answer 402.
        if budget.try_reserve(units) {
            Ok(Some(Reservation::local(budget, units)))
        } else {
            let required = Box::pin(self.payment_required(customer, &budget, route, units));
            Err(Rejection::PaymentRequired(required.await))
        }
    }

    /// How long to leave the backend alone after `err`: its `Retry-After`, capped at
    /// `max_retry_after` (a proxy's `Retry-After: 3600` must not lock a customer out for
    /// an hour), or the failure back-off.
    pub(super) fn wait_after(&self, err: &BackendError) -> std::time::Duration {
        err.retry_after()
            .map_or(self.failure_backoff, |wait| wait.min(self.max_retry_after))
    }

    /// The 503 for a backend failure, with the backend's `Retry-After` when it gave one.
    pub(super) fn unavailable(&self, err: &BackendError) -> Rejection {
        Rejection::BillingUnavailable {
            retry_after: self.wait_after(err),
        }
    }

    /// The 402 for `units` of `route` from what `budget` knows, with a link to pay
    /// (or to confirm an activation): the limits answer's, else one asked of the
    /// backend.
    pub(super) async fn payment_required(
        &self,
        customer: &Customer,
        budget: &Budget,
        route: &RouteCharge,
        units: u64,
    ) -> PaymentRequired {
        let mut required = budget.with_answer(|answer| PaymentRequired {
            activation_required: answer.activation_required(),
            product: route.product.to_string(),
            checkout_url: answer
                .checkout_url()
                .or_else(|| {
                    answer
                        .confirmation_url()
                        .filter(|_| answer.activation_required())
                })
                .filter(|url| !url.is_empty())
                .map(str::to_owned),
            confirmation_url: answer.confirmation_url().map(str::to_owned),
            plan: answer.plan().map(str::to_owned),
            remaining: budget.remaining(),
            units,
            allowance: answer.allowance(),
            period: answer.period(),
            retry_after: answer
                .resets_at()
                .and_then(|at| at.duration_since(SystemTime::now()).ok()),
        });
        if required.checkout_url.is_none() {
            required.checkout_url = self
                .checkout_links
                .get(customer, route, &*self.backend)
                .await;
        }
        required
    }
}
