//! JWT identity resolvers for the [`paywall`] crate.
//!
//! [`JwtResolver`] verifies a token from `Authorization: Bearer`, with the algorithm
//! pinned by configuration, `exp` required, and issuer and audience checked when
//! configured; its `sub` claim becomes the caller's external reference and `email` and
//! `name` are passed to the billing backend. Bad tokens are answered 401.
//!
//! ```
//! use std::time::Duration;
//! use paywall::IdentityResolver;
//! use paywall_jwt::{Hs256Signer, JwtResolver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = std::env::var("PAYWALL_JWT_SECRET")
//!     .unwrap_or_else(|_| "a secret of at least thirty-two bytes!!".into());
//! let resolver = JwtResolver::hs256(&secret).build()?;
//!
//! let token = Hs256Signer::new(&secret).token_for("user-42", Duration::from_secs(600))?;
//! let request = http::Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(())?;
//! let (parts, ()) = request.into_parts();
//! let identity = resolver.resolve(&parts).await?.expect("a token was sent");
//! assert_eq!(identity.external_ref, "user-42");
//! # Ok(())
//! # }
//! ```
//!
//! The crypto backend is `aws-lc-rs` (jsonwebtoken's `aws_lc_rs` feature).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod resolver;
mod signer;
mod source;

pub use resolver::{JwtConfigError, JwtResolver, JwtResolverBuilder, MIN_HMAC_SECRET_LEN};
pub use signer::{unix_now, Hs256Signer};
pub use source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};
