//! The customer remembered with a verified credential: [`Recall`].
//!
//! A resolver that caches what it has verified (`paywall-jwt` caches tokens) looks the
//! credential up on every request; the engine then looks the customer up by the
//! external reference. A `Recall` kept with the credential lets the second lookup be
//! skipped: the engine remembers the customer entry in it, and uses that entry while
//! the customer cache still holds it. Only a weak reference is kept, so a remembered
//! entry never outlives the cache's own, and the cache stays the one authority: an entry
//! evicted, invalidated, replaced or past its time to live is never used from here.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::cache::CustomerEntry;

/// One in this many requests answered from a `Recall` looks the customer up in the
/// cache anyway, so that the cache's eviction (by recency and frequency of use) still
/// ranks the callers that use one by how often they come.
const LOOKUP_EVERY: u32 = 16;

/// Where the paywall remembers the customer of a credential an identity resolver has
/// verified, so that later requests with that credential find their customer without a
/// second cache lookup.
///
/// For authors of [`IdentityResolver`](crate::IdentityResolver)s that cache verified
/// credentials: attach one `Recall` to the identity kept for a credential with
/// [`Identity::with_recall`](crate::Identity::with_recall), and return clones of that
/// identity for it. Clones share what is remembered. A resolver that builds a new
/// identity per request gains nothing from it.
///
/// The paywall uses what it remembered only while its own customer cache still holds
/// that customer for the identity's external reference; anything else is looked up as
/// without a `Recall`. So a `Recall` can make a request cheaper, never answer it
/// differently, even if a resolver shares one between identities or paywalls.
///
/// ```
/// use paywall::{Identity, Recall};
///
/// // Kept with a credential once it is verified; every request with it gets a clone.
/// let verified = Identity::new("user-1").with_recall(Recall::new());
/// let this_request = verified.clone();
/// assert_eq!(this_request, Identity::new("user-1"));
/// ```
#[derive(Clone, Default)]
pub struct Recall(Arc<Mutex<Remembered>>);

#[derive(Default)]
struct Remembered {
    /// The customer cache that filled it (0: none yet).
    cache: u64,
    entry: Weak<CustomerEntry>,
    /// Requests answered from here, to look up one in [`LOOKUP_EVERY`].
    answered: u32,
}

impl Recall {
    /// An empty one.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry remembered by the cache `cache`, when it is still that cache's entry
    /// for `external_ref` at `now_ms`; `None` (look it up) otherwise, and once in
    /// [`LOOKUP_EVERY`] requests.
    pub(super) fn entry(
        &self,
        cache: u64,
        external_ref: &str,
        now_ms: u64,
    ) -> Option<Arc<CustomerEntry>> {
        let entry = {
            let mut slot = self.slot();
            if slot.cache != cache {
                return None;
            }
            slot.answered = slot.answered.wrapping_add(1);
            if slot.answered % LOOKUP_EVERY == 0 {
                return None;
            }
            slot.entry.upgrade()?
        };
        entry.is_current(external_ref, now_ms).then_some(entry)
    }

    /// Remembers `entry`, the cache `cache`'s entry for this credential's caller.
    pub(super) fn remember(&self, cache: u64, entry: &Arc<CustomerEntry>) {
        let mut slot = self.slot();
        slot.cache = cache;
        slot.entry = Arc::downgrade(entry);
    }
}

impl fmt::Debug for Recall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recall").finish_non_exhaustive()
    }
}

/// A new customer cache's identity in every [`Recall`] it fills (never 0).
pub(super) fn next_cache_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
