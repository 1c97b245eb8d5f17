//! [`Admission`]: an admitted request's customer and the units held for it, until the
//! handler's answer commits them (and queues the usage event) or gives them back; and
//! the [`Settlement`] that does so when a response priced by consumption ends.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use http::StatusCode;
use tracing::{debug, error};

use super::admit::Grant;
use super::reservation::Reservation;
use super::usage::Usage;
use super::{Budget, Engine};
use crate::backend::{Outcome, UsageEvent};
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::outbox::DynOutbox;
use crate::recorder::Pending;

/// An admitted request: its customer and the units held for it.
///
/// Finish it with the handler's status to commit or give back the units. Dropping it
/// unfinished (the request was cancelled, the inner service failed) gives them back.
pub struct Admission {
    customer: Option<Customer>,
    reservation: Option<Reservation>,
    charge: Arc<RouteCharge>,
    engine: Arc<Engine>,
    admitted_at: SystemTime,
    started: Instant,
    usage: Option<Usage>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("customer", &self.customer)
            .field("product", &self.charge.product)
            .field("price", &self.charge.price)
            .finish_non_exhaustive()
    }
}

impl Admission {
    pub(super) fn new(
        grant: Grant,
        charge: Arc<RouteCharge>,
        engine: Arc<Engine>,
        admitted_at: SystemTime,
    ) -> Self {
        let usage = grant
            .entry
            .map(|entry| Usage::new(Arc::clone(&engine), entry, Arc::clone(&charge), admitted_at));
        Self {
            customer: grant.customer,
            reservation: grant.reservation,
            charge,
            engine,
            admitted_at,
            started: Instant::now(),
            usage,
        }
    }

    /// What the customer has left of the route's product, when
    /// [`ratelimit_headers`](crate::PaywallBuilder::ratelimit_headers) is on and this
    /// instance knows it (budgets shared through a store are not known here). Adapters
    /// put it on the response ([`Quota::apply`](crate::adapter::Quota::apply)).
    pub fn quota(&self) -> Option<crate::adapter::Quota> {
        if !self.engine.ratelimit_headers {
            return None;
        }
        let budget = match (&self.reservation, &self.usage) {
            (Some(reservation), _) if !reservation.is_leased() => reservation.budget(),
            (None, Some(usage)) => usage.local_budget()?,
            _ => return None,
        };
        Some(crate::adapter::Quota::from_limits(
            &self.charge.product,
            budget.remaining(),
            &budget.info(),
        ))
    }

    /// The request's [`Usage`], on a route priced by consumption: put it in the
    /// request for the handler.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// Finishes what the response head decides: a fixed price is settled now, as
    /// [`finish`](Self::finish); a route priced by consumption returns the
    /// [`Settlement`] to keep with the response body, which settles when the body ends
    /// or is dropped (the client went away, the server shut down).
    pub async fn finish_head(self, status: StatusCode) -> Option<Settlement> {
        match self.settlement(status) {
            Some(settlement) => Some(settlement),
            None => {
                self.finish(status).await;
                None
            }
        }
    }

    /// On a route priced by consumption, the [`Settlement`] to keep with the response
    /// body; `None` on a fixed price (then [`finish`](Self::finish) it).
    pub fn settlement(&self, status: StatusCode) -> Option<Settlement> {
        self.usage.as_ref().map(|usage| Settlement {
            usage: usage.clone(),
            success: (self.engine.success)(status),
        })
    }

    /// The billed customer; `None` only when a fail-open policy admitted a caller whose
    /// customer could not be ensured.
    pub fn customer(&self) -> Option<&Customer> {
        self.customer.as_ref()
    }

    /// Settles the admission with the handler's status: a success (2xx unless
    /// configured otherwise) commits the units and queues a usage event; anything else
    /// gives the units back. Waits only if the usage queue is full, and at most the
    /// recorder's `enqueue_timeout`.
    ///
    /// On a route priced by consumption this settles at once to what the handler
    /// reported so far; adapters that stream use [`finish_head`](Self::finish_head).
    pub async fn finish(mut self, status: StatusCode) {
        if let Some(usage) = self.usage.take() {
            usage.settle_and_record((self.engine.success)(status));
            return;
        }
        if !(self.engine.success)(status) {
            debug!(%status, "handler did not succeed; units given back");
            return; // the reservation's drop gives the units back
        }
        if self.customer.is_none() {
            return;
        }
        let engine = Arc::clone(&self.engine);
        if let Some(outbox) = engine.recorder.outbox().cloned() {
            return self.finish_durably(outbox).await;
        }
        // Wait for room first: if this future is dropped while waiting, the admission
        // drops with it and its units are given back (the client got no response).
        let slot = engine.recorder.slot().await;
        let Some((event, budget)) = self.commit() else {
            return;
        };
        match slot {
            Ok(slot) => slot.send(Pending::new(event, budget)),
            // Shutting down, or the queue stayed full: the event is logged with its key
            // and counted as pending.
            Err(why) => engine.recorder.refuse(&event, why),
        }
    }

    /// Commits the reservation and builds the usage event.
    fn commit(&mut self) -> Option<(UsageEvent, Option<Arc<Budget>>)> {
        let customer = self.customer.take()?;
        let budget = self.reservation.take().map(Reservation::commit);
        let event = UsageEvent {
            idempotency_key: UsageEvent::new_key(self.admitted_at),
            customer: customer.reference().clone(),
            product: Arc::clone(&self.charge.product),
            meter: Arc::clone(&self.charge.meter),
            units: self.charge.price.at_admission(),
            outcome: Outcome::Success,
            timestamp: self.admitted_at,
            duration: Some(self.started.elapsed()),
        };
        Some((event, budget))
    }

    /// With an outbox: store, then queue, in a task the request cannot cancel halfway.
    async fn finish_durably(mut self, outbox: Arc<dyn DynOutbox>) {
        let engine = Arc::clone(&self.engine);
        let slot = engine.recorder.slot().await;
        let Some((event, budget)) = self.commit() else {
            return;
        };
        let recorder = engine.recorder.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = outbox.store_boxed(&event).await {
                error!(idempotency_key = %event.idempotency_key, error = %err,
                       "usage event not stored in the outbox; kept in memory only");
            }
            match slot {
                Ok(slot) => slot.send(Pending::new(event, budget)),
                Err(why) => recorder.refuse(&event, why),
            }
        });
        let _ = task.await;
    }
}

/// Settles a response priced by consumption when its body has been sent, or dropped:
/// what the handler reported is committed and recorded once, the rest given back. A
/// failure status (per `success_when`) gives everything back unless the handler
/// reported consumption. Obtained from [`Admission::finish_head`]; keep it with the
/// body (the tower layer's [`PaywallBody`](crate::adapter::PaywallBody) does).
#[must_use = "dropping the settlement settles at once"]
pub struct Settlement {
    usage: Usage,
    success: bool,
}

impl Settlement {
    /// The response body ended: settle now.
    pub fn complete(self) {
        drop(self);
    }
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settlement")
            .field("usage", &self.usage)
            .field("success", &self.success)
            .finish()
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.usage.settle_and_record(self.success);
    }
}

impl Engine {
    /// Hands a committed event to the recorder without waiting: into the queue now
    /// when it has room (and no outbox must store it first), otherwise from a task.
    pub(super) fn record_detached(
        self: &Arc<Self>,
        event: UsageEvent,
        budget: Option<Arc<Budget>>,
    ) {
        let outbox = self.recorder.outbox().cloned();
        if outbox.is_none() {
            if let Some(slot) = self.recorder.try_slot() {
                slot.send(Pending::new(event, budget));
                return;
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.recorder
                .refuse(&event, crate::recorder::NoSlot::Closed);
            return;
        };
        let engine = Arc::clone(self);
        runtime.spawn(async move {
            if let Some(outbox) = outbox {
                if let Err(err) = outbox.store_boxed(&event).await {
                    error!(idempotency_key = %event.idempotency_key, error = %err,
                           "usage event not stored in the outbox; kept in memory only");
                }
            }
            match engine.recorder.slot().await {
                Ok(slot) => slot.send(Pending::new(event, budget)),
                Err(why) => engine.recorder.refuse(&event, why),
            }
        });
    }
}
