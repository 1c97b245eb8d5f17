//! Minting HS256 tokens for development and tests: [`Hs256Signer`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Signs HS256 tokens, for quickstarts, tests and tools. Production tokens come from
/// your identity provider.
///
/// ```
/// use paywall_jwt::{Hs256Signer, JwtResolver};
/// use std::time::Duration;
///
/// let secret = "a secret of at least thirty-two bytes!!";
/// let token = Hs256Signer::new(secret).token_for("user-1", Duration::from_secs(3600))?;
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let identity = JwtResolver::hs256(secret).build()?.verify(&token).await?;
/// # Ok::<_, Box<dyn std::error::Error>>(identity) })?;
/// # let identity = paywall::Identity::new("user-1");
/// assert_eq!(identity.external_ref, "user-1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hs256Signer {
    key: EncodingKey,
}

impl fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs256Signer")
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Hs256Signer {
    /// A signer for `secret`.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_ref()),
        }
    }

    /// Signs arbitrary claims.
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
    }

    /// A token for `sub` that expires after `ttl`.
    pub fn token_for(
        &self,
        sub: &str,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(&json!({ "sub": sub, "iat": unix_now(), "exp": unix_now() + ttl.as_secs() }))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
