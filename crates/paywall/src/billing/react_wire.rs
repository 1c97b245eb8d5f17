//! The JSON of SolvaPay's React components (`@solvapay/react`'s HTTP transport): what
//! each route's request may carry, checked strictly, and the shapes its hooks read
//! (`PurchaseInfo`, `TransportBalanceResult`, `TransportLimitsResult`,
//! `GetUsageResult`).
//!
//! Members naming a customer (`customerRef` in business details, the `customer` prefill
//! of a payment) are dropped, never used: the caller is the bearer of the token. Any
//! other member a route does not know is refused.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::wire::{BadRequest, CALLER_MEMBERS};
use crate::account::{Credits, Purchase};
use crate::engine::ProductState;

/// The largest top-up a caller may ask for, in minor units (one million major units).
const MAX_TOPUP: u64 = 100_000_000;

/// A POST or PUT body: empty, or a JSON object whose members are all in `known`
/// (members naming a customer are dropped first).
pub(super) fn body(bytes: &[u8], known: &[&str]) -> Result<Map<String, Value>, BadRequest> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(BadRequest("the body must be a JSON object".into()));
    };
    object.retain(|name, _| !CALLER_MEMBERS.contains(&name.as_str()));
    if let Some(unknown) = object.keys().find(|name| !known.contains(&name.as_str())) {
        return Err(BadRequest(format!("`{unknown}` is not accepted here")));
    }
    Ok(object)
}

/// An optional string member: absent or `null` is `None`; anything but a non-empty
/// string of at most 512 bytes is refused.
pub(super) fn text(object: &Map<String, Value>, name: &str) -> Result<Option<String>, BadRequest> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if !value.is_empty() && value.len() <= 512 => {
            Ok(Some(value.clone()))
        }
        Some(_) => Err(BadRequest(format!("`{name}` must be a non-empty string"))),
    }
}

/// A required string member.
pub(super) fn required(object: &Map<String, Value>, name: &str) -> Result<String, BadRequest> {
    text(object, name)?.ok_or_else(|| BadRequest(format!("`{name}` is required")))
}

/// A reference that goes into a provider URL (`pur_…`, `pi_…`): letters, digits, `_`
/// and `-`, at most 128.
pub(super) fn reference(object: &Map<String, Value>, name: &str) -> Result<String, BadRequest> {
    let value = required(object, name)?;
    let valid = value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(value)
    } else {
        Err(BadRequest(format!("`{name}` is not a valid reference")))
    }
}

/// The top-up amount: a whole number of minor units, 1 to [`MAX_TOPUP`].
pub(super) fn amount(object: &Map<String, Value>) -> Result<u64, BadRequest> {
    object
        .get("amount")
        .and_then(Value::as_u64)
        .filter(|amount| (1..=MAX_TOPUP).contains(amount))
        .ok_or_else(|| {
            BadRequest(format!(
                "`amount` must be a whole number of minor units from 1 to {MAX_TOPUP}"
            ))
        })
}

/// An optional object member.
pub(super) fn object_member(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<Map<String, Value>>, BadRequest> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner.clone())),
        Some(_) => Err(BadRequest(format!("`{name}` must be an object"))),
    }
}

/// Business details: `isBusiness` (a boolean, required) and the optional strings.
pub(super) fn business_details(
    object: &Map<String, Value>,
) -> Result<Map<String, Value>, BadRequest> {
    let mut details = Map::new();
    match object.get("isBusiness") {
        Some(Value::Bool(is)) => details.insert("isBusiness".into(), Value::Bool(*is)),
        _ => return Err(BadRequest("`isBusiness` must be a boolean".into())),
    };
    for name in ["businessName", "country", "taxId", "taxIdType"] {
        if let Some(value) = text(object, name)? {
            details.insert(name.into(), Value::String(value));
        }
    }
    Ok(details)
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A purchase as `PurchaseInfo`: `amount` is what `hasPaidPurchase` reads, `startDate`
/// orders them, `planSnapshot` marks a plan (not a top-up).
pub(super) fn purchase(purchase: &Purchase) -> Value {
    let mut info = Map::new();
    info.insert("reference".into(), json!(purchase.reference));
    let name = purchase
        .product_name
        .as_deref()
        .unwrap_or(&purchase.product);
    info.insert("productName".into(), json!(name));
    info.insert("productRef".into(), json!(purchase.product));
    info.insert("status".into(), json!(purchase.status));
    if let Some(started) = purchase.started_at {
        info.insert("startDate".into(), json!(rfc3339(started)));
    }
    if let Some(cancelled) = purchase.cancelled_at {
        info.insert("cancelledAt".into(), json!(rfc3339(cancelled)));
    }
    if let Some(amount) = purchase.amount {
        info.insert("amount".into(), json!(amount));
        info.insert("originalAmount".into(), json!(amount));
    }
    if let Some(currency) = &purchase.currency {
        info.insert("currency".into(), json!(currency));
    }
    if let Some(plan) = &purchase.plan {
        info.insert("planRef".into(), json!(plan));
        info.insert("planSnapshot".into(), json!({ "reference": plan }));
    }
    Value::Object(info)
}

/// `TransportBalanceResult`: a provider without credits shows a balance of 0.
pub(super) fn balance(credits: Option<&Credits>) -> Value {
    let balance = credits.map_or(0, |c| c.balance);
    let currency = credits
        .and_then(|c| c.currency.clone())
        .unwrap_or_else(|| "USD".into());
    let per_minor_unit = credits.and_then(|c| c.per_minor_unit).unwrap_or(1).max(1);
    json!({
        "credits": balance,
        "displayCurrency": currency,
        "creditsPerMinorUnit": per_minor_unit,
        "displayExchangeRate": 1,
    })
}

/// `TransportLimitsResult` (with the plan and allowance the billing state shows).
pub(super) fn limits(meter: &str, state: &ProductState) -> Value {
    json!({
        "withinLimits": state.remaining > 0 && state.limits.within_limits,
        "remaining": state.remaining,
        "meterName": meter,
        "activationRequired": state.limits.activation_required,
        "plan": state.limits.plan,
        "allowance": state.limits.allowance,
    })
}

/// `GetUsageResult` for one meter: `total` is the plan's allowance per period.
pub(super) fn usage(meter: &str, state: &ProductState) -> Value {
    let total = state.limits.allowance;
    let used = total.map_or(0, |total| total.saturating_sub(state.remaining));
    let percent = total
        .filter(|total| *total > 0)
        .map(|total| ((used as f64 / total as f64) * 10_000.0).round() / 100.0);
    let mut usage = json!({
        "meterRef": meter,
        "total": total,
        "used": used,
        "remaining": total.map(|_| state.remaining),
        "percentUsed": percent.map(|p| p.min(100.0)),
    });
    if let (Some(resets), Value::Object(fields)) = (state.limits.resets_at, &mut usage) {
        fields.insert("periodEnd".into(), json!(rfc3339(resets)));
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_members_are_dropped_and_unknown_ones_refused() {
        let known = ["paymentIntentId", "isBusiness"];
        let object = body(
            br#"{"paymentIntentId":"pi_1","isBusiness":true,"customerRef":"cus_other"}"#,
            &known,
        )
        .expect("customerRef is dropped");
        assert!(!object.contains_key("customerRef"));
        assert!(body(br#"{"paymentIntentId":"pi_1","extra":1}"#, &known).is_err());
        assert!(body(b"[]", &known).is_err());
        assert_eq!(body(b" ", &known).map(|o| o.len()), Ok(0));
    }

    #[test]
    fn references_and_amounts_are_checked() {
        let parse = |text: &str| body(text.as_bytes(), &["purchaseRef", "amount"]);
        let ok = parse(r#"{"purchaseRef":"pur_ABC-1"}"#).expect("object");
        assert_eq!(reference(&ok, "purchaseRef"), Ok("pur_ABC-1".into()));
        for bad in [
            r#"{"purchaseRef":"../admin"}"#,
            r#"{"purchaseRef":"a/b"}"#,
            r#"{"purchaseRef":""}"#,
            r#"{"purchaseRef":7}"#,
            r#"{}"#,
        ] {
            let object = parse(bad).expect("object");
            assert!(reference(&object, "purchaseRef").is_err(), "{bad}");
        }
        for (text, valid) in [
            (r#"{"amount":500}"#, true),
            (r#"{"amount":0}"#, false),
            (r#"{"amount":-5}"#, false),
            (r#"{"amount":2.5}"#, false),
            (r#"{"amount":"500"}"#, false),
            (r#"{"amount":100000001}"#, false),
        ] {
            let object = parse(text).expect("object");
            assert_eq!(amount(&object).is_ok(), valid, "{text}");
        }
    }

    #[test]
    fn a_paid_purchase_carries_what_has_paid_purchase_reads() {
        let paid = Purchase::new("pur_1", "prd_a", "active")
            .with_plan("pln_pro")
            .with_amount(900, "USD")
            .with_times(Some(SystemTime::UNIX_EPOCH), None);
        let info = purchase(&paid);
        assert_eq!(info["amount"], 900);
        assert_eq!(info["productName"], "prd_a");
        assert_eq!(info["startDate"], "1970-01-01T00:00:00Z");
        assert_eq!(info["planSnapshot"]["reference"], "pln_pro");
        let balance = balance(None);
        assert_eq!(balance["credits"], 0);
        assert_eq!(balance["displayExchangeRate"], 1);
    }
}
