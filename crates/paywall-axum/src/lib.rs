//! axum integration for the [`paywall`] crate: everything an axum application needs,
//! from one crate.
//!
//! Protect routes with [`Paywall::layer`] through `route_layer` (so unmatched paths
//! still answer 404, not 401), and read the billed customer with the [`Customer`]
//! extractor.
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use paywall_axum::{Charge, Customer, Paywall};
//! # use paywall::test_util::{HeaderResolver, MemoryBackend};
//!
//! async fn hello(customer: Customer) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "customerRef": customer.reference().as_str() }))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (resolver, backend) = (HeaderResolver::new(), MemoryBackend::with_allowance(5));
//! let paywall = Paywall::builder(resolver, backend).build()?;
//! let app: Router = Router::new()
//!     .route("/api/hello", get(hello))
//!     .route_layer(paywall.layer(Charge::new("prd_quickstart"))?)
//!     .route("/health", get(|| async { "ok" }));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! `cargo run -p paywall-axum --example axum_basic` runs a complete application: the
//! embedded backend, HS256 tokens, one paid route.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod billing;
mod serve;

pub use billing::billing_router;
pub use serve::{serve, ServeLimits};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use paywall::*;

/// The billed customer of the request, as the paywall layer admitted it.
///
/// Extracting it on a route that is not behind the paywall layer is a server
/// misconfiguration, answered 500 with a body that says so. Use `Option<Customer>`
/// where the layer may admit callers without a customer (fail-open policy).
#[derive(Clone, Debug)]
pub struct Customer(pub paywall::Customer);

impl std::ops::Deref for Customer {
    type Target = paywall::Customer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The [`Customer`] extractor found no customer on the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingCustomer;

impl IntoResponse for MissingCustomer {
    fn into_response(self) -> Response {
        let body = paywall::missing_customer_body();
        (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = MissingCustomer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extension(parts).map(Customer).ok_or(MissingCustomer)
    }
}

/// What the paywall put in the request's extensions.
fn extension<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Option<T> {
    parts.extensions.get::<T>().cloned()
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Customer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(extension(parts).map(Customer))
    }
}

/// The request's [`paywall::Usage`], on a route priced by consumption
/// ([`Charge::by_consumption`]): reserve an upper bound, report what the handler
/// produced; the paywall settles when the response body ends. A reservation that does
/// not fit answers the paywall's 402 as this extractor's [`ReserveRejection`].
///
/// ```
/// use axum::response::IntoResponse;
/// use paywall_axum::Usage;
///
/// async fn complete(usage: Usage) -> axum::response::Response {
///     if let Err(refused) = usage.reserve(256).await {
///         return refused.into_response(); // 402, with what is left and a checkout link
///     }
///     let produced = 42; // tokens actually generated
///     usage.set(produced);
///     "done".into_response()
/// }
/// # let _ = complete;
/// ```
#[derive(Clone, Debug)]
pub struct Usage(pub paywall::Usage);

impl std::ops::Deref for Usage {
    type Target = paywall::Usage;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A reservation that did not fit: the paywall's answer (402 with `remaining` and a
/// checkout link, or 503), through the paywall's `on_rejection` hook.
#[derive(Debug)]
pub struct ReserveRejection(axum::http::Response<bytes::Bytes>);

impl IntoResponse for ReserveRejection {
    fn into_response(self) -> Response {
        self.0.map(axum::body::Body::from)
    }
}

impl Usage {
    /// Holds `units` for this request, all or nothing (see [`paywall::Usage::reserve`]).
    pub async fn reserve(&self, units: u64) -> Result<(), ReserveRejection> {
        self.0
            .reserve(units)
            .await
            .map_err(|rejection| ReserveRejection(self.0.rejection_response(&rejection)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Usage {
    type Rejection = MissingCustomer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extension(parts).map(Usage).ok_or(MissingCustomer)
    }
}

/// Completes on Ctrl-C or SIGTERM: pass it to `axum::serve(..).with_graceful_shutdown`,
/// then call [`Paywall::shutdown`] to flush usage.
///
/// ```no_run
/// # async fn run(app: axum::Router, paywall: paywall_axum::Paywall) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(paywall_axum::shutdown_signal())
///     .await?;
/// paywall.shutdown(std::time::Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn customer_outside_the_layer_is_a_clear_500() {
        let app: Router = Router::new().route("/", get(|_: Customer| async { "unreachable" }));
        let response = app
            .oneshot(axum::http::Request::new(Body::empty()))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["kind"], "paywall_misconfigured");
    }
}
