//! `cargo run --release --bin axum-quickstart`: the paywall in front of an axum app, on
//! the embedded backend. See the README for the environment variables.

use std::process::ExitCode;
use std::time::Duration;

use paywall_examples::quickstart::{self, QuickstartConfig};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = match QuickstartConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("axum-quickstart: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "axum-quickstart: cannot listen on 127.0.0.1:{}: {err}",
                config.port
            );
            return ExitCode::from(1);
        }
    };
    let base_url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(err) => {
            eprintln!("axum-quickstart: {err}");
            return ExitCode::from(1);
        }
    };
    let app = match quickstart::build(&config, &base_url) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("axum-quickstart: {err}");
            return ExitCode::from(2);
        }
    };

    println!("axum-quickstart listening on {base_url}");
    match &app.local {
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
    if config.webhook_secret.is_some() {
        println!("  webhooks: POST {base_url}/webhooks/solvapay (SV-Signature verified)");
    }
    if app.generated_secret {
        println!("  PAYWALL_JWT_SECRET is unset: generated a random secret for this run");
    }
    println!(
        "  sample token (sub=demo-user, valid 24 h):\n    {}",
        app.sample_token
    );
    println!(
        "  try: curl -i -H 'Authorization: Bearer {}' {base_url}/api/hello",
        app.sample_token
    );

    let served = axum::serve(listener, app.router.clone())
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let report = app.paywall.shutdown(Duration::from_secs(10)).await;
    println!(
        "axum-quickstart stopped: {} usage events recorded, {} pending",
        report.recorded, report.pending
    );
    match served {
        Ok(()) if report.is_complete() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
        Err(err) => {
            eprintln!("axum-quickstart: server error: {err}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    paywall_axum::shutdown_signal().await;
    println!("axum-quickstart: shutting down, flushing usage");
}
