//! Routes priced by consumption, through the tower layer: the handler reserves an upper
//! bound, reports tokens as it streams them, and the paywall settles what was streamed
//! when the body ends or is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use paywall::{Charge, Paywall, Usage};
use tower::{service_fn, Layer, ServiceExt};

mod common;
use common::*;

/// A streamed answer: one frame per token, each reported as it is produced.
struct Tokens {
    usage: Usage,
    left: u64,
}

impl Body for Tokens {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        self.usage.add(1);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"token;")))))
    }
}

type Answer = http_body_util::Either<Tokens, Full<Bytes>>;

/// `x-max` units reserved, `x-tokens` streamed (status from `x-test-status`).
fn generate(
    paywall: &Paywall,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<paywall::adapter::PaywallBody<Answer>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    let number = |request: &Request<Full<Bytes>>, name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let handler = service_fn(move |request: Request<Full<Bytes>>| async move {
        let usage = request
            .extensions()
            .get::<Usage>()
            .cloned()
            .expect("priced by consumption");
        let (max, tokens) = (number(&request, "x-max"), number(&request, "x-tokens"));
        let status = StatusCode::from_u16(number(&request, "x-test-status") as u16)
            .unwrap_or(StatusCode::OK);
        if let Err(rejection) = usage.reserve(max).await {
            let response = usage.rejection_response(&rejection);
            return Ok(response.map(|b| http_body_util::Either::Right(Full::new(b))));
        }
        let mut response = Response::new(http_body_util::Either::Left(Tokens {
            usage,
            left: tokens.min(max),
        }));
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    });
    paywall
        .layer(Charge::new(PRODUCT).meter("tokens").by_consumption())
        .expect("layer")
        .layer(handler)
}

fn ask(user: &str, max: u64, tokens: u64) -> Request<Full<Bytes>> {
    let mut request = request(user);
    let headers = request.headers_mut();
    headers.insert("x-max", max.into());
    headers.insert("x-tokens", tokens.into());
    request
}

/// The whole answer: status and frames.
async fn read_all<S>(service: &S, request: Request<Full<Bytes>>) -> (StatusCode, usize)
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<paywall::adapter::PaywallBody<Answer>>,
            Error = Infallible,
        > + Clone,
{
    let response = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, bytes.windows(6).filter(|w| w == b"token;").count())
}

#[tokio::test]
async fn a_stream_is_charged_what_it_produced_and_the_rest_is_released() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = test_paywall(&backend);
    let service = generate(&paywall);
    assert_eq!(
        read_all(&service, ask("ada", 30, 20)).await,
        (StatusCode::OK, 20)
    );
    paywall.flush().await;
    assert_eq!(
        backend.recorded_units(),
        20,
        "20 tokens, not the 30 reserved"
    );
    // 80 are left: the 10 reserved but not produced came back.
    assert_eq!(
        read_all(&service, ask("ada", 80, 80)).await,
        (StatusCode::OK, 80)
    );
    let (status, _) = read_all(&service, ask("ada", 1, 1)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_sum_past_what_is_left() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = test_paywall(&backend);
    let service = generate(&paywall);
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (service, barrier) = (service.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                read_all(&service, ask("ada", 30, 30)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("join"));
    }
    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((admitted, refused), (3, 7));
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 90);
}

#[tokio::test]
async fn the_402_of_a_reservation_says_what_is_left() {
    let backend = MemoryBackend::with_allowance(25);
    let paywall = test_paywall(&backend);
    let response = generate(&paywall)
        .oneshot(ask("ada", 30, 30))
        .await
        .expect("infallible");
    let (status, _, body) = read_json(response).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["kind"], "payment_required");
    assert_eq!(body["remaining"], 25);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("30")));
}

#[tokio::test]
async fn a_client_that_goes_away_pays_for_what_it_received() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = test_paywall(&backend);
    let service = generate(&paywall);
    let response = service
        .clone()
        .oneshot(ask("ada", 100, 100))
        .await
        .expect("infallible");
    let mut body = response.into_body();
    for _ in 0..10 {
        body.frame().await.expect("a frame").expect("data");
    }
    drop(body); // the client disconnects
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 10);
    assert_eq!(
        read_all(&service, ask("ada", 90, 1)).await,
        (StatusCode::OK, 1)
    );
}

#[tokio::test]
async fn a_failed_answer_gives_everything_back_unless_consumption_was_reported() {
    let backend = MemoryBackend::with_allowance(100);
    let paywall = test_paywall(&backend);
    let service = generate(&paywall);
    let mut failing = ask("ada", 50, 0);
    failing.headers_mut().insert("x-test-status", 500.into());
    assert_eq!(
        read_all(&service, failing).await,
        (StatusCode::INTERNAL_SERVER_ERROR, 0)
    );
    paywall.flush().await;
    assert_eq!(
        backend.recorded_units(),
        0,
        "nothing reported: all released"
    );
    let mut partial = ask("ada", 50, 7);
    partial.headers_mut().insert("x-test-status", 500.into());
    assert_eq!(
        read_all(&service, partial).await,
        (StatusCode::INTERNAL_SERVER_ERROR, 7)
    );
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 7, "what was produced is charged");
    assert_eq!(
        read_all(&service, ask("ada", 93, 93)).await,
        (StatusCode::OK, 93)
    );
}

#[tokio::test]
async fn reporting_past_the_reservation_is_capped_by_what_is_left() {
    let backend = MemoryBackend::with_allowance(10);
    let paywall = test_paywall(&backend);
    let route = paywall
        .route(Charge::new(PRODUCT).meter("tokens").by_consumption())
        .expect("route");
    let head = request("ada").into_parts().0;
    let admission = paywall.admit(&head, &route).await.expect("admitted");
    let usage = admission.usage().cloned().expect("usage");
    usage.reserve(4).await.expect("reserved");
    assert_eq!(usage.set(6), 6, "2 more were taken from the budget");
    assert_eq!(usage.add(100), 10, "capped at what the budget had");
    admission.finish(StatusCode::OK).await;
    paywall.flush().await;
    assert_eq!(backend.recorded_units(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engines_sharing_a_store_reserve_exactly() {
    let backend = MemoryBackend::with_allowance(100);
    let store = MemoryShared::new();
    let paywalls: Vec<Paywall> = (0..3)
        .map(|_| {
            builder(&backend)
                .shared_budgets(store.instance())
                .build()
                .expect("paywall")
        })
        .collect();
    let services: Vec<_> = paywalls.iter().map(generate).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (service, barrier) = (services[i % 3].clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                read_all(&service, ask("ada", 30, 30)).await.0
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("join") == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    for paywall in &paywalls {
        paywall.flush().await;
    }
    assert_eq!(backend.recorded_units(), 90);
}

#[tokio::test]
async fn variable_costs_are_recorded_exactly_once_through_failing_usage_calls() {
    let backend = MemoryBackend::with_allowance(1_000);
    backend.fail_next_usage_calls(3);
    let paywall = test_paywall(&backend);
    let service = generate(&paywall);
    let mut produced = 0;
    for tokens in [3, 17, 1, 29, 8] {
        assert_eq!(
            read_all(&service, ask("ada", 30, tokens)).await,
            (StatusCode::OK, tokens as usize)
        );
        produced += tokens;
    }
    let report = paywall.flush().await;
    assert_eq!((report.recorded, report.pending), (5, 0));
    assert_eq!(
        backend.recorded_units(),
        produced,
        "each stream's tokens, once"
    );
    let attempts = backend.usage_attempts();
    assert!(attempts.len() > 3, "the failures were retried");
    assert!(
        attempts.windows(2).take(3).all(|w| w[0] == w[1]),
        "retries carry the same idempotency keys"
    );
}
