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
//! use paywall::{BillingBackend, Identity};
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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
#[cfg(feature = "axum")]
pub mod axum_handler;
mod backend;
mod client;
mod config;
mod error;
pub mod webhook;
pub mod wire;

pub use backend::{to_wire, SolvaPayBackend, MAX_BULK_EVENTS};
pub use client::{CustomerLookup, SolvaPayClient, IDEMPOTENCY_KEY};
pub use config::{ConfigError, SecretKey, SolvaPayConfig, DEFAULT_BASE_URL};
pub use error::SolvaPayError;
