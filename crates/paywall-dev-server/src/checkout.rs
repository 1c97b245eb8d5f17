//! The checkout page a checkout session links to; paying buys the plan and sends
//! `purchase.created`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use tracing::info;

use crate::error::{api_error, ledger_error};
use crate::Shared;

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) async fn page(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
    let session = match dev.ledger.checkout_session(&id).await {
        Ok(Some(session)) => session,
        Ok(None) => return api_error(StatusCode::NOT_FOUND, "Checkout session not found"),
        Err(err) => return ledger_error(err),
    };
    let plan = match dev.ledger.paid_plan(&session.product_ref).await {
        Ok(plan) => plan,
        Err(err) => return ledger_error(err),
    };
    let action = if session.status == "complete" {
        "<p>This session is already paid.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/checkout/{}\"><button type=\"submit\">Pay (no money moves)</button></form>",
            escape(&session.id)
        )
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title></head><body>\n\
         <h1>Checkout (paywall dev server)</h1>\n\
         <p>Customer <code>{}</code>, product <code>{}</code>.</p>\n\
         <p>Plan <strong>{}</strong>: {} units per period for {}.{:02}.</p>\n{}\n</body></html>\n",
        escape(&session.customer_ref),
        escape(&session.product_ref),
        escape(&plan.name),
        plan.units,
        plan.price_cents / 100,
        plan.price_cents % 100,
        action
    ))
    .into_response()
}

pub(crate) async fn pay(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
    let (session, plan, bought) = match dev.ledger.complete_checkout_session(&id).await {
        Ok(done) => done,
        Err(err) => return ledger_error(err),
    };
    if bought {
        info!(session = %session.id, customer = %session.customer_ref, "dev checkout paid");
        crate::webhooks::deliver(
            &dev,
            "purchase.created",
            json!({
                "reference": session.purchase_ref,
                "customerRef": session.customer_ref,
                "productRef": session.product_ref,
                "planRef": plan.reference,
                "status": "active",
            }),
        );
    }
    let back = session
        .return_url
        .as_deref()
        .filter(|url| crate::limits::is_web_url(url))
        .map(|url| format!("<p><a href=\"{}\">Return</a></p>", escape(url)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Paid</title></head><body>\n\
         <h1>Payment received</h1>\n<p>Customer <code>{}</code> is on plan <strong>{}</strong>: {} units per period.</p>\n{}\n</body></html>\n",
        escape(&session.customer_ref),
        escape(&plan.name),
        plan.units,
        back
    ))
    .into_response()
}
