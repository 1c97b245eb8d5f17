//! `POST /v1/sdk/limits` and `POST /v1/sdk/checkout-sessions`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::directory::SessionRecord;
use paywall_local::LocalError;
use paywall_solvapay::wire;
use serde_json::Value;

use crate::error::{api_error, bad_json, ledger_error};
use crate::{Dev, Shared};

pub(crate) fn checkout_link(dev: &Dev, session: &SessionRecord) -> String {
    format!("{}/checkout/{}", dev.config.public_url, session.id)
}

pub(crate) async fn limits(
    State(dev): State<Shared>,
    body: Result<Json<wire::CheckLimits>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if request.customer_ref.is_empty() || request.product_ref.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "Missing customerRef or productRef");
    }
    let meter = request
        .meter_name
        .clone()
        .unwrap_or_else(|| "requests".into());
    let allowance = match dev
        .ledger
        .allowance(&request.customer_ref, &request.product_ref, &meter)
        .await
    {
        Ok(allowance) => allowance,
        Err(err) => return ledger_error(err),
    };
    let offers_checkout = allowance.offers_checkout();
    let limits = allowance.limits;
    let mut answer = wire::LimitResponse {
        within_limits: limits.within_limits,
        remaining: limits.remaining as f64,
        meter_name: Some(meter),
        activation_required: Some(false),
        product: Some(wire::ProductSummary {
            reference: request.product_ref.clone(),
            name: None,
        }),
        plan: limits.plan.map(Value::String),
        ..wire::LimitResponse::default()
    };
    if request.include_checkout_session == Some(true) && offers_checkout {
        match dev
            .ledger
            .open_checkout_session(&request.customer_ref, &request.product_ref, None, None)
            .await
        {
            Ok(session) => {
                answer.checkout_url = Some(checkout_link(&dev, &session));
                answer.checkout_session_id = Some(session.id);
            }
            Err(LocalError::NotFound(_)) => {} // no paid plan to sell
            Err(err) => return ledger_error(err),
        }
    }
    Json(answer).into_response()
}

pub(crate) async fn create_session(
    State(dev): State<Shared>,
    body: Result<Json<wire::CreateCheckoutSession>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    let Some(product) = request.product_ref.as_deref().filter(|p| !p.is_empty()) else {
        return api_error(StatusCode::BAD_REQUEST, "Missing customerRef or productRef");
    };
    if request.customer_ref.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "Missing customerRef or productRef");
    }
    match dev
        .ledger
        .open_checkout_session(
            &request.customer_ref,
            product,
            request.plan_ref.as_deref(),
            request.return_url.as_deref(),
        )
        .await
    {
        Ok(session) => (
            StatusCode::CREATED,
            Json(wire::CheckoutSession {
                checkout_url: checkout_link(&dev, &session),
                session_id: session.id,
            }),
        )
            .into_response(),
        Err(err) => ledger_error(err),
    }
}
