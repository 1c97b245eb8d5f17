//! The billing backend down: fail-closed (503), fail-open, serve-stale, recovery, and
//! errors that are never cached nor shown to clients.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::StatusCode;
use paywall::{Charge, FailPolicy, Paywall};
mod common;
use common::*;
use tower::{Layer, ServiceExt};

fn paywall(backend: &MemoryBackend, policy: FailPolicy, ttl: Duration) -> Paywall {
    builder(backend)
        .fail_policy(policy)
        .limits_ttl(ttl)
        .failure_backoff(Duration::from_millis(50))
        .build()
        .expect("paywall")
}

async fn call(paywall: &Paywall, sub: &str) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let service = protected(paywall);
    read_json(service.oneshot(request(sub)).await.expect("infallible")).await
}

fn assert_503_without_internals(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &serde_json::Value,
) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        headers.get(RETRY_AFTER).is_some(),
        "503 carries Retry-After"
    );
    assert_eq!(body["kind"], "billing_unavailable");
    let text = body.to_string();
    for leak in [
        "exploded",
        "stack trace",
        "connection refused",
        "internal detail",
    ] {
        assert!(!text.contains(leak), "backend text leaked: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn fail_closed_answers_503_when_limits_are_down_and_recovers_without_restart() {
    let backend = MemoryBackend::with_allowance(5);
    backend.set_limits_down(true);
    let paywall = paywall(&backend, FailPolicy::Closed, Duration::from_secs(60));
    let (status, headers, body) = call(&paywall, "alice").await;
    assert_503_without_internals(status, &headers, &body);
    backend.set_limits_down(false);
    let (status, _, _) = call(&paywall, "alice").await;
    assert_eq!(status, StatusCode::OK, "errors are not cached");
}

#[tokio::test(start_paused = true)]
async fn fail_closed_answers_503_when_ensure_customer_is_down_and_does_not_cache_the_error() {
    let backend = MemoryBackend::with_allowance(5);
    backend.set_ensure_down(true);
    let paywall = paywall(&backend, FailPolicy::Closed, Duration::from_secs(60));
    let (status, headers, body) = call(&paywall, "alice").await;
    assert_503_without_internals(status, &headers, &body);
    backend.set_ensure_down(false);
    let (status, _, body) = call(&paywall, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["extension"], "cus_alice");
    assert_eq!(backend.ensure_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn fail_closed_stops_serving_a_known_budget_once_it_is_due_and_backs_off() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = paywall(&backend, FailPolicy::Closed, Duration::from_millis(30));
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    backend.set_limits_down(true);
    tokio::time::sleep(Duration::from_millis(40)).await;
    let calls_before = backend.limits_calls();
    let (status, headers, body) = call(&paywall, "alice").await;
    assert_503_without_internals(status, &headers, &body);
    // Within the failure backoff the backend is not asked again.
    for _ in 0..5 {
        assert_eq!(
            call(&paywall, "alice").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(backend.limits_calls(), calls_before + 1);
    backend.set_limits_down(false);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK, "recovered");
}

#[tokio::test(start_paused = true)]
async fn serve_stale_keeps_using_the_last_known_budget() {
    let backend = MemoryBackend::with_allowance(3);
    let paywall = paywall(&backend, FailPolicy::ServeStale, Duration::from_millis(20));
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    backend.set_limits_down(true);
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Two units are left in the local countdown: served, then 402.
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    assert_eq!(
        call(&paywall, "alice").await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    // Nothing known for a new user: as fail-closed.
    let (status, headers, body) = call(&paywall, "bob").await;
    assert_503_without_internals(status, &headers, &body);
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 3);
}

#[tokio::test(start_paused = true)]
async fn fail_open_admits_and_still_meters_known_customers() {
    let backend = MemoryBackend::with_allowance(1);
    let paywall = paywall(&backend, FailPolicy::Open, Duration::from_millis(20));
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    backend.set_limits_down(true);
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..3 {
        let (status, _, body) = call(&paywall, "alice").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["extension"], "cus_alice");
    }
    paywall.flush().await;
    assert_eq!(
        backend.recorded_units(),
        4,
        "usage admitted while open is still recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn fail_open_with_no_customer_admits_without_one() {
    let backend = MemoryBackend::with_allowance(1);
    backend.set_ensure_down(true);
    let paywall = paywall(&backend, FailPolicy::Open, Duration::from_secs(60));
    let (status, _, body) = call(&paywall, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["extension"], serde_json::Value::Null);
    assert_eq!(body["customerRefHeaders"], serde_json::json!([]));
}

#[tokio::test(start_paused = true)]
async fn a_route_can_override_the_fail_policy() {
    let backend = MemoryBackend::with_allowance(1);
    backend.set_limits_down(true);
    let paywall = paywall(&backend, FailPolicy::Closed, Duration::from_secs(60));
    let open = paywall
        .layer(Charge::new(PRODUCT).fail_policy(FailPolicy::Open))
        .expect("layer")
        .layer(EchoService);
    assert_eq!(
        open.oneshot(request("alice")).await.expect("ok").status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&paywall, "alice").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn identity_provider_down_is_503_not_401() {
    struct Down;
    impl paywall::IdentityResolver for Down {
        async fn resolve(
            &self,
            _: &http::request::Parts,
        ) -> Result<Option<paywall::Identity>, paywall::IdentityError> {
            Err(paywall::IdentityError::unavailable(
                "jwks fetch timed out at 10.0.0.1",
            ))
        }
    }
    let backend = MemoryBackend::with_allowance(1);
    let paywall = Paywall::builder(Down, backend.clone())
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let (status, headers, body) =
        read_json(service.oneshot(request("alice")).await.expect("ok")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(RETRY_AFTER).is_some());
    assert_eq!(body["kind"], "identity_unavailable");
    assert!(!body.to_string().contains("10.0.0.1"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_an_hour_locks_a_customer_out_for_a_minute_at_most() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = paywall(&backend, FailPolicy::Closed, Duration::from_millis(30));
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    backend.set_limits_down(true);
    backend.set_limits_retry_after(Some(Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_millis(40)).await;

    let (status, headers, body) = call(&paywall, "alice").await;
    assert_503_without_internals(status, &headers, &body);
    let told: u64 = headers[RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!(told <= 60, "capped at a minute, not an hour: {told}");
    let calls = backend.limits_calls();
    backend.set_limits_down(false);

    // Within the capped wait the backend is left alone...
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(
        call(&paywall, "alice").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(backend.limits_calls(), calls);
    // ...and after it, the next request asks again and is served.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(call(&paywall, "alice").await.0, StatusCode::OK);
    assert_eq!(backend.limits_calls(), calls + 1);
}
