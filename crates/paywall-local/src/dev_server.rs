//! A SolvaPay-compatible dev server over the embedded ledger: the subset of
//! `/v1/sdk` the paywall uses, a local checkout, and signed webhook delivery, so the
//! SolvaPay backend can be run and tested with no SolvaPay account.
//!
//! | route | answers |
//! |---|---|
//! | `GET /v1/sdk/customers?externalRef=\|email=\|reference=` | 200 customer, 404, 400 unless exactly one query |
//! | `GET /v1/sdk/customers/{reference}` | 200, 404 |
//! | `POST /v1/sdk/customers` | 201, 400, 409 when the email or externalRef is taken |
//! | `PATCH /v1/sdk/customers/{reference}` | 200, 400, 404, 409 |
//! | `POST /v1/sdk/limits` | 200 `LimitResponse` (with a checkout session when asked), 400, 404 |
//! | `POST /v1/sdk/usages`, `POST /v1/sdk/usages/bulk` | 200, idempotent on `idempotencyKey`; 400, 404 |
//! | `POST /v1/sdk/checkout-sessions` | 201 `{sessionId, checkoutUrl}`, 400, 404 |
//! | `GET /checkout/{sessionId}`, `POST /checkout/{sessionId}` | the checkout page; paying buys the plan and sends `purchase.created` |
//!
//! Every `/v1/sdk` route requires `Authorization: Bearer <secret key>` (401 otherwise);
//! errors are `{statusCode, error, message}` like the real API's.
//!
//! ```
//! use paywall_local::{dev_server::{self, DevServerConfig}, LocalBackend, Product};
//!
//! # fn main() -> Result<(), paywall_local::LocalError> {
//! let ledger = LocalBackend::builder().product(Product::new("prd_quickstart")).open()?;
//! let config = DevServerConfig::new("sk_dev_local", "http://127.0.0.1:4000");
//! let app: axum::Router = dev_server::router(ledger, config);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header::AUTHORIZATION, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paywall::{CustomerRef, Outcome, UsageEvent};
use paywall_solvapay::webhook::{
    signature_header, DELIVERY_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER,
};
use paywall_solvapay::wire;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::directory::{CustomerPatch, CustomerRecord, Lookup, SessionRecord};
use crate::{LocalBackend, LocalError};

/// Where webhooks go and the secret they are signed with.
#[derive(Clone)]
pub struct WebhookTarget {
    /// The receiver's URL.
    pub url: String,
    /// The signing secret (`whsec_...`).
    pub secret: String,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The dev server's settings.
#[derive(Clone)]
pub struct DevServerConfig {
    secret_key: String,
    public_url: String,
    webhook: Option<WebhookTarget>,
}

impl fmt::Debug for DevServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevServerConfig")
            .field("secret_key", &"[redacted]")
            .field("public_url", &self.public_url)
            .field("webhook", &self.webhook)
            .finish()
    }
}

impl DevServerConfig {
    /// Requests must carry `secret_key`; checkout links start with `public_url`.
    pub fn new(secret_key: impl Into<String>, public_url: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            webhook: None,
        }
    }

    /// Deliver signed webhooks to `target`.
    pub fn webhook(mut self, target: WebhookTarget) -> Self {
        self.webhook = Some(target);
        self
    }
}

struct Dev {
    ledger: LocalBackend,
    config: DevServerConfig,
    http: reqwest::Client,
}

type Shared = Arc<Dev>;

/// The dev server's routes.
pub fn router(ledger: LocalBackend, config: DevServerConfig) -> Router {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let state: Shared = Arc::new(Dev {
        ledger,
        config,
        http,
    });
    Router::new()
        .route(
            "/v1/sdk/customers",
            get(find_customer).post(create_customer),
        )
        .route(
            "/v1/sdk/customers/{reference}",
            get(get_customer).patch(update_customer),
        )
        .route("/v1/sdk/limits", post(limits))
        .route("/v1/sdk/usages", post(usage))
        .route("/v1/sdk/usages/bulk", post(usage_bulk))
        .route("/v1/sdk/checkout-sessions", post(create_session))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .route_layer(middleware::from_fn(limit_body))
        .route("/checkout/{session}", get(session_page).post(pay_session))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "No route for this path") })
        .method_not_allowed_fallback(|| async {
            api_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "This path does not accept this method",
            )
        })
        .with_state(state)
}

/// `{statusCode, error, message}`, as SolvaPay's API answers errors.
fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = wire::ErrorBody {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

/// An error answer, cheap to pass around before it becomes a response.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.status, self.message)
    }
}

impl From<LocalError> for ApiError {
    fn from(err: LocalError) -> Self {
        let (status, message) = match err {
            LocalError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            LocalError::Conflict(what) => (StatusCode::CONFLICT, what),
            other => {
                warn!(error = %other, "dev server ledger error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The ledger is unavailable".to_owned(),
                )
            }
        };
        Self { status, message }
    }
}

fn ledger_error(err: LocalError) -> Response {
    ApiError::from(err).into_response()
}

fn bad_json(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    api_error(status, rejection.body_text())
}

/// Request bodies larger than this are refused before being read.
pub const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    }
    next.run(request).await
}

async fn require_key(State(dev): State<Shared>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = dev.config.secret_key.as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return api_error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
    }
    next.run(request).await
}

fn customer_json(record: CustomerRecord) -> wire::Customer {
    wire::Customer {
        name: record.name.unwrap_or_default(),
        email: record.email.unwrap_or_default(),
        external_ref: record.external_ref,
        purchases: Some(
            record
                .purchases
                .into_iter()
                .map(|p| wire::PurchaseInfo {
                    reference: p.reference,
                    product_ref: Some(p.product_ref),
                    product_name: Some(p.product_name),
                    status: p.status,
                    start_date: u64::try_from(p.started_at).ok().map(|ms| {
                        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms))
                            .to_string()
                    }),
                    amount: Some(p.price_cents),
                    currency: Some("USD".into()),
                })
                .collect(),
        ),
        reference: record.reference,
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
}

async fn find_customer(
    State(dev): State<Shared>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return api_error(StatusCode::BAD_REQUEST, "Malformed query string");
    };
    let given: Vec<_> = ["reference", "externalRef", "email"]
        .into_iter()
        .filter_map(|name| {
            query
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v.as_str()))
        })
        .collect();
    let lookup = match given.as_slice() {
        [("reference", v)] => Lookup::Reference(v),
        [("externalRef", v)] => Lookup::ExternalRef(v),
        [("email", v)] => Lookup::Email(v),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Must provide exactly one of reference, externalRef, or email",
            )
        }
    };
    match dev.ledger.find_customer(lookup).await {
        Ok(Some(record)) => Json(customer_json(record)).into_response(),
        Ok(None) => api_error(StatusCode::NOT_FOUND, "Customer not found"),
        Err(err) => ledger_error(err),
    }
}

async fn get_customer(State(dev): State<Shared>, Path(reference): Path<String>) -> Response {
    match dev
        .ledger
        .find_customer(Lookup::Reference(&reference))
        .await
    {
        Ok(Some(record)) => Json(customer_json(record)).into_response(),
        Ok(None) => api_error(
            StatusCode::NOT_FOUND,
            format!("Customer with reference {reference} not found"),
        ),
        Err(err) => ledger_error(err),
    }
}

async fn create_customer(
    State(dev): State<Shared>,
    body: Result<Json<wire::CreateCustomer>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if !valid_email(&request.email) {
        return api_error(StatusCode::BAD_REQUEST, "Invalid email format");
    }
    let external_ref = request.external_ref.as_deref().filter(|r| !r.is_empty());
    match dev
        .ledger
        .create_customer(&request.email, request.name.as_deref(), external_ref)
        .await
    {
        Ok(record) => (StatusCode::CREATED, Json(customer_json(record))).into_response(),
        Err(err) => ledger_error(err),
    }
}

async fn update_customer(
    State(dev): State<Shared>,
    Path(reference): Path<String>,
    body: Result<Json<wire::UpdateCustomer>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if request
        .email
        .as_deref()
        .is_some_and(|email| !valid_email(email))
    {
        return api_error(StatusCode::BAD_REQUEST, "Invalid email format");
    }
    let patch = CustomerPatch {
        email: request.email,
        name: request.name,
        external_ref: request.external_ref.filter(|r| !r.is_empty()),
    };
    match dev.ledger.update_customer(&reference, patch).await {
        Ok(record) => Json(customer_json(record)).into_response(),
        Err(err) => ledger_error(err),
    }
}

fn checkout_link(dev: &Dev, session: &SessionRecord) -> String {
    format!("{}/checkout/{}", dev.config.public_url, session.id)
}

async fn limits(
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

/// Validates a wire usage event and turns it into a ledger event.
fn usage_event(usage: wire::Usage) -> Result<UsageEvent, ApiError> {
    let bad = |message: &str| Err(ApiError::bad_request(message));
    if usage.customer_ref.is_empty() {
        return bad("customerRef must not be empty");
    }
    if usage.units > 100_000 {
        return bad("units must be between 0 and 100000");
    }
    if ![
        "transaction",
        "api_call",
        "hour",
        "email",
        "storage",
        "custom",
    ]
    .contains(&usage.action_type.as_str())
    {
        return bad(
            "actionType must be one of transaction, api_call, hour, email, storage, custom",
        );
    }
    let outcome = match usage.outcome.as_str() {
        "success" => Outcome::Success,
        "paywall" => Outcome::Paywall,
        "fail" => Outcome::Fail,
        _ => return bad("outcome must be one of success, paywall, fail"),
    };
    let Ok(timestamp) = humantime::parse_rfc3339_weak(&usage.timestamp) else {
        return bad("timestamp must be an RFC 3339 date-time");
    };
    let key = match usage.idempotency_key {
        Some(key) if key.len() > 256 => {
            return bad("idempotencyKey must be at most 256 characters")
        }
        Some(key) if !key.is_empty() => key,
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let meter = usage
        .metadata
        .get("meterName")
        .and_then(Value::as_str)
        .unwrap_or("requests");
    Ok(UsageEvent {
        idempotency_key: key,
        customer: CustomerRef::new(usage.customer_ref.as_str()),
        product: usage.product_ref.as_deref().unwrap_or("").into(),
        meter: meter.into(),
        units: usage.units,
        outcome,
        timestamp,
        duration: usage.duration.map(Duration::from_millis),
    })
}

async fn record(
    dev: &Dev,
    usages: Vec<wire::Usage>,
) -> Result<(Vec<UsageEvent>, Vec<bool>), ApiError> {
    let events = usages
        .into_iter()
        .map(usage_event)
        .collect::<Result<Vec<_>, _>>()?;
    let mut customers: Vec<&str> = events.iter().map(|e| e.customer.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    for customer in customers {
        if dev
            .ledger
            .find_customer(Lookup::Reference(customer))
            .await?
            .is_none()
        {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("Customer {customer} not found"),
            });
        }
    }
    let inserted = dev.ledger.record_each(&events).await?;
    Ok((events, inserted))
}

async fn usage(
    State(dev): State<Shared>,
    body: Result<Json<wire::Usage>, JsonRejection>,
) -> Response {
    let Json(usage) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    match record(&dev, vec![usage]).await {
        Ok((events, _)) => Json(json!({
            "success": true,
            "reference": events.first().map(|e| format!("usage_{}", e.idempotency_key)),
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn usage_bulk(
    State(dev): State<Shared>,
    body: Result<Json<wire::BulkUsage>, JsonRejection>,
) -> Response {
    let Json(bulk) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_json(rejection),
    };
    if bulk.events.is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "events must not be empty");
    }
    match record(&dev, bulk.events).await {
        Ok((events, inserted)) => {
            let results: Vec<Value> = events
                .iter()
                .zip(&inserted)
                .map(|(event, new)| {
                    json!({
                        "idempotencyKey": event.idempotency_key,
                        "status": if *new { "inserted" } else { "duplicate" },
                    })
                })
                .collect();
            Json(wire::BulkUsageResponse {
                success: true,
                inserted: inserted.iter().filter(|new| **new).count() as u64,
                results,
            })
            .into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn create_session(
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn session_page(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
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

async fn pay_session(State(dev): State<Shared>, Path(id): Path<String>) -> Response {
    let (session, plan, bought) = match dev.ledger.complete_checkout_session(&id).await {
        Ok(done) => done,
        Err(err) => return ledger_error(err),
    };
    if bought {
        info!(session = %session.id, customer = %session.customer_ref, "dev checkout paid");
        deliver(
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

/// Sends a signed event to the configured webhook URL in the background, retrying a few
/// times with backoff.
fn deliver(dev: &Dev, kind: &str, data: Value) {
    let Some(target) = dev.config.webhook.clone() else {
        return;
    };
    let http = dev.http.clone();
    let event_id = crate::ledger::new_reference("evt");
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut envelope = Map::new();
    envelope.insert("id".into(), json!(event_id));
    envelope.insert("type".into(), json!(kind));
    envelope.insert("created".into(), json!(created));
    envelope.insert("data".into(), data);
    let body = Value::Object(envelope).to_string();
    let backoff =
        paywall::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    tokio::spawn(async move {
        for attempt in 0..5u32 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let sent = http
                .post(&target.url)
                .header("content-type", "application/json")
                .header(
                    SIGNATURE_HEADER,
                    signature_header(&target.secret, now, body.as_bytes()),
                )
                .header(EVENT_ID_HEADER, &event_id)
                .header(DELIVERY_HEADER, crate::ledger::new_reference("dlv"))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    info!(event = %event_id, "webhook delivered");
                    return;
                }
                Ok(response) => {
                    warn!(event = %event_id, status = %response.status(), attempt, "webhook refused")
                }
                Err(err) => {
                    warn!(event = %event_id, error = %err.without_url(), attempt, "webhook delivery failed")
                }
            }
            tokio::time::sleep(backoff.delay(attempt, None)).await;
        }
        warn!(event = %event_id, "webhook abandoned after 5 attempts");
    });
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn email_validation() {
        for ok in ["a@b.co", "user-1-1700000000000@auto-created.local"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.d", "a@b@c.d", "a@.b", "a@b.",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
