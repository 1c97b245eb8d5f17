//! What the core's tests share: requests that name their caller in `x-user`, and a
//! paywall over a test backend with fast retries. The counterparts themselves are in
//! `paywall::test_util`.

#![allow(dead_code, unused_imports)]

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use paywall::backend::BillingBackend;
use paywall::{Paywall, PaywallBuilder};
use tower::ServiceExt;

pub use paywall::test_util::{
    call, fast_recorder, protected, read_json, status, EchoService, HeaderResolver, MemoryBackend,
    MemoryShared, TEST_PRODUCT as PRODUCT,
};

/// A request of `user` to the protected service.
pub fn request(user: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/api/echo")
        .header("x-user", user)
        .body(Full::default())
        .expect("request")
}

/// A paywall builder over `backend`, identifying callers by `x-user`, with fast
/// retries.
pub fn builder<B: BillingBackend + Clone>(backend: &B) -> PaywallBuilder {
    Paywall::builder(HeaderResolver::new(), backend.clone()).recorder(fast_recorder())
}

/// A paywall over `backend` with the defaults of [`builder`].
pub fn test_paywall<B: BillingBackend + Clone>(backend: &B) -> Paywall {
    builder(backend).build().expect("paywall")
}

/// A protected service as the helpers call it: infallible, on [`request`]s.
pub trait Protected<R>:
    tower::Service<
        Request<Full<Bytes>>,
        Response = http::Response<R>,
        Error = std::convert::Infallible,
    > + Clone
{
}

impl<S, R> Protected<R> for S where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<R>,
            Error = std::convert::Infallible,
        > + Clone
{
}

/// The status the protected `service` answers `user` with.
pub async fn status_of<S: Protected<R>, R>(service: &S, user: &str) -> StatusCode {
    status(service, request(user)).await
}

/// A handler that does not answer within any test: to abandon a request while it runs.
pub async fn never_answers(
    _: Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    Ok(http::Response::new(Full::default()))
}

/// `user` is admitted `admitted` times in a row, then answered 402.
pub async fn admitted_then_refused<S: Protected<R>, R>(service: &S, user: &str, admitted: usize) {
    for _ in 0..admitted {
        assert_eq!(status_of(service, user).await, StatusCode::OK);
    }
    assert_eq!(status_of(service, user).await, StatusCode::PAYMENT_REQUIRED);
}

/// `per_engine` concurrent requests of `user` on each engine; (admitted, 402, other).
pub async fn storm(paywalls: &[Paywall], user: &str, per_engine: usize) -> (usize, usize, usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(paywalls.len() * per_engine));
    let mut tasks = Vec::new();
    for paywall in paywalls {
        let service = protected(paywall);
        for _ in 0..per_engine {
            let (service, barrier, request) = (service.clone(), barrier.clone(), request(user));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                service.oneshot(request).await.map(|r| r.status())
            }));
        }
    }
    let (mut ok, mut payment, mut other) = (0, 0, 0);
    for task in tasks {
        match task.await.expect("join").expect("infallible") {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => payment += 1,
            _ => other += 1,
        }
    }
    (ok, payment, other)
}

/// Sends `request` to [`protected`]`(paywall)` and checks the paywall's 401: `challenge`
/// in `WWW-Authenticate`, a problem+json body with `kind: "unauthenticated"`,
/// `status: 401`, `success: false`, and no call to `backend` for the caller.
pub async fn assert_unauthenticated(
    paywall: &Paywall,
    backend: &MemoryBackend,
    request: Request<http_body_util::Full<bytes::Bytes>>,
    challenge: &str,
) {
    let (status, headers, body) = read_json(call(&protected(paywall), request).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[http::header::WWW_AUTHENTICATE], challenge);
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        paywall::adapter::PROBLEM_JSON
    );
    assert_eq!(body["kind"], "unauthenticated");
    assert_eq!(body["status"], 401);
    assert_eq!(body["success"], false);
    assert_eq!(
        backend.ensure_calls(),
        0,
        "no backend call for an unauthenticated caller"
    );
}
