//! Counterparts for tests (feature `test-util`): an identity resolver that reads a
//! header, an in-memory billing backend that counts its calls and fails on demand, and
//! an in-memory shared budget store with several instances, so the engine, its
//! adapters and applications are tested without a provider, an IdP or Redis.
//!
//! ```
//! use paywall::{Charge, Paywall};
//! use paywall::test_util::{HeaderResolver, MemoryBackend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = MemoryBackend::with_allowance(1);
//! let paywall = Paywall::builder(HeaderResolver::new(), backend.clone()).build()?;
//! let route = paywall.route(Charge::new("prd_demo"))?;
//! let head = |user: &str| http::Request::builder().header("x-user", user).body(()).unwrap().into_parts().0;
//! let admission = paywall.admit(&head("ada"), &route).await.expect("one unit left");
//! admission.finish(http::StatusCode::OK).await;
//! assert!(paywall.admit(&head("ada"), &route).await.is_err());
//! paywall.flush().await;
//! assert_eq!((backend.ensure_calls(), backend.recorded_units()), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! These are test doubles, not a production backend: the in-memory backend keeps every
//! usage event it was sent.

mod backend;
mod http;
mod resolver;
mod shared;

pub use backend::MemoryBackend;
pub use http::{call, fast_recorder, protected, read_json, status, EchoService, TEST_PRODUCT};
pub use resolver::HeaderResolver;
pub use shared::{MemoryShared, MemorySharedInstance};
