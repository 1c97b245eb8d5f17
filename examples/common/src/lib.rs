//! What the quickstart applications share (`quickstart-axum`, `quickstart-actix`,
//! `quickstart-mcp`, one package each so that each binary builds only the crates it
//! uses): the environment, the paywall wiring, the JSON answers, the streamed route.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the environment variables, parsed once |
//! | [`billing`] | the paywall wiring: identity and backend (the part to copy) |
//! | [`responses`] | the JSON bodies every quickstart answers with |
//! | [`generate`] | `POST /api/generate`, priced by the tokens it streams |
//! | [`custom_identity`] | an `IdentityResolver` over API keys, for `axum-custom-identity` |
//! | [`startup`] | logging, binding 127.0.0.1, connection limits, the start-up banner |
//!
//! ```
//! use paywall_examples::config::QuickstartConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = QuickstartConfig::from_env()?; // PORT, PAYWALL_*, SOLVAPAY_*
//! assert!(config.free_units > 0);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod billing;
pub mod config;
pub mod custom_identity;
pub mod generate;
pub mod responses;
pub mod startup;
