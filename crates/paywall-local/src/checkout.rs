//! The local checkout: pages where "paying" moves a customer to the paid plan.
//!
//! Every link names a checkout session, `/checkout/cs_...`, opened for one customer and
//! product when the paywall needs a link (a 402, `POST /api/billing/checkout`). Its id is
//! 20 random alphanumerics (119 bits): the link is the customer's capability, and it
//! pays only its own session, once. `GET /checkout/{session}` shows the plan and a pay
//! button; `POST /checkout/{session}` from that page (a post from another site is
//! refused) buys it and tells the paywall to refresh that customer's budgets at once;
//! posting again buys nothing more. No money moves: it is the embedded backend's
//! stand-in for a provider's hosted checkout.
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

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use paywall::{CustomerRef, Paywall};
use serde_json::{json, Value};

use crate::{LocalBackend, LocalError};

/// The path the checkout is served on.
pub const PATH: &str = "/checkout";

/// The headers every page of the checkout and the portal is sent with: no framing (no
/// clickjacking of the pay and cancel buttons), no content sniffing, no referrer to
/// other sites (the page's URL is its session), not cached, and nothing loaded but the
/// page itself.
///
/// The referrer policy is `same-origin`, not `no-referrer`: under `no-referrer` a
/// browser sends `Origin: null` with the page's own form posts, which [`same_origin`]
/// must refuse (a sandboxed frame on any site sends the same), so no one could pay.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// A checkout answer, independent of the web framework: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The HTTP status.
    pub status: u16,
    /// `text/html; charset=utf-8` or `application/json`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Page {
    pub(crate) fn html(body: String) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    pub(crate) fn problem(status: u16, kind: &str, message: String) -> Self {
        let error = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let body: Value = json!({
            "success": false,
            "error": error,
            "kind": kind,
            "message": message,
        });
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    pub(crate) fn failure(err: LocalError) -> Self {
        match err {
            LocalError::NotFound(what) => {
                Self::problem(404, "not_found", format!("Unknown {what}."))
            }
            other => {
                tracing::error!(error = %other, "local checkout failed");
                Self::problem(
                    503,
                    "checkout_unavailable",
                    "The checkout is unavailable. Retry later.".into(),
                )
            }
        }
    }
}

/// The longest session id accepted in a path (ours have 23 characters).
const MAX_SESSION_ID: usize = 64;

/// The open or paid session `id`, or the page that answers for it.
async fn session(backend: &LocalBackend, id: &str) -> Result<crate::SessionRecord, Page> {
    let well_formed = !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let unknown = || Page::problem(404, "not_found", "Unknown checkout session.".into());
    if !well_formed {
        return Err(unknown());
    }
    match backend.checkout_session(id).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(unknown()),
        Err(err) => Err(Page::failure(err)),
    }
}

/// `GET /checkout/{session}`: the plan and a pay button (or the receipt, once paid).
pub async fn page(backend: &LocalBackend, session_id: &str) -> Page {
    let session = match session(backend, session_id).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let plan = match backend.paid_plan(&session.product_ref).await {
        Ok(plan) => plan,
        Err(err) => return Page::failure(err),
    };
    if session.status == "complete" {
        return paid(&session, &plan, false);
    }
    let id = escape(&session.id);
    Page::html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title></head>
<body>
<h1>Checkout (local test mode)</h1>
<p>Customer <code>{customer}</code>, product <code>{product}</code>.</p>
<p>Plan <strong>{name}</strong>: {units} units every {days} days for {price}.</p>
<form method=\"post\" action=\"{PATH}/{id}\">
<button type=\"submit\">Pay (no money moves)</button>
</form>
</body></html>
",
        customer = escape(&session.customer_ref),
        product = escape(&session.product_ref),
        name = escape(&plan.name),
        units = plan.units,
        days = plan.period.as_secs() / 86_400,
        price = format_args!("{}.{:02}", plan.price_cents / 100, plan.price_cents % 100),
    ))
}

/// `POST /checkout/{session}`: buys the session's plan, once; with a `paywall`,
/// invalidates the customer's cached budgets so the next request passes. Posting a
/// paid session again shows the receipt and buys nothing.
pub async fn pay(backend: &LocalBackend, paywall: Option<&Paywall>, session_id: &str) -> Page {
    if let Err(page) = session(backend, session_id).await {
        return page;
    }
    let (session, plan, bought) = match backend.complete_checkout_session(session_id).await {
        Ok(done) => done,
        Err(err) => return Page::failure(err),
    };
    if bought {
        tracing::info!(customer = %session.customer_ref, product = %session.product_ref,
                       plan = %plan.reference, "local checkout paid");
        if let Some(paywall) = paywall {
            paywall
                .invalidate_customer(&CustomerRef::new(session.customer_ref.as_str()))
                .await;
        }
    }
    paid(&session, &plan, bought)
}

/// The receipt of a paid session, with the link back when the session has one.
fn paid(session: &crate::SessionRecord, plan: &crate::Plan, now: bool) -> Page {
    let back = session
        .return_url
        .as_deref()
        .map(|url| format!("<p><a href=\"{}\">Continue</a></p>\n", escape(url)))
        .unwrap_or_default();
    Page::html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Paid</title></head>
<body><h1>{title}</h1>
<p>Customer <code>{customer}</code> is on plan <strong>{name}</strong> of <code>{product}</code>: {units} units per period.</p>
{back}</body></html>
",
        title = if now { "Payment received" } else { "Already paid" },
        customer = escape(&session.customer_ref),
        name = escape(&plan.name),
        product = escape(&session.product_ref),
        units = plan.units,
    ))
}

#[derive(Clone)]
struct Checkout {
    backend: LocalBackend,
    paywall: Option<Paywall>,
}

/// The checkout routes, `{PATH}/{session}`, as an axum router. With a `paywall`, a
/// purchase invalidates the customer's cached budgets so the next request is admitted
/// at once.
pub fn router(backend: LocalBackend, paywall: Option<Paywall>) -> Router {
    Router::new()
        .route(&format!("{PATH}/{{session}}"), get(get_page).post(post_pay))
        .with_state(Checkout { backend, paywall })
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response();
        for (name, value) in PAGE_HEADERS {
            response.headers_mut().insert(
                header::HeaderName::from_static(name),
                header::HeaderValue::from_static(value),
            );
        }
        response
    }
}

async fn get_page(State(checkout): State<Checkout>, Path(session): Path<String>) -> Page {
    page(&checkout.backend, &session).await
}

/// The largest checkout form accepted (the pay form has no fields).
pub const MAX_FORM_BYTES: u64 = 16 * 1024;

/// Whether the request declares a body larger than `limit`: such requests are refused
/// before any of the body is read.
pub fn declared_too_large(headers: &axum::http::HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

/// Whether a form post comes from the page's own origin: its `Origin` header, when the
/// browser sent one, must name the host the request was sent to (`Host`). A form posted
/// from another site (a cross-site request forgery) names that site.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true; // not a browser's cross-site post
    };
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The 403 for a form posted from another origin.
pub fn cross_site() -> Page {
    Page::problem(
        403,
        "cross_site",
        "This form can only be sent from its own page.".into(),
    )
}

/// [`same_origin`] of an axum request.
pub(crate) fn from_own_page(headers: &axum::http::HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    same_origin(header(header::ORIGIN), header(header::HOST))
}

async fn post_pay(
    State(checkout): State<Checkout>,
    Path(session): Path<String>,
    request: axum::extract::Request,
) -> Page {
    if !from_own_page(request.headers()) {
        return cross_site();
    }
    if declared_too_large(request.headers(), MAX_FORM_BYTES) {
        return Page::problem(
            413,
            "payload_too_large",
            format!("The form is larger than {MAX_FORM_BYTES} bytes."),
        );
    }
    // The form carries nothing the purchase reads; it is drained, within the limit.
    match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES as usize).await {
        Ok(_) => pay(&checkout.backend, checkout.paywall.as_ref(), &session).await,
        Err(_) => Page::problem(
            413,
            "payload_too_large",
            format!("The form is larger than {MAX_FORM_BYTES} bytes, or was cut short."),
        ),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
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
    use super::{escape, same_origin};

    #[test]
    fn only_the_pages_own_origin_may_post() {
        assert!(same_origin(None, Some("127.0.0.1:3000")));
        assert!(same_origin(
            Some("http://127.0.0.1:3000"),
            Some("127.0.0.1:3000")
        ));
        assert!(same_origin(
            Some("https://APP.example"),
            Some("app.example")
        ));
        assert!(!same_origin(
            Some("https://evil.example"),
            Some("app.example")
        ));
        assert!(!same_origin(Some("null"), Some("app.example")));
        assert!(!same_origin(Some("https://app.example"), None));
        assert!(!same_origin(
            Some("https://app.example.evil"),
            Some("app.example")
        ));
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
