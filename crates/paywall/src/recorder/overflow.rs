//! What a full usage queue does with the events it has no room for: it adds them up,
//! per customer, product, meter and outcome, into one counter each, so that the
//! response that committed them goes out at once and no admitted request goes unbilled.
//!
//! The worker takes the counters out whenever it takes from the queue, and sends each
//! as one event carrying the sum of the units (with a key of its own, stable across
//! retries). With an outbox, the events a counter absorbed stay stored under their own
//! keys until the counter's event replaces them there in one step
//! ([`Outbox::replace`](crate::recorder::Outbox::replace)), so a crash in between
//! neither loses nor doubles a unit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

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
    /// The absorbed events' own keys (with an outbox only).
    pub(crate) keys: Vec<String>,
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    customer: CustomerRef,
    product: Arc<str>,
    meter: Arc<str>,
    outcome: Outcome,
}

/// The counters of a full queue, bounded in how many distinct ones it holds.
pub(super) struct Overflow {
    counters: Mutex<HashMap<Key, Pending>>,
    limit: usize,
    keep_keys: bool,
}

impl Overflow {
    /// At most `limit` counters; `keep_keys` when an outbox stores the events.
    pub(super) fn new(limit: usize, keep_keys: bool) -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
            limit: limit.max(1),
            keep_keys,
        }
    }

    /// Adds `pending` to its counter; gives it back when the overflow already holds
    /// `limit` counters and none is this event's.
    // The event given back is moved, not copied to the heap: the usual path stays
    // free of allocations.
    #[allow(clippy::result_large_err)]
    pub(super) fn absorb(&self, pending: Pending) -> Result<(), Pending> {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Key {
            customer: pending.event.customer.clone(),
            product: Arc::clone(&pending.event.product),
            meter: Arc::clone(&pending.event.meter),
            outcome: pending.event.outcome,
        };
        if let Some(counter) = counters.get_mut(&key) {
            add(counter, pending, self.keep_keys);
            return Ok(());
        }
        if counters.len() >= self.limit {
            return Err(pending);
        }
        let mut first = pending;
        let units = first.event.units;
        let merged = first.merged.get_or_insert_with(Box::default);
        merged.events = 1;
        merged.own = units;
        if self.keep_keys {
            merged.keys.push(first.event.idempotency_key.clone());
        }
        counters.insert(key, first);
        Ok(())
    }

    /// Every counter, as one event each with a new key; the overflow is left empty.
    pub(super) fn take(&self) -> Vec<Pending> {
        let counters = {
            let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            if counters.is_empty() {
                return Vec::new();
            }
            std::mem::take(&mut *counters)
        };
        let now = SystemTime::now();
        counters
            .into_values()
            .map(|mut pending| {
                pending.event.idempotency_key = UsageEvent::new_key(now);
                pending.event.duration = None;
                pending
            })
            .collect()
    }

    /// Whether no counter is waiting.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// Adds `pending`, a single event, into `counter`.
fn add(counter: &mut Pending, pending: Pending, keep_keys: bool) {
    let units = pending.event.units;
    counter.event.units = counter.event.units.saturating_add(units);
    counter.event.timestamp = counter.event.timestamp.max(pending.event.timestamp);
    let merged = counter.merged.get_or_insert_with(Box::default);
    merged.events += 1;
    if keep_keys {
        merged.keys.push(pending.event.idempotency_key);
    }
    let Some(budget) = pending.budget else { return };
    let same =
        |other: &Arc<dyn Acknowledge>| std::ptr::addr_eq(Arc::as_ptr(other), Arc::as_ptr(&budget));
    if counter.budget.as_ref().is_some_and(same) {
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
