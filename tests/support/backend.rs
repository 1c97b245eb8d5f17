//! Fault shapes around a real backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paywall::backend::{BackendError, BillingBackend, Limits, UsageEvent};
use paywall::{CustomerRef, Identity};

/// Wraps a backend so that usage calls fail in two ways: before writing (the request
/// never arrived) and after writing (the acknowledgement was lost), per a schedule.
#[derive(Clone)]
pub struct LossyAcks<B> {
    pub inner: B,
    pub calls: Arc<AtomicUsize>,
    /// Call numbers (0-based) modulo `period` that fail before writing.
    pub fail_before: Vec<usize>,
    /// Call numbers modulo `period` that write, then report a failure.
    pub fail_after: Vec<usize>,
    pub period: usize,
}

impl<B> LossyAcks<B> {
    /// Of every `period` usage calls, call `fail_before` (0-based) fails before writing
    /// and call `fail_after` writes, then loses its acknowledgement.
    pub fn new(inner: B, period: usize, fail_before: usize, fail_after: usize) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
            fail_before: vec![fail_before],
            fail_after: vec![fail_after],
            period,
        }
    }
}

impl<B: BillingBackend> BillingBackend for LossyAcks<B> {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        self.inner.ensure_customer(identity).await
    }

    async fn check_limits(
        &self,
        c: &CustomerRef,
        p: &str,
        m: &str,
    ) -> Result<Limits, BackendError> {
        self.inner.check_limits(c, p, m).await
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) % self.period.max(1);
        if self.fail_before.contains(&call) {
            return Err(BackendError::Unavailable {
                message: "429".into(),
                retry_after: Some(Duration::from_millis(5)),
            });
        }
        self.inner.record_usage(events).await?;
        if self.fail_after.contains(&call) {
            return Err(BackendError::unavailable("connection reset after write"));
        }
        Ok(())
    }
}

/// Wraps a backend and counts its limits checks.
#[derive(Clone)]
pub struct CountedLimits<B> {
    pub inner: B,
    pub checks: Arc<AtomicUsize>,
}

impl<B> CountedLimits<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            checks: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Limits checks so far.
    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

impl<B: BillingBackend> BillingBackend for CountedLimits<B> {
    async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
        self.inner.ensure_customer(identity).await
    }

    async fn check_limits(
        &self,
        c: &CustomerRef,
        p: &str,
        m: &str,
    ) -> Result<Limits, BackendError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.check_limits(c, p, m).await
    }

    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), BackendError> {
        self.inner.record_usage(events).await
    }
}

/// What an embedded ledger recorded, optionally for one customer: (events, units).
pub async fn recorded(ledger: &paywall_local::LocalBackend, customer: Option<&str>) -> (u64, u64) {
    let rows = ledger.ledger(customer).await.expect("ledger");
    rows.iter().fold((0, 0), |(events, units), row| {
        (events + row.events, units + row.units)
    })
}
