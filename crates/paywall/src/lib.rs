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
//! 3. ensure a billing customer through a [`BillingBackend`](backend::BillingBackend) (find-or-create, cached;
//!    concurrent first requests share one backend call);
//! 4. reserve the route's units from a cached budget with an exact local countdown, or
//!    lease them from a [shared] store (no allowance → 402 with a checkout URL);
//! 5. pass the request on with `x-customer-ref: cus_...` and a [`Customer`] extension;
//! 6. after the handler answers, [`Admission::finish`](adapter::Admission::finish) commits the units and records
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
//! # Answers
//!
//! | situation | status | body / headers |
//! |---|---|---|
//! | no credentials / invalid credentials | 401 | `WWW-Authenticate: Bearer` / `Bearer error="invalid_token"`, `kind: "unauthenticated"` |
//! | the billing provider refuses the caller's customer / the identity conflicts with another customer | 403 | `kind: "customer_rejected"` / `"customer_conflict"`; never the provider's text |
//! | allowance exhausted | 402 | `success: false`, `error: "Payment required"`, `kind: "payment_required"` (or `"activation_required"`, with the confirmation link), `product`, `checkoutUrl` (non-empty, or absent), `remaining`, `message`, plus RFC 9457 `type`, `title`, `status`, `detail`; `application/problem+json`; `Retry-After` when the reset time is known |
//! | billing backend down, fail-closed | 503 | `kind: "billing_unavailable"`, `Retry-After`; never the backend's error text |
//! | identity provider's keys cannot be fetched (down at start, or a new `kid` past the fetch budget) | 503 | `kind: "identity_unavailable"`, `Retry-After` until the next fetch may run |
//! | admitted | the handler's | the handler sees `x-customer-ref: cus_...` and the `Customer` extension |
//!
//! All rejection bodies are `application/problem+json` and can be replaced with
//! `PaywallBuilder::on_rejection`.
//!
//! **Fail policies** (`FailPolicy`), when the billing backend cannot be reached: `Closed`
//! (default) answers 503 with `Retry-After`; `Open` admits, still metering usage for a known
//! customer so it is recorded once the backend is back; `ServeStale` keeps using the last
//! known budget and answers 503 only when nothing is known yet. After a failed refresh the
//! backend is not asked again for `failure_backoff` (default 2 s).
//!
//! **Usage** is committed when the handler's response head is produced (2xx by default,
//! `success_when` to change); a streaming body that fails afterwards still counts. Events
//! queue in a bounded buffer (10,000 by default) and go out in batches of up to 500, each
//! event waiting at most 100 ms for its batch to fill. A full queue (the backend refusing for a
//! while under load) holds no response and bills every admitted request: its events are added
//! up per customer, product and meter, one counter each (at most `capacity` counters), and each
//! sum goes out as one event once there is room (with an outbox, the sum replaces its events
//! there in one transaction). Past that many counters an event waits for room in a task, at most
//! `enqueue_timeout` (5 s): after that it is kept in the outbox for the next start (with
//! `PAYWALL_OUTBOX`) or logged with its key and reported as pending.
//! A batch the backend refuses for good is split in halves until only the refused events are
//! left, so one bad event (a customer deleted at the provider) never drops its neighbours. `Paywall::shutdown(deadline)` flushes and
//! reports how many events were not recorded in time.
//!
//! **Quota headers** (`PaywallBuilder::ratelimit_headers(true)`, on in the quickstarts),
//! after draft-ietf-httpapi-ratelimit-headers, on admitted responses and 402s, identical on
//! both adapters: `RateLimit: "prd_quickstart";r=4;t=86340` (units left after this request;
//! seconds until the allowance resets, when known) and `RateLimit-Policy:
//! "prd_quickstart";q=5;w=86400` (allowance per period, when the backend tells it; SolvaPay's
//! limits answer does not). With budgets shared through Redis, `RateLimit` is sent on 402s
//! only (this instance does not know what the others admitted).
//!
//! # When things go wrong
//!
//! | fault | what the paywall does |
//! |---|---|
//! | billing backend down at start, or mid-run | the fail policy's answer: `Closed` 503 + `Retry-After` (default), `Open` admits and meters, `ServeStale` uses the last known budget; recovers by itself once the backend answers |
//! | backend slow past the timeout | the SolvaPay client gives up after its per-request timeout (5 s) and overall deadline (15 s), and the policy answers |
//! | 5xx, 408, connection errors | retried with jittered exponential backoff, at most 4 attempts per call; then the policy answers |
//! | 429 with `Retry-After` | retried no sooner than asked (usage: at most 60 s, `RecorderConfig::max_retry_after`); a 503 from the paywall carries the backend's `Retry-After` |
//! | answers missing fields, with `null`s, wrong types or unknown fields | tolerated for every field the paywall does not act on |
//! | the provider refuses a caller's customer | 403 `customer_rejected` under every fail policy, remembered per externalRef with back-off: no API call per repeat |
//! | malformed answers | a typed error (`UnexpectedBody`) and the policy's answer; never the backend's text to clients |
//! | usage endpoint failing | usage stays queued and is retried with the same idempotency keys until acknowledged |
//! | usage queue full | backpressure: the response waits for room, at most 5 s; then the event stays in the outbox, or is logged and reported as pending |
//! | one event of a batch refused for good | the batch is bisected; only the refused events are dropped, each logged with its key |
//! | process killed | with `PAYWALL_OUTBOX`, unacknowledged usage is replayed at the next start with its original keys |
//! | Redis down, killed or frozen (with `PAYWALL_REDIS_URL`) | calls give up after 250 ms; the instance uses its own budget (or answers 503 with `SharedFallback::Closed`), retries Redis every second, and shares budgets again once it answers; usage recording does not depend on Redis |
//! | identity provider down at start or mid-run | known keys keep verifying; without them 503 `identity_unavailable` with the honest `Retry-After`; fetches retried 1 s, 2 s, 4 s… up to every 10 s; logged once down, once back |
//! | hostile input | bad, repeated or oversized credentials → 401; forged `kid`s cost at most a couple of JWKS fetches a minute; bodies declared larger than a route accepts → 413 JSON before reading; invalid route configuration fails when the layer is built |
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
//! A warm request (the identity resolver answers at once, as `paywall-jwt`'s does for
//! a token it has verified, and the caller's customer and a fresh budget are cached)
//! is decided inside the service's `call`: its response future is the inner service's
//! future and the admission, with nothing boxed, and the decision is one customer-cache
//! lookup and atomics. When the resolver keeps a [`Recall`] with the credential (as
//! `paywall-jwt` does with each token it caches), not even that lookup: the customer
//! remembered there is used while the cache still holds it. A decision that waits (a new caller, a refresh, a 402, a
//! resolver without [`IdentityResolver::resolve_now`]) runs in one boxed future, which
//! calls the inner service once it has admitted the request; storing usage in an
//! outbox after the handler is boxed too.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
pub mod adapter;
pub mod backend;
mod backoff;
mod billing;
mod body;
mod charge;
mod customer;
mod engine;
mod error;
mod identity;
pub mod layer;
mod outbox;
mod policy;
mod quota;
pub mod recorder;
mod rejection;
pub mod shared;
pub mod telemetry;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

// What an application writes. Backend authors find their items in [`backend`], adapter
// authors in [`adapter`], the shared-store protocol in [`shared`], the usage recorder's
// settings in [`recorder`], metric names in [`telemetry`].
pub use billing::{BillingRoutes, ReactRoutes};
pub use charge::{Charge, Price};
pub use customer::Customer;
pub use customer::CustomerRef;
pub use engine::{Paywall, PaywallBuilder, Recall, Route, Usage};
pub use error::ConfigError;
pub use identity::{Identity, IdentityError, IdentityResolver};
pub use policy::FailPolicy;
pub use rejection::Rejection;
