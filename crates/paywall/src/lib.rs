//! A billing paywall for Rust web services, as a framework-agnostic tower
//! [`Layer`](tower_layer::Layer).
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use paywall::{Charge, Customer, Paywall};
//! // Toy counterparts for the example: use paywall-jwt for real tokens, paywall-local or
//! // paywall-solvapay for real billing.
//! use paywall::test_util::{HeaderResolver, MemoryBackend};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Callers name themselves in `x-user`; every customer gets one unit.
//! let paywall = Paywall::builder(HeaderResolver::new(), MemoryBackend::with_allowance(1)).build()?;
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
//! Backends that own their users (Auth0, Cognito, their own JWTs) bill them through a
//! billing provider without ever handing the provider their users' tokens.
//!
//! # The request flow
//!
//! On each protected request ([`Paywall::admit_head`], then `engine/admit.rs`, which
//! reads top to bottom):
//!
//! 1. remove any `x-customer-ref` the client sent;
//! 2. resolve the caller with an [`IdentityResolver`] (no identity → 401);
//! 3. ensure a billing customer through a [`BillingBackend`] (find-or-create, cached;
//!    concurrent first requests share one backend call);
//! 4. reserve the route's units from a cached budget with an exact local countdown, or
//!    lease them from a [shared](shared) store (no allowance → 402 with a checkout URL);
//! 5. pass the request on with `x-customer-ref: cus_...` and a [`Customer`] extension;
//! 6. after the handler answers, [`Admission::finish`] commits the units and records
//!    usage in batches off the response path (success), or gives them back (failure).
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
//! * **Clear answers.** 401, 402 and 503 follow one contract (see [`Rejection`]),
//!   replaceable with [`PaywallBuilder::on_rejection`]; backend error text never
//!   reaches clients.
//!
//! # Operating it
//!
//! Metrics through the `metrics` facade, with names and labels listed in
//! [`telemetry`]; `tracing` spans `paywall.decision` (one per protected request) and
//! `paywall.backend` (one per billing call).
//!
//! # Testing
//!
//! The `test-util` feature adds [`test_util`]: a header identity resolver, an in-memory
//! backend that counts its calls and fails on demand, and an in-memory shared store, so
//! applications and other adapters can test against the engine without a provider.
//!
//! # Costs
//!
//! The service boxes one future per request, and the identity resolver's future is
//! boxed too; everything else on the warm path is one cache lookup and atomics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod adapter;
mod backend;
mod backoff;
mod billing;
mod body;
mod charge;
mod customer;
mod engine;
mod error;
mod identity;
mod layer;
mod outbox;
mod policy;
mod quota;
mod recorder;
mod rejection;
pub mod shared;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use account::{CheckoutRequest, Credits, Purchase};
pub use backend::{BackendError, BillingBackend, CustomerRef, Limits, Outcome, UsageEvent};
pub use backoff::Backoff;
pub use billing::{BillingRoutes, MAX_BILLING_BODY};
pub use body::PaywallBody;
pub use charge::{Charge, MAX_UNITS};
pub use customer::{missing_customer_body, Customer, X_CUSTOMER_REF};
pub use engine::{Admission, Paywall, PaywallBuilder, Route, Settlement, Usage};
pub use error::ConfigError;
pub use identity::{Identity, IdentityError, IdentityResolver};
pub use layer::{PaywallLayer, PaywallService, ResponseFuture};
pub use outbox::{Outbox, OutboxError};
pub use policy::FailPolicy;
pub use quota::{Quota, RATELIMIT, RATELIMIT_POLICY};
pub use recorder::{FlushReport, RecorderConfig, UsageRecorder};
pub use rejection::{error_body, PaymentRequired, Rejection, Unauthenticated, PROBLEM_JSON};
