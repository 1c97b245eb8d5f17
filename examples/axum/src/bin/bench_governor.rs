//! Benchmark peer: bare axum behind tower-governor (a global rate limit set so high it
//! never rejects), to compare a peer middleware's cost with the paywall's. `PORT`.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use paywall_examples::responses;
use paywall_examples::startup;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::GlobalKeyExtractor;
use tower_governor::GovernorLayer;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (listener, base) = match startup::listen("bench-governor", port).await {
        Ok(bound) => bound,
        Err(code) => return code,
    };
    let Some(config) = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .key_extractor(GlobalKeyExtractor)
        .finish()
    else {
        eprintln!("bench-governor: invalid governor configuration");
        return std::process::ExitCode::from(2);
    };
    let body = responses::hello_body(Some("cus_benchbenchbenchbench1"), "demo-user");
    let app = Router::new()
        .route("/api/hello", get(move || async move { Json(body.clone()) }))
        .layer(GovernorLayer::new(Arc::new(config)));
    println!("bench-governor listening on {base}");
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}
