//! The quickstarts' environment, parsed in one place: [`QuickstartConfig`] and what
//! can be wrong with it.

use std::path::PathBuf;
use std::time::Duration;

use paywall::ConfigError;
use paywall_jwt::{Algorithm, JwtConfigError};
use paywall_local::LocalError;
use paywall_redis::{RedisBudgetsError, REDIS_CLUSTER_URLS_ENV, REDIS_URL_ENV};
use paywall_solvapay::SolvaPayConfig;

/// `PAYWALL_MAX_CUSTOMERS` when unset: the engine's own default.
pub const DEFAULT_MAX_CUSTOMERS: u64 = 100_000;

/// How long a budget is trusted on the embedded backend's in-memory ledger: only this
/// process writes that ledger, and its checkout and portal forget a customer's budgets
/// whenever they change a plan, so asking it again finds nothing new (budgets are
/// still refreshed just after their allowance resets).
pub const OWN_LEDGER_LIMITS_TTL: Duration = Duration::from_secs(3600);

/// How long a budget is trusted when others may change what it depends on: SolvaPay, a
/// ledger file other processes may open, budgets shared through Redis.
pub const SHARED_LIMITS_TTL: Duration = Duration::from_secs(30);

/// The quickstart's settings, normally read from the environment.
#[derive(Clone, Default)]
pub struct QuickstartConfig {
    /// `PORT` (default 3000); the server listens on 127.0.0.1.
    pub port: u16,
    /// `PAYWALL_JWT_SECRET`; a random one is generated when unset.
    pub jwt_secret: Option<String>,
    /// `PAYWALL_JWKS_URL`: verify tokens with this JWKS instead of HS256 (requires
    /// `PAYWALL_JWT_ISSUER` and `PAYWALL_JWT_AUDIENCE`).
    pub jwks_url: Option<String>,
    /// `PAYWALL_OIDC_ISSUER`: verify tokens of this OpenID provider, its keys found by
    /// discovery (requires `PAYWALL_JWT_AUDIENCE`).
    pub oidc_issuer: Option<String>,
    /// `PAYWALL_JWT_ISSUER`: the required `iss` (with a JWKS).
    pub jwt_issuer: Option<String>,
    /// `PAYWALL_JWT_AUDIENCE`: the required `aud` (with a JWKS or an OIDC issuer).
    pub jwt_audience: Option<String>,
    /// `PAYWALL_JWT_ALGORITHMS` (`RS256,PS256,…`): the algorithms accepted with a JWKS
    /// (default: those the provider's keys declare).
    pub jwt_algorithms: Vec<Algorithm>,
    /// `PAYWALL_PRODUCT` (default `prd_quickstart`).
    pub product: String,
    /// `PAYWALL_FREE_UNITS` (default 5).
    pub free_units: u64,
    /// `PAYWALL_DB`: the SQLite file of the embedded backend (default in memory).
    pub db: Option<PathBuf>,
    /// How long budgets are trusted before the backend is asked again; 0 (as in
    /// `Default` and `from_env`) means the default, see
    /// [`budget_ttl`](Self::budget_ttl).
    pub limits_ttl: Duration,
    /// `PAYWALL_MAX_CUSTOMERS` (default 100,000): the most users kept warm, both their
    /// billing customers (with their budgets) and their verified tokens. Size it to the
    /// users active within the limits TTL: a user evicted costs a backend call and a
    /// signature check on their next request. 0 (as in `Default`) means the default.
    pub max_customers: u64,
    /// `PAYWALL_GENERATE_DELAY_MS`: the time between two tokens of `/api/generate`
    /// (default 10 ms).
    pub generate_delay: Duration,
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
    /// `PAYWALL_REDIS_CLUSTER_URLS`: the same through a Redis Cluster, by its seed nodes
    /// (`redis://h1:p1,redis://h2:p2,…`).
    pub redis_cluster_urls: Vec<String>,
    /// `PAYWALL_MCP_RESOURCE`: mcp-quickstart's canonical URL in its protected resource
    /// metadata (default: `PAYWALL_JWT_AUDIENCE` when it is an http(s) URL, else
    /// `http://127.0.0.1:<PORT>/mcp`).
    pub mcp_resource: Option<String>,
    /// `PAYWALL_RETURN_ORIGINS`: the origins a checkout's `returnUrl` may point to
    /// (comma-separated; empty: the app's own origin).
    pub return_origins: Vec<String>,
    /// `PAYWALL_CORS_ORIGINS`: the origins a browser frontend may call the routes of
    /// SolvaPay's React components from (comma-separated; none by default).
    pub cors_origins: Vec<String>,
}

impl std::fmt::Debug for QuickstartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickstartConfig")
            .field("port", &self.port)
            .field("jwks_url", &self.jwks_url)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("jwt_algorithms", &self.jwt_algorithms)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("product", &self.product)
            .field("free_units", &self.free_units)
            .field("max_customers", &self.max_customers)
            .field("db", &self.db)
            .field("solvapay", &self.solvapay)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("outbox", &self.outbox)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field("redis_cluster_nodes", &self.redis_cluster_urls.len())
            .field("mcp_resource", &self.mcp_resource)
            .field("return_origins", &self.return_origins)
            .field("cors_origins", &self.cors_origins)
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
    #[error("JWT settings (PAYWALL_JWT_SECRET / PAYWALL_JWKS_URL / PAYWALL_OIDC_ISSUER): {0}")]
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
    /// [`max_customers`](Self::max_customers), 0 read as the default.
    pub fn cache_capacity(&self) -> u64 {
        if self.max_customers == 0 {
            DEFAULT_MAX_CUSTOMERS
        } else {
            self.max_customers
        }
    }

    /// Whether billing goes to the embedded backend's in-memory ledger with budgets of
    /// this process's own: then nothing but this process reads or writes the ledger,
    /// and a crash loses it whole.
    pub fn owns_its_ledger(&self) -> bool {
        self.solvapay.is_none()
            && self.db.is_none()
            && self.redis_url.is_none()
            && self.redis_cluster_urls.is_empty()
    }

    /// [`limits_ttl`](Self::limits_ttl), 0 read as the default:
    /// [`OWN_LEDGER_LIMITS_TTL`] when the process [owns its
    /// ledger](Self::owns_its_ledger), [`SHARED_LIMITS_TTL`] otherwise.
    pub fn budget_ttl(&self) -> Duration {
        if !self.limits_ttl.is_zero() {
            self.limits_ttl
        } else if self.owns_its_ledger() {
            OWN_LEDGER_LIMITS_TTL
        } else {
            SHARED_LIMITS_TTL
        }
    }

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
        let generate_delay = match set("PAYWALL_GENERATE_DELAY_MS") {
            Some(value) => {
                Duration::from_millis(value.parse().map_err(|_| QuickstartError::Env {
                    var: "PAYWALL_GENERATE_DELAY_MS",
                    reason: format!("{value:?} is not a whole number of milliseconds"),
                })?)
            }
            None => Duration::from_millis(10),
        };
        let max_customers = match set("PAYWALL_MAX_CUSTOMERS") {
            Some(value) => match value.parse() {
                Ok(max) if max > 0 => max,
                _ => {
                    return Err(QuickstartError::Env {
                        var: "PAYWALL_MAX_CUSTOMERS",
                        reason: format!("{value:?} is not a whole number above 0"),
                    })
                }
            },
            None => DEFAULT_MAX_CUSTOMERS,
        };
        let jwks_url = set("PAYWALL_JWKS_URL");
        let oidc_issuer = set("PAYWALL_OIDC_ISSUER");
        let jwt_issuer = set("PAYWALL_JWT_ISSUER");
        let jwt_audience = set("PAYWALL_JWT_AUDIENCE");
        let required = |var: &'static str, with: &str, what: &str| QuickstartError::Env {
            var,
            reason: format!("required with {with}: {what}"),
        };
        match (&jwks_url, &oidc_issuer) {
            (Some(_), Some(_)) => {
                return Err(QuickstartError::Env {
                    var: "PAYWALL_OIDC_ISSUER",
                    reason: "set PAYWALL_JWKS_URL or PAYWALL_OIDC_ISSUER, not both".into(),
                })
            }
            (Some(_), None) if jwt_issuer.is_none() => {
                return Err(required(
                    "PAYWALL_JWT_ISSUER",
                    "PAYWALL_JWKS_URL",
                    "the `iss` your identity provider puts in its tokens",
                ))
            }
            (Some(_), None) | (None, Some(_)) if jwt_audience.is_none() => {
                return Err(required(
                    "PAYWALL_JWT_AUDIENCE",
                    if jwks_url.is_some() {
                        "PAYWALL_JWKS_URL"
                    } else {
                        "PAYWALL_OIDC_ISSUER"
                    },
                    "the `aud` of tokens meant for this API (your API's identifier)",
                ))
            }
            _ => {}
        }
        let jwt_algorithms = match set("PAYWALL_JWT_ALGORITHMS") {
            None => Vec::new(),
            Some(list) => parse_algorithms(&list).map_err(|reason| QuickstartError::Env {
                var: "PAYWALL_JWT_ALGORITHMS",
                reason,
            })?,
        };
        let redis_url = set(REDIS_URL_ENV);
        let redis_cluster_urls: Vec<String> = set(REDIS_CLUSTER_URLS_ENV)
            .map(|urls| {
                urls.split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if redis_url.is_some() && !redis_cluster_urls.is_empty() {
            return Err(QuickstartError::Env {
                var: REDIS_CLUSTER_URLS_ENV,
                reason: format!("set {REDIS_URL_ENV} (one Redis) or {REDIS_CLUSTER_URLS_ENV} (a Redis Cluster), not both"),
            });
        }
        let solvapay = match set("SOLVAPAY_SECRET_KEY") {
            Some(_) => Some(SolvaPayConfig::from_lookup(set)?),
            None => None,
        };
        Ok(Self {
            solvapay,
            webhook_secret: set("SOLVAPAY_WEBHOOK_SECRET"),
            outbox: set("PAYWALL_OUTBOX").map(PathBuf::from),
            redis_url,
            redis_cluster_urls,
            mcp_resource: set("PAYWALL_MCP_RESOURCE"),
            return_origins: set("PAYWALL_RETURN_ORIGINS").map_or_else(Vec::new, |v| comma_list(&v)),
            cors_origins: set("PAYWALL_CORS_ORIGINS").map_or_else(Vec::new, |v| comma_list(&v)),
            jwks_url,
            oidc_issuer,
            jwt_issuer,
            jwt_audience,
            jwt_algorithms,
            port,
            jwt_secret: set("PAYWALL_JWT_SECRET"),
            product: set("PAYWALL_PRODUCT").unwrap_or_else(|| "prd_quickstart".into()),
            free_units,
            db: set("PAYWALL_DB").map(PathBuf::from),
            limits_ttl: Duration::ZERO,
            max_customers,
            generate_delay,
        })
    }
}

/// `RS256,PS256,…`: asymmetric JWS algorithms only (HMAC is never accepted with keys
/// from a JWKS).
fn parse_algorithms(list: &str) -> Result<Vec<Algorithm>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| match name.parse::<Algorithm>() {
            Ok(alg) if alg.family() == paywall_jwt::AlgorithmFamily::Hmac => Err(format!(
                "{name} is symmetric: a JWKS only provides public keys"
            )),
            Ok(alg) => Ok(alg),
            Err(_) => Err(format!(
                "{name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|algs| {
            if algs.is_empty() {
                Err("no algorithm named".into())
            } else {
                Ok(algs)
            }
        })
}

/// Reads the configuration from the environment, or prints why it cannot and returns
/// the exit code (2) to stop with.
pub fn load(name: &str) -> Result<QuickstartConfig, std::process::ExitCode> {
    QuickstartConfig::from_env().map_err(|err| {
        eprintln!("{name}: {err}");
        std::process::ExitCode::from(2)
    })
}

/// A comma-separated list, without blanks.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
