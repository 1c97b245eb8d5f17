//! [`handle`]: the whole webhook endpoint, independent of the web framework, and the
//! answers it gives ([`Handled`]).

use serde_json::Value;

use super::{WebhookError, WebhookVerifier};

/// What a webhook endpoint answers: a status and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Handled {
    /// 200 for verified events (acted on or ignored), 400 otherwise.
    pub status: u16,
    /// `{"received": true}` or the error body.
    pub body: Value,
}

/// The whole webhook endpoint, independent of the web framework: verifies `signature`
/// (the `SV-Signature` value) against the raw `body`, then, for purchase, customer,
/// subscription and payment events that name a customer, makes `paywall` refresh that
/// customer's budgets on their next request.
pub async fn handle(
    verifier: &WebhookVerifier,
    paywall: &paywall::Paywall,
    signature: Option<&str>,
    body: &[u8],
) -> Handled {
    let event = match verifier.verify_event(signature, body) {
        Ok(event) => event,
        Err(err) => return refused(&err),
    };
    // A signed delivery replayed within the tolerance is acknowledged and changes
    // nothing (each replay would otherwise cost a limits call).
    if !event.id.is_empty()
        && !verifier
            .seen
            .entry(event.id.clone())
            .or_insert(())
            .is_fresh()
    {
        tracing::debug!(event = %event.id, "webhook replayed: already handled");
        return Handled {
            status: 200,
            body: serde_json::json!({ "received": true, "duplicate": true }),
        };
    }
    match event.customer_ref() {
        Some(customer) if event.affects_allowance() => {
            tracing::info!(event = %event.id, kind = %event.kind, customer, "webhook: refreshing the customer's budgets");
            paywall
                .invalidate_customer(&paywall::CustomerRef::new(customer))
                .await;
        }
        _ => tracing::debug!(event = %event.id, kind = %event.kind, "webhook ignored"),
    }
    Handled {
        status: 200,
        body: serde_json::json!({ "received": true }),
    }
}

/// The 400 answer to a webhook that failed verification.
pub fn refused(err: &WebhookError) -> Handled {
    tracing::warn!(error = %err, "webhook refused");
    let message = match err {
        WebhookError::InvalidPayload(_) => "The payload is not a webhook event.",
        _ => "The SV-Signature header is missing, malformed, stale or does not match.",
    };
    Handled {
        status: 400,
        body: paywall::adapter::error_body("Bad Request", "invalid_signature", message),
    }
}

/// The 413 answer to a webhook body over [`MAX_WEBHOOK_BYTES`](super::MAX_WEBHOOK_BYTES) (or cut short).
pub fn too_large() -> Handled {
    Handled {
        status: 413,
        body: paywall::adapter::error_body(
            "Payload Too Large",
            "invalid_payload",
            "The webhook body could not be read (too large or cut short).",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::signature_header;

    #[tokio::test]
    async fn a_replayed_delivery_is_acknowledged_and_changes_nothing() {
        use paywall::test_util::{HeaderResolver, MemoryBackend};
        use paywall::{Charge, Paywall};

        let backend = MemoryBackend::with_allowance(10);
        let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
            .build()
            .expect("paywall");
        let route = paywall.route(Charge::new("prd_x")).expect("route");
        let head = || {
            http::Request::builder()
                .header("x-user", "ada")
                .body(())
                .expect("request")
                .into_parts()
                .0
        };
        let admit = || async {
            let admission = paywall.admit(&head(), &route).await.expect("admitted");
            admission.finish(http::StatusCode::OK).await;
        };
        admit().await;
        assert_eq!(backend.limits_calls(), 1);

        let verifier = WebhookVerifier::new("whsec_test_secret");
        let body = serde_json::json!({
            "id": "evt_once", "type": "purchase.created",
            "data": { "object": { "customerRef": "cus_ada" }, "previous_attributes": null },
        })
        .to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = signature_header("whsec_test_secret", now, body.as_bytes());
        let first = handle(&verifier, &paywall, Some(&header), body.as_bytes()).await;
        assert_eq!((first.status, first.body.get("duplicate")), (200, None));
        admit().await;
        assert_eq!(
            backend.limits_calls(),
            2,
            "the delivery refreshed the customer"
        );

        let replay = handle(&verifier, &paywall, Some(&header), body.as_bytes()).await;
        assert_eq!(replay.status, 200);
        assert_eq!(replay.body["duplicate"], true);
        admit().await;
        assert_eq!(backend.limits_calls(), 2, "the replay cost nothing");
    }
}
