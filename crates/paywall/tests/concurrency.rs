//! Concurrency: concurrent first requests share one backend call, and admission is exact.

use std::time::Duration;

use http::StatusCode;
mod common;
use common::*;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_ensure_and_one_limits_call() {
    let backend = MemoryBackend::with_allowance(1000).delay(Duration::from_millis(50));
    let paywall = test_paywall(&backend);
    let (ok, payment, other) = storm(std::slice::from_ref(&paywall), "new-user", 100).await;
    assert_eq!((ok, payment, other), (100, 0, 0));
    assert_eq!(
        backend.ensure_calls(),
        1,
        "one ensure-customer for 100 concurrent misses"
    );
    assert_eq!(
        backend.limits_calls(),
        1,
        "one limits call for 100 concurrent misses"
    );
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_units_left_exactly_five_of_two_hundred_are_admitted() {
    let backend = MemoryBackend::with_allowance(5);
    let paywall = test_paywall(&backend);
    let (ok, payment, other) = storm(std::slice::from_ref(&paywall), "alice", 200).await;
    assert_eq!((ok, payment, other), (5, 195, 0));
    let report = paywall.flush().await;
    assert_eq!(report.recorded, 5);
    assert_eq!(backend.recorded_units(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_admission_holds_when_the_cold_path_is_slow() {
    // The budget is created while all 200 requests wait on the same slow backend call.
    let backend = MemoryBackend::with_allowance(5).delay(Duration::from_millis(30));
    let paywall = test_paywall(&backend);
    let (ok, payment, other) = storm(std::slice::from_ref(&paywall), "bob", 200).await;
    assert_eq!((ok, payment, other), (5, 195, 0));
    assert_eq!(backend.limits_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_does_not_regrant_units_the_backend_has_not_recorded_yet() {
    // Usage cannot be recorded (the endpoint fails), so the backend keeps answering
    // "5 left" on every refresh. The paywall must still admit only 5 in total.
    let backend = MemoryBackend::with_allowance(5);
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = builder(&backend)
        .limits_ttl(Duration::from_millis(20))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let mut admitted = 0;
    for _ in 0..12 {
        if status_of(&service, "carol").await == StatusCode::OK {
            admitted += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await; // past the TTL: a refresh each time
    }
    assert!(
        backend.limits_calls() >= 5,
        "the budget was refreshed repeatedly"
    );
    assert_eq!(admitted, 5);
    // The endpoint recovers: usage lands once, and the next refreshes stay exact.
    backend.fail_next_usage_calls(0);
    let report = paywall.flush().await;
    assert_eq!(report.pending, 0);
    assert_eq!(backend.recorded_units(), 5);
    tokio::time::sleep(Duration::from_millis(25)).await;
    let status = status_of(&service, "carol").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_users_each_get_exactly_their_allowance() {
    let backend = MemoryBackend::with_allowance(3);
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    let mut tasks = Vec::new();
    for user in 0..20 {
        for _ in 0..10 {
            let service = service.clone();
            let request = request(&format!("user-{user}"));
            tasks.push(tokio::spawn(async move {
                service.oneshot(request).await.map(|r| r.status())
            }));
        }
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.expect("join").expect("infallible") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 20 * 3);
    assert_eq!(backend.ensure_calls(), 20);
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 60);
}

/// A user's budget lives in their cached customer entry. When that entry goes (evicted
/// or forgotten) while the user's usage is still unacknowledged, the next request must
/// find the same budget again, not a fresh one that would hand out the in-flight units
/// a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_forgotten_with_usage_in_flight_keeps_its_budget() {
    let backend = MemoryBackend::with_allowance(3);
    // Usage calls keep failing: the two admitted units stay unacknowledged.
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    for _ in 0..2 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    paywall.forget_external_ref("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status_of(&service, "alice").await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::PAYMENT_REQUIRED,
            StatusCode::PAYMENT_REQUIRED
        ],
        "3 units in all, 2 of them still in flight"
    );
    assert_eq!(backend.ensure_calls(), 2, "the customer was ensured again");
    backend.fail_next_usage_calls(0);
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 3);
}
