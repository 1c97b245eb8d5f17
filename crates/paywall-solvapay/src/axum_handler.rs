//! The webhook endpoint as an axum [`Router`]: verify, then unlock paying customers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paywall::{CustomerRef, Paywall};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::webhook::{WebhookError, WebhookVerifier, SIGNATURE_HEADER};

/// Where [`router`] listens.
pub const PATH: &str = "/webhooks/solvapay";

#[derive(Clone)]
struct Webhooks {
    verifier: WebhookVerifier,
    paywall: Paywall,
}

/// `POST /webhooks/solvapay`: verifies `SV-Signature`, then, for purchase, customer,
/// subscription and payment events that name a customer, makes the paywall refresh that
/// customer's budgets on their next request, so a customer who has just paid is
/// unlocked at once rather than after the cache TTL.
///
/// Answers 200 `{"received": true}` to verified events (also those it ignores) and 400
/// with `kind: "invalid_signature"` otherwise.
///
/// ```
/// # fn wire(paywall: paywall::Paywall) {
/// use paywall_solvapay::{axum_handler, webhook::WebhookVerifier};
///
/// let app: axum::Router = axum::Router::new()
///     .merge(axum_handler::router(WebhookVerifier::new("whsec_..."), paywall));
/// # let _ = app;
/// # }
/// ```
pub fn router(verifier: WebhookVerifier, paywall: Paywall) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .with_state(Webhooks { verifier, paywall })
}

async fn receive(State(hooks): State<Webhooks>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or(""));
    let event = match hooks.verifier.verify_event(header, &body) {
        Ok(event) => event,
        Err(err) => {
            warn!(error = %err, "webhook refused");
            let message = match err {
                WebhookError::InvalidPayload(_) => "The payload is not a webhook event.",
                _ => "The SV-Signature header is missing, malformed, stale or does not match.",
            };
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "success": false,
                    "error": "Bad Request",
                    "kind": "invalid_signature",
                    "message": message,
                })),
            )
                .into_response();
        }
    };
    match event.customer_ref() {
        Some(customer) if event.affects_allowance() => {
            info!(event = %event.id, kind = %event.kind, customer, "webhook: refreshing the customer's budgets");
            hooks
                .paywall
                .invalidate_customer(&CustomerRef::new(customer));
        }
        _ => debug!(event = %event.id, kind = %event.kind, "webhook ignored"),
    }
    Json(json!({ "received": true })).into_response()
}
