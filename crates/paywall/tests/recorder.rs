//! The usage recorder: retries with the same idempotency keys, a shutdown that reports
//! what it could not record, and backpressure instead of drops.

use std::collections::HashSet;
use std::time::Duration;

use http::StatusCode;
use paywall::Paywall;
use tower::ServiceExt;

mod common;
use common::*;

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_idempotency_keys() {
    let backend = MemoryBackend::with_allowance(10);
    backend.fail_next_usage_calls(3);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            max_batch: 100,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..3 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    let report = paywall.flush().await;
    assert_eq!(report.recorded, 3);
    assert_eq!(report.pending, 0);
    let attempts = backend.usage_attempts();
    assert_eq!(attempts.len(), 4, "three failures, then success");
    assert!(
        attempts.iter().all(|keys| keys == &attempts[0]),
        "every retry carries the same keys"
    );
    assert_eq!(
        attempts[0].iter().collect::<HashSet<_>>().len(),
        3,
        "one distinct key per event"
    );
    assert_eq!(backend.recorded_units(), 3);
}

#[tokio::test]
async fn shutdown_reports_what_it_could_not_record_before_the_deadline() {
    let backend = MemoryBackend::with_allowance(10);
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    for _ in 0..4 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    let report = paywall.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.pending, 4);
    assert_eq!(report.recorded, 0);
    assert!(!report.is_complete());
}

#[tokio::test]
async fn a_full_queue_applies_backpressure_instead_of_dropping() {
    let backend = MemoryBackend::with_allowance(100);
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            capacity: 2,
            max_batch: 1,
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    // The worker holds one event in its retry loop and the queue holds two more.
    for _ in 0..3 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    let blocked = tokio::time::timeout(
        Duration::from_millis(200),
        service.clone().oneshot(request("alice")),
    )
    .await;
    assert!(
        blocked.is_err(),
        "the fourth response waits for room in the usage queue"
    );
    backend.fail_next_usage_calls(0);
    let response = service.clone().oneshot(request("alice")).await.expect("ok");
    assert_eq!(response.status(), StatusCode::OK);
    let report = paywall.flush().await;
    assert_eq!(report.pending, 0);
    // The abandoned fourth request was cancelled before its event was queued: 4 recorded.
    assert_eq!(backend.recorded_units(), 4);
}

#[tokio::test]
async fn a_full_queue_holds_a_response_at_most_the_enqueue_timeout() {
    let backend = MemoryBackend::with_allowance(100);
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            capacity: 2,
            max_batch: 1,
            enqueue_timeout: Duration::from_millis(100),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..3 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    // The usage endpoint is down and the queue is full: the response still goes out.
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), status_of(&service, "alice"))
        .await
        .expect("answered after the enqueue timeout, not blocked");
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        paywall.recorder().report().pending,
        4,
        "the unqueued event is reported, not lost silently"
    );
}

/// Polls `done` every 10 ms for at most `limit`; whether it became true.
async fn within(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_goes_out_at_once_and_a_partial_one_when_it_is_due() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            max_batch: 10,
            flush_interval: Duration::from_millis(1500),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..10 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    // The worker sleeps until its batch is due, but a batch's worth wakes it.
    assert!(
        within(Duration::from_millis(1000), || backend.usage_calls() == 1).await,
        "a full batch was sent before its interval"
    );
    for _ in 0..3 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        backend.usage_calls(),
        1,
        "a partial batch waits for its interval"
    );
    assert!(
        within(Duration::from_secs(5), || backend.usage_calls() == 2).await,
        "a partial batch went out when it was due"
    );
    assert_eq!(backend.recorded_units(), 13);
}
