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
//! # Identity, strictly
//!
//! [`JwtResolver`] is the security boundary, so it is strict by default:
//! algorithms fixed by configuration (never read from the token), `exp` required, `nbf`
//! honoured with a 30 s leeway, issuers and audiences checked when configured (`aud` then
//! required), tokens over 8 KiB refused before parsing, one `Authorization` header only.
//! With keys from a provider (JWKS or discovery), an issuer and an audience are
//! **required**: without them tokens the provider minted for your other APIs, or for other
//! tenants of a shared IdP, would pass. Opting out takes a call named for what it does
//! (`dangerously_accept_any_issuer()`, `dangerously_accept_any_audience()`), and there is
//! no environment variable for it.
//!
//! ```no_run
//! use paywall_jwt::{Algorithm, JwtResolver, Key, TokenSource};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let secret = "a secret of at least thirty-two bytes!!";
//! # let pem = std::fs::read("tests/keys/ec384.pub.pem")?;
//! # let url = "https://idp.example/.well-known/jwks.json";
//! let own = JwtResolver::hs256(secret).build()?; // your own tokens
//! let auth0 = JwtResolver::auth0("example.eu.auth0.com", "https://api.example.com").build()?;
//! let discovered = JwtResolver::oidc("https://accounts.example.com").audience("my-api").build()?;
//! let pinned = JwtResolver::jwks(url)
//!     .issuer("https://idp.example/")
//!     .audience("my-api")
//!     .algorithms([Algorithm::PS256]) // one algorithm only
//!     .build()?;
//! let organisations = JwtResolver::builder()
//!     .key(Key::ec_pem(&pem)?)
//!     .algorithms([Algorithm::ES384])
//!     .issuer("https://idp.example/")
//!     .audience("my-api")
//!     .external_ref_claim("org_id") // bill organisations, not users
//!     .source(TokenSource::Cookie("session".into()))
//!     .build()?;
//! # let _ = (own, auth0, discovered, pinned, organisations);
//! # Ok(())
//! # }
//! ```
//!
//! **Algorithms and keys.** With a JWKS the accepted algorithms are, by default, the
//! asymmetric ones the provider's keys declare (RS256/384/512, PS256/384/512, ES256, ES384,
//! EdDSA); HMAC is never accepted with a JWKS. A key verifies only the algorithm its JWK
//! names (RFC 8725 §3.1: a token signed RS256 with a key marked `PS256` is refused) or its
//! curve implies; keys marked `use: enc` (or whose `key_ops` lack `verify`) never verify
//! anything; members of the set the crate cannot use are skipped, never fatal.
//!
//! **Rotation.** Keys are read without a lock. A token naming an unknown `kid` triggers a
//! fetch at once, shared by concurrent requests: a freshly rotated key is accepted on its
//! first request, even right after start-up. Such on-demand fetches draw on a small budget
//! (2 at once, one more per 30 s), so forged `kid`s cost at most a couple of fetches per
//! minute; past the budget, a token whose `kid` is still unknown is answered **503 with
//! `Retry-After`** (a real rotation then waits, it is never told its token is bad). A `kid`
//! that a fetch showed withdrawn is refused at once. The set is also refreshed every
//! `Cache-Control: max-age` (1 h without one). Verified tokens are cached by their exact
//! bytes until their `exp`, which turns a ~28 µs RS256 check into a ~0.35 µs lookup (see
//! BENCHMARKS.md); the cache is invalidated whenever a key is withdrawn or its material
//! replaced under the same `kid` (compared by RFC 7638 thumbprint). A cached token, a
//! request without one and a malformed one are answered through
//! [`IdentityResolver::resolve_now`](paywall::IdentityResolver::resolve_now), so the
//! tower layer decides such a request without a future.
//!
//! **Outages and misconfiguration.** The quickstarts fetch the keys before serving. An
//! answer that can never work (404, an HTML page, a discovery document given as the JWKS
//! URL, a set without a usable signing key, a discovery document naming another `issuer`
//! or a plain-http `jwks_uri` off loopback) stops start-up with exit code 2 and the URL in
//! the message (`JwtResolver::preload` returns it as a `JwksError`). An unreachable
//! provider (refused, DNS, TLS, timeout, 5xx) is reported, naming the URL and the cause,
//! and the server starts: requests get 503 `identity_unavailable` whose `Retry-After` is
//! the real wait before the next fetch (1 s, doubling to 10 s), so a client that retries
//! when told is served once the provider is back. The outage and the recovery are logged
//! once each. Fetches read at most 256 KiB, follow redirects only within the same host,
//! and give up after 2 s to connect and 5 s in all.
//!
//! **Refused tokens** are logged at `debug` with the reason, and summarised at `info` at
//! most once a minute (how many, and the last reason), so an operator sees why tokens are
//! refused without debug logs. A request without bearer credentials (none, or another
//! scheme such as `Basic`) gets `WWW-Authenticate: Bearer`; a bad token gets
//! `Bearer error="invalid_token"` (RFC 6750 §3.1).
//!
//! **Several issuers.** One resolver verifies one issuer's tokens with that issuer's
//! keys; [`JwtResolver::per_issuer`] combines several, so a token is only ever verified
//! with the keys of the issuer it claims (issuer A's key cannot sign for issuer B). The
//! external reference is then `<iss>|<sub>`, so the same `sub` from two issuers is two
//! customers. With one issuer it
//! is the claim alone, as before.
//!
//! The crypto backend is `aws-lc-rs` (jsonwebtoken's `aws_lc_rs` feature).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod claims;
mod issuers;
mod jwks;
mod keys;
mod resolver;
mod signer;
mod source;
mod token_cache;

pub use builder::JwtResolverBuilder;
pub use claims::ClaimMapping;
pub use issuers::PerIssuer;
pub use jsonwebtoken::{Algorithm, AlgorithmFamily};
pub use jwks::{JwksCache, JwksError, MAX_DOCUMENT_BYTES};
pub use keys::{Key, KeyError};
pub use resolver::{
    JwtConfigError, JwtResolver, DEFAULT_TOKEN_CACHE_CAPACITY, MIN_HMAC_SECRET_LEN,
};
pub use signer::{unix_now, Hs256Signer};
pub use source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};
