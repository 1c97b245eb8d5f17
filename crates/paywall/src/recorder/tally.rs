//! Usage added up where it is committed: a [`Tally`] per budget, and the list of
//! tallies holding units ([`Tallies`]) that the worker empties once per batch.
//!
//! With [`RecorderConfig::coalesce`](super::RecorderConfig::coalesce) set and no outbox,
//! the worker adds a batch's events up per customer, product, meter, outcome and UTC
//! day anyway. A fixed-price request's success is then added to its budget's tally (one
//! compare-and-swap on a word the budget already owns), not queued as an event: no
//! event is built, moved through the queue or hashed into a sum per request. Only the
//! first unit after the tally was emptied puts the budget on the list (and tells an
//! idle worker), so a busy user costs the queue one message per batch, not one per
//! request. The worker turns each tally into one event when it sends its batch, and
//! acknowledges the budget as it does for any sum.
//!
//! A tally holds one UTC day: an event of another day while it holds units, or one
//! whose counts would not fit its word, goes through the queue as before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::overflow::Merged;
use super::{Acknowledge, Message, Pending, UsageRecorder};
use crate::backend::{Outcome, UsageEvent};
use crate::CustomerRef;

/// Bits of the word that count units, events and the day.
const UNIT_BITS: u32 = 28;
const EVENT_BITS: u32 = 20;
const DAY_BITS: u32 = 16;
const UNIT_MAX: u64 = (1 << UNIT_BITS) - 1;
const EVENT_MAX: u64 = (1 << EVENT_BITS) - 1;
const DAY_MAX: u64 = (1 << DAY_BITS) - 1;
const SECONDS_PER_DAY: u64 = 86_400;

/// Units committed in one budget and not yet taken into a batch: the UTC day, the
/// number of events and their units, in one word (0: empty).
#[derive(Debug, Default)]
pub(crate) struct Tally(AtomicU64);

/// What [`Tally::add`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// The tally was empty: the budget must be put on the list.
    First,
    /// Added to units already listed.
    More,
    /// Not added (another day, or a count that would not fit): queue an event.
    Refused,
}

/// What a tally held when it was emptied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) day: u64,
    pub(crate) events: u64,
    pub(crate) units: u64,
}

impl Tally {
    /// Adds one event of `units` on `day` (days since 1970-01-01, UTC).
    pub(crate) fn add(&self, day: u64, units: u64) -> Added {
        if day > DAY_MAX || units > UNIT_MAX {
            return Added::Refused;
        }
        let mut first = false;
        let result = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                first = word == 0;
                if first {
                    return Some(pack(day, 1, units));
                }
                let held = unpack(word);
                let events = held.events + 1;
                let sum = held.units + units;
                (held.day == day && events <= EVENT_MAX && sum <= UNIT_MAX)
                    .then(|| pack(day, events, sum))
            });
        match result {
            Err(_) => Added::Refused,
            Ok(_) if first => Added::First,
            Ok(_) => Added::More,
        }
    }

    /// Empties the tally; `None` when it held nothing.
    pub(crate) fn take(&self) -> Option<Taken> {
        match self.0.swap(0, Ordering::AcqRel) {
            0 => None,
            word => Some(unpack(word)),
        }
    }
}

fn pack(day: u64, events: u64, units: u64) -> u64 {
    (day << (EVENT_BITS + UNIT_BITS)) | (events << UNIT_BITS) | units
}

fn unpack(word: u64) -> Taken {
    Taken {
        day: word >> (EVENT_BITS + UNIT_BITS),
        events: (word >> UNIT_BITS) & EVENT_MAX,
        units: word & UNIT_MAX,
    }
}

/// The UTC day of `at`, in days since 1970-01-01.
pub(crate) fn day_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / SECONDS_PER_DAY)
}

/// A budget with a tally: what the engine's budgets are to the recorder.
pub(crate) trait Tallied: Acknowledge {
    fn tally(&self) -> &Tally;
}

/// A budget whose tally holds units, with what its events are billed as.
pub(crate) struct Listed {
    pub(crate) budget: Arc<dyn Tallied>,
    pub(crate) customer: CustomerRef,
    pub(crate) product: Arc<str>,
    pub(crate) meter: Arc<str>,
}

impl Listed {
    /// The event the tally's units make, dated now (or the last second of its day,
    /// should the day have ended since), acknowledged to the budget once settled.
    fn into_pending(self, taken: Taken, now: SystemTime) -> Pending {
        let end_of_day = UNIX_EPOCH
            + Duration::from_secs(taken.day.saturating_add(1) * SECONDS_PER_DAY)
            - Duration::from_secs(1);
        let event = UsageEvent {
            idempotency_key: String::new(),
            customer: self.customer,
            product: self.product,
            meter: self.meter,
            units: taken.units,
            outcome: Outcome::Success,
            timestamp: now.min(end_of_day),
            duration: None,
        };
        let budget: Arc<dyn Acknowledge> = self.budget;
        Pending {
            event,
            budget: Some(budget),
            merged: Some(Box::new(Merged::counted(taken.events, taken.units))),
        }
    }
}

/// The budgets whose tallies hold units.
#[derive(Default)]
pub(crate) struct Tallies {
    listed: Mutex<Vec<Listed>>,
}

impl Tallies {
    /// Lists a budget whose tally was empty; `true` when the list was empty (the
    /// worker must be told).
    pub(crate) fn list(&self, listed: Listed) -> bool {
        let mut list = self.lock();
        list.push(listed);
        list.len() == 1
    }

    /// Whether any budget is listed.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Empties every listed tally into one event each.
    pub(crate) fn take(&self) -> Vec<Pending> {
        let listed = std::mem::take(&mut *self.lock());
        let now = SystemTime::now();
        listed
            .into_iter()
            .filter_map(|listed| {
                let taken = listed.budget.tally().take()?;
                Some(listed.into_pending(taken, now))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listed>> {
        self.listed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl UsageRecorder {
    /// Whether committed units are added up in their budgets' tallies.
    pub(crate) fn tallies(&self) -> bool {
        self.tallies.is_some()
    }

    /// Adds one successful event of `units`, admitted `at`, to `budget`'s tally;
    /// `describe` says what it is billed as, asked only when the budget must be listed.
    /// `false` when the event must be queued instead: no tallies, the recorder is shut
    /// down, or the tally holds another day (or is full).
    pub(crate) fn tally<B: Tallied + 'static>(
        &self,
        budget: &Arc<B>,
        at: SystemTime,
        units: u64,
        describe: impl FnOnce() -> (CustomerRef, Arc<str>, Arc<str>),
    ) -> bool {
        let Some(tallies) = &self.tallies else {
            return false;
        };
        if self.is_closed() {
            return false;
        }
        let added = budget.tally().add(day_of(at), units);
        if added == Added::Refused {
            return false;
        }
        self.counters.accepted.fetch_add(1, Ordering::AcqRel);
        self.counters.pending.increment(1.0);
        if added == Added::First {
            let (customer, product, meter) = describe();
            let listed = Listed {
                budget: Arc::clone(budget) as Arc<dyn Tallied>,
                customer,
                product,
                meter,
            };
            // A full queue needs no message: the worker looks at the list whenever it
            // has taken what is queued.
            if tallies.list(listed) {
                let _ = self.tx.try_send(Message::Tallied);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[derive(Default)]
    struct Budget {
        tally: Tally,
        acked: AtomicU64,
    }

    impl Acknowledge for Budget {
        fn ack(&self, units: u64) {
            self.acked.fetch_add(units, Ordering::AcqRel);
        }
    }

    impl Tallied for Budget {
        fn tally(&self) -> &Tally {
            &self.tally
        }
    }

    #[test]
    fn a_tally_adds_events_of_one_day_and_refuses_another() {
        let tally = Tally::default();
        assert_eq!(tally.add(20_000, 3), Added::First);
        assert_eq!(tally.add(20_000, 2), Added::More);
        assert_eq!(tally.add(20_001, 1), Added::Refused);
        let taken = tally.take().expect("units");
        assert_eq!(
            taken,
            Taken {
                day: 20_000,
                events: 2,
                units: 5
            }
        );
        assert_eq!(tally.take(), None);
        assert_eq!(tally.add(20_001, 1), Added::First, "empty again: any day");
    }

    #[test]
    fn counts_that_would_not_fit_are_refused_not_wrapped() {
        let tally = Tally::default();
        assert_eq!(tally.add(1, UNIT_MAX + 1), Added::Refused);
        assert_eq!(tally.add(DAY_MAX + 1, 1), Added::Refused);
        assert_eq!(tally.add(1, UNIT_MAX), Added::First);
        assert_eq!(tally.add(1, 1), Added::Refused);
        assert_eq!(tally.add(1, 0), Added::More, "no unit more: fits");
        let taken = tally.take().expect("units");
        assert_eq!((taken.events, taken.units), (2, UNIT_MAX));
    }

    #[test]
    fn a_listed_tally_becomes_one_event_acknowledged_to_its_budget() {
        let budget = Arc::new(Budget::default());
        let tallies = Tallies::default();
        let day = day_of(SystemTime::now());
        assert_eq!(budget.tally.add(day, 4), Added::First);
        assert!(tallies.list(Listed {
            budget: Arc::clone(&budget) as Arc<dyn Tallied>,
            customer: CustomerRef::new("cus_1"),
            product: Arc::from("prd_1"),
            meter: Arc::from("requests"),
        }));
        assert_eq!(budget.tally.add(day, 1), Added::More);
        assert!(!tallies.is_empty());
        let mut taken = tallies.take();
        assert!(tallies.is_empty());
        assert_eq!(taken.len(), 1);
        let pending = taken.pop().expect("one");
        assert_eq!(pending.event.units, 5);
        assert_eq!(pending.event.customer.as_str(), "cus_1");
        assert_eq!(day_of(pending.event.timestamp), day);
        let merged = pending.merged.as_ref().expect("a sum");
        assert_eq!((merged.events, merged.own), (2, 5));
        pending.budget.expect("budget").ack(5);
        assert_eq!(budget.acked.load(Ordering::Acquire), 5);
    }

    #[test]
    fn a_sum_taken_after_its_day_ended_is_dated_within_that_day() {
        let tally = Tally::default();
        assert_eq!(tally.add(10, 1), Added::First);
        let listed = Listed {
            budget: Arc::new(Budget::default()),
            customer: CustomerRef::new("cus_1"),
            product: Arc::from("prd_1"),
            meter: Arc::from("requests"),
        };
        let later = UNIX_EPOCH + Duration::from_secs(12 * SECONDS_PER_DAY);
        let pending = listed.into_pending(tally.take().expect("units"), later);
        assert_eq!(day_of(pending.event.timestamp), 10);
    }
}
