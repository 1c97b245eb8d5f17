//! Runnable applications built on the paywall crates. The binaries are thin: each
//! application's router lives here so the end-to-end tests drive exactly what the
//! binaries serve.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use paywall_examples::quickstart::{self, QuickstartConfig};
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
pub mod custom_identity;
pub mod quickstart;
