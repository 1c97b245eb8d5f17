//! axum integration for the [`paywall`] crate: the extractors that read what the paywall
//! layer admitted ([`BilledCustomer`], [`UsageMeter`]) and the billing routes as a
//! router ([`billing_router`]).
//!
//! The layer itself is the core's: protect routes with [`paywall::Paywall::layer`]
//! through `route_layer` (so unmatched paths still answer 404, not 401).
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use paywall::{Charge, Paywall};
//! use paywall_axum::BilledCustomer;
//! # use paywall::test_util::{HeaderResolver, MemoryBackend};
//!
//! async fn hello(customer: BilledCustomer) -> Json<serde_json::Value> {
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
//! embedded backend with its local checkout, HS256 tokens, one paid route.
//!
//! # Features
//!
//! * `serve`: [`serve()`], a hardened accept loop (header and body deadlines, a
//!   connection cap, graceful shutdown) and [`shutdown_signal`], for servers that do not
//!   bring their own.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod billing;
mod react;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
mod serve;

pub use billing::billing_router;
pub use react::react_router;
#[cfg(feature = "serve")]
pub use serve::{serve, shutdown_signal, ServeLimits};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The billed customer of the request: the [`paywall::Customer`] the layer admitted,
/// as an extractor.
///
/// It has its own name so that it can never be mistaken for the core type the layer
/// inserts: `request.extensions().get::<paywall::Customer>()` is the only way to read
/// the extension by hand, and this crate has no `Customer` to shadow it:
///
/// ```compile_fail
/// use paywall_axum::Customer;
/// ```
///
/// Extracting it on a route that is not behind the paywall layer is a server
/// misconfiguration, answered 500 with a body that says so. Use
/// `Option<BilledCustomer>` where the layer may admit callers without a customer
/// (fail-open policy).
#[derive(Clone, Debug)]
pub struct BilledCustomer(pub paywall::Customer);

impl std::ops::Deref for BilledCustomer {
    type Target = paywall::Customer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// [`BilledCustomer`] or [`UsageMeter`] found nothing on the request: the route is not
/// behind the paywall. Answers 500 with a JSON body that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingCustomer;

impl IntoResponse for MissingCustomer {
    fn into_response(self) -> Response {
        let body = paywall::adapter::missing_customer_body();
        (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BilledCustomer {
    type Rejection = MissingCustomer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extension(parts).map(BilledCustomer).ok_or(MissingCustomer)
    }
}

/// What the paywall put in the request's extensions.
fn extension<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Option<T> {
    parts.extensions.get::<T>().cloned()
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for BilledCustomer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(extension(parts).map(BilledCustomer))
    }
}

/// The request's [`paywall::Usage`] as an extractor, on a route priced by consumption
/// ([`paywall::Charge::by_consumption`]): reserve an upper bound, report what the
/// handler produced; the paywall settles when the response body ends. A reservation
/// that does not fit answers the paywall's 402 as a [`ReserveRejection`].
///
/// ```
/// use axum::response::IntoResponse;
/// use paywall_axum::UsageMeter;
///
/// async fn complete(usage: UsageMeter) -> axum::response::Response {
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
pub struct UsageMeter(pub paywall::Usage);

impl std::ops::Deref for UsageMeter {
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

impl UsageMeter {
    /// Holds `units` for this request, all or nothing (see [`paywall::Usage::reserve`]).
    pub async fn reserve(&self, units: u64) -> Result<(), ReserveRejection> {
        self.0
            .reserve(units)
            .await
            .map_err(|rejection| ReserveRejection(self.0.rejection_response(&rejection)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UsageMeter {
    type Rejection = MissingCustomer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extension(parts).map(UsageMeter).ok_or(MissingCustomer)
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
    async fn the_extension_and_the_extractor_see_the_same_customer() {
        use paywall::test_util::{HeaderResolver, MemoryBackend};
        use paywall::{Charge, Paywall};

        let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(1))
            .build()
            .expect("paywall");
        let app: Router = Router::new()
            .route(
                "/",
                get(
                    |billed: BilledCustomer, request: axum::extract::Request| async move {
                        let by_hand = request.extensions().get::<paywall::Customer>().cloned();
                        let by_hand = by_hand.map(|c| c.reference().to_string());
                        format!("{}|{}", billed.reference(), by_hand.unwrap_or_default())
                    },
                ),
            )
            .route_layer(paywall.layer(Charge::new("prd_same")).expect("layer"));
        let request = axum::http::Request::builder()
            .header("x-user", "ada")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"cus_ada|cus_ada");
    }

    #[tokio::test]
    async fn customer_outside_the_layer_is_a_clear_500() {
        let app: Router =
            Router::new().route("/", get(|_: BilledCustomer| async { "unreachable" }));
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
