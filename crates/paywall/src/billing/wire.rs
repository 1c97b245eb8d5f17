//! The JSON of the billing routes: what a request may carry (strictly: the caller is
//! never named in it) and what the answers look like.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::account::{CheckoutRequest, Credits, Purchase};
use crate::engine::ProductState;

/// Members that would name a customer: a request carrying one is refused, because the
/// caller is always the resolved identity.
pub(super) const CALLER_MEMBERS: [&str; 8] = [
    "customer",
    "customerRef",
    "customer_ref",
    "customerId",
    "externalRef",
    "external_ref",
    "email",
    "userId",
];

/// Why a request body is refused (400).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// The body of a POST: empty, or a JSON object that names no customer.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(BadRequest("the body must be a JSON object".into()));
    };
    if let Some(member) = CALLER_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(BadRequest(format!(
            "`{member}` is not accepted: the caller is the bearer of the token"
        )));
    }
    Ok(object)
}

/// `{"product", "plan"?, "returnUrl"?}` → a checkout request; a `returnUrl` must be an
/// absolute http(s) URL on one of `origins` (any, when empty).
pub(crate) fn checkout(
    object: &Map<String, Value>,
    origins: &[String],
) -> Result<CheckoutRequest, BadRequest> {
    let text = |name: &str| -> Result<Option<String>, BadRequest> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) if !value.is_empty() && value.len() <= 512 => {
                Ok(Some(value.clone()))
            }
            Some(_) => Err(BadRequest(format!("`{name}` must be a non-empty string"))),
        }
    };
    let product = text("product")?.ok_or_else(|| BadRequest("`product` is required".into()))?;
    let mut request = CheckoutRequest::new(product);
    request.plan = text("plan")?;
    request.return_url = match text("returnUrl")? {
        None => None,
        Some(url) => {
            let absolute = url::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            let Some(absolute) = absolute else {
                return Err(BadRequest(
                    "`returnUrl` must be an absolute http(s) URL".into(),
                ));
            };
            let origin = absolute.origin().ascii_serialization();
            if !origins.is_empty() && !origins.contains(&origin) {
                return Err(BadRequest(format!(
                    "`returnUrl` must be on an allowed origin, not {origin}"
                )));
            }
            Some(url)
        }
    };
    Ok(request)
}

fn rfc3339(time: Option<SystemTime>) -> Value {
    time.map_or(Value::Null, |t| {
        Value::from(humantime::format_rfc3339_seconds(t).to_string())
    })
}

/// One product and meter of the state answer.
pub(crate) fn product(product: &str, meter: &str, state: &ProductState) -> Value {
    json!({
        "product": product,
        "meter": meter,
        "plan": state.limits.plan,
        "remaining": state.remaining,
        "withinLimits": state.remaining > 0 && state.limits.within_limits,
        "allowance": state.limits.allowance,
        "resetsAt": rfc3339(state.limits.resets_at),
    })
}

/// The credits member of the state answer.
pub(crate) fn credits(credits: Option<&Credits>) -> Value {
    credits.map_or(Value::Null, |c| {
        json!({
            "balance": c.balance,
            "currency": c.currency,
            "perMinorUnit": c.per_minor_unit,
        })
    })
}

/// A purchase.
pub(crate) fn purchase(purchase: &Purchase) -> Value {
    json!({
        "reference": purchase.reference,
        "product": purchase.product,
        "plan": purchase.plan,
        "status": purchase.status,
        "startedAt": rfc3339(purchase.started_at),
        "cancelledAt": rfc3339(purchase.cancelled_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_never_name_the_caller() {
        assert_eq!(object(b"").map(|o| o.len()), Ok(0));
        assert!(object(b"[1]").is_err());
        assert!(object(b"not json").is_err());
        for member in CALLER_MEMBERS {
            let body = format!(r#"{{"product":"p","{member}":"cus_other"}}"#);
            assert!(object(body.as_bytes()).is_err(), "{member}");
        }
    }

    #[test]
    fn checkout_requests_are_checked() {
        let origins = ["https://app.example".to_owned()];
        let parse = |body: &str| object(body.as_bytes()).and_then(|o| checkout(&o, &origins));
        let ok =
            parse(r#"{"product":"prd_a","plan":"pln_b","returnUrl":"https://app.example/done"}"#)
                .expect("valid");
        assert_eq!(ok.product, "prd_a");
        assert_eq!(ok.plan.as_deref(), Some("pln_b"));
        assert!(!ok.idempotency_key.is_empty());
        for bad in [
            r#"{}"#,
            r#"{"product":""}"#,
            r#"{"product":7}"#,
            r#"{"product":"p","returnUrl":"javascript:alert(1)"}"#,
            r#"{"product":"p","returnUrl":"/relative"}"#,
            r#"{"product":"p","returnUrl":"https://evil.example/done"}"#,
            r#"{"product":"p","returnUrl":"https://app.example.evil.example/"}"#,
            r#"{"product":"p","returnUrl":"http://app.example/done"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // No origins configured: any absolute http(s) URL.
        let open = object(br#"{"product":"p","returnUrl":"https://elsewhere.example/"}"#)
            .and_then(|o| checkout(&o, &[]));
        assert!(open.is_ok());
    }
}
