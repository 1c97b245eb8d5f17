//! For backend authors: where customers, limits and usage live, the [`BillingBackend`]
//! trait and the types it speaks (an application only picks an implementation:
//! `paywall-local`, `paywall-solvapay`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::customer::CustomerRef;
use crate::identity::Identity;

mod object;

pub use crate::account::{AccountCall, CheckoutRequest, Credits, Purchase};
pub use crate::backoff::Backoff;
pub(crate) use object::DynBackend;

/// A customer's allowance for one product and meter, as the backend reports it.
///
/// `remaining` is the number of units left before the request being checked, as in
/// SolvaPay's `POST /v1/sdk/limits`. Checking limits never consumes allowance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Whether the customer may use the product at all right now.
    pub within_limits: bool,
    /// Units left in the current period.
    pub remaining: u64,
    /// Where the customer can buy more (put in the 402 body).
    pub checkout_url: Option<String>,
    /// The customer must activate a plan before using the product.
    pub activation_required: bool,
    /// Where the customer confirms an activation, when the backend has one.
    pub confirmation_url: Option<String>,
    /// The customer's current plan, when the backend names it.
    pub plan: Option<String>,
    /// When the allowance resets (sent as `Retry-After` on a 402).
    pub resets_at: Option<SystemTime>,
    /// Units per period of the customer's plan, when the backend says (the
    /// `RateLimit-Policy` quota).
    pub allowance: Option<u64>,
    /// The length of the plan's period, when the backend says.
    pub period: Option<Duration>,
}

impl Limits {
    /// A plain allowance of `remaining` units with no checkout information.
    pub fn remaining(remaining: u64) -> Self {
        Self {
            within_limits: remaining > 0,
            remaining,
            ..Self::default()
        }
    }

    /// Units the customer may use now: `remaining` when within limits, else none.
    pub fn allowed(&self) -> u64 {
        if self.within_limits {
            self.remaining
        } else {
            0
        }
    }
}

/// How a metered request ended, in SolvaPay's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The handler succeeded: the units consume allowance.
    Success,
    /// The request was stopped by the paywall.
    Paywall,
    /// The handler failed.
    Fail,
}

impl Outcome {
    /// The wire name (`success`, `paywall`, `fail`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Paywall => "paywall",
            Outcome::Fail => "fail",
        }
    }
}

/// One metered use of a product.
///
/// The idempotency key is fixed before the event is first stored or sent, and sent
/// unchanged on every retry, so a backend that de-duplicates on it counts the event
/// once. The engine makes it with [`UsageEvent::new_key`]: when it creates the event if
/// an outbox stores it, otherwise when the recorder takes the event into a batch (an
/// event added into another's sum never needs one). A backend never sees an empty key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    /// Unique per event, stable across retries.
    pub idempotency_key: String,
    /// The billed customer.
    pub customer: CustomerRef,
    /// The product reference.
    pub product: Arc<str>,
    /// The meter name (for example `requests`).
    pub meter: Arc<str>,
    /// Units consumed.
    pub units: u64,
    /// How the request ended.
    pub outcome: Outcome,
    /// When the request was admitted.
    pub timestamp: SystemTime,
    /// How long the handler took.
    pub duration: Option<Duration>,
}

impl UsageEvent {
    /// A new idempotency key for an event that occurred `at`: a UUID version 7 (RFC
    /// 9562), unique and ordered by time to the millisecond, so that a ledger indexing its
    /// keys appends instead of writing all over its index (what random version 4 keys
    /// did: one page touched per event). Its 74 random bits are a version 4 UUID's (the
    /// same generator), and the time is the event's own: no second clock read.
    pub fn new_key(at: SystemTime) -> String {
        let millis = at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        let mut random = [0u8; 10];
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[6..]);
        let key = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        key.hyphenated().encode_lower(&mut text).to_owned()
    }

    /// Gives the event its key, from its own timestamp, unless it has one.
    pub(crate) fn key_if_missing(&mut self) {
        if self.idempotency_key.is_empty() {
            self.idempotency_key = Self::new_key(self.timestamp);
        }
    }
}

/// A billing backend failed.
///
/// The texts are for logs and diagnostics; the paywall never sends them to clients.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend could not be reached or answered a transient failure (timeouts,
    /// connection errors, 408, 429, 5xx). Worth retrying, after `retry_after` if given.
    #[error("billing backend unavailable: {message}")]
    Unavailable {
        /// What went wrong, for the logs.
        message: String,
        /// How long the backend asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The backend does not offer this capability (a customer portal, say).
    #[error("not supported by the billing backend: {0}")]
    Unsupported(&'static str),
    /// The customer or product does not exist at the backend.
    #[error("not found at the billing backend: {0}")]
    NotFound(String),
    /// The backend refused the request for good (bad input, bad credentials).
    /// Retrying the same request will not help. From `ensure_customer`, the paywall
    /// answers 403 `customer_rejected` and remembers the refusal for a while.
    #[error("rejected by the billing backend: {0}")]
    Rejected(String),
    /// The caller's identity conflicts with a customer that belongs to someone else
    /// (for example, its email is another customer's). Answered 403
    /// `customer_conflict`; never resolved by re-linking that customer.
    #[error("customer conflict at the billing backend: {0}")]
    CustomerConflict(String),
}

impl BackendError {
    /// A transient failure with no retry hint.
    pub fn unavailable(message: impl Into<String>) -> Self {
        BackendError::Unavailable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether the backend refused the caller for good (answered 403, remembered).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            BackendError::Rejected(_) | BackendError::CustomerConflict(_)
        )
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BackendError::Unavailable { .. })
    }

    /// The wait the backend asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A billing provider: customers, limits and usage.
///
/// Implementations: `paywall-local` (embedded SQLite ledger) and, over HTTP, SolvaPay.
///
/// * `ensure_customer` is find-or-create and must be idempotent: the same
///   `external_ref` always yields the same reference, also under concurrent calls.
/// * `check_limits` is read-only.
/// * `record_usage` must de-duplicate on [`UsageEvent::idempotency_key`]: the recorder
///   retries a whole batch after a transient failure.
///
/// ```
/// use paywall::backend::{BackendError, BillingBackend, Limits, UsageEvent};
/// use paywall::{CustomerRef, Identity};
///
/// /// Everyone is a customer with unlimited allowance (a toy for the example).
/// struct Unlimited;
///
/// impl BillingBackend for Unlimited {
///     async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
///         Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
///     }
///     async fn check_limits(&self, _: &CustomerRef, _: &str, _: &str) -> Result<Limits, BackendError> {
///         Ok(Limits::remaining(u64::MAX / 2))
///     }
///     async fn record_usage(&self, _events: &[UsageEvent]) -> Result<(), BackendError> {
///         Ok(())
///     }
/// }
/// ```
pub trait BillingBackend: Send + Sync + 'static {
    /// Finds or creates the customer for `identity.external_ref`.
    fn ensure_customer(
        &self,
        identity: &Identity,
    ) -> impl Future<Output = Result<CustomerRef, BackendError>> + Send;

    /// The customer's allowance for `product` on `meter`.
    fn check_limits(
        &self,
        customer: &CustomerRef,
        product: &str,
        meter: &str,
    ) -> impl Future<Output = Result<Limits, BackendError>> + Send;

    /// Records a batch of usage events, idempotently.
    fn record_usage(
        &self,
        events: &[UsageEvent],
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Where `customer` can pay for `product`, for a 402 whose limits answer carried
    /// no link (answers given while units were left usually carry none). `Ok(None)`
    /// when the backend has no checkout: the 402 then omits `checkoutUrl`. The
    /// default has none.
    fn checkout_url(
        &self,
        customer: &CustomerRef,
        product: &str,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        let _ = (customer, product);
        async { Ok(None) }
    }

    /// Opens a checkout session for `customer` (product, optional plan and return URL,
    /// an idempotency key per call) and returns the URL to send the customer to. The
    /// default uses [`checkout_url`](Self::checkout_url), and is
    /// [`BackendError::Unsupported`] when that has no link.
    fn checkout_session(
        &self,
        customer: &CustomerRef,
        request: &CheckoutRequest,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        async move {
            match self.checkout_url(customer, &request.product).await? {
                Some(url) => Ok(url),
                None => Err(BackendError::Unsupported("checkout sessions")),
            }
        }
    }

    /// A short-lived URL of the provider's customer portal for `customer`.
    fn portal_url(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        let _ = customer;
        async { Err(BackendError::Unsupported("customer portal")) }
    }

    /// The purchases of `customer`, newest first.
    fn purchases(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<Vec<Purchase>, BackendError>> + Send {
        let _ = customer;
        async { Err(BackendError::Unsupported("purchases")) }
    }

    /// Cancels `purchase` of `customer`; [`BackendError::NotFound`] when `customer` has
    /// no such purchase (it may be someone else's).
    fn cancel_purchase(
        &self,
        customer: &CustomerRef,
        purchase: &str,
    ) -> impl Future<Output = Result<Purchase, BackendError>> + Send {
        let _ = (customer, purchase);
        async { Err(BackendError::Unsupported("cancelling purchases")) }
    }

    /// The credit balance of `customer`, for providers that sell credits (`Ok(None)`:
    /// the provider has none, the default).
    fn credits(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<Option<Credits>, BackendError>> + Send {
        let _ = customer;
        async { Ok(None) }
    }

    /// Answers a call of SolvaPay's React components for `customer` (see
    /// [`AccountCall`]): the JSON the component reads. The default offers none
    /// ([`BackendError::Unsupported`]).
    fn account_call(
        &self,
        customer: &CustomerRef,
        call: &AccountCall,
    ) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        let _ = customer;
        let what = call.what();
        async move { Err(BackendError::Unsupported(what)) }
    }
}

impl<T: BillingBackend> BillingBackend for Arc<T> {
    fn ensure_customer(
        &self,
        identity: &Identity,
    ) -> impl Future<Output = Result<CustomerRef, BackendError>> + Send {
        T::ensure_customer(self, identity)
    }

    fn check_limits(
        &self,
        customer: &CustomerRef,
        product: &str,
        meter: &str,
    ) -> impl Future<Output = Result<Limits, BackendError>> + Send {
        T::check_limits(self, customer, product, meter)
    }

    fn record_usage(
        &self,
        events: &[UsageEvent],
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        T::record_usage(self, events)
    }

    fn checkout_url(
        &self,
        customer: &CustomerRef,
        product: &str,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        T::checkout_url(self, customer, product)
    }

    fn checkout_session(
        &self,
        customer: &CustomerRef,
        request: &CheckoutRequest,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        T::checkout_session(self, customer, request)
    }

    fn portal_url(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<String, BackendError>> + Send {
        T::portal_url(self, customer)
    }

    fn purchases(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<Vec<Purchase>, BackendError>> + Send {
        T::purchases(self, customer)
    }

    fn cancel_purchase(
        &self,
        customer: &CustomerRef,
        purchase: &str,
    ) -> impl Future<Output = Result<Purchase, BackendError>> + Send {
        T::cancel_purchase(self, customer, purchase)
    }

    fn credits(
        &self,
        customer: &CustomerRef,
    ) -> impl Future<Output = Result<Option<Credits>, BackendError>> + Send {
        T::credits(self, customer)
    }

    fn account_call(
        &self,
        customer: &CustomerRef,
        call: &AccountCall,
    ) -> impl Future<Output = Result<serde_json::Value, BackendError>> + Send {
        T::account_call(self, customer, call)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::UsageEvent;

    #[test]
    fn usage_keys_are_unique_version_7_and_ordered_by_their_event_time() {
        let at = SystemTime::now();
        let key = UsageEvent::new_key(at);
        let parsed = uuid::Uuid::parse_str(&key).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(
            key,
            parsed.hyphenated().to_string(),
            "canonical lowercase form"
        );
        assert_ne!(UsageEvent::new_key(at), UsageEvent::new_key(at));
        let later = UsageEvent::new_key(at + Duration::from_millis(1));
        assert!(later > key, "a later event sorts after: {later} > {key}");
    }
}
