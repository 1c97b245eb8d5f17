//! `axum-quickstart`: one free route, one paid route, HS256 identity, and either the
//! embedded backend with its local checkout or, when `SOLVAPAY_SECRET_KEY` is set, the
//! SolvaPay backend at `SOLVAPAY_API_BASE_URL` (SolvaPay itself, or `paywall-dev-server`).
//!
//! | route | |
//! |---|---|
//! | `GET /health` | public: `{"status": "ok"}` |
//! | `GET /api/hello` | costs 1 unit of `PAYWALL_PRODUCT`: `{"customerRef", "externalRef"}` |
//! | `GET/POST /checkout` | the local checkout a 402's `checkoutUrl` points to (embedded backend) |
//! | `POST /webhooks/solvapay` | SolvaPay webhooks, when `SOLVAPAY_WEBHOOK_SECRET` is set |

use std::path::PathBuf;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use paywall_axum::{Charge, ConfigError, Customer, IdentityResolver, Paywall, X_CUSTOMER_REF};
use paywall_jwt::{Algorithm, Hs256Signer, JwtConfigError, JwtResolver};
use paywall_local::{checkout, LocalBackend, LocalError, Product, SqliteOutbox};
use paywall_redis::{RedisBudgets, RedisBudgetsError, REDIS_URL_ENV};
use paywall_solvapay::webhook::WebhookVerifier;
use paywall_solvapay::{axum_handler, SolvaPayBackend, SolvaPayConfig};
use rand::RngCore;
use serde_json::{json, Value};

/// The quickstart's settings, normally read from the environment.
#[derive(Clone, Default)]
pub struct QuickstartConfig {
    /// `PORT` (default 3000); the server listens on 127.0.0.1.
    pub port: u16,
    /// `PAYWALL_JWT_SECRET`; a random one is generated when unset.
    pub jwt_secret: Option<String>,
    /// `PAYWALL_JWKS_URL`: verify RS256/ES256 tokens with this JWKS instead of HS256.
    pub jwks_url: Option<String>,
    /// `PAYWALL_JWT_ISSUER`: the required `iss` (with a JWKS).
    pub jwt_issuer: Option<String>,
    /// `PAYWALL_JWT_AUDIENCE`: the required `aud` (with a JWKS).
    pub jwt_audience: Option<String>,
    /// `PAYWALL_PRODUCT` (default `prd_quickstart`).
    pub product: String,
    /// `PAYWALL_FREE_UNITS` (default 5).
    pub free_units: u64,
    /// `PAYWALL_DB`: the SQLite file of the embedded backend (default in memory).
    pub db: Option<PathBuf>,
    /// How long budgets are trusted before the backend is asked again.
    pub limits_ttl: Duration,
    /// `SOLVAPAY_SECRET_KEY` (+ `SOLVAPAY_API_BASE_URL`): bill through SolvaPay instead
    /// of the embedded backend.
    pub solvapay: Option<SolvaPayConfig>,
    /// `SOLVAPAY_WEBHOOK_SECRET`: verify and act on SolvaPay webhooks.
    pub webhook_secret: Option<String>,
    /// `PAYWALL_OUTBOX`: a SQLite file where usage waits for the backend's
    /// acknowledgement, so a crash loses none (off when unset).
    pub outbox: Option<PathBuf>,
    /// `PAYWALL_REDIS_URL`: share budgets with other instances through this Redis
    /// (off when unset: each instance has its own budgets).
    pub redis_url: Option<String>,
}

impl std::fmt::Debug for QuickstartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickstartConfig")
            .field("port", &self.port)
            .field("jwks_url", &self.jwks_url)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("product", &self.product)
            .field("free_units", &self.free_units)
            .field("db", &self.db)
            .field("solvapay", &self.solvapay)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("outbox", &self.outbox)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The quickstart could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// An environment variable has an unusable value.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The JWT resolver could not be configured.
    #[error("JWT settings (PAYWALL_JWT_SECRET / PAYWALL_JWKS_URL): {0}")]
    Jwt(#[from] JwtConfigError),
    /// The embedded backend could not open its ledger (or the outbox its file).
    #[error("PAYWALL_DB / PAYWALL_OUTBOX: {0}")]
    Ledger(#[from] LocalError),
    /// The paywall rejected its configuration.
    #[error("paywall: {0}")]
    Paywall(#[from] ConfigError),
    /// The SolvaPay backend could not be configured.
    #[error("SolvaPay: {0}")]
    SolvaPay(#[from] paywall_solvapay::ConfigError),
    /// The shared budget store could not be configured.
    #[error("PAYWALL_REDIS_URL: {0}")]
    Redis(#[from] RedisBudgetsError),
}

impl QuickstartConfig {
    /// Reads `PORT`, `PAYWALL_JWT_SECRET` (or `PAYWALL_JWKS_URL`, `PAYWALL_JWT_ISSUER`,
    /// `PAYWALL_JWT_AUDIENCE`), `PAYWALL_PRODUCT`, `PAYWALL_FREE_UNITS`,
    /// `PAYWALL_DB`, `PAYWALL_OUTBOX`, `PAYWALL_REDIS_URL`, `SOLVAPAY_SECRET_KEY`,
    /// `SOLVAPAY_API_BASE_URL` and `SOLVAPAY_WEBHOOK_SECRET`.
    pub fn from_env() -> Result<Self, QuickstartError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, QuickstartError> {
        let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let port = match set("PORT") {
            Some(value) => value.parse().map_err(|_| QuickstartError::Env {
                var: "PORT",
                reason: format!("{value:?} is not a port number (0-65535)"),
            })?,
            None => 3000,
        };
        let free_units = match set("PAYWALL_FREE_UNITS") {
            Some(value) => value.parse().map_err(|_| QuickstartError::Env {
                var: "PAYWALL_FREE_UNITS",
                reason: format!("{value:?} is not a whole number"),
            })?,
            None => 5,
        };
        let solvapay = match set("SOLVAPAY_SECRET_KEY") {
            Some(_) => Some(SolvaPayConfig::from_lookup(set)?),
            None => None,
        };
        Ok(Self {
            solvapay,
            webhook_secret: set("SOLVAPAY_WEBHOOK_SECRET"),
            outbox: set("PAYWALL_OUTBOX").map(PathBuf::from),
            redis_url: set(REDIS_URL_ENV),
            jwks_url: set("PAYWALL_JWKS_URL"),
            jwt_issuer: set("PAYWALL_JWT_ISSUER"),
            jwt_audience: set("PAYWALL_JWT_AUDIENCE"),
            port,
            jwt_secret: set("PAYWALL_JWT_SECRET"),
            product: set("PAYWALL_PRODUCT").unwrap_or_else(|| "prd_quickstart".into()),
            free_units,
            db: set("PAYWALL_DB").map(PathBuf::from),
            limits_ttl: Duration::from_secs(30),
        })
    }
}

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
}

/// Builds the quickstart. `base_url` is where it is reachable (for checkout links).
/// Must be called inside a Tokio runtime.
pub fn build(config: &QuickstartConfig, base_url: &str) -> Result<Quickstart, QuickstartError> {
    let (resolver, sample_token, generated_secret) = identity(config)?;
    let mut app = build_with(config, base_url, resolver)?;
    app.sample_token = sample_token;
    app.generated_secret = generated_secret;
    Ok(app)
}

/// The paywall and backend of the quickstarts (axum and actix alike): the embedded
/// backend with its local checkout, or SolvaPay when `SOLVAPAY_SECRET_KEY` is set.
#[derive(Debug)]
pub struct Billing {
    /// The engine.
    pub paywall: Paywall,
    /// The embedded backend, unless billing goes through SolvaPay.
    pub local: Option<LocalBackend>,
}

/// Builds the paywall for `config` with `resolver`. Must be called inside a Tokio runtime.
pub fn billing(
    config: &QuickstartConfig,
    base_url: &str,
    resolver: impl IdentityResolver,
) -> Result<Billing, QuickstartError> {
    let (builder, local) = match &config.solvapay {
        Some(solvapay) => (
            Paywall::builder(resolver, SolvaPayBackend::new(solvapay.clone())?),
            None,
        ),
        None => {
            let mut local = LocalBackend::builder()
                .product(Product::new(&config.product).free_units(config.free_units))
                .checkout_url(format!(
                    "{}{}",
                    base_url.trim_end_matches('/'),
                    checkout::PATH
                ));
            if let Some(path) = &config.db {
                local = local.path(path);
            }
            let local = local.open()?;
            (Paywall::builder(resolver, local.clone()), Some(local))
        }
    };
    let builder = match &config.outbox {
        Some(path) => builder.outbox(SqliteOutbox::open(path)?),
        None => builder,
    };
    let builder = match &config.redis_url {
        Some(url) => builder.shared_budgets(RedisBudgets::builder(url.as_str()).build()?),
        None => builder,
    };
    let paywall = builder
        .limits_ttl(if config.limits_ttl.is_zero() {
            Duration::from_secs(30)
        } else {
            config.limits_ttl
        })
        .build()?;
    Ok(Billing { paywall, local })
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

    let mut router = Router::new()
        .route("/api/hello", get(hello))
        .route_layer(paid)
        .route("/health", get(health));
    if let Some(local) = &local {
        router = router.merge(checkout::router(local.clone(), Some(paywall.clone())));
    }
    if let Some(secret) = &config.webhook_secret {
        router = router.merge(axum_handler::router(
            WebhookVerifier::new(secret.as_str()),
            paywall.clone(),
        ));
    }
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);

    Ok(Quickstart {
        router,
        paywall,
        local,
        sample_token: None,
        generated_secret: false,
    })
}

/// Serves `app` on `listener` until Ctrl-C or SIGTERM, then flushes usage. Prints
/// what it does under `name`; returns the process exit code.
pub async fn serve(
    name: &str,
    listener: tokio::net::TcpListener,
    app: Quickstart,
) -> std::process::ExitCode {
    let announce = name.to_owned();
    let served = axum::serve(listener, app.router.clone())
        .with_graceful_shutdown(async move {
            paywall_axum::shutdown_signal().await;
            println!("{announce}: shutting down, flushing usage");
        })
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

/// Reads the configuration from the environment, or prints why it cannot and returns
/// the exit code (2) to stop with.
pub fn config_or_exit(name: &str) -> Result<QuickstartConfig, std::process::ExitCode> {
    QuickstartConfig::from_env().map_err(|err| {
        eprintln!("{name}: {err}");
        std::process::ExitCode::from(2)
    })
}

/// Prints which billing backend the app uses (`local`: the embedded one, if any).
pub fn print_backend(config: &QuickstartConfig, local: Option<&LocalBackend>, base_url: &str) {
    match local {
        Some(_) => println!(
            "  backend: embedded SQLite ({}), product {}, {} free units",
            config
                .db
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "in memory".into()),
            config.product,
            config.free_units
        ),
        None => println!("  backend: SolvaPay, product {}", config.product),
    }
    if config.redis_url.is_some() {
        println!("  budgets: shared with other instances through Redis ({REDIS_URL_ENV})");
    }
    if config.webhook_secret.is_some() {
        println!("  webhooks: POST {base_url}/webhooks/solvapay (SV-Signature verified)");
    }
}

/// Prints how callers identify: the sample token and a `curl` line (HS256), or the
/// JWKS tokens are checked against.
pub fn print_identity(
    config: &QuickstartConfig,
    sample_token: Option<&str>,
    generated_secret: bool,
    base_url: &str,
) {
    if generated_secret {
        println!("  PAYWALL_JWT_SECRET is unset: generated a random secret for this run");
    }
    match sample_token {
        Some(token) => {
            println!("  sample token (sub=demo-user, valid 24 h):\n    {token}");
            println!("  try: curl -i -H 'Authorization: Bearer {token}' {base_url}/api/hello");
        }
        None => println!(
            "  tokens: verified with the JWKS at {}; try: curl -i -H 'Authorization: Bearer <token>' {base_url}/api/hello",
            config.jwks_url.as_deref().unwrap_or_default()
        ),
    }
}

/// Binds 127.0.0.1:`port`, printing a clear message on failure.
pub async fn listen(
    name: &str,
    port: u16,
) -> Result<(tokio::net::TcpListener, String), std::process::ExitCode> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|err| {
            eprintln!("{name}: cannot listen on 127.0.0.1:{port}: {err}");
            std::process::ExitCode::from(1)
        })?;
    let addr = listener.local_addr().map_err(|err| {
        eprintln!("{name}: {err}");
        std::process::ExitCode::from(1)
    })?;
    Ok((listener, format!("http://{addr}")))
}

/// Installs the log subscriber (`RUST_LOG`, default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// The JWT resolver: a JWKS when `PAYWALL_JWKS_URL` is set, HS256 otherwise; with the
/// sample token (HS256 only) and whether the secret was generated.
pub fn identity(
    config: &QuickstartConfig,
) -> Result<(JwtResolver, Option<String>, bool), QuickstartError> {
    if let Some(url) = &config.jwks_url {
        let mut resolver =
            JwtResolver::jwks(url.as_str()).algorithms([Algorithm::RS256, Algorithm::ES256]);
        if let Some(issuer) = &config.jwt_issuer {
            resolver = resolver.issuer(issuer.as_str());
        }
        if let Some(audience) = &config.jwt_audience {
            resolver = resolver.audience(audience.as_str());
        }
        return Ok((resolver.build()?, None, false));
    }
    let (secret, generated) = match &config.jwt_secret {
        Some(secret) => (secret.clone(), false),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            (bytes.iter().map(|b| format!("{b:02x}")).collect(), true)
        }
    };
    let resolver = JwtResolver::hs256(&secret).build()?;
    let token = Hs256Signer::new(&secret)
        .token_for("demo-user", Duration::from_secs(24 * 3600))
        .map_err(|err| QuickstartError::Env {
            var: "PAYWALL_JWT_SECRET",
            reason: format!("cannot sign a sample token: {err}"),
        })?;
    Ok((resolver, Some(token), generated))
}

/// `GET /health`.
pub fn health_body() -> Value {
    json!({ "status": "ok" })
}

/// `GET /api/hello`: the `x-customer-ref` the handler saw and the caller's external
/// reference.
pub fn hello_body(seen: Option<&str>, external_ref: &str) -> Value {
    json!({ "customerRef": seen, "externalRef": external_ref })
}

/// Unknown paths.
pub fn not_found_body() -> Value {
    json!({
        "success": false,
        "error": "Not Found",
        "kind": "not_found",
        "message": "No route for this path.",
    })
}

/// Known paths, wrong method.
pub fn method_not_allowed_body() -> Value {
    json!({
        "success": false,
        "error": "Method Not Allowed",
        "kind": "method_not_allowed",
        "message": "This path does not accept this method.",
    })
}

async fn health() -> Json<Value> {
    Json(health_body())
}

async fn hello(headers: HeaderMap, customer: Customer) -> Json<Value> {
    let seen = headers
        .get(X_CUSTOMER_REF)
        .and_then(|value| value.to_str().ok());
    Json(hello_body(seen, customer.external_ref()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_defaults_and_errors() {
        let config = QuickstartConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(config.port, 3000);
        assert_eq!(config.product, "prd_quickstart");
        assert_eq!(config.free_units, 5);
        assert!(config.jwt_secret.is_none() && config.db.is_none());

        let bad_port =
            QuickstartConfig::from_lookup(|name| (name == "PORT").then(|| "http".into()));
        assert!(matches!(
            bad_port,
            Err(QuickstartError::Env { var: "PORT", .. })
        ));
        let bad_units = QuickstartConfig::from_lookup(|name| {
            (name == "PAYWALL_FREE_UNITS").then(|| "-1".into())
        });
        assert!(matches!(
            bad_units,
            Err(QuickstartError::Env {
                var: "PAYWALL_FREE_UNITS",
                ..
            })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let config = QuickstartConfig {
            jwt_secret: Some("super-secret-value-that-must-not-leak".into()),
            ..QuickstartConfig::default()
        };
        assert!(!format!("{config:?}").contains("super-secret"));
    }

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
