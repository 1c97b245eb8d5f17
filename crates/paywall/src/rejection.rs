//! Why a request was not admitted, and the response that says so.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

/// The media type of every rejection body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why the paywall did not let a request through.
///
/// The default responses follow the paywall's HTTP contract:
///
/// | rejection | status | body `kind` | headers |
/// |---|---|---|---|
/// | [`Rejection::Unauthenticated`] | 401 | `unauthenticated` | `WWW-Authenticate: Bearer` (no credentials) or `Bearer error="invalid_token"` (bad ones), RFC 6750 §3.1 |
/// | [`Rejection::CustomerRejected`] | 403 | `customer_rejected` | |
/// | [`Rejection::CustomerConflict`] | 403 | `customer_conflict` | |
/// | [`Rejection::PaymentRequired`] | 402 | `payment_required` / `activation_required` | `Retry-After` when the reset time is known |
/// | [`Rejection::BillingUnavailable`] | 503 | `billing_unavailable` | `Retry-After` |
/// | [`Rejection::IdentityUnavailable`] | 503 | `identity_unavailable` | `Retry-After` |
///
/// Every body is `application/problem+json` with the RFC 9457 members `type`, `title`,
/// `status` and `detail`, and SolvaPay's members `success: false`, `error`, `kind` and
/// `message` (plus `product` and `checkoutUrl` on a 402), so clients written against
/// SolvaPay's paywall keep working. Replace them with
/// [`PaywallBuilder::on_rejection`](crate::PaywallBuilder::on_rejection).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No credentials, or credentials that are not acceptable.
    Unauthenticated(Unauthenticated),
    /// The billing backend refused the caller's customer for good (its claims are not
    /// acceptable there). Answered the same under every fail policy.
    CustomerRejected,
    /// The caller's identity conflicts with another customer (an email that belongs
    /// to a customer linked to someone else).
    CustomerConflict,
    /// The customer has no allowance left for the route's product (or must activate a plan).
    PaymentRequired(PaymentRequired),
    /// The billing backend is unreachable and the fail policy is closed.
    BillingUnavailable {
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
    /// The identity provider is unreachable (no key to verify a token with).
    IdentityUnavailable {
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
}

/// Why a request was answered 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// The request carried no credentials.
    MissingCredentials,
    /// The credentials were rejected (malformed, forged, expired, ambiguous).
    InvalidCredentials,
}

/// What a 402 says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRequired {
    /// The customer must activate a plan rather than buy more units.
    pub activation_required: bool,
    /// The product whose allowance is exhausted.
    pub product: String,
    /// Where to buy more (or confirm an activation); `None` when the backend has no
    /// link, and then the body has no `checkoutUrl`.
    pub checkout_url: Option<String>,
    /// Where to confirm an activation, when the backend gave one.
    pub confirmation_url: Option<String>,
    /// The customer's current plan, when known.
    pub plan: Option<String>,
    /// Units left for the customer.
    pub remaining: u64,
    /// Units the request would have cost.
    pub units: u64,
    /// Units per period of the customer's plan, when the backend says.
    pub allowance: Option<u64>,
    /// The plan's period, when the backend says.
    pub period: Option<Duration>,
    /// When the allowance resets, if known (sent as `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl PaymentRequired {
    /// The `kind` member: `payment_required` or `activation_required`.
    pub fn kind(&self) -> &'static str {
        if self.activation_required {
            "activation_required"
        } else {
            "payment_required"
        }
    }

    /// The `error` member: `Payment required` or `Activation required`.
    pub fn error(&self) -> &'static str {
        if self.activation_required {
            "Activation required"
        } else {
            "Payment required"
        }
    }

    /// A human sentence for the `message` and `detail` members.
    pub fn message(&self) -> String {
        if self.activation_required {
            format!("Activate a plan for product {} to continue.", self.product)
        } else if self.remaining == 0 {
            format!(
                "Your allowance for product {} is used up. Purchase a plan to continue.",
                self.product
            )
        } else {
            let units = if self.units == 1 { "unit" } else { "units" };
            let left = if self.remaining == 1 { "is" } else { "are" };
            format!(
                "This request costs {} {units} of product {} and {} {left} left. Purchase a plan to continue.",
                self.units, self.product, self.remaining
            )
        }
    }
}

/// The JSON error body every non-paywall error of the crates and quickstarts shares,
/// in SolvaPay's shape: `{"success": false, "error", "kind", "message"}`.
///
/// ```
/// let body = paywall::adapter::error_body("Not Found", "not_found", "No route for this path.");
/// assert_eq!(body["success"], false);
/// assert_eq!(body["kind"], "not_found");
/// ```
pub fn error_body(error: &str, kind: &str, message: &str) -> Value {
    Value::Object(error_members(error, kind, message))
}

/// [`error_body`] with the RFC 9457 members (`type`, `title`, `status`, `detail`), for an
/// `application/problem+json` answer ([`PROBLEM_JSON`]) like the paywall's own.
///
/// ```
/// let body = paywall::adapter::problem_body(http::StatusCode::BAD_REQUEST, "bad_request", "max_tokens is required.");
/// assert_eq!((body["status"].as_u64(), body["title"].as_str()), (Some(400), Some("Bad Request")));
/// assert_eq!(body["type"], "urn:paywall:bad_request");
/// assert_eq!(body["detail"], body["message"]);
/// ```
pub fn problem_body(status: http::StatusCode, kind: &str, message: &str) -> Value {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut body = error_members(title, kind, message);
    body.insert("type".into(), json!(format!("urn:paywall:{kind}")));
    body.insert("title".into(), json!(title));
    body.insert("status".into(), json!(status.as_u16()));
    body.insert("detail".into(), json!(message));
    Value::Object(body)
}

fn error_members(error: &str, kind: &str, message: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("success".into(), json!(false));
    body.insert("error".into(), json!(error));
    body.insert("kind".into(), json!(kind));
    body.insert("message".into(), json!(message));
    body
}

impl Rejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Rejection::CustomerRejected | Rejection::CustomerConflict => StatusCode::FORBIDDEN,
            Rejection::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Rejection::BillingUnavailable { .. } | Rejection::IdentityUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `kind` member of the body.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Unauthenticated(_) => "unauthenticated",
            Rejection::CustomerRejected => "customer_rejected",
            Rejection::CustomerConflict => "customer_conflict",
            Rejection::PaymentRequired(payment) => payment.kind(),
            Rejection::BillingUnavailable { .. } => "billing_unavailable",
            Rejection::IdentityUnavailable { .. } => "identity_unavailable",
        }
    }

    /// The JSON body of the default response.
    pub fn body(&self) -> Value {
        let (error, message) = match self {
            Rejection::Unauthenticated(Unauthenticated::MissingCredentials) => (
                "Unauthorized",
                "Authentication required: send a bearer token.".to_owned(),
            ),
            Rejection::Unauthenticated(_) => (
                "Unauthorized",
                "The credentials are invalid or expired.".to_owned(),
            ),
            Rejection::CustomerRejected => (
                "Forbidden",
                "The billing provider does not accept this account. Contact the service's support."
                    .to_owned(),
            ),
            Rejection::CustomerConflict => (
                "Forbidden",
                "This account conflicts with another billing customer. Contact the service's support."
                    .to_owned(),
            ),
            Rejection::PaymentRequired(payment) => (payment.error(), payment.message()),
            Rejection::BillingUnavailable { .. } => (
                "Service unavailable",
                "Billing is temporarily unavailable. Retry later.".to_owned(),
            ),
            Rejection::IdentityUnavailable { .. } => (
                "Service unavailable",
                "The identity provider is temporarily unavailable. Retry later.".to_owned(),
            ),
        };
        let mut body = error_members(error, self.kind(), &message);
        body.insert("type".into(), json!(format!("urn:paywall:{}", self.kind())));
        body.insert("title".into(), json!(error));
        body.insert("status".into(), json!(self.status().as_u16()));
        body.insert("detail".into(), json!(message));
        if let Rejection::PaymentRequired(payment) = self {
            body.insert("product".into(), json!(payment.product));
            if let Some(url) = payment.checkout_url.as_deref().filter(|u| !u.is_empty()) {
                body.insert("checkoutUrl".into(), json!(url));
            }
            body.insert("remaining".into(), json!(payment.remaining));
            if let Some(url) = &payment.confirmation_url {
                body.insert("confirmationUrl".into(), json!(url));
            }
            if let Some(plan) = &payment.plan {
                body.insert("plan".into(), json!(plan));
            }
        }
        Value::Object(body)
    }

    /// The `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::Unauthenticated(_)
            | Rejection::CustomerRejected
            | Rejection::CustomerConflict => None,
            Rejection::PaymentRequired(payment) => payment.retry_after,
            Rejection::BillingUnavailable { retry_after }
            | Rejection::IdentityUnavailable { retry_after } => Some(*retry_after),
        }
    }

    /// The default response: status, headers and problem+json body.
    pub fn to_response(&self) -> Response<Bytes> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Rejection::Unauthenticated(why) = self {
            // RFC 6750 §3.1: a request without credentials gets no error code.
            let challenge = match why {
                Unauthenticated::MissingCredentials => "Bearer",
                Unauthenticated::InvalidCredentials => "Bearer error=\"invalid_token\"",
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up, at least 1.
            let secs = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> PaymentRequired {
        PaymentRequired {
            activation_required: false,
            product: "prd_x".into(),
            checkout_url: Some("http://127.0.0.1/checkout".into()),
            confirmation_url: None,
            plan: Some("pln_free".into()),
            remaining: 0,
            units: 1,
            allowance: Some(5),
            period: None,
            retry_after: Some(Duration::from_millis(1500)),
        }
    }

    #[test]
    fn payment_required_carries_solvapay_and_problem_members() {
        let response = Rejection::PaymentRequired(payment()).to_response();
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        let body: Value = serde_json::from_slice(response.body()).expect("json body");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], "Payment required");
        assert_eq!(body["kind"], "payment_required");
        assert_eq!(body["product"], "prd_x");
        assert_eq!(body["checkoutUrl"], "http://127.0.0.1/checkout");
        assert_eq!(body["status"], 402);
        assert_eq!(body["title"], "Payment required");
        assert_eq!(body["type"], "urn:paywall:payment_required");
        assert_eq!(body["detail"], body["message"]);
        assert_eq!(body["plan"], "pln_free");
    }

    #[test]
    fn the_message_counts_in_words_that_agree() {
        let mut payment = payment();
        (payment.units, payment.remaining) = (2, 1);
        assert!(payment
            .message()
            .contains("costs 2 units of product prd_x and 1 is left"));
        (payment.units, payment.remaining) = (1, 0);
        assert!(payment.message().contains("is used up"));
        (payment.units, payment.remaining) = (5, 3);
        assert!(payment
            .message()
            .contains("costs 5 units of product prd_x and 3 are left"));
    }

    #[test]
    fn a_402_without_a_link_omits_checkout_url_rather_than_sending_an_empty_one() {
        for url in [None, Some(String::new())] {
            let mut payment = payment();
            payment.checkout_url = url;
            let body = Rejection::PaymentRequired(payment).body();
            assert!(body.get("checkoutUrl").is_none(), "{body}");
        }
    }

    #[test]
    fn customer_refusals_are_403_without_provider_text() {
        for (rejection, kind) in [
            (Rejection::CustomerRejected, "customer_rejected"),
            (Rejection::CustomerConflict, "customer_conflict"),
        ] {
            let response = rejection.to_response();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(response.headers().get(RETRY_AFTER).is_none());
            let body: Value = serde_json::from_slice(response.body()).expect("json body");
            assert_eq!(body["kind"], kind);
            assert_eq!(body["status"], 403);
            assert_eq!(body["success"], false);
        }
    }

    #[test]
    fn activation_required_changes_kind_and_error() {
        let mut payment = payment();
        payment.activation_required = true;
        let body = Rejection::PaymentRequired(payment).body();
        assert_eq!(body["kind"], "activation_required");
        assert_eq!(body["error"], "Activation required");
    }

    #[test]
    fn unauthenticated_has_www_authenticate_and_no_retry_after() {
        let response =
            Rejection::Unauthenticated(Unauthenticated::InvalidCredentials).to_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert!(response.headers().get(RETRY_AFTER).is_none());
        let missing = Rejection::Unauthenticated(Unauthenticated::MissingCredentials).to_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[WWW_AUTHENTICATE],
            "Bearer",
            "RFC 6750 §3.1"
        );
    }

    #[test]
    fn retry_after_never_overflows() {
        let response = Rejection::BillingUnavailable {
            retry_after: Duration::MAX,
        }
        .to_response();
        assert_eq!(
            response.headers()[RETRY_AFTER],
            u64::MAX.to_string().as_str()
        );
    }

    #[test]
    fn unavailable_has_retry_after_of_at_least_one_second() {
        let response = Rejection::BillingUnavailable {
            retry_after: Duration::ZERO,
        }
        .to_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let body: Value = serde_json::from_slice(response.body()).expect("json body");
        assert_eq!(body["kind"], "billing_unavailable");
    }
}
