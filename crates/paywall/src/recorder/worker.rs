//! The recorder's background task: collects queued events into batches (by size and by
//! interval, sleeping between wake-ups rather than waking per event; with
//! [`RecorderConfig::coalesce`] a batch adds its events up per customer, product,
//! meter, outcome and day), takes the overflow's counters after what it took from the
//! queue, sends each batch until the backend acknowledges or refuses it, and settles
//! the budgets.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::overflow::Sums;
use super::tally::Tallies;
use super::{Counters, Message, Overflow, Pending, RecorderConfig};
use crate::backend::{BackendError, DynBackend, UsageEvent};
use crate::backoff::Backoff;
use crate::outbox::DynOutbox;

/// The shortest wait for a batch to fill.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// The batch being collected and when its oldest event must go out.
struct Batch {
    events: Events,
    due: Option<Instant>,
}

/// A batch's events: as they came, or added up.
enum Events {
    Each(Vec<Pending>),
    Summed(Sums),
}

impl Events {
    fn len(&self) -> usize {
        match self {
            Self::Each(events) => events.len(),
            Self::Summed(sums) => sums.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, pending: Pending) {
        match self {
            Self::Each(events) => events.push(pending),
            Self::Summed(sums) => sums.add(pending),
        }
    }

    fn take(&mut self) -> Vec<Pending> {
        match self {
            Self::Each(events) => std::mem::take(events),
            Self::Summed(sums) => sums.take(),
        }
    }
}

pub(super) struct Worker {
    pub(super) backend: Arc<dyn DynBackend>,
    pub(super) config: RecorderConfig,
    pub(super) counters: Arc<Counters>,
    pub(super) outbox: Option<Arc<dyn DynOutbox>>,
    pub(super) overflow: Arc<Overflow>,
    pub(super) tallies: Option<Arc<Tallies>>,
}

impl Worker {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let events = if self.config.coalesce {
            Events::Summed(Sums::new(self.outbox.is_some()))
        } else {
            Events::Each(Vec::with_capacity(self.config.max_batch.max(1)))
        };
        let mut batch = Batch { events, due: None };
        // Idle: the first event (or flush) wakes the worker.
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            loop {
                // Take what is queued, so batches fill from the backlog.
                while let Some(message) = next.take() {
                    self.take(message, &mut batch).await;
                    // A long backlog is taken in turns with the requests (Tokio's task
                    // budget), not in one stretch that holds up a worker thread.
                    tokio::task::consume_budget().await;
                    next = rx.try_recv().ok();
                }
                self.take_overflow(&mut batch).await;
                self.await_tallies(&mut batch);
                let Some(at) = batch.due else { break };
                // Collecting: sleep until the batch is due, or until the queue holds
                // what fills the batch, or a flush (see `Counters::wake`), not once
                // per event.
                let missing = (self.config.max_batch.max(1) - batch.events.len())
                    .clamp(1, self.config.capacity.max(1));
                self.counters.wake_at.store(missing, Ordering::Release);
                if self.counters.queued.load(Ordering::Acquire) >= missing {
                    // Queued before the threshold came down, so nobody woke us: take
                    // them now (after letting a sender finish putting its event in).
                    tokio::task::yield_now().await;
                    next = rx.try_recv().ok();
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        while let Ok(message) = rx.try_recv() {
                            self.take(message, &mut batch).await;
                            tokio::task::consume_budget().await;
                        }
                        self.take_overflow(&mut batch).await;
                        self.take_tallies(&mut batch).await;
                        self.send(&mut batch.events).await;
                        batch.due = None;
                    }
                    () = self.counters.wake.notified() => next = rx.try_recv().ok(),
                }
            }
        }
        // Every sender is gone.
        self.take_overflow(&mut batch).await;
        self.take_tallies(&mut batch).await;
        self.send(&mut batch.events).await;
    }

    /// Adds the overflow's counters to the batch (sending it whenever it is full).
    async fn take_overflow(&self, batch: &mut Batch) {
        for pending in self.overflow.take() {
            self.push(pending, batch).await;
        }
    }

    /// Tallies holding units are taken when the batch goes out: make sure one is due.
    fn await_tallies(&self, batch: &mut Batch) {
        let listed = self
            .tallies
            .as_ref()
            .is_some_and(|tallies| !tallies.is_empty());
        if listed && batch.due.is_none() {
            batch.due = Some(Instant::now() + self.config.flush_interval.max(MIN_WAIT));
        }
    }

    /// Adds every tally's units to the batch, one event each (sending it whenever it
    /// is full).
    async fn take_tallies(&self, batch: &mut Batch) {
        let Some(tallies) = &self.tallies else { return };
        for pending in tallies.take() {
            self.push(pending, batch).await;
        }
    }

    /// Adds one event to the batch, sending the batch when it is full.
    async fn push(&self, pending: Pending, batch: &mut Batch) {
        if batch.events.is_empty() {
            batch.due = Some(Instant::now() + self.config.flush_interval.max(MIN_WAIT));
        }
        batch.events.push(pending);
        if batch.events.len() >= self.config.max_batch.max(1) {
            self.send(&mut batch.events).await;
            batch.due = None;
        }
    }

    /// Adds an event to the batch (sent when full), or flushes.
    async fn take(&self, message: Message, batch: &mut Batch) {
        match message {
            Message::Event(pending) => {
                self.counters.queued.fetch_sub(1, Ordering::AcqRel);
                self.push(pending, batch).await;
            }
            Message::Nudge | Message::Tallied => {}
            Message::Flush(done) => {
                self.take_overflow(batch).await;
                self.take_tallies(batch).await;
                self.send(&mut batch.events).await;
                batch.due = None;
                let _ = done.send(());
            }
        }
    }

    /// Sends `batch` until the backend acknowledges or refuses it for good. A refused
    /// batch is split in halves and each sent again, so that only the events the
    /// backend refuses are dropped (and logged with their keys), not their neighbours.
    /// With an outbox, each sum first replaces the events it adds up there.
    async fn send(&self, batch: &mut Events) {
        let mut batch = batch.take();
        if batch.is_empty() {
            return;
        }
        // Keys are fixed here, once, before the first attempt: every retry and half
        // below sends the same ones.
        for pending in &mut batch {
            pending.event.key_if_missing();
        }
        if let Some(outbox) = &self.outbox {
            for pending in &batch {
                let Some(merged) = &pending.merged else {
                    continue;
                };
                if let Err(err) = outbox.replace_boxed(&merged.keys, &pending.event).await {
                    warn!(error = %err, events = merged.keys.len(),
                          "cannot replace added-up usage in the outbox; the events stay there");
                }
            }
        }
        // The events go to the backend as they are (not copied); what settles them
        // travels beside them, split with them.
        let (events, settles): (Vec<UsageEvent>, Vec<Settle>) =
            batch.into_iter().map(Settle::split).unzip();
        let mut parts = vec![(events, settles)];
        while let Some((mut events, mut settles)) = parts.pop() {
            if events.is_empty() {
                continue;
            }
            match self.deliver(&events).await {
                Ok(()) => {
                    debug!(events = events.len(), "usage recorded");
                    self.forget(&events, &settles).await;
                    self.settle(settles, true);
                }
                Err(err) if events.len() > 1 => {
                    debug!(events = events.len(), error = %err, "batch refused; sending its halves apart");
                    let half = events.len() / 2;
                    parts.push((events.split_off(half), settles.split_off(half)));
                    parts.push((events, settles));
                }
                Err(err) => {
                    for event in &events {
                        error!(
                            idempotency_key = %event.idempotency_key,
                            customer = %event.customer,
                            units = event.units,
                            error = %err,
                            "usage event refused by the billing backend"
                        );
                    }
                    self.forget(&events, &settles).await;
                    self.settle(settles, false);
                }
            }
        }
    }

    /// One batch, retried with the same keys while the failure is transient; the
    /// backend's `Retry-After` is honoured up to `max_retry_after`.
    async fn deliver(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        let span = tracing::debug_span!("paywall.usage_batch", events = events.len());
        tracing::Instrument::instrument(self.deliver_in_span(events), span).await
    }

    async fn deliver_in_span(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        let backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        let mut attempt: u32 = 0;
        loop {
            match self.backend.record_usage_boxed(events).await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_transient() => {
                    let asked = err
                        .retry_after()
                        .map(|wait| wait.min(self.config.max_retry_after));
                    let wait = backoff.delay(attempt, asked);
                    attempt = attempt.saturating_add(1);
                    warn!(
                        events = events.len(),
                        attempt,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %err,
                        "recording usage failed; retrying with the same idempotency keys"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Removes settled events from the outbox. Should that fail, they are sent again at
    /// the next start, and the backend ignores them by their keys.
    async fn forget(&self, events: &[UsageEvent], settles: &[Settle]) {
        let Some(outbox) = &self.outbox else { return };
        let mut keys: Vec<String> = events.iter().map(|e| e.idempotency_key.clone()).collect();
        // An added-up event's own events, should replacing them have failed.
        for merged in settles.iter().filter_map(|settle| settle.merged.as_ref()) {
            keys.extend(merged.keys.iter().cloned());
        }
        if let Err(err) = outbox.remove_boxed(&keys).await {
            warn!(error = %err, events = keys.len(), "cannot remove recorded usage from the outbox");
        }
    }

    fn settle(&self, settles: Vec<Settle>, recorded: bool) {
        let mut count = 0;
        for settle in settles {
            count += settle.merged.as_ref().map_or(1, |merged| merged.events);
            // A refused event will never be counted by the backend; treating it as
            // acknowledged lets the next refresh give the units back.
            let own = settle.merged.as_ref().map_or(settle.units, |m| m.own);
            if let Some(budget) = &settle.budget {
                budget.ack(own);
            }
            if let Some(merged) = settle.merged {
                for (budget, units) in merged.acks {
                    budget.ack(units);
                }
            }
        }
        let counter = if recorded {
            self.counters.recorded_total.increment(count);
            &self.counters.recorded
        } else {
            self.counters.dropped_total.increment(count);
            &self.counters.rejected
        };
        counter.fetch_add(count, Ordering::AcqRel);
        self.counters.pending.decrement(count as f64);
    }
}

/// What settles an event once the backend has answered for it: its units, its budget,
/// and what a sum stands for.
struct Settle {
    units: u64,
    budget: Option<Arc<dyn super::Acknowledge>>,
    merged: Option<Box<super::Merged>>,
}

impl Settle {
    /// The event to send, and what settles it.
    fn split(pending: Pending) -> (UsageEvent, Settle) {
        let Pending {
            event,
            budget,
            merged,
        } = pending;
        let units = event.units;
        (
            event,
            Settle {
                units,
                budget,
                merged,
            },
        )
    }
}
