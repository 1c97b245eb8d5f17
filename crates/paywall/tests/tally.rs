//! Usage added up in place: a coalescing recorder without an outbox adds each
//! success to its budget's tally and sends one event per customer and meter per batch,
//! exactly, under concurrency, across batches, through retries and at shutdown.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use http::StatusCode;
use paywall::recorder::RecorderConfig;
use paywall::Paywall;

mod common;
use common::*;

/// A paywall whose recorder adds usage up, with no outbox, sending a batch every
/// `flush_interval`.
fn tallying(backend: &MemoryBackend, flush_interval: Duration) -> Paywall {
    Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(RecorderConfig {
            coalesce: true,
            flush_interval,
            ..fast_recorder()
        })
        .build()
        .expect("paywall")
}

/// Units recorded per customer reference.
fn units_by_customer(backend: &MemoryBackend) -> HashMap<String, u64> {
    let mut units = HashMap::new();
    for event in backend.recorded_events() {
        *units.entry(event.customer.to_string()).or_default() += event.units;
    }
    units
}

#[tokio::test]
async fn each_customers_units_go_out_as_one_event_with_one_key_across_retries() {
    let backend = MemoryBackend::with_allowance(1_000);
    backend.fail_next_usage_calls(2);
    let paywall = tallying(&backend, Duration::from_secs(3600));
    let service = protected(&paywall);
    for i in 0..50 {
        let who = if i % 5 < 3 { "alice" } else { "bob" };
        assert_eq!(status_of(&service, who).await, StatusCode::OK);
    }
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (50, 0), "{report:?}");
    let events = backend.recorded_events();
    let mut units: Vec<u64> = events.iter().map(|event| event.units).collect();
    units.sort_unstable();
    assert_eq!(units, [20, 30], "one event per customer, carrying the sum");
    assert!(events.iter().all(|event| event.duration.is_none()));
    let attempts = backend.usage_attempts();
    assert_eq!(attempts.len(), 3, "two failures, then success");
    assert!(attempts.iter().all(|keys| keys == &attempts[0]));
    let keys: HashSet<&String> = attempts[0].iter().collect();
    assert_eq!(keys.len(), 2, "a key per sum");
    assert!(keys.iter().all(|key| key.len() == 36));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_across_many_batches_are_each_counted_once() {
    let backend = MemoryBackend::with_allowance(1_000_000);
    // Batches go out every few milliseconds while requests keep adding: a tally is
    // emptied and listed again many times during the run.
    let paywall = tallying(&backend, Duration::from_millis(2));
    let service = protected(&paywall);
    let users = ["ada", "grace", "edsger"];
    let mut tasks = Vec::new();
    for task in 0..6 {
        let service = service.clone();
        let user = users[task % users.len()];
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                assert_eq!(status_of(&service, user).await, StatusCode::OK);
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (2_400, 0), "{report:?}");
    let by_customer = units_by_customer(&backend);
    assert_eq!(by_customer.len(), 3);
    assert!(
        by_customer.values().all(|units| *units == 800),
        "{by_customer:?}"
    );
    assert!(
        backend.usage_calls() > 1,
        "the run spans several batches (else this test shows nothing)"
    );
    let keys: Vec<String> = backend
        .recorded_events()
        .into_iter()
        .map(|event| event.idempotency_key)
        .collect();
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "every sum has its own key");
}

#[tokio::test]
async fn tallied_units_go_out_when_their_batch_is_due_without_a_flush() {
    let backend = MemoryBackend::with_allowance(1_000);
    let paywall = tallying(&backend, Duration::from_millis(50));
    let service = protected(&paywall);
    for round in 1..=3u64 {
        for _ in 0..4 {
            assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
        }
        let mut waited = Duration::ZERO;
        while backend.recorded_units() < 4 * round && waited < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        assert_eq!(
            backend.recorded_units(),
            4 * round,
            "round {round}: sent when due, by an idle worker told once"
        );
    }
    assert_eq!(backend.usage_calls(), 3, "one call per round");
}

#[tokio::test]
async fn a_budget_spent_through_its_tally_refuses_exactly_and_is_acknowledged() {
    let backend = MemoryBackend::with_allowance(10);
    let paywall = tallying(&backend, Duration::from_secs(3600));
    let service = protected(&paywall);
    admitted_then_refused(&service, "alice", 10).await;
    let report = paywall.flush().await;
    assert_eq!(report.recorded, 10);
    // The backend now counts the ten units itself: a refresh must not count them twice
    // (acknowledged) nor forget them.
    paywall
        .invalidate_customer(&paywall::CustomerRef::new("cus_alice"))
        .await;
    assert_eq!(
        status_of(&service, "alice").await,
        StatusCode::PAYMENT_REQUIRED
    );
    backend.set_allowance(12);
    paywall
        .invalidate_customer(&paywall::CustomerRef::new("cus_alice"))
        .await;
    admitted_then_refused(&service, "alice", 2).await;
    assert_eq!(paywall.flush().await.recorded, 12);
    assert_eq!(backend.recorded_units(), 12);
}

#[tokio::test]
async fn tallied_units_the_backend_refuses_until_shutdown_are_reported_pending() {
    let backend = MemoryBackend::with_allowance(10);
    backend.fail_next_usage_calls(usize::MAX);
    let paywall = tallying(&backend, Duration::from_secs(3600));
    let service = protected(&paywall);
    for _ in 0..4 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    let report = paywall.shutdown(Duration::from_millis(200)).await;
    assert_eq!((report.recorded, report.pending), (0, 4), "{report:?}");
    // After shutdown an admitted request's usage is refused and still reported.
    assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    assert_eq!(paywall.recorder().report().pending, 5);
}
