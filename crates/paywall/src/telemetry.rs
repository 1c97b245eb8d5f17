//! What the paywall tells an operator: Prometheus-style metrics through the `metrics`
//! facade (the application installs an exporter; with none, recording costs an atomic
//! load) and `tracing` spans. Names and labels are a contract; each name is also a
//! constant of this module, for dashboards and tests written in Rust:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `paywall_decisions_total` | `outcome`: `admitted`, `unauthenticated`, `payment_required`, `unavailable`, `rejected` | once per protected request |
//! | `paywall_backend_calls_total` | `call`: `ensure_customer`, `check_limits`, `record_usage`, `checkout`, `portal`, `purchases`, `cancel_purchase`, `credits`, `account_call`; `result`: `ok`, `error` | billing backend calls |
//! | `paywall_backend_call_duration_seconds` | `call` | histogram |
//! | `paywall_usage_events_total` | `result`: `recorded`, `dropped` | usage events settled |
//! | `paywall_usage_pending` | | gauge: events accepted, not yet acknowledged |
//! | `paywall_shared_leases_total` | `result`: `granted`, `exhausted`, `refresh`, `unavailable`, `error` | shared-store lease calls |
//! | `paywall_shared_fallback` | | gauge: 1 while the instance runs on its fallback |
//!
//! Install the exporter **before** building the paywall: the warm path keeps handles
//! to its counters, taken when the paywall is built.
//!
//! Spans: `paywall.decision` (debug level, one per protected request, with `product`,
//! `outcome` and `customer`: the billing reference, never the token, email or
//! externalRef), `paywall.backend` (one per billing call, with `call`, `duration_ms`,
//! `status`) and `paywall.usage_batch` (each batch the recorder sends). They export to
//! OpenTelemetry with `tracing-opentelemetry`'s layer unchanged.

/// `paywall_decisions_total`, counter. Label `outcome`: `admitted`, `unauthenticated`,
/// `payment_required`, `unavailable`, `rejected`. Once per protected request.
pub const DECISIONS_TOTAL: &str = "paywall_decisions_total";
/// `paywall_backend_calls_total`, counter. Labels `call` (`ensure_customer`,
/// `check_limits`, `record_usage`, `checkout`, `portal`, `purchases`,
/// `cancel_purchase`, `credits`, `account_call`) and `result` (`ok`, `error`).
pub const BACKEND_CALLS_TOTAL: &str = "paywall_backend_calls_total";
/// `paywall_backend_call_duration_seconds`, histogram. Label `call`, as
/// [`BACKEND_CALLS_TOTAL`].
pub const BACKEND_CALL_DURATION_SECONDS: &str = "paywall_backend_call_duration_seconds";
/// `paywall_usage_events_total`, counter. Label `result`: `recorded`, `dropped`.
pub const USAGE_EVENTS_TOTAL: &str = "paywall_usage_events_total";
/// `paywall_usage_pending`, gauge: usage events accepted and not yet acknowledged.
pub const USAGE_PENDING: &str = "paywall_usage_pending";
/// `paywall_shared_leases_total`, counter. Label `result`: `granted`, `exhausted`,
/// `refresh`, `unavailable`, `error`.
pub const SHARED_LEASES_TOTAL: &str = "paywall_shared_leases_total";
/// `paywall_shared_fallback`, gauge: 1 while the instance runs on its fallback because
/// the shared store is unreachable.
pub const SHARED_FALLBACK: &str = "paywall_shared_fallback";

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use metrics::{counter, histogram, Counter};
use tracing::field::Empty;
use tracing::{info, warn, Instrument};

use crate::account::{AccountCall, CheckoutRequest, Credits, Purchase};
use crate::backend::{BackendError, DynBackend, Limits, UsageEvent};
use crate::customer::Customer;
use crate::customer::CustomerRef;
use crate::identity::{BoxFuture, Identity};
use crate::rejection::Rejection;

/// Refused credentials: each logged at `debug` with its reason, and a summary at `info`
/// at most once per interval, so an operator sees why tokens are refused without debug
/// logs (and a flood of bad tokens cannot flood the logs).
pub(crate) struct RefusalLog {
    origin: Instant,
    every_ms: u64,
    /// Refusals since the last summary.
    count: std::sync::atomic::AtomicU64,
    /// Milliseconds since `origin` of the last summary.
    last: std::sync::atomic::AtomicU64,
}

impl RefusalLog {
    pub(crate) fn new(every: std::time::Duration) -> Self {
        Self {
            origin: Instant::now(),
            every_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
            count: std::sync::atomic::AtomicU64::new(0),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn refused(&self, reason: &str) {
        use std::sync::atomic::Ordering;
        tracing::debug!(%reason, "credentials refused");
        self.count.fetch_add(1, Ordering::AcqRel);
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Acquire);
        if now.saturating_sub(last) >= self.every_ms
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let refused = self.count.swap(0, Ordering::AcqRel);
            tracing::info!(
                refused,
                last_reason = %reason,
                "credentials refused since the last summary (each one is logged at debug)"
            );
        }
    }
}

/// The decision counters, one handle per outcome.
pub(crate) struct Decisions {
    admitted: Counter,
    unauthenticated: Counter,
    payment_required: Counter,
    unavailable: Counter,
    rejected: Counter,
}

impl Decisions {
    pub(crate) fn new() -> Self {
        let outcome = |name: &'static str| counter!(DECISIONS_TOTAL, "outcome" => name);
        Self {
            admitted: outcome("admitted"),
            unauthenticated: outcome("unauthenticated"),
            payment_required: outcome("payment_required"),
            unavailable: outcome("unavailable"),
            rejected: outcome("rejected"),
        }
    }

    /// Counts one protected request's decision and records its outcome (and the
    /// customer's reference) on the current span (`paywall.decision` in the adapters).
    pub(crate) fn count(&self, decision: Result<Option<&Customer>, &Rejection>) {
        let (counter, outcome) = match decision {
            Ok(_) => (&self.admitted, "admitted"),
            Err(rejection) => match rejection {
                Rejection::Unauthenticated(_) => (&self.unauthenticated, "unauthenticated"),
                Rejection::PaymentRequired(_) => (&self.payment_required, "payment_required"),
                Rejection::BillingUnavailable { .. } | Rejection::IdentityUnavailable { .. } => {
                    (&self.unavailable, "unavailable")
                }
                Rejection::CustomerRejected | Rejection::CustomerConflict => {
                    (&self.rejected, "rejected")
                }
            },
        };
        counter.increment(1);
        // A cached check of the callsite: no span lookup unless debug spans are on.
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("outcome", outcome);
            if let Ok(Some(customer)) = decision {
                span.record("customer", customer.reference().as_str());
            }
        }
    }
}

/// The billing backend with every call counted, timed and in a span
/// (`paywall.backend`); an outage and its recovery are logged once each.
pub(crate) struct Instrumented {
    inner: Arc<dyn DynBackend>,
    /// Whether the last call failed transiently.
    down: Arc<AtomicBool>,
}

impl Instrumented {
    pub(crate) fn new(inner: Arc<dyn DynBackend>) -> Self {
        Self {
            inner,
            down: Arc::new(AtomicBool::new(false)),
        }
    }

    fn watch<'a, T: Send + 'a>(
        &'a self,
        call: &'static str,
        future: BoxFuture<'a, Result<T, BackendError>>,
    ) -> BoxFuture<'a, Result<T, BackendError>> {
        let down = &self.down;
        Box::pin(async move {
            let result = measure(call, future).await;
            match &result {
                Err(err) if err.is_transient() => {
                    if !down.swap(true, Ordering::AcqRel) {
                        warn!(call, error = %err, "billing backend unavailable");
                    }
                }
                _ => {
                    if down.swap(false, Ordering::AcqRel) {
                        info!(call, "billing backend reachable again");
                    }
                }
            }
            result
        })
    }
}

async fn measure<T>(
    call: &'static str,
    future: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    let span = tracing::debug_span!("paywall.backend", call, duration_ms = Empty, status = Empty);
    let started = Instant::now();
    let result = future.instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = if result.is_ok() { "ok" } else { "error" };
    span.record("duration_ms", elapsed.as_millis() as u64);
    span.record("status", status);
    counter!(BACKEND_CALLS_TOTAL, "call" => call, "result" => status).increment(1);
    histogram!(BACKEND_CALL_DURATION_SECONDS, "call" => call).record(elapsed.as_secs_f64());
    result
}

impl DynBackend for Instrumented {
    fn ensure_customer_boxed<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> BoxFuture<'a, Result<CustomerRef, BackendError>> {
        Box::pin(measure(
            "ensure_customer",
            self.inner.ensure_customer_boxed(identity),
        ))
    }

    fn check_limits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
        meter: &'a str,
    ) -> BoxFuture<'a, Result<Limits, BackendError>> {
        self.watch(
            "check_limits",
            self.inner.check_limits_boxed(customer, product, meter),
        )
    }

    fn record_usage_boxed<'a>(
        &'a self,
        events: &'a [UsageEvent],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(measure(
            "record_usage",
            self.inner.record_usage_boxed(events),
        ))
    }

    fn checkout_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        product: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, BackendError>> {
        Box::pin(measure(
            "checkout",
            self.inner.checkout_url_boxed(customer, product),
        ))
    }

    fn checkout_session_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        request: &'a CheckoutRequest,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(measure(
            "checkout",
            self.inner.checkout_session_boxed(customer, request),
        ))
    }

    fn portal_url_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(measure("portal", self.inner.portal_url_boxed(customer)))
    }

    fn purchases_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Vec<Purchase>, BackendError>> {
        Box::pin(measure("purchases", self.inner.purchases_boxed(customer)))
    }

    fn cancel_purchase_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        purchase: &'a str,
    ) -> BoxFuture<'a, Result<Purchase, BackendError>> {
        Box::pin(measure(
            "cancel_purchase",
            self.inner.cancel_purchase_boxed(customer, purchase),
        ))
    }

    fn credits_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
    ) -> BoxFuture<'a, Result<Option<Credits>, BackendError>> {
        Box::pin(measure("credits", self.inner.credits_boxed(customer)))
    }

    fn account_call_boxed<'a>(
        &'a self,
        customer: &'a CustomerRef,
        call: &'a AccountCall,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendError>> {
        Box::pin(measure(
            "account_call",
            self.inner.account_call_boxed(customer, call),
        ))
    }
}
