//! [`MemoryBackend`]: an in-memory billing backend that counts its calls, can be slow,
//! and fails on demand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::{BackendError, BillingBackend, Limits, UsageEvent};
use crate::customer::CustomerRef;
use crate::identity::Identity;

/// An in-memory billing backend for tests. Cheap to clone: clones share their state.
///
/// * Every customer `cus_<externalRef>` has the same allowance; what is left is the
///   allowance minus the units recorded for that customer, so a refresh sees usage.
/// * Usage is de-duplicated by idempotency key, like a real backend.
/// * Calls are counted, can be delayed, and fail on demand (transiently, with a text
///   that must never reach a client).
///
/// [`unlimited`](Self::unlimited) answers a huge allowance and keeps no events, for
/// benchmarks.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    allowance: AtomicU64,
    unlimited: AtomicBool,
    delay_ms: AtomicU64,
    ensure_calls: AtomicUsize,
    limits_calls: AtomicUsize,
    usage_calls: AtomicUsize,
    ensure_down: AtomicBool,
    limits_down: AtomicBool,
    /// The `Retry-After` of failing limits checks, in milliseconds (0: none).
    limits_retry_after_ms: std::sync::atomic::AtomicU64,
    limits_held: AtomicBool,
    limits_released: tokio::sync::Notify,
    usage_failures: AtomicUsize,
    checkout_url: Mutex<Option<String>>,
    recorded: Mutex<HashMap<String, UsageEvent>>,
    attempts: Mutex<Vec<Vec<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("allowance", &self.state.allowance.load(Ordering::SeqCst))
            .field("recorded_units", &self.recorded_units())
            .finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// Every customer gets `units` in all.
    pub fn with_allowance(units: u64) -> Self {
        let backend = Self::default();
        backend.set_allowance(units);
        backend
    }

    /// Every customer has more units than a benchmark can use; events are counted, not
    /// kept.
    pub fn unlimited() -> Self {
        let backend = Self::with_allowance(u64::MAX / 4);
        backend.state.unlimited.store(true, Ordering::SeqCst);
        backend
    }

    /// Every call waits `delay` first.
    pub fn delay(self, delay: Duration) -> Self {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
        self
    }

    /// Changes every customer's allowance (a purchase, say).
    pub fn set_allowance(&self, units: u64) {
        self.state.allowance.store(units, Ordering::SeqCst);
    }

    /// The checkout URL limits answers carry.
    pub fn set_checkout_url(&self, url: Option<&str>) {
        *lock(&self.state.checkout_url) = url.map(str::to_owned);
    }

    /// Makes ensure-customer fail transiently (or work again).
    pub fn set_ensure_down(&self, down: bool) {
        self.state.ensure_down.store(down, Ordering::SeqCst);
    }

    /// Holds every limits check until `hold(false)`: a backend that hangs, to show who
    /// waits for it.
    pub fn hold_limits(&self, hold: bool) {
        self.state.limits_held.store(hold, Ordering::SeqCst);
        if !hold {
            self.state.limits_released.notify_waiters();
        }
    }

    /// Makes limits checks fail transiently (or work again).
    pub fn set_limits_down(&self, down: bool) {
        self.state.limits_down.store(down, Ordering::SeqCst);
    }

    /// Failing limits checks (see [`set_limits_down`](Self::set_limits_down)) carry
    /// this `Retry-After`, as a provider's 429 or 503 does.
    pub fn set_limits_retry_after(&self, wait: Option<std::time::Duration>) {
        let ms = wait.map_or(0, |w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
        self.state.limits_retry_after_ms.store(ms, Ordering::SeqCst);
    }

    /// The next `calls` usage calls fail transiently before recording anything.
    pub fn fail_next_usage_calls(&self, calls: usize) {
        self.state.usage_failures.store(calls, Ordering::SeqCst);
    }

    /// Ensure-customer calls so far.
    pub fn ensure_calls(&self) -> usize {
        self.state.ensure_calls.load(Ordering::SeqCst)
    }

    /// Limits calls so far.
    pub fn limits_calls(&self) -> usize {
        self.state.limits_calls.load(Ordering::SeqCst)
    }

    /// Usage calls so far, failed ones included.
    pub fn usage_calls(&self) -> usize {
        self.state.usage_calls.load(Ordering::SeqCst)
    }

    /// Units recorded, once per idempotency key.
    pub fn recorded_units(&self) -> u64 {
        lock(&self.state.recorded).values().map(|e| e.units).sum()
    }

    /// Units recorded for `customer`.
    pub fn recorded_units_for(&self, customer: &CustomerRef) -> u64 {
        lock(&self.state.recorded)
            .values()
            .filter(|e| e.customer == *customer)
            .map(|e| e.units)
            .sum()
    }

    /// The recorded events, one per idempotency key.
    pub fn recorded_events(&self) -> Vec<UsageEvent> {
        lock(&self.state.recorded).values().cloned().collect()
    }

    /// The idempotency keys of every usage call, in order, failed ones included.
    pub fn usage_attempts(&self) -> Vec<Vec<String>> {
        lock(&self.state.attempts).clone()
    }

    async fn pause(&self) {
        let delay = self.state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

impl BillingBackend for MemoryBackend {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        self.state.ensure_calls.fetch_add(1, Ordering::SeqCst);
        self.pause().await;
        if self.state.ensure_down.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable(
                "connection refused (internal detail)",
            ));
        }
        Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
    }

    async fn check_limits(
        &self,
        customer: &CustomerRef,
        _: &str,
        _: &str,
    ) -> Result<Limits, BackendError> {
        self.state.limits_calls.fetch_add(1, Ordering::SeqCst);
        self.pause().await;
        loop {
            let released = self.state.limits_released.notified();
            if !self.state.limits_held.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
        if self.state.limits_down.load(Ordering::SeqCst) {
            let retry_ms = self.state.limits_retry_after_ms.load(Ordering::SeqCst);
            return Err(BackendError::Unavailable {
                message: "upstream exploded: stack trace here".into(),
                retry_after: (retry_ms > 0).then(|| std::time::Duration::from_millis(retry_ms)),
            });
        }
        let used = self.recorded_units_for(customer);
        let remaining = self
            .state
            .allowance
            .load(Ordering::SeqCst)
            .saturating_sub(used);
        Ok(Limits {
            checkout_url: lock(&self.state.checkout_url).clone(),
            plan: Some("pln_free".into()),
            ..Limits::remaining(remaining)
        })
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        self.state.usage_calls.fetch_add(1, Ordering::SeqCst);
        if self.state.unlimited.load(Ordering::SeqCst) {
            return Ok(());
        }
        lock(&self.state.attempts).push(events.iter().map(|e| e.idempotency_key.clone()).collect());
        let failing = self
            .state
            .usage_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(BackendError::unavailable("503 from usage endpoint"));
        }
        let mut recorded = lock(&self.state.recorded);
        for event in events {
            recorded
                .entry(event.idempotency_key.clone())
                .or_insert_with(|| event.clone());
        }
        Ok(())
    }
}
