//! `cargo run --release --bin paywall-dev-server`: a SolvaPay-compatible server over the
//! embedded SQLite ledger, on 127.0.0.1:`PORT` (default 4000).
//!
//! | variable | meaning |
//! |---|---|
//! | `SOLVAPAY_SECRET_KEY` | required: the key clients must send as `Authorization: Bearer` |
//! | `PORT` | listen port (default 4000) |
//! | `PAYWALL_DB` | SQLite file (default in memory) |
//! | `PAYWALL_PRODUCT`, `PAYWALL_FREE_UNITS` | the product served (default `prd_quickstart`, 5 free units) |
//! | `PAYWALL_DEV_WEBHOOK_URL`, `SOLVAPAY_WEBHOOK_SECRET` | deliver signed webhooks there |

use std::process::ExitCode;

use paywall_dev_server::{DevServerConfig, WebhookTarget};
use paywall_local::{LocalBackend, Product};
use tracing_subscriber::EnvFilter;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("paywall-dev-server: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let Some(secret_key) = var("SOLVAPAY_SECRET_KEY") else {
        return fail(
            "SOLVAPAY_SECRET_KEY is not set: choose a key, and give the same one to the clients",
        );
    };
    let port: u16 = match var("PORT").map(|p| p.parse()) {
        None => 4000,
        Some(Ok(port)) => port,
        Some(Err(_)) => return fail("PORT is not a port number (0-65535)"),
    };
    let free_units: u64 = match var("PAYWALL_FREE_UNITS").map(|u| u.parse()) {
        None => 5,
        Some(Ok(units)) => units,
        Some(Err(_)) => return fail("PAYWALL_FREE_UNITS is not a whole number"),
    };
    let product = var("PAYWALL_PRODUCT").unwrap_or_else(|| "prd_quickstart".into());
    let webhook = match (
        var("PAYWALL_DEV_WEBHOOK_URL"),
        var("SOLVAPAY_WEBHOOK_SECRET"),
    ) {
        (Some(url), Some(secret)) => Some(WebhookTarget { url, secret }),
        (None, _) => None,
        (Some(_), None) => {
            return fail("PAYWALL_DEV_WEBHOOK_URL needs SOLVAPAY_WEBHOOK_SECRET to sign with")
        }
    };

    let mut ledger = LocalBackend::builder().product(Product::new(&product).free_units(free_units));
    if let Some(path) = var("PAYWALL_DB") {
        ledger = ledger.path(path);
    }
    let ledger = match ledger.open() {
        Ok(ledger) => ledger,
        Err(err) => return fail(&format!("PAYWALL_DB: {err}")),
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("paywall-dev-server: cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::from(1);
        }
    };
    let base = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(err) => {
            eprintln!("paywall-dev-server: {err}");
            return ExitCode::from(1);
        }
    };
    let mut config = DevServerConfig::new(secret_key, &base);
    if let Some(target) = webhook {
        println!("  webhooks: {} (signed)", target.url);
        config = config.webhook(target);
    }
    println!("paywall-dev-server listening on {base}");
    println!("  product {product}, {free_units} free units; clients: SOLVAPAY_API_BASE_URL={base}");
    let served = paywall_axum::serve(
        listener,
        paywall_dev_server::router(ledger, config),
        paywall_axum::ServeLimits::default(),
        paywall_axum::shutdown_signal(),
    )
    .await;
    match served {
        Ok(()) => {
            println!("paywall-dev-server stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("paywall-dev-server: {err}");
            ExitCode::from(1)
        }
    }
}
