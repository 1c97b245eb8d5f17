//! Exactly-once under faults: 2,000 requests while the usage endpoint fails a third of
//! the time (500s and 429s) and the dev server is restarted once; after the shutdown
//! flush the ledger holds exactly one row per admitted success.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use paywall_solvapay::SolvaPayBackend;
use paywall_tests::*;
use tower::ServiceExt;

/// Fails every third usage call: 500 before the write, or 429 (with `Retry-After: 0`)
/// after it, so both lost requests and lost acknowledgements happen.
async fn flaky_usage(
    State(calls): State<Arc<AtomicUsize>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/v1/sdk/usages/bulk" {
        return next.run(request).await;
    }
    match calls.fetch_add(1, Ordering::SeqCst) % 6 {
        0 => (StatusCode::INTERNAL_SERVER_ERROR, "lost before the write").into_response(),
        3 => {
            let _ = next.run(request).await;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                "lost after the write",
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

fn serve_dev(
    listener: std::net::TcpListener,
    ledger: paywall_local::LocalBackend,
    calls: Arc<AtomicUsize>,
) -> Served {
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = paywall_dev_server::router(
        ledger,
        paywall_dev_server::DevServerConfig::new(DEV_KEY, base),
    )
    .layer(middleware::from_fn_with_state(calls, flaky_usage));
    Served::start(listener, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_with_failing_usage_calls_and_a_dev_server_restart() {
    let ledger = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(PRODUCT).free_units(1_000_000))
        .open()
        .expect("ledger");
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = std_loopback();
    let addr = listener.local_addr().expect("addr");
    let mut dev = Some(serve_dev(listener, ledger.clone(), calls.clone()));
    let base = format!("http://{addr}");
    let backend = SolvaPayBackend::new(solvapay_config(&base)).expect("backend");
    let paywall = builder(&backend)
        .recorder(paywall::recorder::RecorderConfig {
            max_batch: 25,
            ..fast_recorder()
        })
        .failure_backoff(Duration::from_millis(50))
        .build()
        .expect("paywall");
    let service = protected(&paywall);

    let mut admitted = 0;
    let mut unavailable = 0;
    for wave in 0..20 {
        if wave == 10 {
            // Restart the dev server on the same address, same ledger.
            if let Some(server) = dev.take() {
                server.stop().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let listener = std::net::TcpListener::bind(addr).expect("rebind the same address");
            dev = Some(serve_dev(listener, ledger.clone(), calls.clone()));
        }
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (service, request) = (service.clone(), request(&format!("user-{}", i % 20)));
            tasks.push(tokio::spawn(async move {
                service.oneshot(request).await.map(|r| r.status())
            }));
        }
        for task in tasks {
            match task.await.expect("join").expect("infallible") {
                StatusCode::OK => admitted += 1,
                StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    let report = paywall.shutdown(Duration::from_secs(60)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(admitted + unavailable, 2000);
    assert!(admitted > 1500, "most requests were admitted ({admitted})");
    assert!(
        calls.load(Ordering::SeqCst) >= 6,
        "the faults were exercised"
    );
    assert_eq!(
        recorded(&ledger, None).await,
        (admitted as u64, admitted as u64),
        "one event per admitted success, no more, no less"
    );
    if let Some(server) = dev {
        server.stop().await;
    }
}

/// A server that answers every call with `answer` after `delay`.
fn slow_or_broken(delay: Duration, answer: &'static str) -> Served {
    let listener = std_loopback();
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    let router = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            answer,
        )
    });
    Served::start(listener, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_slow_past_the_timeout_is_a_prompt_503() {
    let server = slow_or_broken(Duration::from_secs(30), "{}");
    let config = solvapay_config(&server.base)
        .request_timeout(Duration::from_millis(200))
        .deadline(Duration::from_millis(600));
    let paywall = builder(&SolvaPayBackend::new(config).expect("backend"))
        .build()
        .expect("paywall");
    let started = std::time::Instant::now();
    let (status, headers, body) = read_json(
        protected(&paywall)
            .oneshot(request("alice"))
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the deadline: {:?}",
        started.elapsed()
    );
    assert!(headers.get("retry-after").is_some());
    assert_eq!(body["kind"], "billing_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_backend_answers_are_a_503_without_their_text() {
    let server = slow_or_broken(
        Duration::ZERO,
        "{\"reference\": 42, \"secret\": \"hunter2\"",
    );
    let paywall = builder(&SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend"))
        .build()
        .expect("paywall");
    let (status, _, body) = read_json(
        protected(&paywall)
            .oneshot(request("alice"))
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.to_string().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_at_start_then_up_recovers_without_a_restart() {
    let ledger = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(PRODUCT).free_units(100))
        .open()
        .expect("ledger");
    let listener = std_loopback();
    let addr = listener.local_addr().expect("addr");
    drop(listener); // nothing listens yet
    let config = solvapay_config(&format!("http://{addr}")).max_attempts(1);
    let paywall = builder(&SolvaPayBackend::new(config).expect("backend"))
        .failure_backoff(Duration::from_millis(50))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    assert_eq!(
        status_of(&service, "alice").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let dev = serve_dev(
        std::net::TcpListener::bind(addr).expect("bind"),
        ledger.clone(),
        Arc::new(AtomicUsize::new(1)),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status_of(&service, "alice").await, StatusCode::OK);
    assert!(paywall
        .shutdown(Duration::from_secs(10))
        .await
        .is_complete());
    assert_eq!(recorded(&ledger, None).await.0, 1);
    dev.stop().await;
}
