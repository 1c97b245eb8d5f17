//! The middleware's own tests: the extractors outside it, streaming bodies, the
//! rejection hook, and the size of its request future.

use super::*;
use actix_web::dev::Transform;
use actix_web::{test, web, App};
use paywall::test_util::{HeaderResolver, MemoryBackend};
use paywall::{Paywall, Rejection};
use std::time::Duration;

#[actix_rt::test]
async fn customer_outside_the_middleware_is_a_clear_500() {
    let app = test::init_service(App::new().route(
        "/",
        web::get().to(|_: BilledCustomer| async { HttpResponse::Ok().finish() }),
    ))
    .await;
    let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = test::read_body_json(response).await;
    assert_eq!(body["kind"], "paywall_misconfigured");
}

#[actix_rt::test]
async fn streaming_bodies_pass_through_untouched_and_usage_counts_at_the_head() {
    let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(1))
        .build()
        .expect("paywall");
    let middleware =
        PaywallMiddleware::new(&paywall, Charge::new("prd_stream")).expect("middleware");
    let app = test::init_service(
        App::new().service(
            web::resource("/stream").route(
                web::get()
                    .to(|| async {
                        let chunks = (0..3).map(|i| {
                            Ok::<_, actix_web::Error>(bytes::Bytes::from(format!("chunk{i};")))
                        });
                        HttpResponse::Ok().streaming(futures_util::stream::iter(chunks))
                    })
                    .wrap(middleware),
            ),
        ),
    )
    .await;
    let request = || {
        test::TestRequest::get()
            .uri("/stream")
            .insert_header(("x-user", "streamer"))
    };
    let response = test::call_service(&app, request().to_request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(test::read_body(response).await, "chunk0;chunk1;chunk2;");
    let second = test::call_service(&app, request().to_request()).await;
    assert_eq!(
        second.status(),
        402,
        "the unit was committed when the head was produced"
    );
    paywall.shutdown(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn the_cores_rejection_hook_shapes_actix_answers_too() {
    let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(0))
        .on_rejection(|rejection: &Rejection| {
            let mut response =
                http::Response::new(bytes::Bytes::from(format!("custom {}", rejection.kind())));
            *response.status_mut() = rejection.status();
            response
                .headers_mut()
                .insert("x-hook", http::HeaderValue::from_static("1"));
            response
        })
        .build()
        .expect("paywall");
    let middleware = PaywallMiddleware::new(&paywall, Charge::new("prd_hook")).expect("middleware");
    let app = test::init_service(
        App::new().service(
            web::scope("/api")
                .wrap(middleware)
                .route("/x", web::get().to(HttpResponse::Ok)),
        ),
    )
    .await;
    let response = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/x")
            .insert_header(("x-user", "broke"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 402);
    assert_eq!(
        response.headers().get("x-hook").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(test::read_body(response).await, "custom payment_required");
    assert!(PaywallMiddleware::new(&paywall, Charge::new("bad product")).is_err());
}

/// A warm request's future holds the inner service's future and the admission: one
/// box of a few hundred bytes, under the allocator's large-block threshold (1 KiB), so
/// that it costs what the bare server's own allocations cost. Only a request that waits
/// for its decision is boxed with it.
#[actix_rt::test]
async fn a_warm_requests_future_is_one_small_box() {
    let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(5))
        .build()
        .expect("paywall");
    let middleware = PaywallMiddleware::new(&paywall, Charge::new("prd_x")).expect("middleware");
    let inner = actix_web::dev::fn_service(|request: ServiceRequest| async {
        Ok::<_, actix_web::Error>(request.into_response(HttpResponse::Ok().finish()))
    });
    let service = middleware.new_transform(inner).await.expect("service");
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let request = test::TestRequest::get()
            .insert_header(("x-user", "ada"))
            .to_srv_request();
        let future = service.call(request);
        sizes.push(std::mem::size_of_val(&*future));
        let response = future.await.expect("response");
        assert_eq!(response.status(), 200);
        assert!(response
            .request()
            .extensions()
            .get::<paywall::Customer>()
            .is_some());
    }
    let (cold, warm) = (sizes[0], sizes[1]);
    assert!(warm < 512, "a warm request's future is {warm} bytes");
    assert!(warm < cold, "cold {cold} bytes, warm {warm}");
}
