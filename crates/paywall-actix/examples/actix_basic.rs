//! The smallest complete paywall on actix-web: HS256 tokens, the embedded backend
//! (SQLite in memory, 3 free calls per user), one paid route.
//!
//! ```text
//! PAYWALL_JWT_SECRET=$(openssl rand -hex 32) cargo run -p paywall-actix --example actix_basic
//! curl -i -H "Authorization: Bearer <the printed token>" http://127.0.0.1:3000/api/hello
//! ```
//! The fourth call answers 402.

use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use paywall::{Charge, Paywall};
use paywall_actix::{BilledCustomer, PaywallMiddleware};
use paywall_jwt::{Hs256Signer, JwtResolver};
use paywall_local::{LocalBackend, Product};
use serde_json::json;

const PRODUCT: &str = "prd_basic";

async fn hello(customer: BilledCustomer) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "customerRef": customer.reference().as_str(),
        "externalRef": customer.external_ref(),
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PAYWALL_JWT_SECRET")
        .map_err(|_| "set PAYWALL_JWT_SECRET, e.g. PAYWALL_JWT_SECRET=$(openssl rand -hex 32)")?;
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |port| port.parse())?;

    let backend = LocalBackend::builder()
        .product(Product::new(PRODUCT).free_units(3))
        .open()?;
    let paywall = Paywall::builder(JwtResolver::hs256(&secret).build()?, backend).build()?;
    let paid = PaywallMiddleware::new(&paywall, Charge::new(PRODUCT))?; // 1 unit per call

    let server = HttpServer::new(move || {
        App::new()
            .service(
                web::scope("/api")
                    .wrap(paid.clone())
                    .route("/hello", web::get().to(hello)),
            )
            .route("/health", web::get().to(|| async { "ok" })) // public
    })
    .bind(("127.0.0.1", port))?;
    let token = Hs256Signer::new(&secret).token_for("demo-user", Duration::from_secs(3600))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
        println!("curl -i -H 'Authorization: Bearer {token}' http://{addr}/api/hello");
    }

    server.run().await?; // stops on Ctrl-C or SIGTERM
    paywall.shutdown(Duration::from_secs(10)).await; // flush usage
    Ok(())
}
