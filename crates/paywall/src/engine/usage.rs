//! [`Usage`]: how the handler of a route priced by consumption reserves an upper bound,
//! reports what it consumed, and gets it settled when its response ends.
//!
//! The rule: **reserve an upper bound at admission, settle to the actual amount at the
//! end, release the rest.** A reservation is all or nothing and exact under concurrency
//! (the same compare-and-swap, or lease, as fixed prices). Reporting more than was
//! reserved takes the difference from the budget if it is there right now, and is
//! capped otherwise. Reserved-but-unsettled units count against the budget like
//! admitted-but-unacknowledged ones, so a refresh never hands them out twice.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::time::Instant;

use super::cache::CustomerEntry;
use super::reservation::Reservation;
use super::{Budget, Engine};
use crate::backend::{Outcome, UsageEvent};
use crate::charge::RouteCharge;
use crate::rejection::Rejection;

/// The consumption of one admitted request, on a route priced by consumption
/// ([`Charge::by_consumption`](crate::Charge::by_consumption)). Adapters put it in the
/// request's extensions (`paywall_axum::UsageMeter` extracts it). Cheap to clone: clones
/// report to the same request.
///
/// ```
/// use paywall::{Charge, Paywall, Usage};
/// use paywall::test_util::{HeaderResolver, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = MemoryBackend::with_allowance(100);
/// let paywall = Paywall::builder(HeaderResolver::new(), backend.clone()).build()?;
/// let route = paywall.route(Charge::new("prd_llm").meter("tokens").by_consumption())?;
/// let head = http::Request::builder().header("x-user", "ada").body(())?.into_parts().0;
///
/// let admission = paywall.admit(&head, &route).await.expect("admitted");
/// let usage: Usage = admission.usage().cloned().expect("priced by consumption");
/// usage.reserve(30).await.expect("30 of 100 units left"); // e.g. max_tokens
/// for _token in 0..20 {
///     usage.add(1); // as each token is streamed
/// }
/// // The response ended: 20 units are committed, 10 given back.
/// admission.finish(http::StatusCode::OK).await;
/// paywall.flush().await;
/// assert_eq!(backend.recorded_units(), 20);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Usage {
    meter: Arc<Meter>,
}

struct Meter {
    engine: Arc<Engine>,
    entry: Arc<CustomerEntry>,
    charge: Arc<RouteCharge>,
    admitted_at: SystemTime,
    started: Instant,
    state: Mutex<MeterState>,
}

#[derive(Default)]
struct MeterState {
    held: Vec<Reservation>,
    reserved: u64,
    reported: u64,
    settled: bool,
}

impl fmt::Debug for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.meter.lock();
        f.debug_struct("Usage")
            .field("product", &self.meter.charge.product)
            .field("meter", &self.meter.charge.meter)
            .field("reserved", &state.reserved)
            .field("reported", &state.reported)
            .finish()
    }
}

impl Meter {
    fn lock(&self) -> MutexGuard<'_, MeterState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes up to `units` more from the budget now, without waiting; returns how
    /// many it got.
    fn grow(&self, state: &mut MeterState, units: u64) -> u64 {
        let session = self.engine.shared_session();
        if state.held.is_empty() {
            let Some(budget) = self.entry.budget(self.charge.meter_id) else {
                return 0;
            };
            let leased = self.engine.shared.is_some() && budget.lease_is_current(session);
            state.held.push(if leased {
                Reservation::leased(budget, 0)
            } else {
                Reservation::local(budget, 0)
            });
        }
        match state.held.last_mut() {
            Some(last) => last.grow_up_to(units, session),
            None => 0,
        }
    }
}

impl Usage {
    pub(super) fn new(
        engine: Arc<Engine>,
        entry: Arc<CustomerEntry>,
        charge: Arc<RouteCharge>,
        admitted_at: SystemTime,
    ) -> Self {
        Self {
            meter: Arc::new(Meter {
                engine,
                entry,
                charge,
                admitted_at,
                started: Instant::now(),
                state: Mutex::new(MeterState::default()),
            }),
        }
    }

    /// Holds `units` more for this request, all or nothing: when fewer are left the
    /// answer is the paywall's 402 (with `remaining` and a checkout link), which the
    /// handler can return as its response. Waits only for what admission would wait
    /// for (a budget refresh, a lease).
    pub async fn reserve(&self, units: u64) -> Result<(), Rejection> {
        if units == 0 {
            return Ok(());
        }
        let meter = &self.meter;
        let reservation = meter
            .engine
            .reserve(&meter.entry, &meter.charge, units)
            .await?;
        let mut state = meter.lock();
        state.held.extend(reservation);
        state.reserved = state.reserved.saturating_add(units);
        Ok(())
    }

    /// Reports `units` more consumed (per token streamed, say); returns the total
    /// reported so far. Past what was reserved, the difference is taken from the
    /// budget as far as it is there right now, and the total is capped at what is
    /// held.
    pub fn add(&self, units: u64) -> u64 {
        let mut state = self.meter.lock();
        let wanted = state.reported.saturating_add(units);
        state.reported = self.capped(&mut state, wanted);
        state.reported
    }

    /// Sets the total consumed, once (capped as [`add`](Self::add)); returns it.
    pub fn set(&self, units: u64) -> u64 {
        let mut state = self.meter.lock();
        state.reported = self.capped(&mut state, units);
        state.reported
    }

    /// The instance's own budget the request draws from, when it has one (not when
    /// budgets are shared through a store).
    pub(super) fn local_budget(&self) -> Option<Arc<Budget>> {
        if self.meter.engine.shared.is_some() {
            return None;
        }
        self.meter.entry.budget(self.meter.charge.meter_id)
    }

    /// Units held for this request.
    pub fn reserved(&self) -> u64 {
        self.meter.lock().reserved
    }

    /// Units reported so far.
    pub fn reported(&self) -> u64 {
        self.meter.lock().reported
    }

    /// The response for `rejection` (from [`reserve`](Self::reserve)): the paywall's
    /// `on_rejection` hook's, or the default.
    pub fn rejection_response(&self, rejection: &Rejection) -> http::Response<bytes::Bytes> {
        self.meter.engine.rejection_response(rejection)
    }

    fn capped(&self, state: &mut MeterState, wanted: u64) -> u64 {
        if wanted <= state.reserved {
            return wanted;
        }
        let extra = wanted - state.reserved;
        let got = self.meter.grow(state, extra);
        state.reserved = state.reserved.saturating_add(got);
        state.reserved
    }

    /// Ends the request's metering, once: commits what was reported (nothing, when the
    /// handler failed and reported nothing) and gives the rest back. The usage event,
    /// if any, is returned for the recorder.
    pub(super) fn settle(&self, success: bool) -> Option<(UsageEvent, Option<Arc<Budget>>)> {
        let meter = &self.meter;
        let (held, commit) = {
            let mut state = meter.lock();
            if state.settled {
                return None;
            }
            state.settled = true;
            let commit = if success || state.reported > 0 {
                state.reported
            } else {
                0
            };
            (std::mem::take(&mut state.held), commit)
        };
        let mut left = commit;
        let mut budget = None;
        for mut reservation in held {
            let take = left.min(reservation.units());
            if take > 0 {
                budget = Some(reservation.commit_part(take));
                left -= take;
            }
            // Dropped: what was not committed is given back.
        }
        if commit == 0 {
            return None;
        }
        let event = UsageEvent {
            idempotency_key: meter.engine.recorder.event_key(meter.admitted_at),
            customer: meter.entry.customer.reference().clone(),
            product: Arc::clone(&meter.charge.product),
            meter: Arc::clone(&meter.charge.meter),
            units: commit,
            outcome: Outcome::Success,
            timestamp: meter.admitted_at,
            duration: Some(meter.started.elapsed()),
        };
        Some((event, budget))
    }

    /// Settles and hands the event to the recorder: at once when the queue has room,
    /// otherwise from a task (never blocking the caller, which may be a `Drop`).
    pub(super) fn settle_and_record(&self, success: bool) {
        if let Some((event, budget)) = self.settle(success) {
            self.meter.engine.record_detached(event, budget);
        }
    }
}
