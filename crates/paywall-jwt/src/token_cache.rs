//! Verification results cached by the exact token: [`TokenCache`].
//!
//! Safe by construction: an entry exists only for the byte-identical token that passed
//! full verification (signature, algorithm, issuer, audience, `exp`, `nbf`) under this
//! resolver's settings; it expires no later than the token's own `exp`; and every entry
//! made before a key left the JWKS is ignored. What it saves is the signature check
//! (tens of microseconds for RS256) on every request after the first. Each entry's
//! identity carries a [`paywall::Recall`], in which the paywall remembers the caller's
//! customer, so that a warm request takes this lookup and no second one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use moka::Expiry;
use paywall::Identity;

#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    /// The key epoch at verification time.
    pub(crate) epoch: u64,
    /// When the token expires.
    ttl: Duration,
}

struct UntilExp;

impl Expiry<String, Verified> for UntilExp {
    fn expire_after_create(&self, _: &String, value: &Verified, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Keys are hashed with foldhash, seeded per process, not SipHash: a lookup hashes the
/// whole token (hundreds of bytes) on every request, and only verified tokens are ever
/// inserted, so a caller cannot fill the cache with keys of their choosing.
type Hasher = foldhash::quality::RandomState;

#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Cache<String, Verified, Hasher>,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build_with_hasher(Hasher::default()),
        }
    }

    /// The identity of an already verified token, if it is still valid.
    pub(crate) fn get(&self, token: &str, epoch: u64) -> Option<Identity> {
        self.cache
            .get(token)
            .filter(|verified| verified.epoch == epoch)
            .map(|verified| verified.identity)
    }

    /// Remembers a verified token until its `exp` (Unix seconds).
    pub(crate) fn insert(&self, token: &str, identity: &Identity, exp: Option<u64>, epoch: u64) {
        let Some(exp) = exp else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX);
        if exp <= now {
            return; // accepted only thanks to the leeway: not worth caching
        }
        self.cache.insert(
            token.to_owned(),
            Verified {
                identity: identity.clone(),
                epoch,
                ttl: Duration::from_secs(exp - now),
            },
        );
    }
}
