//! Usage recording off the response path: the [`UsageRecorder`] (the queue and its
//! handles), its settings ([`RecorderConfig`]), the durable [`Outbox`] it can write
//! through, and its background worker (batches, retries, acknowledgements).
//!
//! An application sets these through [`PaywallBuilder::recorder`](crate::PaywallBuilder::recorder)
//! and [`PaywallBuilder::outbox`](crate::PaywallBuilder::outbox).

mod overflow;
mod tally;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, Counter, Gauge};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::backend::{DynBackend, UsageEvent};
use crate::outbox::DynOutbox;

pub use crate::outbox::{Outbox, OutboxError};

/// How the usage recorder batches and retries.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Events the queue holds before enqueuing waits (default 10,000).
    pub capacity: usize,
    /// Most events per backend call (default 500; SolvaPay takes up to 1,000).
    pub max_batch: usize,
    /// Longest an event waits for its batch to fill (default 100 ms).
    pub flush_interval: Duration,
    /// First retry delay after a transient failure (default 100 ms).
    pub initial_backoff: Duration,
    /// Longest retry delay (default 30 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` of the billing backend honoured (default 60 s), on
    /// usage calls and on limits checks alike: a proxy's `Retry-After: 3600` must not
    /// stop metering, or lock a customer out, for an hour.
    pub max_retry_after: Duration,
    /// How long an event waits for room in a full queue (in a task, never holding its
    /// response) when the queue's overflow already holds `capacity` counters and none
    /// is the event's (default 5 s). Below that, a full queue adds its events up per
    /// customer, product and meter, and sends each sum as one event once there is room.
    /// After the timeout the event is not queued: with an outbox it stays stored there
    /// and is sent at the next start; without one it is logged with its key and
    /// reported as pending.
    pub enqueue_timeout: Duration,
    /// Adds up a batch's events per customer, product, meter, outcome and UTC day
    /// before sending them: one event each, carrying the sum of the units, with a key
    /// of its own that is stable across retries (an event alone in its sum keeps its
    /// key). With an outbox, each sum replaces its events there in one step just before
    /// it is sent, so a crash or a replay never counts a unit twice. The backend then
    /// writes a counter per customer and meter per batch instead of a record per
    /// request; it no longer sees each request's `duration`, and a sum is dated at its
    /// latest event. Without an outbox, a fixed-price route's success is added to a
    /// counter its budget holds, in place, instead of being queued as an event: the
    /// counter goes out as one event when the batch is sent, dated then (within its UTC
    /// day). Default `false`: every event is sent as it happened.
    pub coalesce: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_batch: 500,
            flush_interval: Duration::from_millis(100),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            enqueue_timeout: Duration::from_secs(5),
            coalesce: false,
        }
    }
}

/// What a flush or shutdown achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Events the backend has acknowledged since start.
    pub recorded: u64,
    /// Events the backend refused for good (logged with their keys) since start.
    pub rejected: u64,
    /// Events accepted but not recorded when the call returned (the deadline passed).
    pub pending: u64,
}

impl FlushReport {
    /// Whether every accepted event reached the backend.
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }
}

/// Told once an event is settled (recorded, or refused for good), so that the budget
/// that admitted it stops counting it as in flight. The engine's budgets implement it;
/// the recorder knows nothing else of them.
pub(crate) trait Acknowledge: Send + Sync {
    /// `units` of an event this budget admitted are settled.
    fn ack(&self, units: u64);
}

/// An event with the budget to acknowledge once it is recorded.
pub(crate) struct Pending {
    pub(crate) event: UsageEvent,
    pub(crate) budget: Option<Arc<dyn Acknowledge>>,
    /// When the event adds up several (a full queue's counter), what it stands for.
    pub(crate) merged: Option<Box<Merged>>,
}

impl Pending {
    /// `event`, acknowledged to `budget` once settled.
    pub(crate) fn new<A: Acknowledge + 'static>(event: UsageEvent, budget: Option<Arc<A>>) -> Self {
        Self {
            event,
            budget: budget.map(|budget| budget as Arc<dyn Acknowledge>),
            merged: None,
        }
    }
}

enum Message {
    Event(Pending),
    Flush(oneshot::Sender<()>),
    /// The overflow has counters (sent only when the queue has room again).
    Nudge,
    /// A budget's tally holds units (sent when the list of such budgets was empty).
    Tallied,
}

struct Counters {
    /// Events in the queue (counted before they enter it, so never below the truth).
    queued: AtomicUsize,
    /// Wakes the worker while it collects a batch: when the queue holds a batch's worth
    /// (`wake_at`), a flush is asked for, or the queue is closing. Between those the
    /// worker sleeps until its batch's deadline, not once per event.
    wake: tokio::sync::Notify,
    wake_at: AtomicUsize,
    accepted: AtomicU64,
    recorded: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    /// `paywall_usage_pending` and `paywall_usage_events_total` (see `telemetry`).
    pending: Gauge,
    recorded_total: Counter,
    dropped_total: Counter,
}

impl Counters {
    /// Counts an event about to enter the queue.
    fn enqueuing(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// An event counted by [`enqueuing`](Self::enqueuing) is in the queue: wakes the
    /// worker when the queue holds what fills its batch. After the send, so that the
    /// woken worker finds the event.
    fn enqueued(&self) {
        if self.queued.load(Ordering::Acquire) >= self.wake_at.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// Undoes [`enqueuing`](Self::enqueuing) for an event that did not enter the queue.
    fn not_enqueued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            queued: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            wake_at: AtomicUsize::new(1),
            accepted: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            pending: gauge!(crate::telemetry::USAGE_PENDING),
            recorded_total: counter!(crate::telemetry::USAGE_EVENTS_TOTAL, "result" => "recorded"),
            dropped_total: counter!(crate::telemetry::USAGE_EVENTS_TOTAL, "result" => "dropped"),
        }
    }
}

/// Sends usage events to the billing backend in batches, off the response path.
///
/// Admitted requests hand their usage event to a bounded queue; one background task
/// batches events by size and by interval and sends each batch to the backend. A batch
/// that fails transiently is retried, with the same idempotency keys, after a jittered
/// exponential backoff that honours the backend's `Retry-After`. A full queue (the
/// backend refusing for a while under load) does not hold responses: their events are
/// added up per customer, product and meter, and each sum goes out as one event once
/// there is room. Only past `capacity` such sums does enqueuing wait (backpressure);
/// events are never dropped silently.
///
/// Obtained from [`Paywall::recorder`](crate::Paywall::recorder); cheap to clone.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<Message>,
    enqueue_timeout: Duration,
    counters: Arc<Counters>,
    closed: Arc<AtomicBool>,
    outbox: Option<Arc<dyn DynOutbox>>,
    overflow: Arc<Overflow>,
    /// The budgets whose tallies hold units; `None` unless events are added up and
    /// no outbox stores them (see `tally.rs`).
    tallies: Option<Arc<Tallies>>,
    /// Whether the outbox's leftovers have been read (true at once without an outbox).
    replay_read: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("report", &self.report())
            .finish()
    }
}

/// Why an event could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoSlot {
    /// The paywall is shutting down.
    #[error("the usage recorder is shut down")]
    Closed,
    /// The queue stayed full for the whole enqueue timeout.
    #[error("the usage queue stayed full")]
    Full,
}

impl UsageRecorder {
    pub(crate) fn spawn(
        backend: Arc<dyn DynBackend>,
        config: RecorderConfig,
        outbox: Option<Arc<dyn DynOutbox>>,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let enqueue_timeout = config.enqueue_timeout;
        let counters = Arc::new(Counters::default());
        counters.wake_at.store(
            config.max_batch.clamp(1, config.capacity.max(1)),
            Ordering::Relaxed,
        );
        let overflow = Arc::new(Overflow::new(config.capacity, outbox.is_some()));
        let tallies = (config.coalesce && outbox.is_none()).then(Arc::default);
        let worker = Worker {
            backend,
            config,
            counters: Arc::clone(&counters),
            outbox: outbox.clone(),
            overflow: Arc::clone(&overflow),
            tallies: tallies.clone(),
        };
        runtime.spawn(worker.run(rx));
        let (read, replay_read) = tokio::sync::watch::channel(outbox.is_none());
        let recorder = Self {
            tx,
            enqueue_timeout,
            counters,
            closed: Arc::new(AtomicBool::new(false)),
            outbox,
            overflow,
            tallies,
            replay_read,
        };
        if let Some(outbox) = recorder.outbox.clone() {
            runtime.spawn(recorder.clone().replay(outbox, read));
        }
        recorder
    }

    /// Waits until what a previous run left in the outbox has been read.
    pub(crate) async fn replay_read(&self) {
        let mut read = self.replay_read.clone();
        // An error means the replay task is gone: nothing to wait for.
        let _ = read.wait_for(|read| *read).await;
    }

    /// Sends again what a previous run left in the outbox, with the original keys. This
    /// run's events are stored only once the list is read (see `replay_read`), so it
    /// holds a previous run's events only.
    async fn replay(self, outbox: Arc<dyn DynOutbox>, read: tokio::sync::watch::Sender<bool>) {
        let pending = outbox.pending_boxed().await;
        let _ = read.send(true);
        let events = match pending {
            Ok(events) => events,
            Err(err) => {
                error!(error = %err, "cannot read the usage outbox; its events stay there");
                return;
            }
        };
        if !events.is_empty() {
            info!(events = events.len(), "replaying usage left in the outbox");
        }
        for event in events {
            self.counters.accepted.fetch_add(1, Ordering::AcqRel);
            self.counters.pending.increment(1.0);
            let pending = Pending::new::<Noop>(event, None);
            self.counters.enqueuing();
            if self.tx.send(Message::Event(pending)).await.is_err() {
                self.counters.not_enqueued();
                self.counters.accepted.fetch_sub(1, Ordering::AcqRel);
                self.counters.pending.decrement(1.0);
                return;
            }
            self.counters.enqueued();
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether events must be stored durably before the response goes out.
    pub(crate) fn outbox(&self) -> Option<&Arc<dyn DynOutbox>> {
        self.outbox.as_ref()
    }

    /// The idempotency key of an event created `at`: made now when an outbox stores
    /// the event, else left for the worker to make when it takes the event into a
    /// batch (off the request's path, and not at all for an event added into a sum).
    pub(crate) fn event_key(&self, at: std::time::SystemTime) -> String {
        if self.outbox.is_some() {
            UsageEvent::new_key(at)
        } else {
            String::new()
        }
    }

    /// Waits for room in the queue (backpressure), at most the enqueue timeout.
    /// Cancel-safe: dropping the future while it waits takes nothing from the queue and
    /// records nothing. The slot is owned, so it can travel into a task.
    pub(crate) async fn slot(&self) -> Result<Slot, NoSlot> {
        if self.closed.load(Ordering::Acquire) {
            return Err(NoSlot::Closed);
        }
        let permit = match self.tx.clone().try_reserve_owned() {
            Ok(permit) => permit,
            // The slow path is boxed: the usual future stays small.
            Err(mpsc::error::TrySendError::Full(tx)) => Box::pin(self.wait_for_room(tx)).await?,
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(NoSlot::Closed),
        };
        Ok(Slot {
            permit,
            counters: Arc::clone(&self.counters),
        })
    }

    async fn wait_for_room(
        &self,
        tx: mpsc::Sender<Message>,
    ) -> Result<mpsc::OwnedPermit<Message>, NoSlot> {
        debug!("usage queue full; the response waits for room");
        match tokio::time::timeout(self.enqueue_timeout, tx.reserve_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(NoSlot::Closed),
            Err(_) => Err(NoSlot::Full),
        }
    }

    /// Queues `pending` without waiting: into the queue when it has room, otherwise
    /// into its counter in the overflow. Gives it back when the recorder is shut down,
    /// or the overflow holds `capacity` counters and none is this event's (then wait
    /// for a [`slot`](Self::slot)).
    // The event given back is moved, not copied to the heap: the usual path stays
    // free of allocations.
    #[allow(clippy::result_large_err)]
    pub(crate) fn record(&self, pending: Pending) -> Result<(), Pending> {
        if self.closed.load(Ordering::Acquire) {
            return Err(pending);
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                self.counters.accepted.fetch_add(1, Ordering::AcqRel);
                self.counters.pending.increment(1.0);
                self.counters.enqueuing();
                permit.send(Message::Event(pending));
                self.counters.enqueued();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                self.overflow.absorb(pending)?;
                self.counters.accepted.fetch_add(1, Ordering::AcqRel);
                self.counters.pending.increment(1.0);
                // Full: the worker has messages to take, and takes the overflow after
                // them. Room already: tell it, or the counter would wait for the next
                // event.
                let _ = self.tx.try_send(Message::Nudge);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(pending),
        }
    }

    /// Logs and counts an event that could not be queued (reported as pending).
    pub(crate) fn refuse(&self, event: &UsageEvent, why: NoSlot) {
        self.counters.refused.fetch_add(1, Ordering::AcqRel);
        if self.outbox.is_none() {
            self.counters.dropped_total.increment(1);
        }
        let stored = if self.outbox.is_some() {
            "kept in the outbox for the next start"
        } else {
            "not recorded"
        };
        // Without an outbox an event gets its key when it is sent: one refused here
        // has none, and the log says so by leaving the field out.
        let key = Some(event.idempotency_key.as_str()).filter(|key| !key.is_empty());
        error!(
            idempotency_key = key,
            customer = %event.customer,
            units = event.units,
            reason = %why,
            "usage event not queued; {stored}"
        );
    }

    /// Waits until every event accepted before the call has been sent and acknowledged
    /// (or refused for good) by the backend.
    pub async fn flush(&self) -> FlushReport {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            self.counters.wake.notify_one();
            let _ = wait.await;
        }
        self.report()
    }

    /// Stops accepting events and flushes, waiting at most `deadline`. The report's
    /// `pending` counts the events that were not recorded in time (they stay queued
    /// and are still sent if the process keeps running).
    pub async fn shutdown(&self, deadline: Duration) -> FlushReport {
        self.closed.store(true, Ordering::Release);
        match tokio::time::timeout(deadline, self.flush()).await {
            Ok(report) => report,
            Err(_) => {
                let report = self.report();
                warn!(
                    pending = report.pending,
                    "usage flush deadline passed with events unrecorded"
                );
                report
            }
        }
    }

    /// Counts so far.
    pub fn report(&self) -> FlushReport {
        let accepted = self.counters.accepted.load(Ordering::Acquire);
        let recorded = self.counters.recorded.load(Ordering::Acquire);
        let rejected = self.counters.rejected.load(Ordering::Acquire);
        FlushReport {
            recorded,
            rejected,
            pending: accepted.saturating_sub(recorded + rejected)
                + self.counters.refused.load(Ordering::Acquire),
        }
    }
}

/// Room for one event in the usage queue, movable into a task.
pub(crate) struct Slot {
    permit: mpsc::OwnedPermit<Message>,
    counters: Arc<Counters>,
}

impl Slot {
    /// Queues the event; never waits, never fails.
    pub(crate) fn send(self, pending: Pending) {
        self.counters.accepted.fetch_add(1, Ordering::AcqRel);
        self.counters.pending.increment(1.0);
        self.counters.enqueuing();
        self.permit.send(Message::Event(pending));
        self.counters.enqueued();
    }
}

/// A budget that is not there (events replayed from the outbox).
struct Noop;

impl Acknowledge for Noop {
    fn ack(&self, _units: u64) {}
}

use overflow::{Merged, Overflow};
use tally::Tallies;
pub(crate) use tally::{Tallied, Tally};
use worker::Worker;
