//! The calls of SolvaPay's React components ([`AccountCall`]) forwarded to SolvaPay's
//! API for the caller's customer, as `@solvapay/server`'s route helpers make them: the
//! catalogue (merchant, product, plans), plan activation and reactivation, the saved
//! payment method, auto-recharge, payment intents for plans and top-ups, and business
//! details. The customer reference is always the paywall's, never the caller's.
//! Answers are passed on as SolvaPay gives them, except where the helpers project them
//! (payment intents, top-up processing) and unwrap `data` (products, plans).

use paywall::backend::{AccountCall, BackendError};
use paywall::CustomerRef;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::{SolvaPayBackend, SolvaPayError};

/// Merges a `data` member into its object, the object's own members winning (as the
/// SDK's client does for products and plans).
fn unwrap_data(value: Value) -> Value {
    match value {
        Value::Object(mut object) => {
            if let Some(Value::Object(data)) = object.remove("data") {
                for (name, inner) in data {
                    object.entry(name).or_insert(inner);
                }
            }
            Value::Object(object)
        }
        other => other,
    }
}

/// A payment intent as the helpers hand it to the browser: what Stripe.js needs.
fn payment_intent(answer: Value, customer: &CustomerRef) -> Value {
    let field = |name: &str| answer.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "processorPaymentId": field("processorPaymentId"),
        "clientSecret": field("clientSecret"),
        "publishableKey": field("publishableKey"),
        "accountId": field("accountId"),
        "customerRef": customer.as_str(),
    })
}

/// A top-up's processing result: `succeeded`, `failed`, `cancelled` or `timeout`;
/// anything else fails closed.
fn topup_status(answer: &Value) -> Value {
    match answer.get("status").and_then(Value::as_str) {
        Some(status @ ("succeeded" | "failed" | "cancelled" | "timeout")) => {
            json!({ "status": status })
        }
        _ => json!({ "status": "failed" }),
    }
}

impl SolvaPayBackend {
    pub(crate) async fn forward(
        &self,
        customer: &CustomerRef,
        call: &AccountCall,
    ) -> Result<Value, BackendError> {
        let client = self.client();
        let me = customer.as_str();
        let with_customer = |segments: &[&str]| {
            let mut url = client.url(segments);
            url.query_pairs_mut().append_pair("customerRef", me);
            url
        };
        let (method, url, body, key): (Method, url::Url, Option<Value>, Option<&str>) = match call {
            AccountCall::Merchant => (
                Method::GET,
                client.url(&["v1", "sdk", "merchant"]),
                None,
                None,
            ),
            AccountCall::Product { product } => (
                Method::GET,
                client.url(&["v1", "sdk", "products", product]),
                None,
                None,
            ),
            AccountCall::Plans { product } => (
                Method::GET,
                client.url(&["v1", "sdk", "products", product, "plans"]),
                None,
                None,
            ),
            AccountCall::ActivatePlan { product, plan } => (
                Method::POST,
                client.url(&["v1", "sdk", "activate"]),
                Some(json!({ "customerRef": me, "productRef": product, "planRef": plan })),
                None,
            ),
            AccountCall::Reactivate { purchase } => (
                Method::POST,
                client.url(&["v1", "sdk", "purchases", purchase, "reactivate"]),
                None,
                None,
            ),
            AccountCall::PaymentMethod => (
                Method::GET,
                with_customer(&["v1", "sdk", "payment-method"]),
                None,
                None,
            ),
            AccountCall::AutoRecharge => (
                Method::GET,
                with_customer(&["v1", "sdk", "auto-recharge"]),
                None,
                None,
            ),
            AccountCall::DisableAutoRecharge => (
                Method::DELETE,
                with_customer(&["v1", "sdk", "auto-recharge"]),
                None,
                None,
            ),
            AccountCall::SaveAutoRecharge { settings } => {
                let mut body = settings.clone();
                body.insert("customerRef".into(), json!(me));
                (
                    Method::PUT,
                    client.url(&["v1", "sdk", "auto-recharge"]),
                    Some(Value::Object(body)),
                    None,
                )
            }
            AccountCall::CreatePaymentIntent {
                product,
                plan,
                currency,
                idempotency_key,
            } => {
                let mut body = Map::new();
                body.insert("customerRef".into(), json!(me));
                for (name, value) in [
                    ("productRef", product),
                    ("planRef", plan),
                    ("currency", currency),
                ] {
                    if let Some(value) = value {
                        body.insert(name.into(), json!(value));
                    }
                }
                (
                    Method::POST,
                    client.url(&["v1", "sdk", "payment-intents"]),
                    Some(Value::Object(body)),
                    Some(idempotency_key.as_str()),
                )
            }
            AccountCall::CreateTopupPaymentIntent {
                amount,
                currency,
                auto_recharge,
                idempotency_key,
            } => {
                let mut body = Map::new();
                body.insert("customerRef".into(), json!(me));
                body.insert("purpose".into(), json!("credit_topup"));
                body.insert("amount".into(), json!(amount));
                if let Some(currency) = currency {
                    body.insert("currency".into(), json!(currency));
                }
                if let Some(settings) = auto_recharge {
                    body.insert("autoRecharge".into(), Value::Object(settings.clone()));
                }
                (
                    Method::POST,
                    client.url(&["v1", "sdk", "payment-intents"]),
                    Some(Value::Object(body)),
                    Some(idempotency_key.as_str()),
                )
            }
            AccountCall::ProcessPayment {
                payment_intent,
                product,
                plan,
            } => {
                let mut body = Map::new();
                body.insert("customerRef".into(), json!(me));
                body.insert("productRef".into(), json!(product));
                if let Some(plan) = plan {
                    body.insert("planRef".into(), json!(plan));
                }
                (
                    Method::POST,
                    client.url(&["v1", "sdk", "payment-intents", payment_intent, "process"]),
                    Some(Value::Object(body)),
                    None,
                )
            }
            AccountCall::ProcessTopupPayment { payment_intent } => (
                Method::POST,
                client.url(&["v1", "sdk", "payment-intents", payment_intent, "process"]),
                Some(json!({ "customerRef": me })),
                None,
            ),
            AccountCall::AttachBusinessDetails {
                payment_intent,
                details,
            } => {
                let mut body = details.clone();
                body.insert("customerRef".into(), json!(me));
                (
                    Method::POST,
                    client.url(&[
                        "v1",
                        "sdk",
                        "payment-intents",
                        payment_intent,
                        "business-details",
                    ]),
                    Some(Value::Object(body)),
                    None,
                )
            }
            other => return Err(BackendError::Unsupported(other.what())),
        };
        let answer =
            client
                .call(method, url, body.as_ref(), key)
                .await
                .map_err(|err| match err {
                    // SolvaPay (or the dev server) does not offer it: the frontend hears so.
                    SolvaPayError::BadRequest { status: 501, .. } => {
                        BackendError::Unsupported(call.what())
                    }
                    other => other.into(),
                })?;
        // An empty answer (a DELETE) is a success without a body.
        let answer: Value = answer.json().unwrap_or_else(|_| json!({ "success": true }));
        Ok(match call {
            AccountCall::Product { .. } => unwrap_data(answer),
            AccountCall::Plans { .. } => {
                let plans = match answer {
                    Value::Array(plans) => plans,
                    Value::Object(mut object) => match object.remove("plans") {
                        Some(Value::Array(plans)) => plans,
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                Value::Array(plans.into_iter().map(unwrap_data).collect())
            }
            AccountCall::CreatePaymentIntent { .. }
            | AccountCall::CreateTopupPaymentIntent { .. } => payment_intent(answer, customer),
            AccountCall::ProcessTopupPayment { .. } => topup_status(&answer),
            _ => answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_plans_are_unwrapped_and_topups_fail_closed() {
        let product =
            unwrap_data(json!({"reference": "prd_a", "data": {"name": "A", "reference": "x"}}));
        assert_eq!(product, json!({"reference": "prd_a", "name": "A"}));
        assert_eq!(
            topup_status(&json!({"status": "succeeded"})),
            json!({"status": "succeeded"})
        );
        assert_eq!(
            topup_status(&json!({"status": "weird"})),
            json!({"status": "failed"})
        );
        assert_eq!(topup_status(&json!({})), json!({"status": "failed"}));
    }
}
