//! Runnable applications built on the paywall crates: `axum-quickstart`,
//! `actix-quickstart`, `axum-auth0`, `axum-custom-identity`, and the bare servers the
//! end-to-end benchmark compares them with. Each application's router lives here so the
//! end-to-end tests drive exactly what the binaries serve.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the environment variables, parsed once |
//! | [`billing`] | the paywall wiring: identity and backend (the part to copy) |
//! | [`quickstart`], [`actix_quickstart`] | the two applications, same routes and answers |
//! | [`responses`] | the JSON bodies both answer with |
//! | [`generate`] | `POST /api/generate`, priced by the tokens it streams |
//! | [`startup`] | logging, binding 127.0.0.1, the start-up banner |
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use paywall_examples::{config::QuickstartConfig, quickstart};
//!
//! let config = QuickstartConfig::from_env()?;
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
//! let base_url = format!("http://{}", listener.local_addr()?);
//! let app = quickstart::build(&config, &base_url)?;
//! axum::serve(listener, app.router.clone()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actix_quickstart;
pub mod billing;
pub mod config;
pub mod custom_identity;
pub mod generate;
pub mod mcp;
pub mod quickstart;
pub mod responses;
pub mod startup;
