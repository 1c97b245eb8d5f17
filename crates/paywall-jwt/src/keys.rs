//! Verification keys: [`Key`] and the set a resolver verifies with.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
    ThumbprintHash,
};
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
    /// The only algorithm this key verifies: its JWK's `alg`, or the one its curve
    /// implies (P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA). `None`: any algorithm of
    /// its family (an RSA key without `alg`, a PEM key).
    pub(crate) alg: Option<Algorithm>,
    /// The RFC 7638 thumbprint of a JWK, to notice a key replaced under the same `kid`.
    pub(crate) thumbprint: Option<String>,
    /// Only for HMAC keys: the secret's length, to refuse short ones at build time.
    pub(crate) secret_len: Option<usize>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    fn new(key: DecodingKey, secret_len: Option<usize>) -> Self {
        Self {
            kid: None,
            family: key.family(),
            key: Arc::new(key),
            alg: None,
            thumbprint: None,
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

    /// A public JWK (RSA, EC or OKP); its `kid` is kept, and it verifies only the
    /// algorithm its `alg` names (or its curve implies), as RFC 8725 §3.1 asks.
    ///
    /// Refused: symmetric (`oct`) JWKs (a secret published as a JWK is no secret), keys
    /// whose `use` is not `sig` or whose `key_ops` lack `verify`, and keys whose `alg` is
    /// not a signature algorithm this crate verifies (`RSA-OAEP`, say).
    pub fn jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let refuse = |reason: &str| Err(KeyError::new("JWK", reason));
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return refuse("symmetric (oct) keys are not accepted from JWKs");
        }
        match &jwk.common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(_) => return refuse("the key's `use` is not `sig`"),
        }
        if let Some(ops) = &jwk.common.key_operations {
            if !ops.iter().any(|op| matches!(op, KeyOperations::Verify)) {
                return refuse("the key's `key_ops` do not include `verify`");
            }
        }
        let declared = match jwk.common.key_algorithm {
            None => None,
            Some(alg) => match signature_algorithm(alg) {
                Some(alg) => Some(alg),
                None => return refuse("the key's `alg` is not a signature algorithm"),
            },
        };
        let implied = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => return refuse("unsupported elliptic curve"),
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
                _ => return refuse("unsupported curve"),
            },
            _ => None,
        };
        let alg = match (declared, implied) {
            (Some(declared), Some(implied)) if declared != implied => {
                return refuse("the key's `alg` does not match its curve");
            }
            (declared, implied) => declared.or(implied),
        };
        let decoding = DecodingKey::from_jwk(jwk).map_err(|err| KeyError::new("JWK", err))?;
        if alg.is_some_and(|alg| alg.family() != decoding.family()) {
            return refuse("the key's `alg` does not match its type");
        }
        let mut key = Self::new(decoding, None);
        key.kid = jwk.common.key_id.clone();
        key.alg = alg;
        key.thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).ok();
        Ok(key)
    }

    /// Whether this key may verify a token signed with `alg`.
    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|own| own == alg)
    }

    /// Names the key: tokens whose header has this `kid` are checked with it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

/// The JWS algorithms a JWK's `alg` may name; encryption algorithms are `None`.
fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// How many withdrawn `kid`s a key set remembers.
const WITHDRAWN_KIDS: usize = 64;

/// The keys a resolver verifies with.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
    /// `kid`s an earlier fetch had and a later one did not (newest last): a token naming
    /// one is refused at once, without fetching again.
    withdrawn: Vec<String>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<Key>) -> Self {
        Self {
            keys,
            withdrawn: Vec::new(),
        }
    }

    /// From the members of a JWKS's `keys` array: the usable public signing keys.
    /// Others (unknown key types, encryption keys, malformed members) are skipped and
    /// counted, so one odd key never hides the rest.
    pub(crate) fn from_jwks(members: &[serde_json::Value]) -> (Self, usize) {
        let mut skipped = 0;
        let keys = members
            .iter()
            .filter_map(|member| {
                let key = serde_json::from_value::<Jwk>(member.clone())
                    .ok()
                    .and_then(|jwk| Key::jwk(&jwk).ok());
                if key.is_none() {
                    skipped += 1;
                }
                key
            })
            .collect();
        (Self::new(keys), skipped)
    }

    /// Carries over the `kid`s withdrawn before, and adds those `previous` had and this
    /// set has not.
    pub(crate) fn remember_withdrawn(&mut self, previous: &KeySet) {
        let gone = previous.kids().filter(|kid| !self.has_kid(kid));
        let mut withdrawn: Vec<String> = previous
            .withdrawn
            .iter()
            .map(String::as_str)
            .chain(gone)
            .filter(|kid| !self.has_kid(kid))
            .map(str::to_owned)
            .collect();
        withdrawn.dedup();
        let excess = withdrawn.len().saturating_sub(WITHDRAWN_KIDS);
        withdrawn.drain(..excess);
        self.withdrawn = withdrawn;
    }

    /// Whether `kid` was published before and withdrawn since.
    pub(crate) fn was_withdrawn(&self, kid: &str) -> bool {
        self.withdrawn.iter().any(|gone| gone == kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether some key of `previous` is gone from this set or replaced under its
    /// `kid` (compared by thumbprint): tokens verified before must be checked again.
    pub(crate) fn withdraws_from(&self, previous: &KeySet) -> bool {
        previous.keys.iter().any(|old| {
            !self
                .keys
                .iter()
                .any(|new| new.kid == old.kid && new.thumbprint == old.thumbprint)
        })
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
            key.allows(alg)
                && match kid {
                    Some(kid) => key.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn okp(kid: &str, x: &str) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x })
    }

    fn rsa(kid: &str, extra: Value) -> Value {
        let mut key = json!({ "kty": "RSA", "kid": kid, "n": "sXchDaQebSXj", "e": "AQAB" });
        if let (Some(key), Some(extra)) = (key.as_object_mut(), extra.as_object()) {
            key.extend(extra.clone());
        }
        key
    }

    #[test]
    fn keys_verify_only_their_algorithm_and_never_for_encryption() {
        let (set, skipped) = KeySet::from_jwks(&[
            rsa("any-rsa", json!({})),
            rsa("ps", json!({ "alg": "PS256", "use": "sig" })),
            rsa("enc", json!({ "use": "enc" })),
            rsa("oaep", json!({ "alg": "RSA-OAEP" })),
            rsa("wrap", json!({ "key_ops": ["wrapKey"] })),
            okp("ed", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            json!({ "kty": "EC", "crv": "P-256", "kid": "lying", "alg": "ES384", "x": "AA", "y": "AA" }),
            json!({ "kty": "oct", "kid": "secret", "k": "c2VjcmV0" }),
            json!({ "kty": "unknown" }),
            json!("not even an object"),
        ]);
        assert_eq!(set.kids().collect::<Vec<_>>(), ["any-rsa", "ps", "ed"]);
        assert_eq!(skipped, 7);
        let allowed = |kid: &str, alg| set.candidates(Some(kid), alg).count() == 1;
        assert!(allowed("any-rsa", Algorithm::RS256) && allowed("any-rsa", Algorithm::PS512));
        assert!(allowed("ps", Algorithm::PS256));
        assert!(
            !allowed("ps", Algorithm::RS256),
            "RFC 8725 §3.1: the key's own alg"
        );
        assert!(allowed("ed", Algorithm::EdDSA) && !allowed("ed", Algorithm::ES256));
    }

    #[test]
    fn a_withdrawn_or_replaced_key_is_noticed() {
        let x1 = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let x2 = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let (before, _) = KeySet::from_jwks(&[okp("a", x1), okp("b", x1)]);
        let (added, _) = KeySet::from_jwks(&[okp("a", x1), okp("b", x1), okp("c", x2)]);
        assert!(
            !added.withdraws_from(&before),
            "adding a key invalidates nothing"
        );
        let (replaced, _) = KeySet::from_jwks(&[okp("a", x2), okp("b", x1)]);
        assert!(replaced.withdraws_from(&before), "new material under kid a");
        let (mut dropped, _) = KeySet::from_jwks(&[okp("b", x1)]);
        assert!(dropped.withdraws_from(&before));
        dropped.remember_withdrawn(&before);
        assert!(dropped.was_withdrawn("a") && !dropped.was_withdrawn("b"));
        let (mut back, _) = KeySet::from_jwks(&[okp("a", x1)]);
        back.remember_withdrawn(&dropped);
        assert!(!back.was_withdrawn("a"), "published again");
        assert!(back.was_withdrawn("b"));
    }
}
