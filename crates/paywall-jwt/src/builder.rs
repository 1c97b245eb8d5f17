//! [`JwtResolverBuilder`]: keys, algorithms, issuer and audience, claims, token
//! sources and caches, validated in [`build`](JwtResolverBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};

use crate::claims::ClaimMapping;
use crate::jwks::{JwksCache, JwksSettings, JwksSource};
use crate::keys::{Key, KeySet};
use crate::resolver::*;
use crate::source::TokenSource;
use crate::token_cache::TokenCache;

/// Every asymmetric algorithm jsonwebtoken verifies.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Configures a [`JwtResolver`].
pub struct JwtResolverBuilder {
    pub(crate) keys: Vec<Key>,
    pub(crate) jwks: Option<JwksSource>,
    pub(crate) jwks_settings: JwksSettings,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) any_issuer: bool,
    pub(crate) any_audience: bool,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) source: TokenSource,
    pub(crate) max_token_len: usize,
    pub(crate) claims: ClaimMapping,
    pub(crate) cache_capacity: Option<u64>,
}

impl fmt::Debug for JwtResolverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtResolverBuilder")
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("keys", &self.keys)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl JwtResolverBuilder {
    /// Adds a static verification key.
    pub fn key(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// The algorithms accepted, replacing the preset's. A token whose header names
    /// another algorithm is refused. With a JWKS the default is every asymmetric
    /// algorithm the provider's keys declare; static keys need a list.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Accept tokens whose `iss` is `issuer`. One resolver verifies one issuer's tokens
    /// with that issuer's keys; for several issuers, build one resolver each and
    /// combine them with [`JwtResolver::per_issuer`] (a second call here is refused at
    /// [`build`](Self::build)).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Require `aud` to contain `audience` (may be called several times: any matches).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// With a JWKS, accept tokens whatever their `iss`. Any service whose tokens the
    /// JWKS's keys sign (every tenant of a shared IdP) can then call you: only for keys
    /// nobody else uses.
    pub fn dangerously_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// With a JWKS, accept tokens whatever their `aud`. Tokens the provider minted for
    /// your other APIs (or other applications) are then accepted here.
    pub fn dangerously_accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Where tokens are read from (default `Authorization: Bearer`).
    pub fn source(mut self, source: TokenSource) -> Self {
        self.source = source;
        self
    }

    /// Tokens longer than this are refused before parsing (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// The claim that becomes the external reference (default `sub`).
    pub fn external_ref_claim(mut self, claim: impl Into<String>) -> Self {
        self.claims.external_ref = claim.into();
        self
    }

    /// The claim read as the email (default `email`).
    pub fn email_claim(mut self, claim: impl Into<String>) -> Self {
        self.claims.email = claim.into();
        self
    }

    /// The claim read as the name (default `name`).
    pub fn name_claim(mut self, claim: impl Into<String>) -> Self {
        self.claims.name = claim.into();
        self
    }

    /// A whole claim mapping (for example [`ClaimMapping::custom`]).
    pub fn claims(mut self, mapping: ClaimMapping) -> Self {
        self.claims = mapping;
        self
    }

    /// Remember up to `capacity` verified tokens (default 10,000). Each entry lasts until
    /// its token's `exp` at most, and entries are ignored once a key leaves the JWKS.
    pub fn token_cache(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// Verify every token in full, every time.
    pub fn without_token_cache(mut self) -> Self {
        self.cache_capacity = None;
        self
    }

    /// The budget of on-demand JWKS fetches that tokens with unknown `kid`s may cause:
    /// `burst` at once, one more per `every` (default 2, and one per 30 s). The first
    /// unknown `kid` after a rotation is fetched at once; past the budget, such tokens
    /// are answered 503 with `Retry-After` rather than 401.
    pub fn jwks_refetch_budget(mut self, burst: u32, every: Duration) -> Self {
        self.jwks_settings.budget.burst = burst.max(1);
        self.jwks_settings.budget.every = every;
        self
    }

    /// Waits between failed JWKS fetches: `min` after the first, doubling up to `max`
    /// (default 1 s to 10 s). A 503 says in `Retry-After` how long is left.
    pub fn jwks_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.jwks_settings.budget.min_backoff = min;
        self.jwks_settings.budget.max_backoff = max.max(min);
        self
    }

    /// Connect and total timeouts of a JWKS fetch (default 2 s and 5 s).
    pub fn jwks_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.jwks_settings.connect_timeout = connect;
        self.jwks_settings.timeout = total;
        self
    }

    /// Bounds on the periodic refresh interval taken from `Cache-Control: max-age`
    /// (default 60 s to 24 h; 1 h when the endpoint sends no `max-age`).
    pub fn jwks_refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.jwks_settings.min_refresh = min;
        self.jwks_settings.max_refresh = max.max(min);
        self.jwks_settings.default_refresh =
            self.jwks_settings.default_refresh.clamp(min, max.max(min));
        self
    }

    /// Builds the resolver. With a JWKS, call it inside a Tokio runtime to fetch the
    /// keys in the background right away and refresh them periodically; otherwise they
    /// are fetched on the first token.
    pub fn build(mut self) -> Result<JwtResolver, JwtConfigError> {
        if self.issuers.len() > 1 {
            return Err(JwtConfigError::SeveralIssuers);
        }
        if self.jwks.is_some() {
            if self.issuers.is_empty() && !self.any_issuer {
                return Err(JwtConfigError::MissingIssuer);
            }
            if self.audiences.is_empty() && !self.any_audience {
                return Err(JwtConfigError::MissingAudience);
            }
            if self.algorithms.is_empty() {
                // Which of them a token may use is then up to the keys it names.
                self.algorithms = ASYMMETRIC.to_vec();
            }
        }
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        if self.max_token_len == 0 {
            return Err(JwtConfigError::ZeroMaxTokenLen);
        }
        let keys = match (&self.jwks, self.keys.is_empty()) {
            (Some(_), false) => return Err(JwtConfigError::KeysAndJwks),
            (None, true) => return Err(JwtConfigError::NoKeys),
            (None, false) => {
                let set = KeySet::new(self.keys.clone());
                if set.secret_lengths().any(|len| len < MIN_HMAC_SECRET_LEN) {
                    return Err(JwtConfigError::SecretTooShort);
                }
                for alg in &self.algorithms {
                    if !set.families().any(|family| family == alg.family()) {
                        return Err(JwtConfigError::NoKeyForAlgorithm(format!("{alg:?}")));
                    }
                }
                Keys::Static(Arc::new(set))
            }
            (Some(source), true) => {
                if let Some(alg) = self
                    .algorithms
                    .iter()
                    .find(|alg| alg.family() == AlgorithmFamily::Hmac)
                {
                    return Err(JwtConfigError::SymmetricWithJwks(format!("{alg:?}")));
                }
                let (JwksSource::Url(url) | JwksSource::Discovery(url)) = source;
                let parsed =
                    url::Url::parse(url).map_err(|_| JwtConfigError::InvalidUrl(url.clone()))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(JwtConfigError::InvalidUrl(url.clone()));
                }
                let cache = JwksCache::new(source.clone(), self.jwks_settings.clone())
                    .map_err(JwtConfigError::HttpClient)?;
                Keys::Jwks(cache)
            }
        };
        let validation = |alg: Algorithm| {
            let mut validation = Validation::new(alg);
            validation.leeway = self.leeway.as_secs();
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp"]);
            if !self.issuers.is_empty() {
                validation.set_issuer(&self.issuers);
                validation.required_spec_claims.insert("iss".into());
            }
            if self.audiences.is_empty() {
                validation.validate_aud = false;
            } else {
                validation.set_audience(&self.audiences);
                validation.required_spec_claims.insert("aud".into());
            }
            (alg, validation)
        };
        let validations = self.algorithms.iter().map(|alg| validation(*alg)).collect();
        Ok(JwtResolver {
            keys,
            validations,
            issuer: self.issuers.pop(),
            algorithms: self.algorithms,
            source: self.source,
            max_token_len: self.max_token_len,
            claims: self.claims,
            cache: self.cache_capacity.map(TokenCache::new),
        })
    }
}
