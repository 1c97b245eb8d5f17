//! What the application's frontend may see and change of the caller's billing, as the
//! backend reports it: [`Purchase`], [`Credits`], the [`CheckoutRequest`] a checkout
//! session is opened with, and the [`AccountCall`]s of SolvaPay's React components that
//! a backend answers for the caller's customer. The routes that serve them are in
//! `billing/`.

use std::time::SystemTime;

use serde_json::{Map, Value};

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
    /// What was paid, in minor units of [`currency`](Self::currency) (0 for a free
    /// plan), when the backend says.
    pub amount: Option<u64>,
    /// The currency of [`amount`](Self::amount) (`USD`…).
    pub currency: Option<String>,
    /// The product's display name, when the backend says.
    pub product_name: Option<String>,
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
            amount: None,
            currency: None,
            product_name: None,
        }
    }

    /// Sets what was paid: `amount` minor units of `currency`.
    pub fn with_amount(mut self, amount: u64, currency: impl Into<String>) -> Self {
        self.amount = Some(amount);
        self.currency = Some(currency.into());
        self
    }

    /// Names the product for display.
    pub fn with_product_name(mut self, name: impl Into<String>) -> Self {
        self.product_name = Some(name.into());
        self
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

/// A call of SolvaPay's React components (`@solvapay/react`) that the paywall hands to
/// the backend for the caller's customer, its members checked and the customer never
/// taken from the caller. A backend answers with the JSON the component reads (the
/// provider's own answer, for a provider that has one), or
/// [`BackendError::Unsupported`](crate::backend::BackendError::Unsupported) for what
/// it does not offer (the default).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AccountCall {
    /// The merchant's identity (`Merchant`).
    Merchant,
    /// One product (`Product`).
    Product {
        /// The product reference.
        product: String,
    },
    /// A product's plans (`Plan[]`).
    Plans {
        /// The product reference.
        product: String,
    },
    /// Activates a plan that needs no card (`ActivatePlanResponseDto`).
    ActivatePlan {
        /// The product reference.
        product: String,
        /// The plan reference.
        plan: String,
    },
    /// Reactivates the renewal of one of the customer's purchases (checked to be the
    /// caller's before this call).
    Reactivate {
        /// The purchase reference.
        purchase: String,
    },
    /// The customer's saved payment method.
    PaymentMethod,
    /// The customer's auto-recharge settings.
    AutoRecharge,
    /// Saves the customer's auto-recharge settings.
    SaveAutoRecharge {
        /// The settings as the component sent them (an object).
        settings: Map<String, Value>,
    },
    /// Turns auto-recharge off.
    DisableAutoRecharge,
    /// Opens a card payment for a plan.
    CreatePaymentIntent {
        /// The product reference.
        product: Option<String>,
        /// The plan reference.
        plan: Option<String>,
        /// The currency to pay in.
        currency: Option<String>,
        /// Unique per call.
        idempotency_key: String,
    },
    /// Completes a card payment for a plan.
    ProcessPayment {
        /// The processor's payment intent id.
        payment_intent: String,
        /// The product reference.
        product: String,
        /// The plan reference.
        plan: Option<String>,
    },
    /// Opens a card payment that tops up credits.
    CreateTopupPaymentIntent {
        /// Minor units of `currency`.
        amount: u64,
        /// The currency to pay in.
        currency: Option<String>,
        /// Auto-recharge settings to save with the top-up (an object).
        auto_recharge: Option<Map<String, Value>>,
        /// Unique per call.
        idempotency_key: String,
    },
    /// Completes a top-up payment.
    ProcessTopupPayment {
        /// The processor's payment intent id.
        payment_intent: String,
    },
    /// Attaches business details (tax) to a payment.
    AttachBusinessDetails {
        /// The processor's payment intent id.
        payment_intent: String,
        /// `isBusiness`, `businessName`, `country`, `taxId`, `taxIdType`, as checked.
        details: Map<String, Value>,
    },
}

impl AccountCall {
    /// What the call does, in words (for a 501's message).
    pub fn what(&self) -> &'static str {
        match self {
            Self::Merchant => "merchant details",
            Self::Product { .. } => "product details",
            Self::Plans { .. } => "plan listings",
            Self::ActivatePlan { .. } => "plan activation",
            Self::Reactivate { .. } => "reactivating renewals",
            Self::PaymentMethod => "saved payment methods",
            Self::AutoRecharge | Self::SaveAutoRecharge { .. } | Self::DisableAutoRecharge => {
                "auto-recharge"
            }
            Self::CreatePaymentIntent { .. } | Self::ProcessPayment { .. } => "card payments",
            Self::CreateTopupPaymentIntent { .. } | Self::ProcessTopupPayment { .. } => {
                "credit top-ups"
            }
            Self::AttachBusinessDetails { .. } => "business details on payments",
        }
    }

    /// Whether the call may change what the customer may do (a payment, an activation,
    /// a reactivation): the paywall forgets the customer's cached limits after it.
    pub fn changes_access(&self) -> bool {
        matches!(
            self,
            Self::ActivatePlan { .. }
                | Self::Reactivate { .. }
                | Self::ProcessPayment { .. }
                | Self::ProcessTopupPayment { .. }
        )
    }
}
