//! The smallest complete paywall on axum: HS256 tokens, the embedded backend (SQLite in
//! memory, 3 free calls per user), one paid route, and the local checkout a 402 links to.
//!
//! ```text
//! PAYWALL_JWT_SECRET=$(openssl rand -hex 32) cargo run -p paywall-axum --example axum_basic
//! curl -i -H "Authorization: Bearer <the printed token>" http://127.0.0.1:3000/api/hello
//! ```
//! The fourth call answers 402 with a `checkoutUrl`: open it, press *Pay* (no money
//! moves), and the next call is admitted.

use std::time::Duration;

use axum::{routing::get, Json, Router};
use paywall::{Charge, Paywall};
use paywall_axum::BilledCustomer;
use paywall_jwt::{Hs256Signer, JwtResolver};
use paywall_local::{checkout, LocalBackend, Product};
use serde_json::{json, Value};

const PRODUCT: &str = "prd_basic";

async fn hello(customer: BilledCustomer) -> Json<Value> {
    Json(json!({
        "customerRef": customer.reference().as_str(),
        "externalRef": customer.external_ref(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PAYWALL_JWT_SECRET")
        .map_err(|_| "set PAYWALL_JWT_SECRET, e.g. PAYWALL_JWT_SECRET=$(openssl rand -hex 32)")?;
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;

    let backend = LocalBackend::builder()
        .product(Product::new(PRODUCT).free_units(3))
        .checkout_url(format!("http://127.0.0.1:{port}{}", checkout::PATH)) // in every 402
        .open()?;
    let resolver = JwtResolver::hs256(&secret).build()?;
    let paywall = Paywall::builder(resolver, backend.clone()).build()?;

    let app = Router::new()
        .route("/api/hello", get(hello))
        .route_layer(paywall.layer(Charge::new(PRODUCT))?) // 1 unit per call
        .route("/health", get(|| async { "ok" })) // public
        .merge(checkout::router(backend, Some(paywall.clone()))); // pay, unlocked at once

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let token = Hs256Signer::new(&secret).token_for("demo-user", Duration::from_secs(3600))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("curl -i -H 'Authorization: Bearer {token}' http://{addr}/api/hello");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    paywall.shutdown(Duration::from_secs(10)).await; // flush usage
    Ok(())
}
