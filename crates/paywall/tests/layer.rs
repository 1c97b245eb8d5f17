//! The tower layer through `oneshot`: 401s, 402s, admitted requests, header stripping,
//! committing and giving back units.

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::Full;
use paywall::{Charge, Paywall, Rejection};
use serde_json::json;
use tower::{Layer, ServiceExt};

mod common;
use common::*;

async fn assert_401(request: Request<Full<bytes::Bytes>>, www_authenticate: &str) {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = test_paywall(&backend);
    assert_unauthenticated(&paywall, &backend, request, www_authenticate).await;
}

#[tokio::test]
async fn no_identity_is_401() {
    assert_401(Request::new(Full::default()), "Bearer").await;
}

#[tokio::test]
async fn an_identity_the_resolver_refuses_is_401() {
    let request = Request::builder()
        .header("x-user", "")
        .body(Full::default())
        .expect("request");
    assert_401(request, "Bearer error=\"invalid_token\"").await;
}

#[tokio::test]
async fn admitted_request_carries_header_and_extension() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = test_paywall(&backend);
    let response = protected(&paywall)
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    let (status, _, body) = read_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customerRefHeaders"], json!(["cus_alice"]));
    assert_eq!(body["extension"], "cus_alice");
    assert_eq!(body["externalRef"], "alice");
}

#[tokio::test]
async fn inbound_customer_ref_never_reaches_the_handler() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = test_paywall(&backend);
    let mut request = request("alice");
    request
        .headers_mut()
        .append("x-customer-ref", "cus_victim".parse().expect("value"));
    request
        .headers_mut()
        .append("x-customer-ref", "cus_other".parse().expect("value"));
    let response = protected(&paywall)
        .oneshot(request)
        .await
        .expect("infallible");
    let (status, _, body) = read_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["customerRefHeaders"],
        json!(["cus_alice"]),
        "only the paywall's value"
    );
}

#[tokio::test]
async fn exhausted_allowance_is_402_with_every_field() {
    let backend = MemoryBackend::with_allowance(1);
    backend.set_checkout_url(Some("https://pay.example/c/1"));
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    let first = service
        .clone()
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    let response = service
        .clone()
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    let (status, headers, body) = read_json(response).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
    assert!(
        headers.get(RETRY_AFTER).is_none(),
        "the test backend gives no reset time"
    );
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "Payment required");
    assert_eq!(body["kind"], "payment_required");
    assert_eq!(body["product"], PRODUCT);
    assert_eq!(body["checkoutUrl"], "https://pay.example/c/1");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains(PRODUCT)));
    assert_eq!(body["type"], "urn:paywall:payment_required");
    assert_eq!(body["title"], "Payment required");
    assert_eq!(body["status"], 402);
    assert_eq!(body["detail"], body["message"]);
    assert_eq!(body["plan"], "pln_free");
}

#[tokio::test]
async fn usage_is_committed_on_2xx_and_given_back_on_5xx() {
    let backend = MemoryBackend::with_allowance(2);
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    let failing = || {
        let mut request = request("alice");
        request
            .headers_mut()
            .insert("x-test-status", "500".parse().expect("value"));
        request
    };
    // Five failures in a row: every reserved unit is given back.
    for _ in 0..5 {
        let response = service
            .clone()
            .oneshot(failing())
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    for _ in 0..2 {
        let response = service
            .clone()
            .oneshot(request("alice"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = service
        .clone()
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let report = paywall.flush().await;
    assert_eq!(report.recorded, 2);
    assert_eq!(
        backend.recorded_units(),
        2,
        "only the successes were metered"
    );
}

#[tokio::test]
async fn a_dropped_request_gives_its_units_back() {
    let backend = MemoryBackend::with_allowance(1);
    let paywall = test_paywall(&backend);
    let slow = tower::service_fn(never_answers);
    let service = paywall
        .layer(Charge::new(PRODUCT))
        .expect("layer")
        .layer(slow);
    // The client goes away while the handler runs.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        service.clone().oneshot(request("alice")),
    )
    .await;
    assert!(abandoned.is_err());
    // The unit came back: a fresh request is admitted.
    let response = protected(&paywall)
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn success_predicate_is_configurable() {
    let backend = MemoryBackend::with_allowance(1);
    let paywall = builder(&backend)
        .success_when(|status| status.is_success() || status == StatusCode::NOT_FOUND)
        .build()
        .expect("paywall");
    let mut request = request("alice");
    request
        .headers_mut()
        .insert("x-test-status", "404".parse().expect("value"));
    let response = protected(&paywall)
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    paywall.flush().await;
    assert_eq!(
        backend.recorded_units(),
        1,
        "a 404 counts under this predicate"
    );
}

#[tokio::test]
async fn rejection_hook_replaces_the_response() {
    let backend = MemoryBackend::with_allowance(0);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .on_rejection(|rejection: &Rejection| {
            let mut response =
                http::Response::new(bytes::Bytes::from(format!("custom {}", rejection.kind())));
            *response.status_mut() = rejection.status();
            response
        })
        .build()
        .expect("paywall");
    let response = protected(&paywall)
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&bytes[..], b"custom payment_required");
}

#[tokio::test]
async fn routes_charge_their_own_units_and_share_a_budget_per_product_and_meter() {
    let backend = MemoryBackend::with_allowance(10);
    let paywall = test_paywall(&backend);
    let expensive = paywall
        .layer(Charge::new(PRODUCT).units(4))
        .expect("layer")
        .layer(EchoService);
    let cheap = protected(&paywall);
    for _ in 0..2 {
        assert_eq!(status_of(&expensive, "alice").await, StatusCode::OK);
    }
    // 8 used, 2 left: 4 more do not fit, 1 does.
    assert_eq!(
        status_of(&expensive, "alice").await,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(status_of(&cheap, "alice").await, StatusCode::OK);
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 9);
}

#[tokio::test]
async fn invalid_route_configuration_fails_when_the_layer_is_built() {
    let backend = MemoryBackend::with_allowance(1);
    let paywall = test_paywall(&backend);
    assert!(paywall.layer(Charge::new("")).is_err());
    assert!(paywall.layer(Charge::new("prd ok")).is_err());
    assert!(paywall.layer(Charge::new(PRODUCT).units(0)).is_err());
    assert!(paywall.layer(Charge::new(PRODUCT).meter("")).is_err());
}

#[tokio::test]
async fn invalidating_a_customer_refreshes_its_budget_at_once() {
    let backend = MemoryBackend::with_allowance(1);
    let paywall = builder(&backend)
        .limits_ttl(Duration::from_secs(3600))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    assert_eq!(
        status_of(&service, "alice").await,
        StatusCode::PAYMENT_REQUIRED
    );
    paywall.flush().await;
    // The customer buys more: the backend now grants 3 in total.
    backend.set_allowance(3);
    assert_eq!(
        status_of(&service, "alice").await,
        StatusCode::PAYMENT_REQUIRED,
        "cached until invalidated"
    );
    paywall
        .invalidate_customer(&paywall::CustomerRef::new("cus_alice"))
        .await;
    admitted_then_refused(&service, "alice", 2).await;
}

#[tokio::test]
async fn poll_ready_is_the_inner_services() {
    use std::task::{Context, Poll};
    let backend = MemoryBackend::with_allowance(1);
    let paywall = test_paywall(&backend);
    let (inner, mut handle) = tower_test_mock();
    let mut service = paywall
        .layer(Charge::new(PRODUCT))
        .expect("layer")
        .layer(inner);
    handle.allow(0);
    let waker = futures_noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(
        tower::Service::<Request<Full<bytes::Bytes>>>::poll_ready(&mut service, &mut cx),
        Poll::Pending
    ));
    handle.allow(1);
    assert!(matches!(
        tower::Service::<Request<Full<bytes::Bytes>>>::poll_ready(&mut service, &mut cx),
        Poll::Ready(Ok(()))
    ));
}

/// A minimal inner service whose readiness the test controls.
#[derive(Clone)]
struct Gate(std::sync::Arc<std::sync::atomic::AtomicUsize>);

struct GateHandle(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl GateHandle {
    fn allow(&mut self, n: usize) {
        self.0.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

fn tower_test_mock() -> (Gate, GateHandle) {
    let permits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (Gate(permits.clone()), GateHandle(permits))
}

impl tower::Service<Request<Full<bytes::Bytes>>> for Gate {
    type Response = http::Response<Full<bytes::Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _: Request<Full<bytes::Bytes>>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(Full::default())))
    }
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}
