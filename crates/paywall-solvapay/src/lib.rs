//! The SolvaPay billing backend for the [`paywall`] crate.
//!
//! [`SolvaPayBackend`] talks to SolvaPay's `/v1/sdk` REST API with the server's secret
//! key (never the users' tokens): find-or-create customers by `externalRef`, check
//! limits, record usage in bulk with an idempotency key per event. Every call has a
//! per-request timeout and a deadline, and transient failures are retried with jittered
//! backoff honouring `Retry-After`. [`webhook`] verifies `SV-Signature` deliveries and
//! [`axum_handler`] unlocks customers the moment they pay.
//!
//! ```
//! use paywall::backend::BillingBackend;
//! use paywall::Identity;
//! use paywall_solvapay::{SolvaPayBackend, SolvaPayConfig, SolvaPayError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // From SOLVAPAY_SECRET_KEY and SOLVAPAY_API_BASE_URL, or in code:
//! let config = SolvaPayConfig::new("sk_test_example")
//!     .base_url("http://127.0.0.1:9") // nothing listens there
//!     .max_attempts(1);
//! let backend = SolvaPayBackend::new(config)?;
//! let err = backend.ensure_customer(&Identity::new("user-1")).await.unwrap_err();
//! assert!(err.is_transient()); // connection refused: the paywall answers 503
//! assert!(!format!("{backend:?}").contains("sk_test_example"));
//! # Ok(())
//! # }
//! ```
//!
//! # Beyond SolvaPay's own SDK
//!
//! The backend, with the paywall's engine: it never trusts a client-sent
//! `x-customer-ref`; it admits exactly the remaining units under concurrency; every usage
//! event carries an idempotency key and is sent in batches off the response path, retried
//! with backoff that honours `Retry-After` (up to 60 s); every call has a timeout and a
//! deadline; and a failing backend answers 503 with `Retry-After`, never its internal error
//! text. It reads SolvaPay's answers liberally: only the fields it acts on are required
//! (`reference`; `withinLimits` and `remaining`; `checkoutUrl`), every other field may be
//! absent, `null`, of another type or unknown (tested field by field against a server
//! written from the OpenAPI file, in the workspace's `tests/solvapay_openapi.rs`). Every 402 carries a
//! `checkoutUrl` from SolvaPay (one checkout session for concurrent 402s of a customer), or
//! none at all, never `""`.
//!
//! **Emails and customer takeover.** A caller's email reaches SolvaPay only when the
//! identity provider verified it (`email_verified: true` in the token; `Identity::with_verified_email`
//!  for custom resolvers); otherwise the customer is created with a
//! placeholder address. When the email is taken, the customer owning it is adopted only if
//! the email is verified **and** that customer has no externalRef yet (a customer that
//! existed before the paywall). A customer linked to someone else is never re-linked: the
//! caller gets 403 `customer_conflict`. When SolvaPay refuses a caller's customer (a 4xx
//! such as an invalid email), the caller gets 403 `customer_rejected` under every fail
//! policy, and the refusal is remembered per externalRef (5 s, doubling to 10 min), so
//! repeating the request costs no API call.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
#[cfg(feature = "axum")]
pub mod axum_handler;
mod backend;
mod client;
mod config;
mod error;
mod sdk;
pub mod webhook;
pub mod wire;

pub use backend::{to_wire, SolvaPayBackend, MAX_BULK_EVENTS};
pub use client::{CustomerLookup, SolvaPayClient, IDEMPOTENCY_KEY};
pub use config::{ConfigError, SecretKey, SolvaPayConfig, DEFAULT_BASE_URL};
pub use error::SolvaPayError;
