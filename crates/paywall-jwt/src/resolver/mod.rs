//! Verifying tokens and mapping their claims: [`JwtResolver`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use paywall::{Identity, IdentityError, IdentityResolver, Recall};
use serde_json::{Map, Value};

use crate::builder::JwtResolverBuilder;
use crate::claims::ClaimMapping;
use crate::jwks::{JwksCache, JwksError, JwksSettings, JwksSource, Refresh};
use crate::keys::{Key, KeySet};
use crate::source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};
use crate::token_cache::TokenCache;

/// The shortest HMAC secret accepted: 256 bits, as RFC 7518 §3.2 requires for HS256.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// Verified tokens remembered by default.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;

/// A resolver could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// One builder was given several issuers: their keys would verify each other's
    /// tokens. Build one resolver per issuer and combine them with
    /// [`JwtResolver::per_issuer`].
    #[error("one resolver per issuer: combine them with JwtResolver::per_issuer")]
    SeveralIssuers,
    /// A resolver given to [`JwtResolver::per_issuer`] requires no issuer, or two
    /// require the same one.
    #[error("JwtResolver::per_issuer needs resolvers of one distinct issuer each")]
    IssuerNotDistinct,
    /// An HMAC secret is shorter than [`MIN_HMAC_SECRET_LEN`] bytes.
    #[error("the HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes long")]
    SecretTooShort,
    /// The maximum token length is zero.
    #[error("the maximum token length must be greater than zero")]
    ZeroMaxTokenLen,
    /// No algorithm is allowed.
    #[error("at least one algorithm must be allowed")]
    NoAlgorithms,
    /// Neither keys nor a JWKS URL nor an issuer to discover were given.
    #[error("no verification keys: give static keys, a JWKS URL or an OIDC issuer")]
    NoKeys,
    /// Both static keys and a JWKS were given.
    #[error("give static keys or a JWKS, not both")]
    KeysAndJwks,
    /// An allowed algorithm has no static key of its family.
    #[error("algorithm {0} is allowed but no key can verify it")]
    NoKeyForAlgorithm(String),
    /// Symmetric algorithms cannot be verified with keys from a JWKS.
    #[error("algorithm {0} is symmetric: a JWKS only provides public keys")]
    SymmetricWithJwks(String),
    /// Keys come from a JWKS or OIDC provider and no issuer is required: tokens that
    /// provider issued for anyone would be accepted. Set one, or opt out with
    /// [`JwtResolverBuilder::dangerously_accept_any_issuer`].
    #[error("an issuer is required with a JWKS (or opt out explicitly)")]
    MissingIssuer,
    /// Keys come from a JWKS or OIDC provider and no audience is required: tokens that
    /// provider minted for other APIs would be accepted. Set one, or opt out with
    /// [`JwtResolverBuilder::dangerously_accept_any_audience`].
    #[error("an audience is required with a JWKS (or opt out explicitly)")]
    MissingAudience,
    /// A JWKS or issuer URL is not an absolute http(s) URL.
    #[error("invalid URL {0:?}: expected an absolute http or https URL")]
    InvalidUrl(String),
    /// The HTTP client for the JWKS could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

pub(crate) enum Keys {
    Static(Arc<KeySet>),
    Jwks(Arc<JwksCache>),
}

/// Resolves callers from signed JWTs.
///
/// * Keys: static keys (HMAC secrets, RSA, EC P-256/P-384 and Ed25519 public keys from
///   PEM or JWK), a JWKS URL, or OIDC discovery from an issuer.
/// * The allowed algorithms are fixed by configuration, never taken from the token.
///   With a JWKS and no explicit list, they are the asymmetric algorithms the
///   provider's keys declare (their `alg`, or the one their curve implies); HMAC is
///   never accepted with a JWKS. A key verifies only its own `alg`, and keys whose
///   `use` is `enc` never verify anything.
/// * `exp` is required and `nbf` honoured, with a leeway (default 30 s); issuers and
///   audiences are checked when configured (`aud` is then required). With a JWKS or
///   OIDC discovery both are required unless explicitly waived.
/// * One resolver verifies one issuer's tokens with that issuer's keys. Several issuers
///   are combined with [`JwtResolver::per_issuer`]: a token is verified only by the
///   resolver of the issuer it claims, and its external reference is namespaced by
///   issuer (`<iss>|<sub>`), so the same `sub` from two providers is two customers.
/// * Tokens longer than the maximum (default 8 KiB) are refused before any parsing.
/// * Claims → identity through a [`ClaimMapping`] (`sub`, `email`, `name` by default).
/// * Every bad token is [`IdentityError::Invalid`] (a 401). When no key can verify it
///   right now (the provider unreachable, or a `kid` not yet fetched while fetches are
///   rate-limited), [`IdentityError::Unavailable`] with the time until the next fetch
///   may run (a 503 with an honest `Retry-After`).
///
/// Verified tokens are remembered by their exact bytes until their `exp` (see
/// [`JwtResolverBuilder::token_cache`]), so a warm request costs a cache lookup rather
/// than a signature check.
///
/// ```
/// use paywall_jwt::{Algorithm, JwtResolver};
///
/// // Auth0: issuer https://<domain>/, its JWKS, RS256.
/// let auth0 = JwtResolver::auth0("example.eu.auth0.com", "https://api.example.com").build()?;
/// // Any OIDC provider, by discovery (algorithms: those its keys declare).
/// let oidc = JwtResolver::oidc("https://accounts.example.com")
///     .audience("my-api")
///     .build()?;
/// // A JWKS URL, accepting only PS256.
/// let pinned = JwtResolver::jwks("https://idp.example.com/jwks.json")
///     .issuer("https://idp.example.com/")
///     .audience("my-api")
///     .algorithms([Algorithm::PS256])
///     .build()?;
/// // Your own HS256 tokens, billing the organisation rather than the user.
/// let own = JwtResolver::hs256("a secret of at least thirty-two bytes!!")
///     .external_ref_claim("org_id")
///     .build()?;
/// # let _ = (auth0, oidc, pinned, own);
/// # Ok::<(), paywall_jwt::JwtConfigError>(())
/// ```
pub struct JwtResolver {
    pub(crate) keys: Keys,
    /// One validation per allowed algorithm: jsonwebtoken checks that every algorithm
    /// of a validation matches the key's family, so families cannot share one.
    pub(crate) validations: Vec<(Algorithm, Validation)>,
    pub(crate) algorithms: Vec<Algorithm>,
    /// The one issuer whose tokens this resolver verifies, if it requires one.
    pub(crate) issuer: Option<String>,
    pub(crate) source: TokenSource,
    pub(crate) max_token_len: usize,
    pub(crate) claims: ClaimMapping,
    pub(crate) cache: Option<TokenCache>,
}

impl fmt::Debug for JwtResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            Keys::Static(set) => format!("static: {} key(s) [redacted]", set.families().count()),
            Keys::Jwks(cache) => format!("{cache:?}"),
        };
        f.debug_struct("JwtResolver")
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.validations.first().map(|(_, v)| &v.iss))
            .field("audience", &self.validations.first().map(|(_, v)| &v.aud))
            .field("keys", &keys)
            .field("source", &self.source)
            .field("claims", &self.claims)
            .field("token_cache", &self.cache.is_some())
            .finish()
    }
}

impl JwtResolver {
    /// A resolver to configure from scratch: add keys or a JWKS, and algorithms.
    pub fn builder() -> JwtResolverBuilder {
        JwtResolverBuilder {
            keys: Vec::new(),
            jwks: None,
            jwks_settings: JwksSettings::default(),
            algorithms: Vec::new(),
            any_issuer: false,
            any_audience: false,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            source: TokenSource::default(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            claims: ClaimMapping::default(),
            cache_capacity: Some(DEFAULT_TOKEN_CACHE_CAPACITY),
        }
    }

    /// HS256 tokens signed with `secret` (at least 32 bytes).
    pub fn hs256(secret: impl AsRef<[u8]>) -> JwtResolverBuilder {
        Self::builder()
            .key(Key::hmac(secret))
            .algorithms([Algorithm::HS256])
    }

    /// Tokens verified with the keys of a JWKS endpoint, with the algorithms those keys
    /// declare. Set [`issuer`](JwtResolverBuilder::issuer) and
    /// [`audience`](JwtResolverBuilder::audience): `build` refuses a JWKS without them.
    pub fn jwks(url: impl Into<String>) -> JwtResolverBuilder {
        let mut builder = Self::builder();
        builder.jwks = Some(JwksSource::Url(url.into()));
        builder
    }

    /// Tokens from an OIDC provider: the JWKS is found by discovery
    /// (`<issuer>/.well-known/openid-configuration`, whose `issuer` must match) and
    /// `iss` must be `issuer`. Set [`audience`](JwtResolverBuilder::audience).
    pub fn oidc(issuer: impl Into<String>) -> JwtResolverBuilder {
        let issuer = issuer.into();
        let mut builder = Self::builder().issuer(issuer.clone());
        builder.jwks = Some(JwksSource::Discovery(issuer));
        builder
    }

    /// Auth0: issuer `https://<domain>/`, keys from `https://<domain>/.well-known/jwks.json`,
    /// and `aud` must include `audience`. Custom domains work the same. (A domain given
    /// with an explicit `http://` scheme is kept as is, for local testing.)
    pub fn auth0(domain: &str, audience: impl Into<String>) -> JwtResolverBuilder {
        let domain = domain.trim().trim_end_matches('/');
        let base = if domain.starts_with("https://") || domain.starts_with("http://") {
            domain.to_owned()
        } else {
            format!("https://{domain}")
        };
        Self::jwks(format!("{base}/.well-known/jwks.json"))
            .issuer(format!("{base}/"))
            .audience(audience)
    }

    /// The JWKS cache, when keys come from one (for its fetch count, say).
    pub fn jwks_cache(&self) -> Option<&JwksCache> {
        match &self.keys {
            Keys::Jwks(cache) => Some(cache),
            Keys::Static(_) => None,
        }
    }

    /// Fetches the keys now, with a JWKS (otherwise nothing to do): call it at start-up.
    /// Returns how many usable keys the provider publishes (0 without a JWKS).
    ///
    /// An answer that can never work (an HTTP error such as 404, a body that is not a
    /// key set, no usable signing key, a discovery document naming another issuer) is
    /// an error to stop on. A provider that cannot be reached is an error too, but
    /// [`JwksError::is_transient`]: a service may start and fetch the keys when the
    /// provider comes up (requests are answered 503 until then).
    pub async fn preload(&self) -> Result<usize, JwksError> {
        match &self.keys {
            Keys::Jwks(cache) => cache.preload().await,
            Keys::Static(_) => Ok(0),
        }
    }

    /// Verifies `token` and maps its claims to an identity.
    pub async fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        if let Some(verdict) = self.verify_now(token) {
            return verdict;
        }
        // Boxed: the full check (and a JWKS fetch it may wait for) is a large future,
        // which a cached token should not carry in every request's state.
        Box::pin(self.verify_uncached(token, self.epoch())).await
    }

    /// What [`verify`](Self::verify) answers without verifying anything: a refusal of
    /// a token too long, or the identity of a token already verified under the
    /// current keys. `None`: the token must be verified.
    pub(crate) fn verify_now(&self, token: &str) -> Option<Result<Identity, IdentityError>> {
        if token.len() > self.max_token_len {
            return Some(Err(invalid("token longer than the maximum")));
        }
        let cache = self.cache.as_ref()?;
        cache.get(token, self.epoch()).map(Ok)
    }

    /// The key set's epoch: cached verifications from an earlier one are ignored.
    fn epoch(&self) -> u64 {
        match &self.keys {
            Keys::Jwks(cache) => cache.epoch(),
            Keys::Static(_) => 0,
        }
    }

    /// [`verify`](Self::verify) past the token cache: the signature and claims, then
    /// the cache is told.
    async fn verify_uncached(&self, token: &str, epoch: u64) -> Result<Identity, IdentityError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| invalid(&format!("malformed token: {err}")))?;
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == header.alg)
        else {
            return Err(invalid(&format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        };
        let keys = match &self.keys {
            Keys::Static(set) => Arc::clone(set),
            Keys::Jwks(cache) => {
                let mut set = cache.keys();
                // A kid withdrawn since an earlier fetch is refused without fetching.
                let unknown = |set: &KeySet| {
                    set.is_empty()
                        || header
                            .kid
                            .as_deref()
                            .is_some_and(|kid| !set.has_kid(kid) && !set.was_withdrawn(kid))
                };
                // A rotated key, or a forged kid: a fetch tells, if one may run now. A
                // fetch that ended while this request waited may predate the key, so
                // then one more try.
                for _ in 0..2 {
                    if !unknown(&set) {
                        break;
                    }
                    let refresh = cache.refresh_on_demand().await;
                    set = cache.keys();
                    match refresh {
                        Refresh::Fetched => break,
                        Refresh::Shared => continue,
                        Refresh::Refused(wait) if unknown(&set) => {
                            return Err(IdentityError::unavailable_for(
                                "the token's key is not known and the JWKS cannot be fetched yet",
                                wait,
                            ));
                        }
                        Refresh::Refused(_) => break,
                    }
                }
                if set.is_empty() {
                    return Err(IdentityError::unavailable_for(
                        "no verification key could be fetched from the JWKS",
                        cache.retry_after(),
                    ));
                }
                set
            }
        };
        let mut rejected = None;
        for key in keys.candidates(header.kid.as_deref(), header.alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => {
                    let mut identity = self.claims.identity(&data.claims)?;
                    if let Some(cache) = &self.cache {
                        // Every request with this token shares it: the paywall finds
                        // the caller's customer through it.
                        identity = identity.with_recall(Recall::new());
                        let exp = data.claims.get("exp").and_then(Value::as_u64);
                        cache.insert(token, &identity, exp, epoch);
                    }
                    return Ok(identity);
                }
                // Another key (no kid) may still match.
                Err(err) if matches!(err.kind(), ErrorKind::InvalidSignature) => {
                    rejected = Some(err);
                }
                Err(err) => return Err(invalid(&format!("token rejected: {err}"))),
            }
        }
        Err(invalid(&match rejected {
            Some(err) => format!("token rejected: {err}"),
            None => "no key for this token's kid and algorithm".to_owned(),
        }))
    }
}

fn invalid(reason: &str) -> IdentityError {
    IdentityError::Invalid(reason.to_owned())
}

impl IdentityResolver for JwtResolver {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        match self.source.extract(parts, self.max_token_len)? {
            Some(token) => self.verify(token).await.map(Some),
            None => Ok(None),
        }
    }

    /// No token, a malformed one, or one already verified: answered without waiting.
    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        match self.source.extract(parts, self.max_token_len) {
            Ok(Some(token)) => self.verify_now(token).map(|verdict| verdict.map(Some)),
            Ok(None) => Some(Ok(None)),
            Err(err) => Some(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests;
