//! Benchmark baseline: bare axum answering the JSON `/api/hello` answers, no paywall.
//! `PORT` (default 3000). With `BENCH_SERVE_LIMITS` set, served by
//! `paywall_axum::serve` with the quickstart's limits (header and body deadlines, idle
//! timeout) instead of `axum::serve`: what the quickstart's server adds without the
//! paywall.

use axum::routing::get;
use axum::{Json, Router};
use paywall_examples::responses;
use paywall_examples::startup;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (listener, base) = match startup::listen("bench-bare-axum", port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let body = responses::hello_body(Some("cus_benchbenchbenchbench1"), "demo-user");
    let app = Router::new().route("/api/hello", get(move || async move { Json(body.clone()) }));
    println!("bench-bare-axum listening on {base}");
    let served = if std::env::var_os("BENCH_SERVE_LIMITS").is_some() {
        paywall_axum::serve(
            listener,
            app,
            paywall_axum::ServeLimits::default(),
            std::future::pending(),
        )
        .await
    } else {
        axum::serve(listener, app).await
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}
