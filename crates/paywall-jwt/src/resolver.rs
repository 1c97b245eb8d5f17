//! Verifying tokens and mapping their claims: [`JwtResolver`].

use std::fmt;
use std::time::Duration;

use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use paywall::{Identity, IdentityError, IdentityResolver};
use serde::Deserialize;
use serde_json::Value;

use crate::source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 §3.2 requires.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// A resolver could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET_LEN`] bytes.
    #[error("the HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes long")]
    SecretTooShort,
    /// The maximum token length is zero.
    #[error("the maximum token length must be greater than zero")]
    ZeroMaxTokenLen,
}

/// Resolves callers from signed JWTs: `sub` becomes the external reference, `email`
/// and `name` are passed on.
///
/// The algorithm is fixed by configuration, never taken from the token; `exp` is
/// required; issuer and audience are checked when configured (`aud` is then required).
/// Every failure is [`IdentityError::Invalid`] (a 401).
///
/// ```
/// use paywall_jwt::JwtResolver;
///
/// let resolver = JwtResolver::hs256("a secret of at least thirty-two bytes!!")
///     .issuer("https://auth.example.com/")
///     .audience("my-api")
///     .build()?;
/// # let _ = resolver;
/// # Ok::<(), paywall_jwt::JwtConfigError>(())
/// ```
pub struct JwtResolver {
    key: DecodingKey,
    validation: Validation,
    source: TokenSource,
    max_token_len: usize,
}

impl fmt::Debug for JwtResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtResolver")
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("key", &"[redacted]")
            .field("source", &self.source)
            .finish()
    }
}

impl JwtResolver {
    /// HS256 tokens signed with `secret` (at least 32 bytes).
    pub fn hs256(secret: impl AsRef<[u8]>) -> JwtResolverBuilder {
        let secret = secret.as_ref();
        JwtResolverBuilder {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            secret_len: Some(secret.len()),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            source: TokenSource::default(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// Verifies `token` and maps its claims to an identity.
    pub fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        if token.len() > self.max_token_len {
            return Err(IdentityError::Invalid(
                "token longer than the maximum".into(),
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|err| IdentityError::Invalid(format!("token rejected: {err}")))?;
        data.claims.into_identity()
    }
}

impl IdentityResolver for JwtResolver {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        match self.source.extract(parts, self.max_token_len)? {
            Some(token) => self.verify(token).map(Some),
            None => Ok(None),
        }
    }
}

/// Configures a [`JwtResolver`].
pub struct JwtResolverBuilder {
    key: DecodingKey,
    algorithm: Algorithm,
    secret_len: Option<usize>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    source: TokenSource,
    max_token_len: usize,
}

impl fmt::Debug for JwtResolverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtResolverBuilder")
            .field("algorithm", &self.algorithm)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl JwtResolverBuilder {
    /// Accept tokens whose `iss` is `issuer` (may be called several times).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Require `aud` to contain `audience` (may be called several times: any matches).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
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

    /// Builds the resolver.
    pub fn build(self) -> Result<JwtResolver, JwtConfigError> {
        if self.secret_len.is_some_and(|len| len < MIN_HMAC_SECRET_LEN) {
            return Err(JwtConfigError::SecretTooShort);
        }
        if self.max_token_len == 0 {
            return Err(JwtConfigError::ZeroMaxTokenLen);
        }
        let mut validation = Validation::new(self.algorithm);
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
        Ok(JwtResolver {
            key: self.key,
            validation,
            source: self.source,
            max_token_len: self.max_token_len,
        })
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    email: Option<Value>,
    #[serde(default)]
    name: Option<Value>,
}

impl Claims {
    fn into_identity(self) -> Result<Identity, IdentityError> {
        let external_ref = match self.sub {
            Some(Value::String(sub)) if !sub.is_empty() => sub,
            Some(Value::String(_)) => {
                return Err(IdentityError::Invalid("empty `sub` claim".into()))
            }
            Some(_) => return Err(IdentityError::Invalid("`sub` claim is not a string".into())),
            None => return Err(IdentityError::Invalid("missing `sub` claim".into())),
        };
        let text = |value: Option<Value>| match value {
            Some(Value::String(text)) if !text.is_empty() => Some(text),
            _ => None,
        };
        Ok(Identity {
            external_ref,
            email: text(self.email),
            name: text(self.name),
        })
    }
}
