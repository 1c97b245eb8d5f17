//! Requests with real tokens, the paywall the tests build, and servers on loopback.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use paywall::backend::BillingBackend;
use paywall::test_util::{fast_recorder, status};
use tower::Service;

use crate::jwt::{bearer, resolver};

/// A request to the echo service for `sub`.
pub fn request(sub: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/api/echo")
        .header("authorization", bearer(sub))
        .body(Full::default())
        .expect("request")
}

/// A paywall builder over `backend` with the test resolver and fast retries.
pub fn builder<B: BillingBackend + Clone>(backend: &B) -> paywall::PaywallBuilder {
    paywall::Paywall::builder(resolver(), backend.clone()).recorder(fast_recorder())
}

/// A paywall over `backend` with the defaults of [`builder`].
pub fn test_paywall<B: BillingBackend + Clone>(backend: &B) -> paywall::Paywall {
    builder(backend).build().expect("paywall")
}

/// The status `service` answers a request of `sub` with.
pub async fn status_of<S, R>(service: &S, sub: &str) -> StatusCode
where
    S: Service<Request<Full<Bytes>>, Response = Response<R>, Error = Infallible> + Clone,
{
    status(service, request(sub)).await
}

/// An axum app served on 127.0.0.1 for the length of a test.
pub struct Served {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves `router` on `listener` until [`stop`](Self::stop).
    pub fn start(listener: tokio::net::TcpListener, router: axum::Router) -> Self {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            base,
            stop: Some(stop),
            handle,
        }
    }

    /// Stops accepting and waits for open requests to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.handle).await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A listener on a free loopback port.
pub async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// A std listener on a free loopback port (actix takes std listeners).
pub fn std_loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// Pays on the embedded backend's local checkout: posts the session a `checkoutUrl`
/// names, from its own page (what pressing its *Pay* button does).
pub async fn pay_locally(checkout: &str) {
    let paid = reqwest::Client::new()
        .post(checkout)
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), http::StatusCode::OK);
}
