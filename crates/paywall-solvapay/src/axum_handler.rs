//! The webhook endpoint as an axum [`Router`]: verify, then unlock paying customers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paywall::Paywall;

use crate::webhook::{
    handle, refused, too_large, WebhookVerifier, MAX_WEBHOOK_BYTES, SIGNATURE_HEADER,
};

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

async fn receive(State(hooks): State<Webhooks>, request: axum::extract::Request) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or("").to_owned());
    // An unsigned, malformed or stale request is refused before its body is read.
    if let Err(err) = hooks.verifier.precheck(signature.as_deref()) {
        let answer = refused(&err);
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
        return (status, Json(answer.body)).into_response();
    }
    // Bodies are read a bounded number at a time (anyone can pass the precheck).
    let _reading = match hooks.verifier.admit() {
        Ok(place) => place,
        Err(busy) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "1")],
                Json(busy.body),
            )
                .into_response()
        }
    };
    let body = match declared {
        Some(length) if length > MAX_WEBHOOK_BYTES => None,
        _ => axum::body::to_bytes(request.into_body(), MAX_WEBHOOK_BYTES as usize)
            .await
            .ok(),
    };
    let Some(body) = body else {
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(too_large().body)).into_response();
    };
    let handled = handle(&hooks.verifier, &hooks.paywall, signature.as_deref(), &body).await;
    let status = StatusCode::from_u16(handled.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(handled.body)).into_response()
}
