//! The local customer portal: the page a portal session's link opens (the billing
//! routes' `POST /portal` hands out such links, valid 15 minutes), listing the
//! customer's purchases and usage, with a button that cancels an active purchase.
//!
//! `GET /portal/{session}` shows it; `POST /portal/{session}/cancel` (form `purchase`)
//! cancels that purchase if it is the session customer's, and tells the paywall to
//! refresh the customer's budgets.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use paywall::{CustomerRef, Paywall};

use crate::checkout::{declared_too_large, escape, Page, MAX_FORM_BYTES};
use crate::LocalBackend;

/// The path prefix the portal is served on.
pub const PATH: &str = "/portal";

#[derive(Clone)]
struct Portal {
    backend: LocalBackend,
    paywall: Option<Paywall>,
}

/// The portal routes, under [`PATH`], as an axum router.
pub fn router(backend: LocalBackend, paywall: Option<Paywall>) -> Router {
    Router::new()
        .route(&format!("{PATH}/{{session}}"), get(show))
        .route(&format!("{PATH}/{{session}}/cancel"), post(cancel))
        .with_state(Portal { backend, paywall })
}

fn expired() -> Page {
    Page::problem(
        404,
        "not_found",
        "This portal link is unknown or expired: open the portal again from the app.".into(),
    )
}

/// `GET /portal/{session}`: the session customer's purchases and usage.
pub async fn page(backend: &LocalBackend, session: &str) -> Page {
    let Some(customer) = backend.portal_customer(session) else {
        return expired();
    };
    let purchases = match backend.purchases_of(&customer).await {
        Ok(purchases) => purchases,
        Err(err) => return Page::failure(err),
    };
    let ledger = match backend.ledger(Some(&customer)).await {
        Ok(rows) => rows,
        Err(err) => return Page::failure(err),
    };
    let mut usage: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in ledger.iter().filter(|row| row.outcome == "success") {
        *usage
            .entry((row.product_ref.clone(), row.meter.clone()))
            .or_default() += row.units;
    }
    let session = escape(session);
    let purchases: String = purchases
        .iter()
        .map(|p| {
            let cancel = if p.status == "active" {
                format!(
                    "<form method=\"post\" action=\"{PATH}/{session}/cancel\">\
                     <input type=\"hidden\" name=\"purchase\" value=\"{reference}\">\
                     <button type=\"submit\">Cancel</button></form>",
                    reference = escape(&p.reference)
                )
            } else {
                String::new()
            };
            format!(
                "<li><code>{}</code>: {} ({}), {}{cancel}</li>",
                escape(&p.reference),
                escape(&p.product_name),
                escape(&p.plan_ref),
                escape(&p.status),
            )
        })
        .collect();
    let usage: String = usage
        .iter()
        .map(|((product, meter), units)| {
            format!(
                "<li><code>{}</code> {}: {units}</li>",
                escape(product),
                escape(meter)
            )
        })
        .collect();
    let none = |list: String, empty: &str| {
        if list.is_empty() {
            format!("<li>{empty}</li>")
        } else {
            list
        }
    };
    Page::html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your billing</title></head>
<body>
<h1>Your billing (local test mode)</h1>
<p>Customer <code>{customer}</code>.</p>
<h2>Purchases</h2><ul>{purchases}</ul>
<h2>Usage</h2><ul>{usage}</ul>
</body></html>
",
        customer = escape(&customer),
        purchases = none(purchases, "No purchases."),
        usage = none(usage, "No usage yet."),
    ))
}

/// `POST /portal/{session}/cancel` (form `purchase`): cancels it if it is the session
/// customer's active purchase.
pub async fn cancel_purchase(
    backend: &LocalBackend,
    paywall: Option<&Paywall>,
    session: &str,
    form: &[u8],
) -> Page {
    let Some(customer) = backend.portal_customer(session) else {
        return expired();
    };
    let purchase = form_urlencoded::parse(form)
        .find(|(name, _)| name == "purchase")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty());
    let Some(purchase) = purchase else {
        return Page::problem(
            400,
            "bad_request",
            "Expected the form field `purchase`.".into(),
        );
    };
    if let Err(err) = backend.cancel_purchase_of(&customer, &purchase).await {
        return Page::failure(err);
    }
    if let Some(paywall) = paywall {
        paywall
            .invalidate_customer(&CustomerRef::new(customer.as_str()))
            .await;
    }
    Page::html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cancelled</title></head>
<body><h1>Purchase cancelled</h1>
<p><code>{}</code> is cancelled. <a href=\"{PATH}/{}\">Back to your billing</a>.</p>
</body></html>
",
        escape(&purchase),
        escape(session),
    ))
}

async fn show(State(portal): State<Portal>, Path(session): Path<String>) -> Page {
    page(&portal.backend, &session).await
}

async fn cancel(
    State(portal): State<Portal>,
    Path(session): Path<String>,
    request: axum::extract::Request,
) -> Page {
    if !crate::checkout::from_own_page(request.headers()) {
        return crate::checkout::cross_site();
    }
    if declared_too_large(request.headers(), MAX_FORM_BYTES) {
        return Page::problem(413, "payload_too_large", "The form is too large.".into());
    }
    match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES as usize).await {
        Ok(body) => {
            cancel_purchase(&portal.backend, portal.paywall.as_ref(), &session, &body).await
        }
        Err(_) => Page::problem(413, "payload_too_large", "The form is too large.".into()),
    }
}
