//! `axum-quickstart`: one free route, one paid route, HS256 identity, and either the
//! embedded backend with its local checkout or, when `SOLVAPAY_SECRET_KEY` is set, the
//! SolvaPay backend at `SOLVAPAY_API_BASE_URL` (SolvaPay itself, or `paywall-dev-server`).
//!
//! | route | |
//! |---|---|
//! | `GET /health` | public: `{"status": "ok"}` |
//! | `GET /metrics` | public here (127.0.0.1): Prometheus metrics, see `paywall::telemetry` |
//! | `GET /api/hello` | costs 1 unit of `PAYWALL_PRODUCT`: `{"customerRef", "externalRef"}` |
//! | `POST /api/generate` | charged per token streamed (meter `tokens`), see [`paywall_examples::generate`] |
//! | `GET /api/billing`, `POST /api/billing/checkout`, `POST /api/billing/portal`, `GET /api/billing/purchases`, `POST /api/billing/purchases/{ref}/cancel` | the caller's billing, for the app's frontend (same token, not charged), see `paywall::BillingRoutes` |
//! | `/api/check-purchase`, `/api/limits`, `/api/create-checkout-session`… (the 19 routes of `paywall::ReactRoutes`) | the same for SolvaPay's React components; CORS for `PAYWALL_CORS_ORIGINS` |
//! | `GET/POST /checkout` | the local checkout a 402's `checkoutUrl` points to (embedded backend) |
//! | `GET /portal/{session}`, `POST /portal/{session}/cancel` | the local customer portal (embedded backend) |
//! | `POST /webhooks/solvapay` | SolvaPay webhooks, when `SOLVAPAY_WEBHOOK_SECRET` is set |

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paywall::adapter::X_CUSTOMER_REF;
use paywall::{Charge, IdentityResolver, Paywall};
use paywall_axum::{BilledCustomer, UsageMeter};
use paywall_jwt::JwtResolver;
use paywall_local::{checkout, portal, LocalBackend};
use paywall_solvapay::axum_handler;
use paywall_solvapay::webhook::WebhookVerifier;
use serde_json::Value;

use paywall_examples::billing::{billing, identity, Billing};
use paywall_examples::config::{QuickstartConfig, QuickstartError};
use paywall_examples::generate;
use paywall_examples::responses::{
    health_body, hello_body, method_not_allowed_body, not_found_body,
};

/// A built quickstart: its router and the parts a caller may want to reach.
#[derive(Debug)]
pub struct Quickstart {
    /// The application.
    pub router: Router,
    /// The engine (flush and shut it down after serving).
    pub paywall: Paywall,
    /// The embedded backend, unless billing goes through SolvaPay.
    pub local: Option<LocalBackend>,
    /// A token for the user `demo-user`, valid for a day (HS256 mode only: with a JWKS
    /// your identity provider issues the tokens).
    pub sample_token: Option<String>,
    /// Whether the JWT secret was generated (no `PAYWALL_JWT_SECRET`, no JWKS).
    pub generated_secret: bool,
    /// The JWT resolver [`build`] made (not with [`build_with`]): preload its keys at
    /// start-up with [`paywall_examples::startup::preload_keys`].
    pub jwt: Option<Arc<JwtResolver>>,
}

/// Builds the quickstart. `base_url` is where it is reachable (for checkout links).
/// Must be called inside a Tokio runtime.
pub fn build(config: &QuickstartConfig, base_url: &str) -> Result<Quickstart, QuickstartError> {
    with_jwt(config, |resolver| build_with(config, base_url, resolver))
}

/// Builds an axum app (this quickstart, or another on the same billing such as the MCP
/// one) with the configured JWT identity: `build_with` gets the resolver, and the app
/// keeps it with the sample token.
pub fn with_jwt(
    config: &QuickstartConfig,
    build_with: impl FnOnce(Arc<JwtResolver>) -> Result<Quickstart, QuickstartError>,
) -> Result<Quickstart, QuickstartError> {
    let (resolver, sample_token, generated_secret) = identity(config)?;
    let mut app = build_with(Arc::clone(&resolver))?;
    app.sample_token = sample_token;
    app.generated_secret = generated_secret;
    app.jwt = Some(resolver);
    Ok(app)
}

/// The quickstart's application with another identity resolver: the same routes,
/// billing and responses, whoever the callers are (Auth0 tokens, API keys, sessions).
pub fn build_with(
    config: &QuickstartConfig,
    base_url: &str,
    resolver: impl IdentityResolver,
) -> Result<Quickstart, QuickstartError> {
    let Billing { paywall, local } = billing(config, base_url, resolver)?;
    let paid = paywall.layer(Charge::new(&config.product))?;

    let metered = paywall.layer(
        Charge::new(&config.product)
            .meter("tokens")
            .by_consumption(),
    )?;
    let generate = Router::new()
        .route("/api/generate", post(generate))
        .route_layer(metered)
        .with_state(config.generate_delay);
    let mut router = Router::new()
        .route("/api/hello", get(hello))
        .route_layer(paid)
        .merge(generate)
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    let billing_routes = paywall_examples::billing::billing_routes(&paywall, config, base_url)?;
    let react_routes = paywall_examples::billing::react_routes(&billing_routes, config)?;
    router = router
        .merge(paywall_axum::billing_router("/api/billing", billing_routes))
        .merge(paywall_axum::react_router("/api", react_routes));
    if let Some(local) = &local {
        router = router
            .merge(checkout::router(local.clone(), Some(paywall.clone())))
            .merge(portal::router(local.clone(), Some(paywall.clone())));
    }
    if let Some(secret) = &config.webhook_secret {
        router = router.merge(axum_handler::router(
            WebhookVerifier::new(secret.as_str()),
            paywall.clone(),
        ));
    }
    Ok(Quickstart::new(router, paywall, local))
}

impl Quickstart {
    /// An app serving `router` (with the quickstarts' JSON 404 and 405) on `paywall`;
    /// the identity fields are set by [`with_jwt`].
    pub fn new(router: Router, paywall: Paywall, local: Option<LocalBackend>) -> Self {
        Self {
            router: router
                .fallback(not_found)
                .method_not_allowed_fallback(method_not_allowed),
            paywall,
            local,
            sample_token: None,
            generated_secret: false,
            jwt: None,
        }
    }
}

/// What an axum quickstart binary does: reads the environment, binds 127.0.0.1,
/// builds the app with `build`, fetches the identity provider's keys, prints what it
/// serves (`describe` adds the app's own lines) and serves until Ctrl-C or SIGTERM.
pub async fn run(
    name: &str,
    build: impl FnOnce(&QuickstartConfig, &str) -> Result<Quickstart, QuickstartError>,
    describe: impl FnOnce(&QuickstartConfig, &Quickstart, &str),
) -> std::process::ExitCode {
    paywall_examples::startup::init_logging();
    let config = match paywall_examples::config::load(name) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (listener, base_url) = match paywall_examples::startup::listen(name, config.port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let app = match build(&config, &base_url) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("{name}: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("{name} listening on {base_url}");
    if let Err(code) = paywall_examples::startup::preload_keys(name, app.jwt.as_deref()).await {
        return code;
    }
    paywall_examples::startup::print_backend(&config, app.local.as_ref(), &base_url);
    describe(&config, &app, &base_url);
    serve(name, listener, app).await
}

/// Serves `app` on `listener` until Ctrl-C or SIGTERM, then flushes usage. Prints
/// what it does under `name`; returns the process exit code.
pub async fn serve(
    name: &str,
    listener: tokio::net::TcpListener,
    app: Quickstart,
) -> std::process::ExitCode {
    let announce = name.to_owned();
    let shutdown = async move {
        paywall_axum::shutdown_signal().await;
        println!("{announce}: shutting down, flushing usage");
    };
    let served = paywall_axum::serve(
        listener,
        app.router.clone(),
        paywall_axum::ServeLimits::default(),
        shutdown,
    )
    .await;
    let report = app.paywall.shutdown(Duration::from_secs(10)).await;
    println!(
        "{name} stopped: {} usage events recorded, {} pending",
        report.recorded, report.pending
    );
    match served {
        Ok(()) if report.is_complete() => std::process::ExitCode::SUCCESS,
        Ok(()) => std::process::ExitCode::from(1),
        Err(err) => {
            eprintln!("{name}: server error: {err}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn health() -> Json<Value> {
    Json(health_body())
}

async fn hello(customer: BilledCustomer, request: axum::extract::Request) -> Json<Value> {
    // The request itself, not `HeaderMap` (which would copy every header).
    let seen = request
        .headers()
        .get(X_CUSTOMER_REF)
        .and_then(|value| value.to_str().ok());
    Json(hello_body(seen, customer.external_ref()))
}

async fn generate(
    State(delay): State<Duration>,
    usage: UsageMeter,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if paywall_local::checkout::declared_too_large(&headers, generate::MAX_BODY_BYTES) {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, generate::too_large_body());
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let request = match body {
        Ok(body) => generate::parse(content_type, &body),
        Err(rejection) => Err(generate::bad_request(&rejection.body_text())),
    };
    let request = match request {
        Ok(request) => request,
        Err(body) => return problem(StatusCode::BAD_REQUEST, body),
    };
    if let Err(refused) = usage.reserve(request.max_tokens).await {
        return refused.into_response();
    }
    if request.stream {
        let events = generate::events(usage.0, request.tokens, delay);
        let body = Body::from_stream(futures_util::StreamExt::map(events, Ok::<_, Infallible>));
        (
            [
                (CONTENT_TYPE, "text/event-stream"),
                (CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response()
    } else {
        Json(generate::complete(&usage.0, request.tokens, delay).await).into_response()
    }
}

async fn metrics() -> Response {
    let page = paywall_examples::startup::metrics_text();
    (
        [(
            CONTENT_TYPE,
            paywall_examples::startup::METRICS_CONTENT_TYPE,
        )],
        page,
    )
        .into_response()
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(not_found_body()))
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(method_not_allowed_body()),
    )
}

/// An `application/problem+json` answer.
fn problem(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, paywall::adapter::PROBLEM_JSON)],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_secret_or_bad_product_fails_at_start() {
        let short = QuickstartConfig {
            jwt_secret: Some("short".into()),
            ..QuickstartConfig::from_lookup(|_| None).expect("cfg")
        };
        assert!(matches!(
            build(&short, "http://127.0.0.1:1"),
            Err(QuickstartError::Jwt(_))
        ));
        let bad = QuickstartConfig {
            product: "bad product".into(),
            ..QuickstartConfig::from_lookup(|_| None).expect("cfg")
        };
        assert!(matches!(
            build(&bad, "http://127.0.0.1:1"),
            Err(QuickstartError::Paywall(_))
        ));
    }
}
