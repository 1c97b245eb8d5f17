//! SolvaPay's JSON shapes (`/v1/sdk/...`), as the published OpenAPI file describes them.
//! Shared by the client and by the SolvaPay-compatible dev server (`paywall-dev-server`).
//!
//! Answers are read liberally: the client needs only the fields it acts on (a
//! customer's `reference`, a limits answer's `withinLimits` and `remaining`, a checkout
//! session's `checkoutUrl`). Every other field is tolerated absent, `null`, of an
//! unexpected type (read as absent) or unknown, whatever the schema says is required.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Readers that never fail on a field the client does not need.
pub mod lenient {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// The value when it has the expected type; `None` when it is `null` or of
    /// another type.
    pub fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let value = Value::deserialize(deserializer)?;
        Ok(serde_json::from_value(value).ok())
    }

    /// The items of an array that have the expected shape; `None` when the value is
    /// not an array.
    pub fn list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        Ok(match Value::deserialize(deserializer)? {
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .filter_map(|item| serde_json::from_value(item).ok())
                    .collect(),
            ),
            _ => None,
        })
    }

    /// A string, or the empty string when the value is missing, `null` or not one.
    pub fn string<'de, D>(deserializer: D) -> Result<String, D::Error>
    where
        D: Deserializer<'de>,
    {
        Ok(option(deserializer)?.unwrap_or_default())
    }
}

/// `CustomerResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// `cus_...`: the one field the client needs.
    pub reference: String,
    /// Display name (required by the schema, yet `null` for customers created without
    /// one).
    #[serde(default, deserialize_with = "lenient::option")]
    pub name: Option<String>,
    /// Email address (required by the schema).
    #[serde(default, deserialize_with = "lenient::option")]
    pub email: Option<String>,
    /// The application's id for the customer.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ref: Option<String>,
    /// The customer's purchases (malformed items are skipped).
    #[serde(
        default,
        deserialize_with = "lenient::list",
        skip_serializing_if = "Option::is_none"
    )]
    pub purchases: Option<Vec<PurchaseInfo>>,
}

/// `PurchaseInfo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseInfo {
    /// `pur_...`.
    pub reference: String,
    /// The product bought.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub product_ref: Option<String>,
    /// The product's name.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub product_name: Option<String>,
    /// `active`, `cancelled`, ...
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: String,
    /// Start of the purchase (RFC 3339).
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_date: Option<String>,
    /// Amount in minor units.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<u64>,
    /// ISO currency.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<String>,
}

/// `CreateCustomerRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCustomer {
    /// Required by the schema.
    pub email: String,
    /// Required by the schema; `{}` when there is nothing to say.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The application's id for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

/// `UpdateCustomerRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCustomer {
    /// New email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Links the application's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    /// Replaces the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `CheckLimitRequest`, with the newer `includeCheckoutSession`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLimits {
    /// The customer.
    pub customer_ref: String,
    /// The product.
    pub product_ref: String,
    /// The meter (`requests` by default at SolvaPay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_name: Option<String>,
    /// Ask for a checkout session when the customer is out of allowance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_checkout_session: Option<bool>,
}

/// `LimitResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitResponse {
    /// Whether the customer may use the product now.
    pub within_limits: bool,
    /// Units left before this request.
    pub remaining: f64,
    /// Where to buy more.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub checkout_url: Option<String>,
    /// The session behind `checkoutUrl`.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub checkout_session_id: Option<String>,
    /// The meter the answer is for.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub meter_name: Option<String>,
    /// The customer must activate a plan.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub activation_required: Option<bool>,
    /// Where to confirm an activation.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub confirmation_url: Option<String>,
    /// The product.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub product: Option<ProductSummary>,
    /// The current plan (a reference or an object, depending on the API version).
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub plan: Option<Value>,
}

/// The `product` member of a limits answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSummary {
    /// `prd_...`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub reference: String,
    /// Display name.
    #[serde(
        default,
        deserialize_with = "lenient::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
}

/// One item of `BulkCreateUsageRequest.events` (and `CreateUsageRequest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The customer.
    pub customer_ref: String,
    /// `api_call`, `transaction`, `hour`, `email`, `storage` or `custom`.
    #[serde(default = "api_call")]
    pub action_type: String,
    /// 0 to 100,000.
    #[serde(default = "one")]
    pub units: u64,
    /// `success`, `paywall` or `fail`.
    #[serde(default = "success")]
    pub outcome: String,
    /// The product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_ref: Option<String>,
    /// The purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_ref: Option<String>,
    /// Handler time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// Free-form; the paywall puts `meterName` here.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// RFC 3339.
    pub timestamp: String,
    /// De-duplication key, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

fn api_call() -> String {
    "api_call".into()
}

fn success() -> String {
    "success".into()
}

fn one() -> u64 {
    1
}

/// `BulkCreateUsageRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkUsage {
    /// The events.
    pub events: Vec<Usage>,
}

/// The answer to a bulk usage call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkUsageResponse {
    /// Whether the call succeeded.
    #[serde(default, deserialize_with = "lenient::option")]
    pub success: Option<bool>,
    /// Events newly recorded (replays are not counted).
    #[serde(default, deserialize_with = "lenient::option")]
    pub inserted: Option<u64>,
    /// One entry per event.
    #[serde(default, deserialize_with = "lenient::list")]
    pub results: Option<Vec<Value>>,
}

/// `CreateCheckoutSessionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCheckoutSession {
    /// The customer.
    pub customer_ref: String,
    /// The product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_ref: Option<String>,
    /// A specific plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_ref: Option<String>,
    /// Where the checkout sends the customer afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
}

/// `CreateCheckoutSessionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    /// The session.
    #[serde(default, deserialize_with = "lenient::string")]
    pub session_id: String,
    /// Where to send the customer: the one field the client needs.
    pub checkout_url: String,
}

/// The error body SolvaPay's API answers with (NestJS style).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The HTTP status.
    pub status_code: u16,
    /// The reason phrase.
    pub error: String,
    /// What went wrong.
    pub message: String,
}
