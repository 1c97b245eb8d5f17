//! Benchmark baseline: bare actix-web answering the JSON `/api/hello` answers, no
//! paywall. `PORT` (default 3000).

use actix_web::{web, App, HttpResponse, HttpServer};
use paywall_examples::responses;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let body = responses::hello_body(Some("cus_benchbenchbenchbench1"), "demo-user");
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/api/hello",
            web::get().to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().json(body) }
            }),
        )
    })
    .bind(("127.0.0.1", port))?;
    println!("bench-bare-actix listening on http://127.0.0.1:{port}");
    server.run().await
}
