//! [`WebhookEvent`]: a SolvaPay webhook in SolvaPay's envelope, the customer it is
//! about, and whether it changes what that customer may do ([`ALLOWANCE_EVENTS`]).

use serde::Deserialize;
use serde_json::Value;

/// A SolvaPay webhook event, in SolvaPay's envelope: `{id, type, created,
/// api_version, data: {object, previous_attributes}, livemode, request}` (the official
/// SDK's `WebhookEvent`). Purchases and credits name their customer in
/// `data.object.customerRef`, customers are `data.object` themselves (`reference`).
/// The earlier flat shape (`data` being the object) is still read.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WebhookEvent {
    /// `evt_...` (empty when the event has none).
    #[serde(default, deserialize_with = "crate::wire::lenient::string")]
    pub id: String,
    /// For example `purchase.created`, `customer.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds, when sent.
    #[serde(default, deserialize_with = "crate::wire::lenient::option")]
    pub created: Option<i64>,
    /// The event's data: `{object, previous_attributes}`.
    #[serde(default)]
    pub data: Value,
}

/// The event types after which a customer's allowance may differ: their budgets are
/// refreshed at once. Every other type (informative ones such as
/// `purchase.renewal_reminder`, and types SolvaPay adds later) is acknowledged and
/// changes nothing.
pub const ALLOWANCE_EVENTS: &[&str] = &[
    "purchase.created",
    "purchase.activated",
    "purchase.updated",
    "purchase.renewed",
    "purchase.plan_changed",
    "purchase.cancelled",
    "purchase.expired",
    "purchase.suspended",
    "purchase.past_due",
    "purchase.refunded",
    "purchase.reactivated",
    "purchase.trial_converted",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.credit.topped_up",
    "customer.credit.granted",
    "customer.credit.adjusted",
    "customer.credit.debited",
    "customer.credit.exhausted",
    "checkout_session.completed",
    "payment.succeeded",
    "payment.refunded",
];

impl WebhookEvent {
    /// The object the event is about: `data.object`, or `data` itself in the flat
    /// shape.
    pub fn object(&self) -> &Value {
        match self.data.get("object") {
            Some(object) if object.is_object() => object,
            _ => &self.data,
        }
    }

    /// The customer the event is about, when it names one: `customerRef` (or
    /// `customer_ref`, `customer`, `customer.reference`) of the object, and for
    /// `customer.*` events the object's own `reference`.
    pub fn customer_ref(&self) -> Option<&str> {
        let object = self.object();
        let direct = object
            .get("customerRef")
            .or_else(|| object.get("customer_ref"))
            .and_then(Value::as_str);
        let nested = || {
            object.get("customer").and_then(|c| {
                c.as_str()
                    .or_else(|| c.get("reference").and_then(Value::as_str))
            })
        };
        let own = || {
            (self.kind.starts_with("customer.") && !self.kind.starts_with("customer.credit."))
                .then(|| object.get("reference").and_then(Value::as_str))
                .flatten()
        };
        direct
            .or_else(nested)
            .or_else(own)
            .filter(|r| r.starts_with("cus_"))
    }

    /// Whether the event can change what a customer may use ([`ALLOWANCE_EVENTS`]).
    pub fn affects_allowance(&self) -> bool {
        ALLOWANCE_EVENTS.contains(&self.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_customer() {
        let event = |kind: &str, data: Value| WebhookEvent {
            id: "evt".into(),
            kind: kind.into(),
            created: None,
            data,
        };
        assert_eq!(
            event(
                "purchase.created",
                serde_json::json!({"customerRef": "cus_1"})
            )
            .customer_ref(),
            Some("cus_1")
        );
        assert_eq!(
            event(
                "purchase.created",
                serde_json::json!({"customer": {"reference": "cus_2"}})
            )
            .customer_ref(),
            Some("cus_2")
        );
        assert_eq!(
            event(
                "customer.updated",
                serde_json::json!({"reference": "cus_3"})
            )
            .customer_ref(),
            Some("cus_3")
        );
        assert_eq!(
            event("product.updated", serde_json::json!({"reference": "prd_1"})).customer_ref(),
            None
        );
        assert!(!event("product.updated", Value::Null).affects_allowance());
        assert!(event("purchase.cancelled", Value::Null).affects_allowance());
    }

    #[test]
    fn the_envelope_names_its_customer_in_data_object() {
        let envelope = |kind: &str, object: Value| -> WebhookEvent {
            serde_json::from_value(serde_json::json!({
                "id": "evt_1", "type": kind, "created": 1_740_000_000,
                "api_version": "2025-10-01",
                "data": { "object": object, "previous_attributes": null },
                "livemode": false,
                "request": { "id": null, "idempotency_key": null },
                "unknown": ["extras", "are", "ignored"],
            }))
            .expect("the SDK's WebhookEvent")
        };
        let purchase = envelope(
            "purchase.created",
            serde_json::json!({"reference": "pur_1", "customerRef": "cus_9", "status": "active"}),
        );
        assert_eq!(purchase.customer_ref(), Some("cus_9"));
        assert!(purchase.affects_allowance());
        let customer = envelope(
            "customer.updated",
            serde_json::json!({"id": "cus_8", "created": 1, "product": null, "reference": "cus_8"}),
        );
        assert_eq!(customer.customer_ref(), Some("cus_8"));
        let credit = envelope(
            "customer.credit.topped_up",
            serde_json::json!({"reference": "crd_1", "customerRef": "cus_7"}),
        );
        assert_eq!(credit.customer_ref(), Some("cus_7"));
        let reminder = envelope(
            "purchase.renewal_reminder",
            serde_json::json!({"customerRef": "cus_7"}),
        );
        assert!(!reminder.affects_allowance(), "informative");
        // `data.object` that is not an object: nothing to act on, never a panic.
        let odd = envelope("purchase.created", serde_json::json!("cus_6"));
        assert_eq!(odd.customer_ref(), None);
    }
}
