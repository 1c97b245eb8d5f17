//! The local checkout: pages where "paying" moves a customer to the paid plan.
//!
//! `GET /checkout?customer=cus_...&product=prd_...` shows the plan and a pay button;
//! `POST /checkout` (form fields `customer`, `product`) buys it and tells the paywall to
//! refresh that customer's budgets at once. No money moves: it is the embedded
//! backend's stand-in for a provider's hosted checkout.
//!
//! ```
//! use paywall_local::{checkout, LocalBackend, Product};
//!
//! # fn main() -> Result<(), paywall_local::LocalError> {
//! let backend = LocalBackend::builder()
//!     .product(Product::new("prd_quickstart"))
//!     .checkout_url("http://127.0.0.1:3000/checkout")
//!     .open()?;
//! let app: axum::Router = axum::Router::new().merge(checkout::router(backend, None));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use paywall::{CustomerRef, Paywall};
use serde::Deserialize;
use serde_json::json;

use crate::{LocalBackend, LocalError};

/// The path the checkout is served on.
pub const PATH: &str = "/checkout";

#[derive(Clone)]
struct Checkout {
    backend: LocalBackend,
    paywall: Option<Paywall>,
}

#[derive(Debug, Deserialize)]
struct Params {
    customer: String,
    product: String,
}

/// The checkout routes, at [`PATH`]. With a `paywall`, a purchase invalidates the
/// customer's cached budgets so the next request is admitted at once.
pub fn router(backend: LocalBackend, paywall: Option<Paywall>) -> Router {
    Router::new()
        .route(PATH, get(page).post(pay))
        .with_state(Checkout { backend, paywall })
}

fn problem(status: StatusCode, message: String) -> Response {
    let body = json!({
        "success": false,
        "error": status.canonical_reason().unwrap_or("Error"),
        "kind": if status == StatusCode::NOT_FOUND { "not_found" } else { "bad_request" },
        "message": message,
    });
    (status, Json(body)).into_response()
}

fn failure(err: LocalError) -> Response {
    match err {
        LocalError::NotFound(what) => problem(StatusCode::NOT_FOUND, format!("Unknown {what}.")),
        other => {
            tracing::error!(error = %other, "local checkout failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The checkout is unavailable. Retry later.".into(),
            )
        }
    }
}

fn bad_params(message: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        format!("{message}: expected the fields `customer` and `product`."),
    )
}

async fn page(
    State(checkout): State<Checkout>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return bad_params("Missing or malformed query");
    };
    let plan = match checkout.backend.paid_plan(&params.product).await {
        Ok(plan) => plan,
        Err(err) => return failure(err),
    };
    let (customer, product) = (escape(&params.customer), escape(&params.product));
    Html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title></head>
<body>
<h1>Checkout (local test mode)</h1>
<p>Customer <code>{customer}</code>, product <code>{product}</code>.</p>
<p>Plan <strong>{name}</strong>: {units} units every {days} days for {price}.</p>
<form method=\"post\" action=\"{PATH}\">
<input type=\"hidden\" name=\"customer\" value=\"{customer}\">
<input type=\"hidden\" name=\"product\" value=\"{product}\">
<button type=\"submit\">Pay (no money moves)</button>
</form>
</body></html>
",
        name = escape(&plan.name),
        units = plan.units,
        days = plan.period.as_secs() / 86_400,
        price = format_args!("{}.{:02}", plan.price_cents / 100, plan.price_cents % 100),
    ))
    .into_response()
}

async fn pay(
    State(checkout): State<Checkout>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return bad_params("Missing or malformed form");
    };
    let plan = match checkout
        .backend
        .purchase(&params.customer, &params.product)
        .await
    {
        Ok(plan) => plan,
        Err(err) => return failure(err),
    };
    tracing::info!(customer = %params.customer, product = %params.product, plan = %plan.reference, "local checkout paid");
    if let Some(paywall) = &checkout.paywall {
        paywall.invalidate_customer(&CustomerRef::new(params.customer.as_str()));
    }
    Html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Paid</title></head>
<body><h1>Payment received</h1>
<p>Customer <code>{}</code> is on plan <strong>{}</strong> of <code>{}</code>: {} units per period.</p>
</body></html>
",
        escape(&params.customer),
        escape(&plan.name),
        escape(&params.product),
        plan.units,
    ))
    .into_response()
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
