//! What a refused tool call answers: the gate MCP clients understand (a normal tool
//! result whose `structuredContent` says `payment_required` or `activation_required`,
//! compatible with SolvaPay's MCP adapter), or a JSON-RPC error for what is not the
//! caller's to fix by paying.

use paywall::adapter::PaymentRequired;
use paywall::Rejection;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::ErrorData;
use serde_json::{json, Value};

/// The tool result for a call refused for payment:
/// `{"content": [{"type": "text", "text": …}], "isError": false, "structuredContent":
/// {"kind", "product", "checkoutUrl", "message", "remaining"}}` (`checkoutUrl` absent
/// when the backend has no link, never empty).
pub fn payment_required(payment: &PaymentRequired) -> CallToolResult {
    let message = payment.message();
    let mut structured = json!({
        "kind": payment.kind(),
        "product": payment.product,
        "message": message,
        "remaining": payment.remaining,
    });
    let mut text = message;
    if let Some(url) = payment
        .checkout_url
        .as_deref()
        .filter(|url| !url.is_empty())
    {
        structured["checkoutUrl"] = Value::from(url);
        text = format!("{text} Checkout: {url}");
    }
    if let Some(url) = &payment.confirmation_url {
        structured["confirmationUrl"] = Value::from(url.as_str());
    }
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// The answer to a tool call the paywall refused: the payment gate as a tool result,
/// anything else as a JSON-RPC error whose `data` carries the paywall's `kind` (and
/// `retryAfter` in seconds for an outage). Tools that reserve units themselves
/// (through [`Usage`](paywall::Usage)) return this when the reservation fails.
pub fn refusal(rejection: &Rejection) -> Result<CallToolResult, ErrorData> {
    let data = |extra: Value| {
        let mut data = json!({ "kind": rejection.kind() });
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        Some(data)
    };
    match rejection {
        Rejection::PaymentRequired(payment) => Ok(payment_required(payment)),
        Rejection::BillingUnavailable { retry_after }
        | Rejection::IdentityUnavailable { retry_after } => Err(ErrorData::internal_error(
            "billing is temporarily unavailable; retry later",
            data(json!({ "retryAfter": retry_after.as_secs().max(1) })),
        )),
        Rejection::CustomerRejected | Rejection::CustomerConflict => Err(
            ErrorData::invalid_request("the billing provider refused this caller", data(json!({}))),
        ),
        _ => Err(ErrorData::invalid_request(
            "the caller is not authenticated",
            data(json!({})),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn payment(checkout_url: Option<&str>) -> PaymentRequired {
        PaymentRequired {
            activation_required: false,
            product: "prd_x".into(),
            checkout_url: checkout_url.map(str::to_owned),
            confirmation_url: None,
            plan: None,
            remaining: 1,
            units: 2,
            allowance: None,
            period: None,
            retry_after: None,
        }
    }

    #[test]
    fn the_gate_is_a_normal_tool_result_with_a_link_or_none() {
        let result = payment_required(&payment(Some("https://pay.example/c")));
        assert_eq!(result.is_error, Some(false));
        let structured = result.structured_content.expect("structured");
        assert_eq!(structured["kind"], "payment_required");
        assert_eq!(structured["checkoutUrl"], "https://pay.example/c");
        assert_eq!(structured["remaining"], 1);
        for missing in [None, Some("")] {
            let structured = payment_required(&payment(missing))
                .structured_content
                .expect("structured");
            assert!(
                structured.get("checkoutUrl").is_none(),
                "never an empty link"
            );
        }
    }

    #[test]
    fn outages_are_errors_with_a_retry_time_not_gates() {
        let err = refusal(&Rejection::BillingUnavailable {
            retry_after: Duration::from_secs(3),
        })
        .expect_err("an error");
        let data = err.data.expect("data");
        assert_eq!(data["kind"], "billing_unavailable");
        assert_eq!(data["retryAfter"], 3);
    }
}
