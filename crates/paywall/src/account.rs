//! What the application's frontend may see and change of the caller's billing, as the
//! backend reports it: [`Purchase`], [`Credits`], and the [`CheckoutRequest`] a
//! checkout session is opened with. The routes that serve them are in `billing/`.

use std::time::SystemTime;

/// One purchase (a plan bought for a product).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purchase {
    /// The purchase reference (`pur_…` at SolvaPay).
    pub reference: String,
    /// The product bought.
    pub product: String,
    /// The plan, when the backend names it.
    pub plan: Option<String>,
    /// `active`, `cancelled`…, as the backend says.
    pub status: String,
    /// When it started, if known.
    pub started_at: Option<SystemTime>,
    /// When it was cancelled, if it was.
    pub cancelled_at: Option<SystemTime>,
}

impl Purchase {
    /// A purchase of `product` with `status`.
    pub fn new(
        reference: impl Into<String>,
        product: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        Self {
            reference: reference.into(),
            product: product.into(),
            plan: None,
            status: status.into(),
            started_at: None,
            cancelled_at: None,
        }
    }

    /// Names the plan.
    pub fn with_plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
        self
    }

    /// Sets the start and cancellation times.
    pub fn with_times(
        mut self,
        started: Option<SystemTime>,
        cancelled: Option<SystemTime>,
    ) -> Self {
        self.started_at = started;
        self.cancelled_at = cancelled;
        self
    }
}

/// A customer's credit balance, for providers that sell credits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credits {
    /// Credits left.
    pub balance: i64,
    /// The currency credits are shown in, when the provider says.
    pub currency: Option<String>,
    /// Credits per minor unit of that currency, when the provider says.
    pub per_minor_unit: Option<u64>,
}

impl Credits {
    /// A balance of `balance` credits.
    pub fn new(balance: i64) -> Self {
        Self {
            balance,
            currency: None,
            per_minor_unit: None,
        }
    }
}

/// A checkout session to open for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckoutRequest {
    /// The product to buy.
    pub product: String,
    /// A plan of that product, when the frontend chose one.
    pub plan: Option<String>,
    /// Where the provider sends the customer back (an absolute http(s) URL).
    pub return_url: Option<String>,
    /// Unique per call: a retried call opens one session.
    pub idempotency_key: String,
}

impl CheckoutRequest {
    /// A checkout of `product` with a fresh idempotency key.
    pub fn new(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
            plan: None,
            return_url: None,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        }
    }
}
