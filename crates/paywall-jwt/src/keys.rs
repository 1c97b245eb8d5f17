//! Verification keys: [`Key`] and the set a resolver verifies with.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// A key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} key: {reason}")]
pub struct KeyError {
    kind: &'static str,
    reason: String,
}

impl KeyError {
    fn new(kind: &'static str, err: impl fmt::Display) -> Self {
        Self {
            kind,
            reason: err.to_string(),
        }
    }
}

/// One verification key, optionally named by a `kid`.
///
/// ```
/// use paywall_jwt::Key;
///
/// let hmac = Key::hmac("a secret of at least thirty-two bytes!!").with_kid("v1");
/// let rsa = Key::rsa_pem(include_bytes!("../tests/keys/rsa1.pub.pem"))?;
/// # let _ = (hmac, rsa);
/// # Ok::<(), paywall_jwt::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key: Arc<DecodingKey>,
    pub(crate) family: AlgorithmFamily,
    /// Only for HMAC keys: the secret's length, to refuse short ones at build time.
    pub(crate) secret_len: Option<usize>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Key {
    fn new(key: DecodingKey, secret_len: Option<usize>) -> Self {
        Self {
            kid: None,
            family: key.family(),
            key: Arc::new(key),
            secret_len,
        }
    }

    /// An HMAC secret (HS256, HS384, HS512).
    pub fn hmac(secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        Self::new(DecodingKey::from_secret(secret), Some(secret.len()))
    }

    /// An RSA public key in PEM (RS256/384/512, PS256/384/512).
    pub fn rsa_pem(pem: &[u8]) -> Result<Self, KeyError> {
        DecodingKey::from_rsa_pem(pem)
            .map(|key| Self::new(key, None))
            .map_err(|err| KeyError::new("RSA", err))
    }

    /// An EC public key in PEM (ES256 on P-256, ES384 on P-384).
    pub fn ec_pem(pem: &[u8]) -> Result<Self, KeyError> {
        DecodingKey::from_ec_pem(pem)
            .map(|key| Self::new(key, None))
            .map_err(|err| KeyError::new("EC", err))
    }

    /// An Ed25519 public key in PEM (EdDSA).
    pub fn ed_pem(pem: &[u8]) -> Result<Self, KeyError> {
        DecodingKey::from_ed_pem(pem)
            .map(|key| Self::new(key, None))
            .map_err(|err| KeyError::new("Ed25519", err))
    }

    /// A public JWK (RSA, EC or OKP); its `kid` is kept. Symmetric (`oct`) JWKs are
    /// refused: a secret published as a JWK is no secret.
    pub fn jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(KeyError::new(
                "JWK",
                "symmetric (oct) keys are not accepted from JWKs",
            ));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|err| KeyError::new("JWK", err))?;
        let mut key = Self::new(key, None);
        key.kid = jwk.common.key_id.clone();
        Ok(key)
    }

    /// Names the key: tokens whose header has this `kid` are checked with it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

/// The keys a resolver verifies with.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }

    /// From a JWKS document: the usable public keys (others are skipped and counted).
    pub(crate) fn from_jwks(set: &JwkSet) -> (Self, usize) {
        let mut skipped = 0;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match Key::jwk(jwk) {
                Ok(key) => Some(key),
                Err(_) => {
                    skipped += 1;
                    None
                }
            })
            .collect();
        (Self { keys }, skipped)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    pub(crate) fn families(&self) -> impl Iterator<Item = AlgorithmFamily> + '_ {
        self.keys.iter().map(|k| k.family)
    }

    pub(crate) fn secret_lengths(&self) -> impl Iterator<Item = usize> + '_ {
        self.keys.iter().filter_map(|k| k.secret_len)
    }

    /// The keys that may verify a token with this `kid` and `alg`: the key named by
    /// `kid` when the token has one, otherwise every key of the algorithm's family.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |key| {
            key.family == alg.family()
                && match kid {
                    Some(kid) => key.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}
