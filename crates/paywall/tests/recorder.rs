//! The usage recorder: retries with the same idempotency keys, a shutdown that reports
//! what it could not record, and a full queue that adds events up instead of holding
//! responses or dropping events.

use std::collections::HashSet;
use std::time::Duration;

use http::StatusCode;
use paywall::Paywall;

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
    assert!(
        attempts[0].iter().all(|key| key.len() == 36),
        "every event sent has its key (made by the recorder: no outbox here)"
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

/// A paywall whose usage queue holds 2 events and whose worker takes 1 at a time, on
/// a backend that refuses usage until told otherwise.
fn tiny_queue(backend: &MemoryBackend, enqueue_timeout: Duration) -> Paywall {
    backend.fail_next_usage_calls(usize::MAX);
    Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            capacity: 2,
            max_batch: 1,
            enqueue_timeout,
            ..fast_recorder()
        })
        .build()
        .expect("paywall")
}

#[tokio::test]
async fn a_full_queue_adds_events_up_and_holds_no_response() {
    let backend = MemoryBackend::with_allowance(1_000);
    // A response that waited for room would wait an hour.
    let paywall = tiny_queue(&backend, Duration::from_secs(3600));
    let service = protected(&paywall);
    // The worker holds one event in its retry loop and the queue holds two more; the
    // rest of the 200 requests are added up per customer.
    for round in 0..100 {
        for user in ["alice", "bob"] {
            let status = tokio::time::timeout(Duration::from_secs(10), status_of(&service, user))
                .await
                .unwrap_or_else(|_| panic!("request {round} of {user} was held"));
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert_eq!(backend.recorded_units(), 0, "the usage endpoint refuses");
    backend.fail_next_usage_calls(0);
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (200, 0), "{report:?}");
    assert_eq!(
        backend.recorded_units(),
        200,
        "every admitted request billed once"
    );
    assert!(
        backend.recorded_events().len() <= 5,
        "3 queued events and one sum per customer, not one event per request: {}",
        backend.recorded_events().len()
    );
}

#[tokio::test]
async fn past_its_limit_the_overflow_waits_for_room_off_the_response_path() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = tiny_queue(&backend, Duration::from_millis(100));
    let service = protected(&paywall);
    assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    assert!(
        within(Duration::from_secs(5), || backend.usage_calls() >= 1).await,
        "the worker took the first event"
    );
    // The queue holds two; two counters fit in the overflow (as many as the queue
    // holds events).
    for user in ["alice", "alice", "bob", "carol"] {
        assert_eq!(status_of(&service, user).await, StatusCode::OK);
    }
    assert_eq!(paywall.recorder().report().pending, 5);
    // A third customer's event waits for room (at most the enqueue timeout) in a task:
    // the response goes out at once, and the event is reported, not lost silently.
    let status = tokio::time::timeout(Duration::from_secs(10), status_of(&service, "dave"))
        .await
        .expect("answered at once");
    assert_eq!(status, StatusCode::OK);
    assert!(
        within(Duration::from_secs(5), || paywall
            .recorder()
            .report()
            .pending
            == 6)
        .await,
        "{:?}",
        paywall.recorder().report()
    );
    backend.fail_next_usage_calls(0);
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (5, 1), "{report:?}");
    assert_eq!(backend.recorded_units(), 5);
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

/// An outbox in memory whose read of the leftovers comes 100 ms late.
#[derive(Clone, Default)]
struct SlowOutbox(std::sync::Arc<std::sync::Mutex<Vec<paywall::backend::UsageEvent>>>);

impl paywall::recorder::Outbox for SlowOutbox {
    async fn store(
        &self,
        event: &paywall::backend::UsageEvent,
    ) -> Result<(), paywall::recorder::OutboxError> {
        self.0
            .lock()
            .map_err(|_| paywall::recorder::OutboxError("poisoned".into()))?
            .push(event.clone());
        Ok(())
    }

    async fn remove(&self, keys: &[String]) -> Result<(), paywall::recorder::OutboxError> {
        let mut events = self
            .0
            .lock()
            .map_err(|_| paywall::recorder::OutboxError("poisoned".into()))?;
        events.retain(|event| !keys.contains(&event.idempotency_key));
        Ok(())
    }

    async fn pending(
        &self,
    ) -> Result<Vec<paywall::backend::UsageEvent>, paywall::recorder::OutboxError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(self
            .0
            .lock()
            .map_err(|_| paywall::recorder::OutboxError("poisoned".into()))?
            .clone())
    }
}

#[tokio::test]
async fn events_of_this_run_are_not_replayed_as_a_previous_runs() {
    let backend = MemoryBackend::with_allowance(100);
    let outbox = SlowOutbox::default();
    let paywall = Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            flush_interval: Duration::from_millis(400),
            ..fast_recorder()
        })
        .outbox(outbox.clone())
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    // Answered while the recorder still reads what a previous run left (nothing).
    for _ in 0..5 {
        assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    }
    // Past the read of the leftovers (this run's events still in the outbox then).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (5, 0), "{report:?}");
    let sent: usize = backend.usage_attempts().iter().map(Vec::len).sum();
    assert_eq!(sent, 5, "each event sent once, none again as a leftover");
    assert!(outbox.0.lock().expect("lock").is_empty());
}

/// A paywall that adds each batch's events up, with `outbox`.
fn coalescing(backend: &MemoryBackend, outbox: &SlowOutbox) -> Paywall {
    Paywall::builder(HeaderResolver::new(), backend.clone())
        .recorder(paywall::recorder::RecorderConfig {
            coalesce: true,
            max_batch: 100,
            flush_interval: Duration::from_secs(3600),
            ..fast_recorder()
        })
        .outbox(outbox.clone())
        .build()
        .expect("paywall")
}

/// 30 requests of alice and 20 of bob, every one admitted.
async fn fifty_requests(paywall: &Paywall) {
    let service = protected(paywall);
    for i in 0..50 {
        let who = if i % 5 < 3 { "alice" } else { "bob" };
        assert_eq!(status_of(&service, who).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_coalescing_recorder_sends_one_event_per_customer_and_meter() {
    let backend = MemoryBackend::with_allowance(1_000);
    backend.fail_next_usage_calls(2);
    let outbox = SlowOutbox::default();
    let paywall = coalescing(&backend, &outbox);
    fifty_requests(&paywall).await;
    // Past the read of the leftovers, so this run's events are in the outbox.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (50, 0), "{report:?}");
    let mut units: Vec<u64> = backend.recorded_events().iter().map(|e| e.units).collect();
    units.sort_unstable();
    assert_eq!(units, [20, 30], "one event per customer, carrying the sum");
    let attempts = backend.usage_attempts();
    assert_eq!(attempts.len(), 3, "two failures, then success");
    assert!(
        attempts.iter().all(|keys| keys == &attempts[0]),
        "a sum keeps its key across retries"
    );
    assert!(
        outbox.0.lock().expect("lock").is_empty(),
        "acknowledged sums leave the outbox"
    );
}

#[tokio::test]
async fn sums_left_in_the_outbox_are_counted_once_however_often_replayed() {
    let down = MemoryBackend::with_allowance(1_000);
    down.fail_next_usage_calls(usize::MAX);
    let outbox = SlowOutbox::default();
    let paywall = coalescing(&down, &outbox);
    fifty_requests(&paywall).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The process stops while the backend refuses: the batch went through the outbox.
    let report = paywall.shutdown(Duration::from_millis(300)).await;
    assert_eq!(report.pending, 50, "{report:?}");
    let left = outbox.0.lock().expect("lock").clone();
    let mut units: Vec<u64> = left.iter().map(|e| e.units).collect();
    units.sort_unstable();
    assert_eq!(
        units,
        [20, 30],
        "the sums replaced their 50 events in the outbox"
    );

    let up = MemoryBackend::with_allowance(1_000);
    for _ in 0..2 {
        // The second start finds the same sums again (as if the first crashed after
        // the backend had them but before the outbox forgot them).
        *outbox.0.lock().expect("lock") = left.clone();
        let paywall = coalescing(&up, &outbox);
        // Past the read of the leftovers (100 ms), which queues them again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = paywall.flush().await;
        assert_eq!(report.pending, 0, "{report:?}");
    }
    assert_eq!(up.recorded_units(), 50, "every admitted unit once");
}
