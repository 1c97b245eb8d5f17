//! The usage recorder with the embedded SQLite ledger: exact under lost
//! acknowledgements, and a shutdown that flushes into it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use paywall::Paywall;
use paywall_local::{LocalBackend, Product};
use paywall_tests::*;
use tower::ServiceExt;

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
    let lossy = LossyAcks::new(ledger.clone(), 5, 1, 3);
    let calls = lossy.calls.clone();
    let paywall = Paywall::builder(resolver(), lossy)
        .recorder(paywall::recorder::RecorderConfig {
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
    assert_eq!(admitted_ok, 300 - 300usize.div_ceil(7));
    assert_eq!(
        recorded(&ledger, None).await,
        (admitted_ok as u64, admitted_ok as u64),
        "exactly one event per admitted success"
    );
    let rows = ledger.ledger(None).await.expect("ledger");
    assert!(rows
        .iter()
        .all(|r| r.outcome == "success" && r.units == r.events && r.product_ref == PRODUCT));
}

#[tokio::test]
async fn shutdown_flushes_every_accepted_event() {
    let ledger = ledger_backend(None, 100);
    let paywall = Paywall::builder(resolver(), ledger.clone())
        // A batch would otherwise wait an hour.
        .recorder(paywall::recorder::RecorderConfig {
            max_batch: 1000,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for _ in 0..25 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    assert_eq!(recorded(&ledger, None).await.0, 0, "still batched");
    let report = paywall.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.recorded, 25);
    assert_eq!(report.pending, 0);
    assert_eq!(recorded(&ledger, None).await.0, 25);
    // After shutdown, usage is refused loudly (counted as pending), never silently.
    let response = service.clone().oneshot(request("alice")).await.expect("ok");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(paywall.recorder().report().pending, 1);
}

/// A paywall over `backend` whose usage queue holds 2 events (the worker takes 1 at a
/// time), writing through the outbox at `path`.
fn tiny_queue_with_outbox(backend: &MemoryBackend, path: &std::path::Path) -> Paywall {
    Paywall::builder(resolver(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            capacity: 2,
            max_batch: 1,
            ..fast_recorder()
        })
        .outbox(paywall_local::SqliteOutbox::open(path).expect("outbox"))
        .build()
        .expect("paywall")
}

#[tokio::test]
async fn a_full_queue_with_an_outbox_bills_every_request_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("outbox.db");
    let outbox = paywall_local::SqliteOutbox::open(&path).expect("outbox");

    // The usage endpoint refuses: 30 responses go out at once, their events in the
    // outbox, most of them added up in the full queue's overflow.
    let down = MemoryBackend::with_allowance(1_000);
    down.fail_next_usage_calls(usize::MAX);
    let first = tiny_queue_with_outbox(&down, &path);
    let service = protected(&first);
    for _ in 0..30 {
        let status = tokio::time::timeout(Duration::from_secs(10), status_of(&service, "alice"))
            .await
            .expect("not held by the full queue");
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(outbox.len().await.expect("len"), 30);
    assert_eq!(first.shutdown(Duration::from_millis(100)).await.pending, 30);

    // A restart on the same outbox (the first process as good as dead: its backend
    // never answers) sends every stored event once.
    let up = MemoryBackend::with_allowance(1_000);
    let second = tiny_queue_with_outbox(&up, &path);
    let mut waited = 0;
    while up.recorded_units() < 30 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    second.flush().await;
    assert_eq!(
        up.recorded_units(),
        30,
        "every request once after the restart"
    );

    // In one process: the endpoint refuses, then recovers; the sums replace their
    // events in the outbox and the outbox ends empty.
    let flaky = MemoryBackend::with_allowance(1_000);
    flaky.fail_next_usage_calls(usize::MAX);
    let third_path = dir.path().join("third.db");
    let third = tiny_queue_with_outbox(&flaky, &third_path);
    let service = protected(&third);
    for _ in 0..30 {
        assert_eq!(status_of(&service, "bob").await, StatusCode::OK);
    }
    flaky.fail_next_usage_calls(0);
    let report = third.flush().await;
    assert_eq!((report.recorded, report.pending), (30, 0), "{report:?}");
    assert_eq!(flaky.recorded_units(), 30);
    assert!(
        flaky.recorded_events().len() < 30,
        "added up, not one event per request"
    );
    let third_outbox = paywall_local::SqliteOutbox::open(&third_path).expect("outbox");
    assert!(
        third_outbox.is_empty().await.expect("len"),
        "nothing left to send twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_usage_through_the_sqlite_outbox_is_exact_despite_lost_acks() {
    let dir = tempfile::tempdir().expect("tmp");
    let ledger = ledger_backend(Some(&dir.path().join("ledger.db")), 1000);
    let outbox = paywall_local::SqliteOutbox::open(dir.path().join("outbox.db")).expect("outbox");
    // Of every 3 usage calls: one fails before writing, one writes and then loses its ack.
    let lossy = LossyAcks::new(ledger.clone(), 3, 0, 1);
    let calls = lossy.calls.clone();
    let paywall = Paywall::builder(resolver(), lossy)
        .recorder(paywall::recorder::RecorderConfig {
            coalesce: true,
            // Sums of several requests each, of the 3 users below.
            max_batch: 100,
            flush_interval: Duration::from_millis(20),
            ..fast_recorder()
        })
        .outbox(outbox.clone())
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for i in 0..120 {
        let who = format!("user-{}", i % 3);
        assert_eq!(status_of(&service, &who).await, StatusCode::OK);
    }
    let report = paywall.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.recorded, 120, "every request settled");
    assert!(calls.load(Ordering::SeqCst) > 3, "faults were exercised");
    let (events, units) = recorded(&ledger, None).await;
    assert_eq!(units, 120, "every admitted unit once, none twice");
    assert!(
        events < 120,
        "{events} ledger events: batches were added up"
    );
    assert_eq!(outbox.len().await.expect("len"), 0, "the outbox is empty");
}
