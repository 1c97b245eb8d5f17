//! Several issuers, each with its own keys: [`PerIssuer`] sends a token to the resolver
//! of the issuer it claims, which verifies it with that issuer's keys only (and checks
//! `iss` again). A token signed with issuer A's key that claims to be issuer B's is
//! refused: B's resolver does not hold A's key.

use http::request::Parts;
use paywall::{Identity, IdentityError, IdentityResolver};
use serde_json::{Map, Value};

use crate::jwks::JwksError;
use crate::resolver::{JwtConfigError, JwtResolver};
use crate::source::TokenSource;

/// Resolvers of several issuers, each verifying its own issuer's tokens with its own
/// keys. The external reference is `<iss>|<sub>` (the claim the resolver maps), so the
/// same subject at two issuers is two customers. Built with
/// [`JwtResolver::per_issuer`].
///
/// ```
/// use paywall_jwt::{Hs256Signer, JwtResolver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = ("a secret of issuer A, 32 bytes long!", "a secret of issuer B, 32 bytes long!");
/// let resolver = JwtResolver::per_issuer([
///     JwtResolver::hs256(a).issuer("https://a.example").build()?,
///     JwtResolver::hs256(b).issuer("https://b.example").build()?,
/// ])?;
/// let token = |secret: &str, iss: &str| {
///     let claims = serde_json::json!({ "sub": "ada", "iss": iss, "exp": paywall_jwt::unix_now() + 60 });
///     Hs256Signer::new(secret).sign(&claims)
/// };
/// let ada = resolver.verify(&token(a, "https://a.example")?).await?;
/// assert_eq!(ada.external_ref, "https://a.example|ada");
/// // A's key cannot speak for B.
/// assert!(resolver.verify(&token(a, "https://b.example")?).await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PerIssuer {
    resolvers: Vec<(String, JwtResolver)>,
    source: TokenSource,
    max_token_len: usize,
}

impl JwtResolver {
    /// Combines resolvers of one distinct issuer each (see [`PerIssuer`]). The first
    /// resolver's token source and length limit apply to all.
    pub fn per_issuer(
        resolvers: impl IntoIterator<Item = JwtResolver>,
    ) -> Result<PerIssuer, JwtConfigError> {
        let mut by_issuer: Vec<(String, JwtResolver)> = Vec::new();
        for resolver in resolvers {
            let Some(issuer) = resolver.issuer.clone() else {
                return Err(JwtConfigError::IssuerNotDistinct);
            };
            if by_issuer.iter().any(|(known, _)| *known == issuer) {
                return Err(JwtConfigError::IssuerNotDistinct);
            }
            by_issuer.push((issuer, resolver));
        }
        let Some((_, first)) = by_issuer.first() else {
            return Err(JwtConfigError::NoKeys);
        };
        Ok(PerIssuer {
            source: first.source.clone(),
            max_token_len: first.max_token_len,
            resolvers: by_issuer,
        })
    }
}

impl PerIssuer {
    /// Fetches every issuer's keys (see [`JwtResolver::preload`]); the number of keys.
    pub async fn preload(&self) -> Result<usize, JwksError> {
        let mut keys = 0;
        for (_, resolver) in &self.resolvers {
            keys += resolver.preload().await?;
        }
        Ok(keys)
    }

    /// Verifies `token` with the keys of the issuer it claims.
    pub async fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        let (issuer, resolver) = self.issuer_of(token)?;
        let identity = resolver.verify(token).await?;
        Ok(qualified(issuer, identity))
    }

    /// The resolver of the issuer `token` claims (only to choose it: that resolver
    /// verifies the signature and `iss`).
    fn issuer_of(&self, token: &str) -> Result<(&str, &JwtResolver), IdentityError> {
        if token.len() > self.max_token_len {
            return Err(IdentityError::Invalid(
                "token longer than the maximum".to_owned(),
            ));
        }
        let claimed = jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token)
            .ok()
            .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| IdentityError::Invalid("the token names no issuer".to_owned()))?;
        self.resolvers
            .iter()
            .find(|(iss, _)| *iss == claimed)
            .map(|(issuer, resolver)| (issuer.as_str(), resolver))
            .ok_or_else(|| IdentityError::Invalid("the token's issuer is not accepted".to_owned()))
    }
}

/// The identity with its external reference qualified by the issuer: two issuers'
/// subjects never name one customer.
fn qualified(issuer: &str, mut identity: Identity) -> Identity {
    identity.external_ref = format!("{issuer}|{}", identity.external_ref);
    identity
}

impl IdentityResolver for PerIssuer {
    async fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        match self.source.extract(parts, self.max_token_len)? {
            Some(token) => self.verify(token).await.map(Some),
            None => Ok(None),
        }
    }

    /// No token, a malformed one, or one its issuer's resolver has already verified:
    /// answered without waiting.
    fn resolve_now(&self, parts: &Parts) -> Option<Result<Option<Identity>, IdentityError>> {
        let token = match self.source.extract(parts, self.max_token_len) {
            Ok(Some(token)) => token,
            Ok(None) => return Some(Ok(None)),
            Err(err) => return Some(Err(err)),
        };
        let (issuer, resolver) = match self.issuer_of(token) {
            Ok(found) => found,
            Err(err) => return Some(Err(err)),
        };
        let verdict = resolver.verify_now(token)?;
        Some(verdict.map(|identity| Some(qualified(issuer, identity))))
    }
}
