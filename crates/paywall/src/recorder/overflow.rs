//! Adding usage events up per customer, product, meter, outcome and UTC day
//! ([`Sums`]): what a full usage queue does with the events it has no room for
//! ([`Overflow`]), and what the worker does with a batch when
//! [`RecorderConfig::coalesce`](super::RecorderConfig::coalesce) is set.
//!
//! A full queue adds its events up so that the response that committed them goes out at
//! once and no admitted request goes unbilled; the worker takes the counters out
//! whenever it takes from the queue. A counter that absorbed events is sent as one
//! event carrying the sum of the units, with a key of its own, stable across retries; a
//! counter of one event keeps that event's key. With an outbox, the events a counter
//! absorbed stay stored under their own keys until the counter's event replaces them
//! there in one step ([`Outbox::replace`](crate::recorder::Outbox::replace)), just
//! before it is sent, so a crash in between neither loses nor doubles a unit.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Acknowledge, Pending};
use crate::backend::{Outcome, UsageEvent};
use crate::CustomerRef;

/// The events one counter stands for: how many, which budgets to acknowledge (usually
/// one), and, with an outbox, the keys they are stored under.
#[derive(Default)]
pub(crate) struct Merged {
    /// Events added up, the first one's included.
    pub(crate) events: u64,
    /// The units to acknowledge to the [`Pending`]'s own budget.
    pub(crate) own: u64,
    /// Other budgets to acknowledge and their units.
    pub(crate) acks: Vec<(Arc<dyn Acknowledge>, u64)>,
    /// The keys the absorbed events are stored under in the outbox (with one only).
    pub(crate) keys: Vec<String>,
    /// Whether the counter absorbed events since its key was last made: it gets a new
    /// one when taken.
    fresh: bool,
}

impl Merged {
    /// A sum of `events` events and their `units`, all acknowledged to its own budget,
    /// that has no key yet.
    pub(crate) fn counted(events: u64, units: u64) -> Self {
        Self {
            events,
            own: units,
            fresh: true,
            ..Self::default()
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    customer: CustomerRef,
    product: Arc<str>,
    meter: Arc<str>,
    outcome: Outcome,
    /// The UTC day of the event: daily counters stay exact.
    day: u64,
}

impl Key {
    fn of(event: &UsageEvent) -> Self {
        let day = event
            .timestamp
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() / 86_400);
        Self {
            customer: event.customer.clone(),
            product: Arc::clone(&event.product),
            meter: Arc::clone(&event.meter),
            outcome: event.outcome,
            day,
        }
    }
}

/// Counters of usage events, one per customer, product, meter, outcome and UTC day.
pub(super) struct Sums {
    counters: HashMap<Key, Pending>,
    keep_keys: bool,
}

impl Sums {
    /// Empty; `keep_keys` when an outbox stores the events.
    pub(super) fn new(keep_keys: bool) -> Self {
        Self {
            counters: HashMap::new(),
            keep_keys,
        }
    }

    /// How many counters there are.
    pub(super) fn len(&self) -> usize {
        self.counters.len()
    }

    /// Adds `pending` (an event, or a counter taken from elsewhere) to its counter.
    pub(super) fn add(&mut self, pending: Pending) {
        let keep_keys = self.keep_keys;
        match self.counters.entry(Key::of(&pending.event)) {
            Entry::Occupied(counter) => absorb(counter.into_mut(), pending, keep_keys),
            Entry::Vacant(new) => {
                new.insert(pending);
            }
        }
    }

    /// Adds `pending` to its counter; gives it back when there are `limit` counters
    /// already and none is its own.
    // The event given back is moved, not copied to the heap: the usual path stays
    // free of allocations.
    #[allow(clippy::result_large_err)]
    fn add_within(&mut self, pending: Pending, limit: usize) -> Result<(), Pending> {
        if self.counters.len() >= limit && !self.counters.contains_key(&Key::of(&pending.event)) {
            return Err(pending);
        }
        self.add(pending);
        Ok(())
    }

    /// Every counter, as one event each (with a new key if it absorbed any); the sums
    /// are left empty.
    pub(super) fn take(&mut self) -> Vec<Pending> {
        if self.counters.is_empty() {
            return Vec::new();
        }
        let now = SystemTime::now();
        self.counters
            .drain()
            .map(|(_, mut pending)| {
                if let Some(merged) = pending.merged.as_mut().filter(|merged| merged.fresh) {
                    merged.fresh = false;
                    pending.event.idempotency_key = UsageEvent::new_key(now);
                    pending.event.duration = None;
                }
                pending
            })
            .collect()
    }
}

/// The counters of a full queue, bounded in how many distinct ones it holds.
pub(super) struct Overflow {
    sums: Mutex<Sums>,
    limit: usize,
}

impl Overflow {
    /// At most `limit` counters; `keep_keys` when an outbox stores the events.
    pub(super) fn new(limit: usize, keep_keys: bool) -> Self {
        Self {
            sums: Mutex::new(Sums::new(keep_keys)),
            limit: limit.max(1),
        }
    }

    /// Adds `pending` to its counter; gives it back when the overflow already holds
    /// `limit` counters and none is this event's.
    #[allow(clippy::result_large_err)]
    pub(super) fn absorb(&self, pending: Pending) -> Result<(), Pending> {
        self.lock().add_within(pending, self.limit)
    }

    /// Every counter, as one event each; the overflow is left empty.
    pub(super) fn take(&self) -> Vec<Pending> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sums> {
        self.sums.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no counter is waiting.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.lock().len() == 0
    }
}

/// Adds `pending` (an event, or a counter) into `counter`.
fn absorb(counter: &mut Pending, pending: Pending, keep_keys: bool) {
    let first_units = counter.event.units;
    let merged = counter.merged.get_or_insert_with(|| {
        Box::new(Merged {
            events: 1,
            own: first_units,
            ..Merged::default()
        })
    });
    if !merged.fresh {
        // Its current key is stored in the outbox: the sum replaces it too.
        if keep_keys {
            merged.keys.push(counter.event.idempotency_key.clone());
        }
        merged.fresh = true;
    }
    let Pending {
        event,
        budget,
        merged: theirs,
    } = pending;
    counter.event.units = counter.event.units.saturating_add(event.units);
    counter.event.timestamp = counter.event.timestamp.max(event.timestamp);
    if keep_keys {
        merged.keys.push(event.idempotency_key);
    }
    let Some(theirs) = theirs else {
        merged.events += 1;
        acknowledge(merged, counter.budget.as_ref(), budget, event.units);
        return;
    };
    let Merged {
        events,
        own,
        acks,
        keys,
        ..
    } = *theirs;
    merged.events += events;
    if keep_keys {
        merged.keys.extend(keys);
    }
    acknowledge(merged, counter.budget.as_ref(), budget, own);
    for (budget, units) in acks {
        acknowledge(merged, counter.budget.as_ref(), Some(budget), units);
    }
}

/// Adds `units` to acknowledge to `budget`: the counter's own, or one of its others.
fn acknowledge(
    merged: &mut Merged,
    own: Option<&Arc<dyn Acknowledge>>,
    budget: Option<Arc<dyn Acknowledge>>,
    units: u64,
) {
    let Some(budget) = budget else { return };
    let same =
        |other: &Arc<dyn Acknowledge>| std::ptr::addr_eq(Arc::as_ptr(other), Arc::as_ptr(&budget));
    if own.is_some_and(same) {
        merged.own = merged.own.saturating_add(units);
        return;
    }
    match merged.acks.iter_mut().find(|(other, _)| same(other)) {
        Some((_, acked)) => *acked = acked.saturating_add(units),
        None => merged.acks.push((budget, units)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Acks(AtomicU64);

    impl Acknowledge for Acks {
        fn ack(&self, units: u64) {
            self.0.fetch_add(units, Ordering::Relaxed);
        }
    }

    fn event(customer: &str, meter: &str, units: u64) -> UsageEvent {
        UsageEvent {
            idempotency_key: UsageEvent::new_key(SystemTime::now()),
            customer: CustomerRef::new(customer),
            product: Arc::from("prd"),
            meter: Arc::from(meter),
            units,
            outcome: Outcome::Success,
            timestamp: SystemTime::now(),
            duration: None,
        }
    }

    #[test]
    fn events_of_one_counter_add_up_and_acknowledge_their_own_budgets() {
        let overflow = Overflow::new(10, true);
        let (a, b) = (Arc::new(Acks::default()), Arc::new(Acks::default()));
        let keys: Vec<String> = (0..3u64)
            .map(|i| {
                let budget = if i == 2 { &b } else { &a };
                let pending =
                    Pending::new(event("cus_1", "requests", i + 1), Some(Arc::clone(budget)));
                let key = pending.event.idempotency_key.clone();
                assert!(overflow.absorb(pending).is_ok());
                key
            })
            .collect();
        assert!(overflow
            .absorb(Pending::new::<Acks>(event("cus_1", "tokens", 5), None))
            .is_ok());
        let mut taken = overflow.take();
        assert!(overflow.is_empty());
        taken.sort_by_key(|p| p.event.units);
        assert_eq!(taken.len(), 2, "one counter per meter");
        let requests = &taken[1];
        assert_eq!(requests.event.units, 6);
        let merged = requests.merged.as_ref().expect("merged");
        assert_eq!(merged.events, 3);
        assert_eq!(merged.keys, keys);
        assert!(
            !keys.contains(&requests.event.idempotency_key),
            "a key of its own"
        );
        assert_eq!(
            merged.acks.len(),
            1,
            "the second budget is acknowledged apart"
        );
        assert_eq!(merged.acks[0].1, 3);
    }

    #[test]
    fn a_full_overflow_gives_a_new_counter_back() {
        let overflow = Overflow::new(1, false);
        assert!(overflow
            .absorb(Pending::new::<Acks>(event("cus_1", "m", 1), None))
            .is_ok());
        assert!(overflow
            .absorb(Pending::new::<Acks>(event("cus_1", "m", 1), None))
            .is_ok());
        let refused = overflow.absorb(Pending::new::<Acks>(event("cus_2", "m", 1), None));
        assert!(refused.is_err(), "a second counter is over the limit");
        let taken = overflow.take();
        assert_eq!(taken[0].event.units, 2);
        assert!(taken[0].merged.as_ref().is_some_and(|m| m.keys.is_empty()));
    }
}
