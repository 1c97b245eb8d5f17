//! What the quickstart binaries do before serving: logging, binding 127.0.0.1, and
//! telling the user how to call them.

use std::process::ExitCode;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use paywall_jwt::JwtResolver;
use paywall_local::LocalBackend;
use paywall_redis::{REDIS_CLUSTER_URLS_ENV, REDIS_URL_ENV};

use crate::config::QuickstartConfig;

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
    if !config.redis_cluster_urls.is_empty() {
        println!("  budgets: shared with other instances through a Redis Cluster ({REDIS_CLUSTER_URLS_ENV})");
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
        None => {
            match (&config.oidc_issuer, &config.jwks_url) {
                (Some(issuer), _) => println!("  tokens: issued by {issuer} (OIDC discovery)"),
                (None, Some(url)) => println!("  tokens: verified with the JWKS at {url}"),
                (None, None) => {}
            }
            println!("  try: curl -i -H 'Authorization: Bearer <token>' {base_url}/api/hello");
        }
    }
}

/// Fetches the identity provider's keys before serving (JWKS and OIDC modes; nothing
/// to do otherwise). An answer that can never work (404, not a key set, another
/// issuer) stops start-up with exit code 2; an unreachable provider is reported and the
/// server starts anyway, answering 503 until the provider answers.
pub async fn preload_keys(name: &str, jwt: Option<&JwtResolver>) -> Result<(), ExitCode> {
    let Some(jwt) = jwt else { return Ok(()) };
    match jwt.preload().await {
        Ok(0) => Ok(()),
        Ok(keys) => {
            println!("  identity provider: {keys} signing key(s) fetched");
            Ok(())
        }
        Err(err) if err.is_transient() => {
            eprintln!(
                "{name}: warning: {err}; starting anyway: requests are answered 503 until the identity provider answers"
            );
            Ok(())
        }
        Err(err) => {
            eprintln!("{name}: identity provider: {err}");
            Err(ExitCode::from(2))
        }
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

/// Installs the log subscriber (`RUST_LOG`, default `info`), with colours only when
/// standard output is a terminal (a log file gets plain text).
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// The process's Prometheus recorder, installed on first use (before any paywall is
/// built: the paywall keeps handles to its counters). `GET /metrics` renders it. The
/// quickstarts bind 127.0.0.1, so `/metrics` is public there; a real deployment serves
/// it on an internal port.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (an embedding application's).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The `/metrics` page: Prometheus text format.
pub fn metrics_text() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

/// The content type of [`metrics_text`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How long a client may take to send a request's header section, and how long an idle
/// keep-alive connection stays open: the same on both quickstarts.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections open at once: the process's file-descriptor limit less 64 (room for the
/// process's own files and its connections to the billing backend), at most 10,000;
/// 1,024 when the limit cannot be read.
pub fn connection_budget() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        });
    soft.map_or(1024, |files| files.saturating_sub(64).clamp(16, 10_000))
}
