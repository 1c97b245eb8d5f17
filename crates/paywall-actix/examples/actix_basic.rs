//! The smallest complete paywall on actix-web: HS256 tokens, the embedded backend
//! (SQLite in memory, 3 free calls per user), one paid route, and the local checkout a
//! 402 links to.
//!
//! ```text
//! PAYWALL_JWT_SECRET=$(openssl rand -hex 32) cargo run -p paywall-actix --example actix_basic
//! curl -i -H "Authorization: Bearer <the printed token>" http://127.0.0.1:3000/api/hello
//! ```
//! The fourth call answers 402 with a `checkoutUrl`: open it, press *Pay* (no money
//! moves), and the next call is admitted.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use paywall::{Charge, Paywall};
use paywall_actix::{BilledCustomer, PaywallMiddleware};
use paywall_jwt::{Hs256Signer, JwtResolver};
use paywall_local::{checkout, LocalBackend, Product};
use serde_json::json;

const PRODUCT: &str = "prd_basic";

async fn hello(customer: BilledCustomer) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "customerRef": customer.reference().as_str(),
        "externalRef": customer.external_ref(),
    }))
}

/// The embedded backend and the paywall, for the checkout pages.
struct Billing {
    backend: LocalBackend,
    paywall: Paywall,
}

fn page(page: checkout::Page) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response.content_type(page.content_type);
    for header in checkout::PAGE_HEADERS {
        response.insert_header(header);
    }
    response.body(page.body)
}

/// `GET /checkout/{session}`: the plan and a pay button.
async fn checkout_page(billing: web::Data<Billing>, session: web::Path<String>) -> HttpResponse {
    page(checkout::page(&billing.backend, &session).await)
}

/// `POST /checkout/{session}`: buys the session's plan and unlocks the customer at once
/// (only from the checkout page's own origin).
async fn checkout_pay(
    billing: web::Data<Billing>,
    request: HttpRequest,
    session: web::Path<String>,
) -> HttpResponse {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    if !checkout::same_origin(header("origin"), header("host")) {
        return page(checkout::cross_site());
    }
    page(checkout::pay(&billing.backend, Some(&billing.paywall), &session).await)
}

#[actix_web::main]
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
    let paid = PaywallMiddleware::new(&paywall, Charge::new(PRODUCT))?; // 1 unit per call
    let billing = web::Data::new(Billing {
        backend,
        paywall: paywall.clone(),
    });

    let server = HttpServer::new(move || {
        App::new()
            .app_data(billing.clone())
            .service(
                web::scope("/api")
                    .wrap(paid.clone())
                    .route("/hello", web::get().to(hello)),
            )
            .route(
                &format!("{}/{{session}}", checkout::PATH),
                web::get().to(checkout_page),
            )
            .route(
                &format!("{}/{{session}}", checkout::PATH),
                web::post().to(checkout_pay),
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
