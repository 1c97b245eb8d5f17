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
//! | `POST /v1/sdk/usages`, `POST /v1/sdk/usages/bulk` | 200, idempotent on `idempotencyKey` (`timestamp` defaults to now; `units`, `duration` any number); 400, 404 |
//! | `POST /v1/sdk/checkout-sessions` | 201 `{sessionId, checkoutUrl}` (`productRef` defaults to the first product; `returnUrl` http(s) only), 400, 404 |
//! | `POST /v1/sdk/customers/customer-sessions`, `GET .../customer-sessions/{sessionId}` | 201 `{sessionId, customerUrl}`, 200, 404 |
//! | `GET /v1/sdk/customers/{reference}/balance` | 200 `CustomerBalanceResponse` (no credits are sold: 0), 404 |
//! | `GET /v1/sdk/purchases/customer/{customerRef}` | 200 `{purchases}` (`SdkPurchaseResponse`), 404 |
//! | `POST /v1/sdk/purchases/{purchaseRef}/cancel` | 200 `{success, purchase}` and `purchase.cancelled`, 404 |
//! | `POST /v1/sdk/purchases/{purchaseRef}/reactivate` | 200 the purchase and `purchase.reactivated` (cancelled, within its period), 404 |
//! | `GET /v1/sdk/merchant`, `GET /v1/sdk/products`, `GET /v1/sdk/products/{productRef}`, `GET /v1/sdk/products/{productRef}/plans` | the catalogue: `Merchant`, `{products}`, `Product`, `{plans}`; 404 |
//! | `POST /v1/sdk/activate` | `ActivatePlanResponseDto`: `already_active`, `payment_required` with a checkout link, `invalid` |
//! | `POST /v1/sdk/payment-intents…`, `GET /v1/sdk/payment-method`, `/v1/sdk/auto-recharge` | 501 `{statusCode, error, message}`: card payments are not simulated |
//! | creating, changing or deleting products and plans, assigning credits, `user-info`, `platform-config` | 501 `{statusCode, error, message}`: not simulated (the catalogue is the ledger's) |
//! | `GET /portal/{sessionId}` | the customer's purchases, while the session lasts |
//! | `GET /checkout/{sessionId}`, `POST /checkout/{sessionId}` | the checkout page; paying buys the plan and sends `purchase.created` |
//!
//! Every `/v1/sdk` route requires `Authorization: Bearer <secret key>` (401 otherwise);
//! errors are `{statusCode, error, message}` like the real API's.
//!
//! ```
//! use paywall_dev_server::DevServerConfig;
//! use paywall_local::{LocalBackend, Product};
//!
//! # fn main() -> Result<(), paywall_local::LocalError> {
//! let ledger = LocalBackend::builder().product(Product::new("prd_quickstart")).open()?;
//! let config = DevServerConfig::new("sk_dev_local", "http://127.0.0.1:4000");
//! let app: axum::Router = paywall_dev_server::router(ledger, config);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catalogue;
mod checkout;
mod customers;
mod error;
mod guard;
mod limits;
mod portal;
mod purchases;
mod usage;
mod webhooks;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use paywall_local::LocalBackend;
use serde_json::json;

use crate::error::api_error;
pub use crate::guard::MAX_BODY_BYTES;

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
    pub(crate) secret_key: String,
    pub(crate) public_url: String,
    pub(crate) webhook: Option<WebhookTarget>,
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

pub(crate) struct Dev {
    pub(crate) ledger: LocalBackend,
    pub(crate) config: DevServerConfig,
    pub(crate) http: reqwest::Client,
    customer_sessions: Mutex<HashMap<String, portal::CustomerSession>>,
    /// Fractional usage, as a running total per customer, product, meter and outcome.
    pub(crate) fractions: usage::Fractions,
}

impl Dev {
    /// The customer sessions handed out so far.
    pub(crate) fn sessions(&self) -> MutexGuard<'_, HashMap<String, portal::CustomerSession>> {
        self.customer_sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) type Shared = Arc<Dev>;

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
        customer_sessions: Mutex::new(HashMap::new()),
        fractions: usage::Fractions::default(),
    });
    Router::new()
        .route(
            "/v1/sdk/customers",
            get(customers::find).post(customers::create),
        )
        .route(
            "/v1/sdk/customers/{reference}",
            get(customers::get).patch(customers::update),
        )
        .route("/v1/sdk/customers/customer-sessions", post(portal::create))
        .route(
            "/v1/sdk/customers/customer-sessions/{session}",
            get(portal::get),
        )
        .route(
            "/v1/sdk/customers/{reference}/balance",
            get(portal::balance),
        )
        .route(
            "/v1/sdk/purchases/customer/{customer}",
            get(purchases::of_customer),
        )
        .route(
            "/v1/sdk/purchases/{purchase}/cancel",
            post(purchases::cancel),
        )
        .route(
            "/v1/sdk/purchases/{purchase}/reactivate",
            post(catalogue::reactivate),
        )
        .route("/v1/sdk/merchant", get(catalogue::merchant))
        .route(
            "/v1/sdk/products",
            get(catalogue::products).post(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/{product}",
            get(catalogue::product).delete(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/{product}/plans",
            get(catalogue::plans).post(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/{product}/plans/{plan}",
            put(catalogue::not_managed).delete(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/{product}/clone",
            post(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/{product}/mcp/plans",
            put(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/products/mcp/bootstrap",
            post(catalogue::not_managed),
        )
        .route(
            "/v1/sdk/customers/{reference}/credits",
            post(catalogue::not_managed),
        )
        .route("/v1/sdk/user-info", post(catalogue::not_managed))
        .route("/v1/sdk/platform-config", get(catalogue::not_managed))
        .route("/v1/sdk/activate", post(catalogue::activate))
        .route("/v1/sdk/payment-intents", post(catalogue::not_simulated))
        .route(
            "/v1/sdk/payment-intents/{intent}/{action}",
            post(catalogue::not_simulated),
        )
        .route("/v1/sdk/payment-method", get(catalogue::not_simulated))
        .route(
            "/v1/sdk/auto-recharge",
            get(catalogue::not_simulated)
                .put(catalogue::not_simulated)
                .delete(catalogue::not_simulated),
        )
        .route("/v1/sdk/limits", post(limits::limits))
        .route("/v1/sdk/usages", post(usage::single))
        .route("/v1/sdk/usages/bulk", post(usage::bulk))
        .route("/v1/sdk/checkout-sessions", post(limits::create_session))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_key,
        ))
        .route_layer(middleware::from_fn(guard::limit_body))
        .route(
            "/checkout/{session}",
            get(checkout::page).post(checkout::pay),
        )
        .route("/portal/{session}", get(portal::page))
        .layer(middleware::map_response(page_headers))
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

/// The HTML pages (checkout, portal) get the embedded checkout's security headers.
async fn page_headers(mut response: axum::response::Response) -> axum::response::Response {
    let html = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if html {
        for (name, value) in paywall_local::checkout::PAGE_HEADERS {
            response.headers_mut().insert(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            );
        }
    }
    response
}
