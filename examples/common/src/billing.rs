//! The paywall wiring every quickstart shares: who the callers are ([`identity`]) and
//! where they are billed ([`billing`]: the embedded backend, or SolvaPay), with the
//! optional outbox and Redis-shared budgets.

use std::sync::Arc;
use std::time::Duration;

use paywall::recorder::RecorderConfig;
use paywall::{IdentityResolver, Paywall};
use paywall_jwt::{Hs256Signer, JwtResolver};
use paywall_local::{checkout, LocalBackend, Product, SqliteOutbox};
use paywall_redis::RedisBudgets;
use paywall_solvapay::SolvaPayBackend;
use rand::RngCore;

use crate::config::{QuickstartConfig, QuickstartError};

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
    crate::startup::prometheus();
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
    let builder = match (&config.redis_url, config.redis_cluster_urls.as_slice()) {
        (Some(url), _) => builder.shared_budgets(RedisBudgets::builder(url.as_str()).build()?),
        (None, []) => builder,
        (None, seeds) => {
            builder.shared_budgets(RedisBudgets::cluster(seeds.iter().cloned()).build()?)
        }
    };
    let paywall = builder
        .recorder(recorder(config))
        .ratelimit_headers(true)
        .max_customers(config.cache_capacity())
        .limits_ttl(config.budget_ttl())
        .build()?;
    Ok(Billing { paywall, local })
}

/// Usage is added up per customer and meter in each batch, not sent per request.
/// SolvaPay takes at most 1,000 events per call: the default 500 stay. The embedded
/// ledger takes batches of up to 10,000 events, as long as 100 ms of traffic, so that
/// with many users each still has several requests per batch; a second of traffic
/// (up to 50,000 events) when the process owns an in-memory ledger, which nothing else
/// reads and a crash loses with the queue, so that waiting longer loses nothing more
/// and 2,000 users at 20,000 requests a second cost 2,000 counter updates a second, not
/// 20,000.
fn recorder(config: &QuickstartConfig) -> RecorderConfig {
    let recorder = RecorderConfig {
        coalesce: true,
        ..RecorderConfig::default()
    };
    if config.solvapay.is_some() {
        recorder
    } else if config.owns_its_ledger() {
        RecorderConfig {
            max_batch: 50_000,
            capacity: 100_000,
            flush_interval: Duration::from_secs(1),
            ..recorder
        }
    } else {
        RecorderConfig {
            max_batch: 10_000,
            capacity: 20_000,
            ..recorder
        }
    }
}

/// The JWT resolver: OIDC discovery when `PAYWALL_OIDC_ISSUER` is set, a JWKS when
/// `PAYWALL_JWKS_URL` is, HS256 otherwise; with the sample token (HS256 only) and
/// whether the secret was generated. Must be called inside a Tokio runtime.
pub fn identity(
    config: &QuickstartConfig,
) -> Result<(Arc<JwtResolver>, Option<String>, bool), QuickstartError> {
    let provider = match (&config.oidc_issuer, &config.jwks_url) {
        (Some(issuer), _) => Some(JwtResolver::oidc(issuer.as_str())),
        (None, Some(url)) => Some(JwtResolver::jwks(url.as_str())),
        (None, None) => None,
    };
    if let Some(mut resolver) = provider {
        if let Some(issuer) = &config.jwt_issuer {
            resolver = resolver.issuer(issuer.as_str());
        }
        if let Some(audience) = &config.jwt_audience {
            resolver = resolver.audience(audience.as_str());
        }
        if !config.jwt_algorithms.is_empty() {
            resolver = resolver.algorithms(config.jwt_algorithms.iter().copied());
        }
        let resolver = resolver.token_cache(config.cache_capacity()).build()?;
        return Ok((Arc::new(resolver), None, false));
    }
    let (secret, generated) = match &config.jwt_secret {
        Some(secret) => (secret.clone(), false),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            (bytes.iter().map(|b| format!("{b:02x}")).collect(), true)
        }
    };
    let resolver = JwtResolver::hs256(&secret)
        .token_cache(config.cache_capacity())
        .build()?;
    let resolver = Arc::new(resolver);
    let token = Hs256Signer::new(&secret)
        .token_for("demo-user", Duration::from_secs(24 * 3600))
        .map_err(|err| QuickstartError::Env {
            var: "PAYWALL_JWT_SECRET",
            reason: format!("cannot sign a sample token: {err}"),
        })?;
    Ok((resolver, Some(token), generated))
}

/// The billing routes of the quickstarts: every meter the product is priced on
/// (`requests` for `/api/hello`, `tokens` for `/api/generate`), and checkout return URLs
/// on `PAYWALL_RETURN_ORIGINS` or, by default, the app's own origin (`base_url`) and
/// the `PAYWALL_CORS_ORIGINS` frontends.
pub fn billing_routes(
    paywall: &Paywall,
    config: &QuickstartConfig,
    base_url: &str,
) -> Result<paywall::BillingRoutes, paywall::ConfigError> {
    let charges = [
        paywall::Charge::new(&config.product),
        paywall::Charge::new(&config.product)
            .meter("tokens")
            .by_consumption(),
    ];
    let origins = if config.return_origins.is_empty() {
        let mut own = vec![base_url.trim_end_matches('/').to_owned()];
        own.extend(config.cors_origins.iter().cloned());
        own
    } else {
        config.return_origins.clone()
    };
    Ok(paywall::BillingRoutes::new(paywall, charges)?.return_origins(origins))
}

/// The routes of SolvaPay's React components over `billing`, callable from the
/// `PAYWALL_CORS_ORIGINS` frontends.
pub fn react_routes(
    billing: &paywall::BillingRoutes,
    config: &QuickstartConfig,
) -> Result<paywall::ReactRoutes, paywall::ConfigError> {
    billing
        .react()
        .cors_origins(config.cors_origins.iter().cloned())
}
