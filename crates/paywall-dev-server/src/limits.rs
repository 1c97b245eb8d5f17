//! `POST /v1/sdk/limits` and `POST /v1/sdk/checkout-sessions`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paywall_local::LocalError;
use paywall_local::SessionRecord;
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
    if request.customer_ref.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "Missing customerRef");
    }
    if let Some(url) = &request.return_url {
        if !is_web_url(url) {
            return api_error(StatusCode::BAD_REQUEST, "returnUrl must be an http(s) URL");
        }
    }
    // Only customerRef is required: without productRef, the ledger's first product.
    let product = match request.product_ref.filter(|p| !p.is_empty()) {
        Some(product) => product,
        None => match dev.ledger.products().await {
            Ok(products) => match products.into_iter().next() {
                Some(product) => product,
                None => return api_error(StatusCode::NOT_FOUND, "No product to check out"),
            },
            Err(err) => return ledger_error(err),
        },
    };
    match dev
        .ledger
        .open_checkout_session(
            &request.customer_ref,
            &product,
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

/// Whether `url` is an absolute http(s) URL: the only links the checkout renders.
pub(crate) fn is_web_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::is_web_url;

    #[test]
    fn only_http_links_are_web_urls() {
        for ok in ["https://shop.example/done", "http://127.0.0.1:3000/x?y=1"] {
            assert!(is_web_url(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>",
            "//evil.example",
            "/relative",
            "https://x.example/\njavascript:",
            "http://a b",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}
