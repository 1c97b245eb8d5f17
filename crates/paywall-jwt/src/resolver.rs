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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn exp() -> u64 {
        crate::unix_now() + 600
    }

    fn sign(alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn verifies_sub_email_and_name() {
        let resolver = JwtResolver::hs256(SECRET).build().expect("build");
        let token = sign(
            Algorithm::HS256,
            &json!({ "sub": "u1", "email": "u1@example.com", "name": "U One", "exp": exp() }),
        );
        let identity = resolver.verify(&token).expect("valid");
        assert_eq!(
            identity,
            Identity::new("u1")
                .with_email("u1@example.com")
                .with_name("U One")
        );
    }

    #[test]
    fn the_algorithm_is_pinned_by_configuration() {
        let resolver = JwtResolver::hs256(SECRET).build().expect("build");
        let hs384 = sign(Algorithm::HS384, &json!({ "sub": "u1", "exp": exp() }));
        assert!(
            resolver.verify(&hs384).is_err(),
            "a token choosing another algorithm is refused"
        );
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(format!(r#"{{"sub":"u1","exp":{}}}"#, exp()).as_bytes());
        assert!(
            resolver.verify(&format!("{header}.{payload}.")).is_err(),
            "alg none is refused"
        );
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let resolver = JwtResolver::hs256(SECRET)
            .issuer("https://idp.example/")
            .audience("api")
            .build()
            .expect("build");
        let good = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/", "aud": "api" }),
        );
        assert!(resolver.verify(&good).is_ok());
        let wrong_iss = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "iss": "https://evil/", "aud": "api" }),
        );
        assert!(resolver.verify(&wrong_iss).is_err());
        let wrong_aud = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/", "aud": "other" }),
        );
        assert!(resolver.verify(&wrong_aud).is_err());
        let no_aud = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "iss": "https://idp.example/" }),
        );
        assert!(
            resolver.verify(&no_aud).is_err(),
            "aud is required once an audience is configured"
        );
    }

    #[test]
    fn not_yet_valid_and_oversized_tokens_are_refused() {
        let resolver = JwtResolver::hs256(SECRET)
            .leeway(Duration::ZERO)
            .max_token_len(512)
            .build()
            .expect("build");
        let nbf = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "nbf": crate::unix_now() + 300 }),
        );
        assert!(resolver.verify(&nbf).is_err());
        let big = sign(
            Algorithm::HS256,
            &json!({ "sub": "u", "exp": exp(), "pad": "x".repeat(1000) }),
        );
        assert!(
            matches!(resolver.verify(&big), Err(IdentityError::Invalid(reason)) if reason.contains("longer"))
        );
    }

    #[test]
    fn short_secrets_are_refused_and_debug_never_shows_the_key() {
        assert_eq!(
            JwtResolver::hs256("short").build().err(),
            Some(JwtConfigError::SecretTooShort)
        );
        let resolver = JwtResolver::hs256(SECRET).build().expect("build");
        let debug = format!(
            "{resolver:?} {:?} {:?}",
            JwtResolver::hs256(SECRET),
            crate::Hs256Signer::new(SECRET)
        );
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        let bytes: Vec<String> = SECRET.bytes().map(|b| b.to_string()).collect();
        assert!(
            !debug.contains(&bytes[..4].join(", ")),
            "key bytes leaked: {debug}"
        );
    }
}
