//! A billing paywall for Rust web services, as a framework-agnostic tower
//! [`Layer`](tower_layer::Layer).
//!
//! Backends that own their users (Auth0, Cognito, their own JWTs) bill them through a
//! billing provider without ever handing the provider their users' tokens. On each
//! protected request the paywall:
//!
//! 1. removes any `x-customer-ref` the client sent;
//! 2. resolves the caller's stable external reference with an [`IdentityResolver`]
//!    (no identity → 401);
//! 3. ensures a billing customer for it through a [`BillingBackend`] (find-or-create,
//!    cached; concurrent first requests share one backend call);
//! 4. reserves the route's units from a cached budget with an exact local countdown
//!    (no allowance → 402 with a checkout URL);
//! 5. passes the request on with `x-customer-ref: cus_...` and a [`Customer`] extension;
//! 6. after the handler answers, commits the units and records usage in batches off the
//!    response path (success), or gives them back (failure).
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use paywall::{BackendError, BillingBackend, Charge, Customer, CustomerRef, Identity,
//!     IdentityError, IdentityResolver, Limits, Paywall, UsageEvent};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! // Identify callers by a header (use paywall-jwt for real tokens).
//! struct UserHeader;
//! impl IdentityResolver for UserHeader {
//!     async fn resolve(&self, parts: &http::request::Parts) -> Result<Option<Identity>, IdentityError> {
//!         Ok(parts.headers.get("x-user").and_then(|v| v.to_str().ok()).map(Identity::new))
//!     }
//! }
//!
//! // Every customer gets one unit (use paywall-local or a provider for real billing).
//! struct OneFreeRequest;
//! impl BillingBackend for OneFreeRequest {
//!     async fn ensure_customer(&self, identity: &Identity) -> Result<CustomerRef, BackendError> {
//!         Ok(CustomerRef::new(format!("cus_{}", identity.external_ref)))
//!     }
//!     async fn check_limits(&self, _: &CustomerRef, _: &str, _: &str) -> Result<Limits, BackendError> {
//!         Ok(Limits::remaining(1))
//!     }
//!     async fn record_usage(&self, _: &[UsageEvent]) -> Result<(), BackendError> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let paywall = Paywall::builder(UserHeader, OneFreeRequest).build()?;
//! let service = paywall.layer(Charge::new("prd_demo"))?.layer(service_fn(
//!     |request: Request<Full<Bytes>>| async move {
//!         let customer = request.extensions().get::<Customer>().cloned();
//!         let body = customer.map(|c| c.reference().to_string()).unwrap_or_default();
//!         Ok::<_, Infallible>(Response::new(Full::<Bytes>::from(body)))
//!     },
//! ));
//!
//! let request = || Request::builder().header("x-user", "alice").body(Full::default()).unwrap();
//! let first = service.clone().oneshot(request()).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! let second = service.clone().oneshot(request()).await?;
//! assert_eq!(second.status(), StatusCode::PAYMENT_REQUIRED);
//! paywall.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! * **Exact admission on one process.** With N units left, at most N concurrent
//!   requests are admitted: reservations are a compare-and-swap on a local countdown,
//!   and a refresh from the backend accounts for units admitted here but not yet
//!   acknowledged by it.
//! * **Exact across instances, with a shared store.** With
//!   [`PaywallBuilder::shared_budgets`] (Redis: `paywall-redis`) replicas lease units
//!   from one budget per customer atomically, so together they admit no more than the
//!   backend allows; see [`shared`].
//! * **Warm path without backend calls.** Customers and budgets are cached (moka);
//!   concurrent misses for one key share one backend call; errors are not cached.
//! * **Usage neither lost nor double-counted.** Each event carries an idempotency key
//!   fixed at creation; failed batches are retried with the same keys, with jittered
//!   backoff honouring `Retry-After`; [`Paywall::shutdown`] flushes.
//! * **Clear answers.** 401, 402 and 503 follow one contract (see [`rejection`]),
//!   replaceable with [`PaywallBuilder::on_rejection`]; backend error text never
//!   reaches clients.
//!
//! # Costs
//!
//! The service boxes one future per request, and the identity resolver's future is
//! boxed too; everything else on the warm path is two cache lookups and atomics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod backoff;
mod budget;
mod charge;
mod customer;
mod engine;
mod identity;
mod layer;
pub mod outbox;
mod policy;
pub mod recorder;
pub mod rejection;
pub mod shared;

pub use backend::{BackendError, BillingBackend, CustomerRef, Limits, Outcome, UsageEvent};
pub use charge::{Charge, ConfigError, MAX_UNITS};
pub use customer::{Customer, X_CUSTOMER_REF};
pub use engine::{Admission, Paywall, PaywallBuilder, Route};
pub use identity::{Identity, IdentityError, IdentityResolver};
pub use layer::{PaywallLayer, PaywallService, ResponseFuture};
pub use outbox::{Outbox, OutboxError};
pub use policy::FailPolicy;
pub use recorder::{FlushReport, RecorderConfig, UsageRecorder};
pub use rejection::{PaymentRequired, Rejection, Unauthenticated};
pub use shared::{SharedBudgets, SharedFallback};
