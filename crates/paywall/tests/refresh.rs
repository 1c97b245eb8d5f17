//! Budgets in use are refreshed ahead of their expiry, in the background: no request
//! waits for a slow or hanging limits endpoint while its budget is still valid, the
//! refresh still lands, and an early refresh that fails changes nothing.

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use paywall::{BillingRoutes, Charge};
use serde_json::Value;

/// TTL 4 s: the background refresh may start in its last 800 ms.
const TTL: Duration = Duration::from_secs(4);
/// Inside that window, with room on both sides.
const INTO_THE_WINDOW: Duration = Duration::from_millis(3_400);

/// What `user` has left, as the billing routes read it from the paywall's budget.
async fn remaining(routes: &BillingRoutes, user: &str) -> u64 {
    let head = http::Request::builder()
        .header("x-user", user)
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let answer = routes.handle(&Method::GET, "", &head, b"").await;
    let state: Value = serde_json::from_slice(answer.body()).unwrap_or(Value::Null);
    state["products"][0]["remaining"].as_u64().unwrap_or(0)
}

async fn wait_for_limits_calls(backend: &MemoryBackend, calls: usize) {
    for _ in 0..250 {
        if backend.limits_calls() >= calls {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_budget_is_refreshed_in_the_background_before_it_expires() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = builder(&backend).limits_ttl(TTL).build().expect("paywall");
    let routes = BillingRoutes::new(&paywall, [Charge::new(PRODUCT)]).expect("routes");
    let service = protected(&paywall);
    assert_eq!(status(&service, request("ada")).await, StatusCode::OK);
    assert_eq!(backend.limits_calls(), 1);

    // The limits endpoint hangs. Inside the refresh window, requests are still
    // answered from the valid budget (a bounded wait: a request that waited for the
    // backend would time out here, not hang the test).
    backend.hold_limits(true);
    tokio::time::sleep(INTO_THE_WINDOW).await;
    for _ in 0..5 {
        let answered =
            tokio::time::timeout(Duration::from_secs(10), status(&service, request("ada"))).await;
        assert_eq!(
            answered.ok(),
            Some(StatusCode::OK),
            "a request waited for the backend"
        );
    }
    wait_for_limits_calls(&backend, 2).await;
    assert_eq!(
        backend.limits_calls(),
        2,
        "one background refresh, however many requests"
    );
    assert_eq!(remaining(&routes, "ada").await, 94);

    // The backend answers: the refresh lands (a purchase raised the allowance).
    backend.set_allowance(1_000);
    backend.hold_limits(false);
    for _ in 0..250 {
        if remaining(&routes, "ada").await > 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        remaining(&routes, "ada").await > 100,
        "the background refresh applied"
    );
    assert_eq!(
        backend.limits_calls(),
        2,
        "no request-path refresh was needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_ahead_changes_nothing_until_expiry() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = builder(&backend).limits_ttl(TTL).build().expect("paywall");
    let service = protected(&paywall);
    assert_eq!(status(&service, request("bo")).await, StatusCode::OK);
    backend.set_limits_down(true);
    tokio::time::sleep(INTO_THE_WINDOW).await;
    for _ in 0..5 {
        // Still valid: admitted, never a 503 for a refresh that was only early.
        assert_eq!(status(&service, request("bo")).await, StatusCode::OK);
    }
    wait_for_limits_calls(&backend, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&service, request("bo")).await, StatusCode::OK);
    assert_eq!(
        backend.limits_calls(),
        2,
        "one try ahead, not one per request"
    );
}
