//! Backend economy, counted at a SolvaPay-compatible server: concurrent first requests
//! share one ensure and one limits call, usage goes out in batches, and limits calls
//! follow the cache TTL rather than the traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::StatusCode;
use paywall::Paywall;
use paywall_solvapay::SolvaPayBackend;
use paywall_tests::*;
use tower::ServiceExt;

type Counts = Arc<Mutex<HashMap<String, usize>>>;

async fn count(State(counts): State<Counts>, request: Request, next: Next) -> Response {
    let key = format!("{} {}", request.method(), request.uri().path());
    *counts.lock().expect("lock").entry(key).or_default() += 1;
    next.run(request).await
}

/// The dev server, counting calls per method and path.
fn counting_dev_server(free_units: u64) -> (Served, paywall_local::LocalBackend, Counts) {
    let ledger = paywall_local::LocalBackend::builder()
        .product(paywall_local::Product::new(PRODUCT).free_units(free_units))
        .open()
        .expect("ledger");
    let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(std).expect("listener");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let counts = Counts::default();
    let router = paywall_dev_server::router(
        ledger.clone(),
        paywall_dev_server::DevServerConfig::new(DEV_KEY, base),
    )
    .layer(middleware::from_fn_with_state(counts.clone(), count));
    (Served::start(listener, router), ledger, counts)
}

fn calls(counts: &Counts, key: &str) -> usize {
    counts.lock().expect("lock").get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_cost_one_ensure_and_one_limits_call() {
    let (server, _ledger, counts) = counting_dev_server(10_000);
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
    let paywall = builder(&backend).build().expect("paywall");
    let service = protected(&paywall);
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (service, barrier, request) =
            (service.clone(), barrier.clone(), request("first-timer"));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service.oneshot(request).await.map(|r| r.status())
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("join").expect("infallible"),
            StatusCode::OK
        );
    }
    assert_eq!(calls(&counts, "GET /v1/sdk/customers"), 1, "one lookup");
    assert_eq!(calls(&counts, "POST /v1/sdk/customers"), 1, "one create");
    assert_eq!(calls(&counts, "POST /v1/sdk/limits"), 1, "one limits call");
    paywall.shutdown(Duration::from_secs(10)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_of_a_hundred_warm_users_take_at_most_a_hundred_usage_calls() {
    let (server, ledger, counts) = counting_dev_server(1_000);
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
    // The default recorder: batches of 100, flushed every 100 ms.
    let paywall = Paywall::builder(resolver(), backend)
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    for user in 0..100 {
        assert_eq!(
            status_of(&service, &format!("warm-{user}")).await,
            StatusCode::OK
        );
    }
    paywall.flush().await;
    let before = calls(&counts, "POST /v1/sdk/usages/bulk");
    let mut tasks = Vec::new();
    for i in 0..10_000 {
        let (service, request) = (service.clone(), request(&format!("warm-{}", i % 100)));
        tasks.push(tokio::spawn(async move {
            service.oneshot(request).await.map(|r| r.status())
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("join").expect("infallible"),
            StatusCode::OK
        );
    }
    let report = paywall.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_complete(), "{report:?}");
    let usage_calls = calls(&counts, "POST /v1/sdk/usages/bulk") - before;
    assert!(
        usage_calls <= 100,
        "{usage_calls} usage calls for 10,000 requests"
    );
    assert_eq!(recorded(&ledger, None).await.0, 10_100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_calls_follow_the_ttl_not_the_traffic() {
    let (server, _ledger, counts) = counting_dev_server(1_000_000);
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
    let ttl = Duration::from_millis(500);
    let paywall = builder(&backend).limits_ttl(ttl).build().expect("paywall");
    let service = protected(&paywall);
    let users = 10;
    let run = Duration::from_millis(1600);
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < run {
        for user in 0..users {
            assert_eq!(
                status_of(&service, &format!("steady-{user}")).await,
                StatusCode::OK
            );
            requests += 1;
        }
    }
    let limits = calls(&counts, "POST /v1/sdk/limits");
    // At most one call per user per TTL period, plus the first: 10 × (1600/500 + 1).
    let bound = users * (run.as_millis() / ttl.as_millis() + 1) as usize;
    assert!(
        limits <= bound,
        "{limits} limits calls for {requests} requests (bound {bound})"
    );
    assert!(
        requests > 10 * limits,
        "traffic ({requests}) far above limits calls ({limits})"
    );
    paywall.shutdown(Duration::from_secs(10)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_out_of_units_is_admitted_at_the_reset_though_the_ttl_is_an_hour() {
    let ledger = paywall_local::LocalBackend::builder()
        .product(
            paywall_local::Product::new(PRODUCT)
                .free_units(1)
                .period(Duration::from_secs(2)),
        )
        .open()
        .expect("ledger");
    let ledger = CountedLimits::new(ledger);
    let paywall = builder(&ledger)
        .limits_ttl(Duration::from_secs(3600))
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    assert_eq!(status_of(&service, "resetting").await, StatusCode::OK);
    let refused = service
        .clone()
        .oneshot(request("resetting"))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .expect("a 402 names the reset");
    assert!(
        retry_after <= 2,
        "Retry-After {retry_after} within the period"
    );
    // The whole period lies in the TTL's last fifth, where a warm budget is refreshed
    // ahead of time; a reset is not: before it the ledger gives the same answer.
    for _ in 0..5 {
        assert_eq!(
            status_of(&service, "resetting").await,
            StatusCode::PAYMENT_REQUIRED
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ledger.checks(), 1, "no refresh before the reset");
    // A caller that honours Retry-After (plus the second the paywall gives the backend's
    // clock) finds the new period's unit; before, the budget waited out the TTL.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(retry_after + 1)).await;
    let mut status = status_of(&service, "resetting").await;
    while status != StatusCode::OK && started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = status_of(&service, "resetting").await;
    }
    assert_eq!(status, StatusCode::OK, "admitted in the new period");
    paywall.shutdown(Duration::from_secs(10)).await;
}
