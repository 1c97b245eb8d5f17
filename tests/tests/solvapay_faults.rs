//! The SolvaPay client against servers that misbehave on purpose, and the paywall's
//! answers when SolvaPay fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use paywall::{FailPolicy, Paywall};
use paywall_solvapay::{CustomerLookup, SolvaPayBackend, SolvaPayClient, SolvaPayError};
use paywall_tests::*;
use serde_json::json;
use tower::ServiceExt;

type Script = Arc<dyn Fn(usize) -> Response + Send + Sync>;

/// A server answering its n-th request (0-based) with `script(n)`.
fn scripted(
    script: impl Fn(usize) -> Response + Send + Sync + 'static,
) -> (Served, Arc<AtomicUsize>) {
    #[derive(Clone)]
    struct Scripted(Script, Arc<AtomicUsize>);
    async fn answer(State(Scripted(script, hits)): State<Scripted>) -> Response {
        script(hits.fetch_add(1, Ordering::SeqCst))
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new()
        .fallback(answer)
        .with_state(Scripted(Arc::new(script), hits.clone()));
    (Served::start(rt_listener(), router), hits)
}

fn rt_listener() -> tokio::net::TcpListener {
    let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std.set_nonblocking(true).expect("nonblocking");
    tokio::net::TcpListener::from_std(std).expect("listener")
}

fn customer() -> Response {
    axum::Json(json!({ "reference": "cus_1", "name": "", "email": "a@b.co" })).into_response()
}

fn client(base: &str) -> SolvaPayClient {
    SolvaPayClient::new(solvapay_config(base)).expect("client")
}

async fn find(
    client: &SolvaPayClient,
) -> Result<Option<paywall_solvapay::wire::Customer>, SolvaPayError> {
    client
        .find_customer(CustomerLookup::ExternalRef("user"))
        .await
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (server, hits) = scripted(|n| match n {
        0 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        1 => (StatusCode::BAD_GATEWAY, "upstream").into_response(),
        _ => customer(),
    });
    let found = find(&client(&server.base))
        .await
        .expect("third attempt succeeds");
    assert_eq!(found.map(|c| c.reference).as_deref(), Some("cus_1"));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (server, hits) = scripted(|n| match n {
        0 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        _ => customer(),
    });
    let started = Instant::now();
    find(&client(&server.base))
        .await
        .expect("succeeds after waiting");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_limited_on_every_attempt_is_a_typed_error_with_its_retry_after() {
    let (server, hits) =
        scripted(|_| (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "no").into_response());
    let err = find(&client(&server.base)).await.expect_err("rate limited");
    assert_eq!(
        err,
        SolvaPayError::RateLimited {
            retry_after: Some(Duration::ZERO),
            body: "no".into()
        }
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "max_attempts");
}

#[tokio::test]
async fn a_hung_connection_times_out_and_is_retried_within_the_deadline() {
    let listener = rt_listener();
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            open.push(socket); // never answered, never closed
        }
    });
    let config = solvapay_config(&base)
        .request_timeout(Duration::from_millis(200))
        .deadline(Duration::from_secs(2))
        .max_attempts(3);
    let started = Instant::now();
    let err = SolvaPayClient::new(config)
        .expect("client")
        .find_customer(CustomerLookup::Email("a@b.co"))
        .await;
    assert_eq!(err, Err(SolvaPayError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "each attempt on a fresh connection"
    );
    hold.abort();
}

#[tokio::test]
async fn the_deadline_bounds_the_whole_call() {
    let listener = rt_listener();
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let config = solvapay_config(&base)
        .request_timeout(Duration::from_secs(30))
        .deadline(Duration::from_millis(300))
        .max_attempts(10);
    let started = Instant::now();
    let err = SolvaPayClient::new(config)
        .expect("client")
        .find_customer(CustomerLookup::Email("a@b.co"))
        .await;
    assert_eq!(err, Err(SolvaPayError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}

#[tokio::test]
async fn a_dropped_connection_is_retried_then_a_transport_error() {
    let listener = rt_listener();
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let drop_all = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let err = find(&client(&base)).await.expect_err("dropped");
    assert!(matches!(err, SolvaPayError::Transport(_)), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    drop_all.abort();
}

#[tokio::test]
async fn malformed_json_is_a_typed_error_and_not_retried() {
    let (server, hits) = scripted(|_| {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"reference\": ",
        )
            .into_response()
    });
    let err = find(&client(&server.base)).await.expect_err("malformed");
    assert!(
        matches!(err, SolvaPayError::UnexpectedBody { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let (dev, _ledger) = dev_server(rt_listener(), "prd_x", 1, None);
    let config = solvapay_config(&dev.base);
    let wrong = paywall_solvapay::SolvaPayConfig::new("sk_wrong_key")
        .base_url(&dev.base)
        .max_attempts(3);
    let err = SolvaPayClient::new(wrong)
        .expect("client")
        .find_customer(CustomerLookup::Email("a@b.co"))
        .await;
    assert!(
        matches!(err, Err(SolvaPayError::Unauthorized { status: 401, .. })),
        "{err:?}"
    );
    assert!(
        !format!("{err:?}").contains("sk_wrong_key"),
        "the key never appears in errors"
    );
    // The right key works against the same server.
    assert_eq!(
        SolvaPayClient::new(config)
            .expect("client")
            .find_customer(CustomerLookup::Email("a@b.co"))
            .await,
        Ok(None)
    );

    let (server, hits) = scripted(|_| (StatusCode::UNAUTHORIZED, "bad key").into_response());
    assert!(find(&client(&server.base)).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let (server, hits) = scripted(|_| (StatusCode::UNPROCESSABLE_ENTITY, "nope").into_response());
    let err = find(&client(&server.base)).await.expect_err("refused");
    assert_eq!(
        err,
        SolvaPayError::BadRequest {
            status: 422,
            body: "nope".into()
        }
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_paywall_answers_503_with_retry_after_and_no_internal_text() {
    let (server, _) = scripted(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "panic at db.rs:42 password=hunter2",
        )
            .into_response()
    });
    let backend = SolvaPayBackend::new(solvapay_config(&server.base)).expect("backend");
    let paywall = builder(&backend)
        .fail_policy(FailPolicy::Closed)
        .build()
        .expect("paywall");
    let response = protected(&paywall)
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    let (status, headers, body) = read_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_some());
    assert_eq!(body["kind"], "billing_unavailable");
    let text = body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("db.rs") && !text.contains("500"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rate_limited_backend_passes_its_retry_after_to_the_503() {
    let (server, _) = scripted(|_| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            "slow",
        )
            .into_response()
    });
    let config = solvapay_config(&server.base).max_attempts(1);
    let backend = SolvaPayBackend::new(config).expect("backend");
    let paywall: Paywall = builder(&backend).build().expect("paywall");
    let response = protected(&paywall)
        .oneshot(request("alice"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "7");
}

/// Forwards to the dev server, failing half of the bulk usage calls: a quarter before
/// forwarding (the request is lost) and a quarter after (the acknowledgement is lost).
async fn flaky_proxy(
    State((target, bulk_calls)): State<(String, Arc<AtomicUsize>)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let bulk = path_and_query == "/v1/sdk/usages/bulk";
    let call = if bulk {
        bulk_calls.fetch_add(1, Ordering::SeqCst)
    } else {
        1
    };
    if bulk && call % 4 == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "lost before the write").into_response();
    }
    let mut forward = reqwest::Client::new()
        .request(method, format!("{target}{path_and_query}"))
        .body(body);
    for name in ["authorization", "content-type", "idempotency-key"] {
        if let Some(value) = headers.get(name) {
            forward = forward.header(name, value);
        }
    }
    let Ok(answer) = forward.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if bulk && call % 4 == 2 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "lost after the write").into_response();
    }
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, [("content-type", "application/json")], bytes).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_while_half_the_bulk_calls_fail() {
    let (dev, ledger) = dev_server(rt_listener(), PRODUCT, 1000, None);
    let bulk_calls = Arc::new(AtomicUsize::new(0));
    let proxy = Served::start(
        rt_listener(),
        axum::Router::new()
            .fallback(flaky_proxy)
            .with_state((dev.base.clone(), bulk_calls.clone())),
    );
    let backend = SolvaPayBackend::new(solvapay_config(&proxy.base)).expect("backend");
    let paywall = builder(&backend)
        .recorder(paywall::recorder::RecorderConfig {
            max_batch: 10,
            ..fast_recorder()
        })
        .build()
        .expect("paywall");
    let service = protected(&paywall);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let service = service.clone();
        let mut request = request(&format!("user-{}", i % 8));
        if i % 9 == 0 {
            request
                .headers_mut()
                .insert("x-test-status", "500".parse().expect("value"));
        }
        tasks.push(tokio::spawn(async move {
            service.oneshot(request).await.map(|r| r.status())
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("join").expect("infallible") == StatusCode::OK {
            admitted += 1;
        }
    }
    let report = paywall.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(
        bulk_calls.load(Ordering::SeqCst) >= 4,
        "the faults were exercised"
    );
    assert_eq!(admitted, 200 - 23, "every 9th handler failed");
    assert_eq!(
        recorded(&ledger, None).await,
        (admitted as u64, admitted as u64),
        "one event per admitted success, no more, no less"
    );
    proxy.stop().await;
    dev.stop().await;
}
