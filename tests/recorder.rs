//! The usage recorder: retries with the same idempotency keys, an exact SQLite ledger
//! under lost acknowledgements, and a shutdown that flushes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use paywall::Paywall;
use paywall_local::{LocalBackend, Product};
use paywall_tests::*;
use tower::ServiceExt;

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_idempotency_keys() {
    let backend = TestBackend::with_allowance(10);
    backend.state.usage_failures.store(3, Ordering::SeqCst);
    let paywall = Paywall::builder(resolver(), backend.clone())
        .recorder(paywall::RecorderConfig {
            max_batch: 100,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..3 {
        assert_eq!(
            service
                .clone()
                .oneshot(request("alice"))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
    }
    let report = paywall.flush().await;
    assert_eq!(report.recorded, 3);
    assert_eq!(report.pending, 0);
    let attempts = backend.state.attempts.lock().expect("lock").clone();
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

fn ledger_backend(path: Option<&std::path::Path>, free_units: u64) -> LocalBackend {
    let mut builder = LocalBackend::builder().product(Product::new(PRODUCT).free_units(free_units));
    if let Some(path) = path {
        builder = builder.path(path);
    }
    builder.open().expect("ledger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_ledger_has_one_row_per_admitted_request_despite_lost_acks() {
    let dir = tempfile::tempdir().expect("tmp");
    let ledger = ledger_backend(Some(&dir.path().join("ledger.db")), 1000);
    // Of every 5 usage calls: one fails before writing, one writes and then loses its ack.
    let lossy = LossyAcks {
        inner: ledger.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
        fail_before: vec![1],
        fail_after: vec![3],
        period: 5,
    };
    let calls = lossy.calls.clone();
    let paywall = Paywall::builder(resolver(), lossy)
        .recorder(paywall::RecorderConfig {
            max_batch: 7,
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let service = service.clone();
        let mut request = request(&format!("user-{}", i % 10));
        if i % 7 == 0 {
            request
                .headers_mut()
                .insert("x-test-status", "503".parse().expect("value"));
        }
        tasks.push(tokio::spawn(async move {
            service.oneshot(request).await.map(|r| r.status())
        }));
    }
    let mut admitted_ok = 0;
    for task in tasks {
        if task.await.expect("join").expect("infallible") == StatusCode::OK {
            admitted_ok += 1;
        }
    }
    let report = paywall.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(calls.load(Ordering::SeqCst) > 5, "faults were exercised");
    let rows = ledger.ledger(None).await.expect("ledger");
    assert_eq!(admitted_ok, 300 - 300usize.div_ceil(7));
    assert_eq!(
        rows.len(),
        admitted_ok,
        "exactly one ledger row per admitted success"
    );
    let keys: HashSet<_> = rows.iter().map(|r| &r.idempotency_key).collect();
    assert_eq!(keys.len(), rows.len());
    assert!(rows
        .iter()
        .all(|r| r.outcome == "success" && r.units == 1 && r.product_ref == PRODUCT));
}

#[tokio::test]
async fn shutdown_flushes_every_accepted_event() {
    let ledger = ledger_backend(None, 100);
    let paywall = Paywall::builder(resolver(), ledger.clone())
        // A batch would otherwise wait an hour.
        .recorder(paywall::RecorderConfig {
            max_batch: 1000,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..25 {
        assert_eq!(
            service
                .clone()
                .oneshot(request("alice"))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        ledger.ledger(None).await.expect("ledger").len(),
        0,
        "still batched"
    );
    let report = paywall.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.recorded, 25);
    assert_eq!(report.pending, 0);
    assert_eq!(ledger.ledger(None).await.expect("ledger").len(), 25);
    // After shutdown, usage is refused loudly (counted as pending), never silently.
    let response = service.clone().oneshot(request("alice")).await.expect("ok");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(paywall.recorder().report().pending, 1);
}

#[tokio::test]
async fn shutdown_reports_what_it_could_not_record_before_the_deadline() {
    let backend = TestBackend::with_allowance(10);
    backend
        .state
        .usage_failures
        .store(usize::MAX, Ordering::SeqCst);
    let paywall = test_paywall(&backend);
    let service = protected(&paywall);
    for _ in 0..4 {
        assert_eq!(
            service
                .clone()
                .oneshot(request("alice"))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
    }
    let report = paywall.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.pending, 4);
    assert_eq!(report.recorded, 0);
    assert!(!report.is_complete());
}

#[tokio::test]
async fn a_full_queue_applies_backpressure_instead_of_dropping() {
    let backend = TestBackend::with_allowance(100);
    backend
        .state
        .usage_failures
        .store(usize::MAX, Ordering::SeqCst);
    let paywall = Paywall::builder(resolver(), backend.clone())
        .recorder(paywall::RecorderConfig {
            capacity: 2,
            max_batch: 1,
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    // The worker holds one event in its retry loop and the queue holds two more.
    for _ in 0..3 {
        assert_eq!(
            service
                .clone()
                .oneshot(request("alice"))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
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
    backend.state.usage_failures.store(0, Ordering::SeqCst);
    let response = service.clone().oneshot(request("alice")).await.expect("ok");
    assert_eq!(response.status(), StatusCode::OK);
    let report = paywall.flush().await;
    assert_eq!(report.pending, 0);
    // The abandoned fourth request was cancelled before its event was queued: 4 recorded.
    assert_eq!(backend.recorded_units(), 4);
}
