//! [`Admission`]: an admitted request's customer and the units held for it, until the
//! handler's answer commits them (and queues the usage event) or gives them back; and
//! the [`Settlement`] that does so when a response priced by consumption ends.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tracing::{debug, error};

use super::admit::Grant;
use super::cache::CustomerEntry;
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
    /// The customer's entry, until its usage is committed.
    entry: Option<Arc<CustomerEntry>>,
    reservation: Option<Reservation>,
    charge: Arc<RouteCharge>,
    engine: Arc<Engine>,
    admitted_at: SystemTime,
    /// When the handler was called, for the event's `duration`; `None` when usage is
    /// added up in place (sums carry no duration).
    started: Option<Instant>,
    usage: Option<Usage>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("customer", &self.customer())
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
            .as_ref()
            .filter(|_| grant.by_consumption)
            .map(|entry| {
                Usage::new(
                    Arc::clone(&engine),
                    Arc::clone(entry),
                    Arc::clone(&charge),
                    admitted_at,
                )
            });
        let started = (!engine.recorder.tallies()).then(Instant::now);
        Self {
            entry: grant.entry,
            reservation: grant.reservation,
            charge,
            engine,
            admitted_at,
            started,
            usage,
        }
    }

    /// What the customer has left of the route's product, when
    /// [`ratelimit_headers`](crate::PaywallBuilder::ratelimit_headers) is on and this
    /// instance knows it (budgets shared through a store are not known here). Adapters
    /// put it on the response with [`apply_quota`](Self::apply_quota).
    pub fn quota(&self) -> Option<crate::adapter::Quota> {
        let budget = self.quota_budget()?;
        Some(budget.with_answer(|answer| {
            crate::adapter::Quota::from_answer(&self.charge.product, budget.remaining(), answer)
        }))
    }

    /// [`quota`](Self::quota)'s header fields: `RateLimit`, and `RateLimit-Policy` when
    /// the allowance is known; none when there is no quota. Cheaper than building the
    /// [`Quota`]: the policy value is built once per route and plan, not per response.
    ///
    /// [`Quota`]: crate::adapter::Quota
    pub fn quota_fields(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        let mut fields = [None, None];
        if let Some(budget) = self.quota_budget() {
            // Whole seconds until the reset, from the admission's own time: no clock
            // read per response.
            let (resets_at, allowance, period) = budget
                .with_answer(|answer| (answer.resets_at(), answer.allowance(), answer.period()));
            let reset = resets_at.and_then(|at| at.duration_since(self.admitted_at).ok());
            let product = &self.charge.product;
            fields[0] = crate::quota::ratelimit_value(product, budget.remaining(), reset)
                .map(|value| (crate::adapter::RATELIMIT, value));
            fields[1] = allowance
                .and_then(|allowance| self.charge.quota_policy.value(product, allowance, period))
                .map(|value| (crate::adapter::RATELIMIT_POLICY, value));
        }
        fields.into_iter().flatten()
    }

    /// Puts [`quota_fields`](Self::quota_fields) on `headers`.
    pub fn apply_quota(&self, headers: &mut HeaderMap) {
        for (name, value) in self.quota_fields() {
            headers.insert(name, value);
        }
    }

    /// The budget the quota fields are read from, when they are on and known here.
    fn quota_budget(&self) -> Option<Arc<Budget>> {
        if !self.engine.ratelimit_headers {
            return None;
        }
        match (&self.reservation, &self.usage) {
            (Some(reservation), _) if !reservation.is_leased() => {
                Some(Arc::clone(reservation.budget()))
            }
            (None, Some(usage)) => usage.local_budget(),
            _ => None,
        }
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
        match self.finish_head_now(status) {
            Ok(settlement) => settlement,
            Err(this) => {
                this.store_and_record().await;
                None
            }
        }
    }

    /// [`finish_head`](Self::finish_head) without a future, which needs none but for a
    /// success whose usage event must be stored in an outbox first: that admission is
    /// handed back untouched, to finish with `finish_head`. Adapters call it so that
    /// their request futures do not hold `finish_head`'s.
    pub fn finish_head_now(self, status: StatusCode) -> Result<Option<Settlement>, Self> {
        if let Some(settlement) = self.settlement(status) {
            return Ok(Some(settlement));
        }
        self.finish_now(status).map(|()| None)
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
        self.entry.as_deref().map(|entry| &entry.customer)
    }

    /// Settles the admission with the handler's status: a success (2xx unless
    /// configured otherwise) commits the units and queues a usage event; anything else
    /// gives the units back. Without an outbox it does not wait (a full queue adds the
    /// event to its customer's counter); with one it waits for the event to be stored.
    ///
    /// On a route priced by consumption this settles at once to what the handler
    /// reported so far; adapters that stream use [`finish_head`](Self::finish_head).
    pub async fn finish(self, status: StatusCode) {
        if let Err(this) = self.finish_now(status) {
            // Boxed: only a success stored in an outbox waits, and the future of every
            // other finish (held in adapters' request futures) stays small.
            Box::pin(this.store_and_record()).await;
        }
    }

    /// A success's usage event stored in the outbox, then queued: what
    /// [`finish_now`](Self::finish_now) and [`finish_head_now`](Self::finish_head_now)
    /// hand the admission back for.
    pub(crate) async fn store_and_record(mut self) {
        let Some(outbox) = self.engine.recorder.outbox().cloned() else {
            return;
        };
        let Some((event, budget)) = self.commit() else {
            return;
        };
        let engine = Arc::clone(&self.engine);
        // Store, then queue, in a task the request cannot cancel halfway.
        let task = tokio::spawn(async move {
            engine.store(&*outbox, &event).await;
            engine.enqueue(Pending::new(event, budget)).await;
        });
        let _ = task.await;
    }

    /// [`finish`](Self::finish) when it need not wait: every case but a success whose
    /// event must be stored in the outbox first, for which the admission is handed
    /// back untouched.
    pub(crate) fn finish_now(mut self, status: StatusCode) -> Result<(), Self> {
        if let Some(usage) = self.usage.take() {
            usage.settle_and_record((self.engine.success)(status));
            return Ok(());
        }
        if !(self.engine.success)(status) {
            debug!(%status, "handler did not succeed; units given back");
            return Ok(()); // the reservation's drop gives the units back
        }
        if self.engine.recorder.outbox().is_some() {
            return Err(self);
        }
        if self.tally() {
            return Ok(());
        }
        if let Some((event, budget)) = self.commit() {
            self.engine.record_detached(event, budget);
        }
        Ok(())
    }

    /// Commits the reservation into its budget's tally, when the recorder adds usage up
    /// in place: no event is built. `false`: build and queue one.
    fn tally(&mut self) -> bool {
        let (Some(entry), Some(reservation)) = (&self.entry, &self.reservation) else {
            return false;
        };
        let charge = &self.charge;
        let tallied = self.engine.recorder.tally(
            reservation.budget(),
            self.admitted_at,
            charge.price.at_admission(),
            || {
                let meter = Arc::clone(&charge.meter);
                (
                    entry.customer.reference().clone(),
                    Arc::clone(&charge.product),
                    meter,
                )
            },
        );
        if tallied {
            self.entry = None;
            self.reservation.take().map(Reservation::commit);
        }
        tallied
    }

    /// Commits the reservation and builds the usage event.
    fn commit(&mut self) -> Option<(UsageEvent, Option<Arc<Budget>>)> {
        let entry = self.entry.take()?;
        let budget = self.reservation.take().map(Reservation::commit);
        let event = UsageEvent {
            idempotency_key: self.engine.recorder.event_key(self.admitted_at),
            customer: entry.customer.reference().clone(),
            product: Arc::clone(&self.charge.product),
            meter: Arc::clone(&self.charge.meter),
            units: self.charge.price.at_admission(),
            outcome: Outcome::Success,
            timestamp: self.admitted_at,
            duration: self.started.map(|started| started.elapsed()),
        };
        Some((event, budget))
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
    /// Hands a committed event to the recorder without waiting: into the queue, or its
    /// counter in a full queue's overflow, when no outbox must store it first;
    /// otherwise from a task.
    pub(super) fn record_detached(
        self: &Arc<Self>,
        event: UsageEvent,
        budget: Option<Arc<Budget>>,
    ) {
        let outbox = self.recorder.outbox().cloned();
        let mut pending = Pending::new(event, budget);
        if outbox.is_none() {
            match self.recorder.record(pending) {
                Ok(()) => return,
                Err(back) => pending = back,
            }
        }
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.recorder.is_closed() => runtime,
            _ => {
                self.recorder
                    .refuse(&pending.event, crate::recorder::NoSlot::Closed);
                return;
            }
        };
        let engine = Arc::clone(self);
        runtime.spawn(async move {
            if let Some(outbox) = outbox {
                engine.store(&*outbox, &pending.event).await;
                engine.enqueue(pending).await;
            } else {
                engine.wait_for_slot(pending).await;
            }
        });
    }

    /// Queues `pending` (or adds it to its counter), waiting for room only when the
    /// overflow is at its limit.
    async fn enqueue(&self, pending: Pending) {
        if let Err(pending) = self.recorder.record(pending) {
            self.wait_for_slot(pending).await;
        }
    }

    /// Stores `event` in the outbox; on failure it is kept in memory only (and logged).
    /// Waits, at start, until the recorder has read what a previous run left there: an
    /// event stored by this run is sent by this run, never replayed beside it.
    async fn store(&self, outbox: &dyn DynOutbox, event: &UsageEvent) {
        self.recorder.replay_read().await;
        if let Err(err) = outbox.store_boxed(event).await {
            error!(idempotency_key = %event.idempotency_key, error = %err,
                   "usage event not stored in the outbox; kept in memory only");
        }
    }

    /// Waits for room in the queue, at most the enqueue timeout.
    async fn wait_for_slot(&self, pending: Pending) {
        match self.recorder.slot().await {
            Ok(slot) => slot.send(pending),
            Err(why) => self.recorder.refuse(&pending.event, why),
        }
    }
}
