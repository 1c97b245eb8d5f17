//! JWT identity resolvers for the [`paywall`] crate: static keys, JWKS with rotation,
//! OIDC discovery and an Auth0 preset, every algorithm jsonwebtoken verifies, and a
//! cache of verified tokens.
//!
//! [`JwtResolver`] reads a token (from `Authorization: Bearer` by default, or a cookie,
//! or another header), verifies it with the algorithms fixed by configuration (with a
//! JWKS: those the provider's keys declare), `exp` required, issuer and audience
//! checked (required with a JWKS), and maps its claims to the caller's identity (`sub`
//! → external reference by default). Bad tokens are 401s; a token no key can be had for
//! right now (the provider unreachable, or a new `kid` past the fetch budget) is a 503
//! with an honest `Retry-After`.
//!
//! Modules: `keys` (which key verifies which algorithm), `jwks` (the cached key set,
//! its fetch schedule and the HTTP fetch itself), `resolver` (verification), `builder`,
//! `claims`, `source` (where the token is read), `token_cache`.
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

mod builder;
mod claims;
mod jwks;
mod keys;
mod resolver;
mod signer;
mod source;
mod token_cache;

pub use builder::JwtResolverBuilder;
pub use claims::ClaimMapping;
pub use jsonwebtoken::{Algorithm, AlgorithmFamily};
pub use jwks::{JwksCache, JwksError, MAX_DOCUMENT_BYTES};
pub use keys::{Key, KeyError};
pub use resolver::{
    JwtConfigError, JwtResolver, DEFAULT_TOKEN_CACHE_CAPACITY, MIN_HMAC_SECRET_LEN,
};
pub use signer::{unix_now, Hs256Signer};
pub use source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};
