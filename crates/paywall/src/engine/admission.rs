//! [`Admission`]: an admitted request's customer and the units held for it, until the
//! handler's answer commits them (and queues the usage event) or gives them back.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::StatusCode;
use tracing::{debug, error};

use super::admit::Grant;
use super::{Budget, Engine};
use crate::backend::{Outcome, UsageEvent};
use crate::charge::RouteCharge;
use crate::customer::Customer;
use crate::outbox::DynOutbox;
use crate::recorder::Pending;

/// Units held for an admitted request; given back on drop unless committed.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    units: u64,
    /// Taken from units leased from the shared store (given back to the lease).
    leased: bool,
}

impl Reservation {
    pub(super) fn local(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: false,
        }
    }

    pub(super) fn leased(budget: Arc<Budget>, units: u64) -> Self {
        Self {
            budget,
            units,
            leased: true,
        }
    }

    /// Keeps the units consumed and hands the budget on, to be acknowledged later.
    pub(super) fn commit(mut self) -> Arc<Budget> {
        self.units = 0; // nothing to give back on drop
        Arc::clone(&self.budget)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.units > 0 {
            if self.leased {
                self.budget.release_leased(self.units);
            } else {
                self.budget.release(self.units);
            }
        }
    }
}

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
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("customer", &self.customer)
            .field("product", &self.charge.product)
            .field("units", &self.charge.units)
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
        Self {
            customer: grant.customer,
            reservation: grant.reservation,
            charge,
            engine,
            admitted_at,
            started: Instant::now(),
        }
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
    pub async fn finish(mut self, status: StatusCode) {
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
            Ok(slot) => slot.send(Pending { event, budget }),
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
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            customer: customer.reference().clone(),
            product: Arc::clone(&self.charge.product),
            meter: Arc::clone(&self.charge.meter),
            units: self.charge.units,
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
                Ok(slot) => slot.send(Pending { event, budget }),
                Err(why) => recorder.refuse(&event, why),
            }
        });
        let _ = task.await;
    }
}
