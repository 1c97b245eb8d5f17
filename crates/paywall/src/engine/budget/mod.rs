//! The local countdown for one (customer, product, meter).
//!
//! Admission must be exact on one process: with N units left, at most N concurrent
//! requests pass. The budget keeps three monotonic-ish counters:
//!
//! * `consumed`: units this process admitted, minus units given back by failed requests;
//! * `acked`: units of those that the backend has acknowledged (recorded);
//! * `limit`: the backend's `remaining` at the last refresh, plus `acked` as read
//!   *before* that refresh's call went out.
//!
//! A reservation succeeds when `consumed + units <= limit`, decided by one
//! compare-and-swap on `consumed`, so concurrent reservations can never overshoot.
//!
//! Why `limit = remaining + acked_before` is right: after a refresh, the units still
//! allowed are `remaining - (consumed - counted)`, where `counted` is what the backend
//! had already counted of our consumption when it answered. Every unit acknowledged
//! before the call went out was counted, so `counted >= acked_before`, and admitting
//! while `consumed < remaining + acked_before` never admits more than the backend
//! allows. (Units acknowledged while the call was in flight are subtracted twice until
//! the next refresh: the error is on the safe side and does not accumulate.) Because
//! the new limit does not depend on `consumed`, a refresh is a single store that never
//! races with reservations.
//!
//! With a shared store (see [`crate::shared`]) the budget also holds `spare`: units
//! leased from the store and not yet admitted. A leased admission takes from `spare`
//! (a compare-and-swap that cannot go below zero) and adds to `consumed`, so that a
//! fall-back to the local countdown still accounts for every unacknowledged unit.
//! Leased units are only used while `lease_session` matches the store's session.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use crate::backend::Limits;
use crate::recorder::Tally;

mod answer;
mod refresh;
mod sync;

pub(crate) use answer::Answer;
pub(crate) use refresh::Due;
pub(crate) use sync::LeaseSync;

const NO_SESSION: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Budget {
    limit: AtomicU64,
    consumed: AtomicU64,
    acked: AtomicU64,
    /// Engine-clock milliseconds after which the budget must be refreshed.
    refresh_at: AtomicU64,
    /// Whether that refresh may run ahead of `refresh_at`: not when it is the
    /// allowance's reset, which an earlier answer cannot see past.
    ahead: AtomicBool,
    /// Whether the last refresh succeeded.
    healthy: AtomicBool,
    /// Bumped after every refresh attempt, successful or not.
    attempts: AtomicU64,
    /// Serialises refreshes and lease calls: one at a time per budget.
    refresh_gate: tokio::sync::Mutex<LeaseSync>,
    /// Units leased from the shared store and not yet admitted.
    spare: AtomicU64,
    /// The store session the spare units were leased under (`u64::MAX`: none).
    lease_session: AtomicU64,
    /// Whether a task is watching this budget to give back idle spare units.
    returning: AtomicBool,
    /// Whether a background refill is in flight: a lease ahead of need (shared store)
    /// or a limits refresh ahead of expiry (local budget).
    refilling: AtomicBool,
    /// What the quota fields, 402s and account views read of the backend's last
    /// answer.
    answer: RwLock<Answer>,
    /// The lease size a shared budget asks for (high 32 bits; 0: the configured start)
    /// and when its last lease ahead of need was asked (engine-clock milliseconds, low
    /// 32 bits, wrapping), in one word: see [`Budget::pace_lease`].
    lease_pace: AtomicU64,
    /// Committed units the usage recorder has not taken yet, when it adds them up in
    /// place (see `recorder/tally.rs`).
    tally: Tally,
}

/// A lease that lasted less than this doubles the next one.
const HOT_LEASE_MS: u32 = 200;
/// A lease that lasted longer than this starts the lease size again.
const COOL_LEASE_MS: u32 = 2_000;

impl Budget {
    pub(crate) fn new(limits: Limits, acked_before: u64, due: impl Into<Due>) -> Self {
        let budget = Self {
            limit: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refresh_at: AtomicU64::new(0),
            ahead: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            attempts: AtomicU64::new(0),
            refresh_gate: tokio::sync::Mutex::new(LeaseSync::default()),
            spare: AtomicU64::new(0),
            lease_session: AtomicU64::new(NO_SESSION),
            returning: AtomicBool::new(false),
            refilling: AtomicBool::new(false),
            answer: RwLock::new(Answer::default()),
            lease_pace: AtomicU64::new(0),
            tally: Tally::default(),
        };
        budget.apply(limits, acked_before, due);
        budget
    }

    /// Reserves `units` if they fit. Exact under any concurrency.
    pub(crate) fn try_reserve(&self, units: u64) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        self.consumed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |consumed| {
                consumed.checked_add(units).filter(|next| *next <= limit)
            })
            .is_ok()
    }

    /// Reserves `units` whether or not they fit (fail-open admissions still count).
    pub(crate) fn force_reserve(&self, units: u64) {
        self.consumed.fetch_add(units, Ordering::AcqRel);
    }

    /// Gives back units reserved by a request that did not succeed.
    pub(crate) fn release(&self, units: u64) {
        self.consumed.fetch_sub(units, Ordering::AcqRel);
    }

    /// The backend has recorded `units` of our consumption.
    pub(crate) fn ack(&self, units: u64) {
        self.acked.fetch_add(units, Ordering::AcqRel);
    }

    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Units left as this process sees them.
    pub(crate) fn remaining(&self) -> u64 {
        self.limit
            .load(Ordering::Acquire)
            .saturating_sub(self.consumed.load(Ordering::Acquire))
    }

    /// Units admitted here that the backend has not acknowledged yet.
    pub(crate) fn unacknowledged(&self) -> u64 {
        self.consumed
            .load(Ordering::Acquire)
            .saturating_sub(self.acked.load(Ordering::Acquire))
    }

    /// Installs a fresh answer from the backend, to be refreshed when `due` says.
    pub(crate) fn apply(&self, limits: Limits, acked_before: u64, due: impl Into<Due>) {
        let due = due.into();
        self.limit.store(
            limits.allowed().saturating_add(acked_before),
            Ordering::Release,
        );
        self.set_answer(limits);
        self.healthy.store(true, Ordering::Release);
        self.ahead.store(due.ahead, Ordering::Release);
        self.refresh_at.store(due.at_ms, Ordering::Release);
    }

    /// Records a failed refresh: keep the counters, retry after `retry_at`.
    pub(crate) fn mark_failed(&self, retry_at: u64) {
        self.healthy.store(false, Ordering::Release);
        self.refresh_at.store(retry_at, Ordering::Release);
    }

    /// Forces a refresh on the next request (after a purchase, say).
    pub(crate) fn mark_stale(&self) {
        self.refresh_at.store(0, Ordering::Release);
    }

    pub(crate) fn needs_refresh(&self, now: u64) -> bool {
        now >= self.refresh_at.load(Ordering::Acquire)
    }

    pub(crate) fn refresh_at(&self) -> u64 {
        self.refresh_at.load(Ordering::Acquire)
    }

    /// Whether the next refresh may run ahead of [`refresh_at`](Self::refresh_at).
    pub(crate) fn refreshes_ahead(&self) -> bool {
        self.ahead.load(Ordering::Acquire)
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    pub(crate) fn bump_attempts(&self) {
        self.attempts.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn gate(&self) -> &tokio::sync::Mutex<LeaseSync> {
        &self.refresh_gate
    }

    /// A budget for a shared store: nothing leased yet, local countdown unset (a
    /// fall-back refreshes it from the backend first).
    pub(crate) fn leased() -> Self {
        Self::new(Limits::default(), 0, 0)
    }

    /// Units admitted here, minus units given back.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Acquire)
    }

    /// Reserves `units` from the spare leased under `session`.
    pub(crate) fn try_take_leased(&self, session: Option<u64>, units: u64) -> bool {
        let Some(session) = session else {
            return false;
        };
        if self.lease_session.load(Ordering::Acquire) != session {
            return false;
        }
        let taken = self
            .spare
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |spare| {
                spare.checked_sub(units)
            })
            .is_ok();
        if taken {
            self.consumed.fetch_add(units, Ordering::AcqRel);
        }
        taken
    }

    /// Gives back units of a leased admission that did not succeed.
    pub(crate) fn release_leased(&self, units: u64) {
        self.consumed.fetch_sub(units, Ordering::AcqRel);
        self.spare.fetch_add(units, Ordering::AcqRel);
    }

    /// Adds units granted by the store under `session`. Call with the gate held.
    pub(crate) fn grow_lease(&self, session: u64, units: u64) {
        self.lease_session.store(session, Ordering::Release);
        self.spare.fetch_add(units, Ordering::AcqRel);
    }

    /// Adds `granted` units leased under `session` for a request of `units`, which it
    /// takes at once, so that no warm-path request takes them first; false (all of
    /// them spare) when fewer than `units` were granted. Call with the gate held.
    pub(crate) fn grow_lease_for(&self, session: u64, granted: u64, units: u64) -> bool {
        let Some(extra) = granted.checked_sub(units) else {
            self.grow_lease(session, granted);
            return false;
        };
        self.consumed.fetch_add(units, Ordering::AcqRel);
        self.grow_lease(session, extra);
        true
    }

    /// Whether the spare units are usable under `session`.
    pub(crate) fn lease_is_current(&self, session: Option<u64>) -> bool {
        session.is_some_and(|s| self.lease_session.load(Ordering::Acquire) == s)
    }

    /// Takes every spare unit (to give back, or because the lease is void).
    pub(crate) fn take_spare(&self) -> u64 {
        self.spare.swap(0, Ordering::AcqRel)
    }

    pub(crate) fn spare(&self) -> u64 {
        self.spare.load(Ordering::Acquire)
    }

    /// The units a lease of this shared budget asks for now: `base` until the budget
    /// turns hot (see [`pace_lease`](Self::pace_lease)).
    pub(crate) fn lease_size(&self, base: u64) -> u64 {
        match self.lease_pace.load(Ordering::Acquire) >> 32 {
            0 => base,
            size => size,
        }
    }

    /// The size of the lease ahead of need that starts now (at `now_ms`): twice the
    /// last, up to `max`, when the last lasted less than `HOT_LEASE_MS`; `base` again
    /// when it lasted over `COOL_LEASE_MS`; else the same. Call only as the budget's
    /// refiller ([`start_refill`](Self::start_refill)).
    pub(crate) fn pace_lease(&self, now_ms: u64, base: u64, max: u64) -> u64 {
        let pace = self.lease_pace.load(Ordering::Acquire);
        let current = self.lease_size(base);
        // Wrapping milliseconds: only differences under 49 days are read.
        let lasted = (now_ms as u32).wrapping_sub(pace as u32);
        let size = if pace == 0 || lasted > COOL_LEASE_MS {
            base
        } else if lasted < HOT_LEASE_MS {
            current.saturating_mul(2).min(max)
        } else {
            current
        }
        .clamp(1, u64::from(u32::MAX));
        self.lease_pace
            .store((size << 32) | u64::from(now_ms as u32), Ordering::Release);
        size
    }

    /// The budget went idle: its next lease starts from the configured size.
    pub(crate) fn cool_lease(&self) {
        self.lease_pace.store(0, Ordering::Release);
    }

    /// Claims the job of leasing ahead of need; false if a refill is in flight.
    pub(crate) fn start_refill(&self) -> bool {
        !self.refilling.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn stop_refill(&self) {
        self.refilling.store(false, Ordering::Release);
    }

    /// Claims the job of watching this budget's spare units; false if taken.
    pub(crate) fn start_returning(&self) -> bool {
        !self.returning.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn stop_returning(&self) {
        self.returning.store(false, Ordering::Release);
    }

    /// Replaces what the budget keeps of the backend's answer (with a shared store,
    /// the counters are the store's).
    pub(crate) fn set_answer(&self, limits: Limits) {
        let answer = Answer::from(limits);
        match self.answer.write() {
            Ok(mut kept) => *kept = answer,
            Err(poisoned) => *poisoned.into_inner() = answer,
        }
    }

    /// Reads the backend's last answer in place.
    pub(crate) fn with_answer<R>(&self, read: impl FnOnce(&Answer) -> R) -> R {
        match self.answer.read() {
            Ok(answer) => read(&answer),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }
}

impl crate::recorder::Acknowledge for Budget {
    fn ack(&self, units: u64) {
        Budget::ack(self, units);
    }
}

impl crate::recorder::Tallied for Budget {
    fn tally(&self) -> &Tally {
        &self.tally
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_lease_doubles_while_hot_and_starts_again_when_cool() {
        let budget = Budget::leased();
        assert_eq!(budget.lease_size(16), 16);
        assert_eq!(budget.pace_lease(1_000, 16, 100), 16, "the first lease");
        assert_eq!(budget.pace_lease(1_050, 16, 100), 32, "lasted 50 ms: hot");
        assert_eq!(budget.pace_lease(1_100, 16, 100), 64);
        assert_eq!(budget.pace_lease(1_150, 16, 100), 100, "capped");
        assert_eq!(budget.lease_size(16), 100);
        assert_eq!(
            budget.pace_lease(1_650, 16, 100),
            100,
            "lasted 500 ms: kept"
        );
        assert_eq!(budget.pace_lease(5_000, 16, 100), 16, "lasted 3 s: cool");
        budget.pace_lease(5_010, 16, 100);
        budget.cool_lease();
        assert_eq!(budget.lease_size(16), 16, "idle: from the start");
        // The clock's low 32 bits wrap; differences still read right.
        let near_wrap = u64::from(u32::MAX) - 10;
        budget.pace_lease(near_wrap, 16, 100);
        assert_eq!(budget.pace_lease(near_wrap + 20, 16, 100), 32);
    }

    #[test]
    fn reservations_never_exceed_the_limit_under_contention() {
        let budget = Arc::new(Budget::new(Limits::remaining(5), 0, u64::MAX));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = Arc::clone(&budget);
                let admitted = Arc::clone(&admitted);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if budget.try_reserve(1) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread panicked");
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 5);
        assert_eq!(budget.remaining(), 0);
    }

    #[test]
    fn released_units_can_be_reserved_again() {
        let budget = Budget::new(Limits::remaining(2), 0, u64::MAX);
        assert!(budget.try_reserve(2));
        assert!(!budget.try_reserve(1));
        budget.release(1);
        assert!(budget.try_reserve(1));
        assert!(!budget.try_reserve(1));
    }

    #[test]
    fn a_refresh_subtracts_units_the_backend_has_not_acknowledged() {
        // The backend starts with 10; we admit 4 and the backend has recorded 1 of them.
        let budget = Budget::new(Limits::remaining(10), 0, 0);
        assert!(budget.try_reserve(4));
        budget.ack(1);
        // A refresh now returns 9 (the backend counted 1). 3 units are still in flight.
        let acked_before = budget.acked();
        budget.apply(Limits::remaining(9), acked_before, 0);
        assert_eq!(budget.remaining(), 6);
        assert_eq!(budget.unacknowledged(), 3);
    }

    #[test]
    fn leased_units_are_used_only_under_their_session_and_never_overdrawn() {
        let budget = Arc::new(Budget::leased());
        assert!(!budget.try_take_leased(Some(1), 1), "nothing leased yet");
        budget.grow_lease(1, 5);
        assert!(
            !budget.try_take_leased(None, 1),
            "no contact with the store"
        );
        assert!(
            !budget.try_take_leased(Some(2), 1),
            "a newer session voids the lease"
        );
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                let admitted = Arc::clone(&admitted);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        if budget.try_take_leased(Some(1), 1) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread panicked");
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 5);
        assert_eq!(budget.consumed(), 5, "leased admissions count as consumed");
        budget.release_leased(2);
        assert_eq!((budget.spare(), budget.consumed()), (2, 3));
        assert_eq!(budget.take_spare(), 2);
        assert!(!budget.try_take_leased(Some(1), 1));
    }

    #[test]
    fn a_grant_covers_its_request_before_any_other_takes_it() {
        let budget = Budget::leased();
        assert!(budget.grow_lease_for(7, 3, 1));
        assert_eq!((budget.consumed(), budget.spare()), (1, 2));
        assert!(!budget.grow_lease_for(7, 1, 2), "too few for the request");
        assert_eq!((budget.consumed(), budget.spare()), (1, 3));
        assert!(budget.lease_is_current(Some(7)));
    }

    #[test]
    fn outside_limits_admits_nothing_whatever_remaining_says() {
        let limits = Limits {
            within_limits: false,
            remaining: 3,
            ..Limits::default()
        };
        let budget = Budget::new(limits, 0, 0);
        assert!(!budget.try_reserve(1));
    }
}
