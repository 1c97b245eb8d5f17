//! MCP sessions bound to the identity that opened them: who owns which session id
//! (`Mcp-Session-Id`), how many each identity holds, and how many there are in all.
//! A request naming a session is let through only for its owner (anyone else, and an
//! unknown or expired id, gets the 404 after which MCP clients start a new session); a
//! request that would open one more session than allowed gets a 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::sync::Cache;

/// The header rmcp's streamable HTTP transport names sessions with.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";

/// How many MCP sessions callers may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions one identity may hold at once (default 8); one more is refused (429).
    pub per_identity: usize,
    /// Sessions in all (default 10,000); one more is refused (503).
    pub total: u64,
    /// A session unused this long is forgotten (default 2 minutes): give rmcp's
    /// `SessionConfig::keep_alive` the same value, so that the transport drops it too.
    pub idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            per_identity: 8,
            total: 10_000,
            idle: Duration::from_secs(120),
        }
    }
}

/// Why a session may not be used or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Unknown, expired, or another identity's.
    NotFound,
    /// The identity holds as many sessions as it may.
    TooManyOfCaller,
    /// The server holds as many sessions as it may.
    TooMany,
}

/// The owners of the open sessions.
pub(crate) struct Sessions {
    owners: Cache<Arc<str>, Arc<str>>,
    held: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    limits: SessionLimits,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.owners.entry_count())
            .field("limits", &self.limits)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sessions {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        let held: Arc<Mutex<HashMap<Arc<str>, usize>>> = Arc::default();
        let counts = Arc::clone(&held);
        let owners = Cache::builder()
            .max_capacity(limits.total)
            .time_to_idle(limits.idle)
            .eviction_listener(move |_id, owner: Arc<str>, _cause: RemovalCause| {
                release(&counts, &owner);
            })
            .build();
        Self {
            owners,
            held,
            limits,
        }
    }

    /// Whether `caller` may use the session `id` (and marks it used).
    pub(crate) fn check(&self, id: &str, caller: &str) -> Result<(), Refused> {
        match self.owners.get(id) {
            Some(owner) if &*owner == caller => Ok(()),
            _ => Err(Refused::NotFound),
        }
    }

    /// Holds a place for a session `caller` is about to open; give it back with
    /// [`opened`](Self::opened) or [`not_opened`](Self::not_opened).
    pub(crate) fn reserve(&self, caller: &str) -> Result<(), Refused> {
        self.owners.run_pending_tasks();
        let mut held = lock(&self.held);
        let total: usize = held.values().sum();
        if u64::try_from(total).unwrap_or(u64::MAX) >= self.limits.total {
            return Err(Refused::TooMany);
        }
        let mine = held.entry(Arc::from(caller)).or_insert(0);
        if *mine >= self.limits.per_identity {
            return Err(Refused::TooManyOfCaller);
        }
        *mine += 1;
        Ok(())
    }

    /// The reserved place became the session `id`.
    pub(crate) fn opened(&self, id: &str, caller: &str) {
        self.owners.insert(Arc::from(id), Arc::from(caller));
    }

    /// The reserved place was not used.
    pub(crate) fn not_opened(&self, caller: &str) {
        release(&self.held, caller);
    }

    /// The owner closed the session `id`.
    pub(crate) fn closed(&self, id: &str) {
        self.owners.invalidate(id);
    }
}

fn release(held: &Mutex<HashMap<Arc<str>, usize>>, owner: &str) {
    let mut held = lock(held);
    if let Some(count) = held.get_mut(owner) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            held.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_their_owners_and_counted() {
        let sessions = Sessions::new(SessionLimits {
            per_identity: 2,
            total: 3,
            idle: Duration::from_secs(60),
        });
        for id in ["a1", "a2"] {
            sessions.reserve("ada").expect("room");
            sessions.opened(id, "ada");
        }
        assert_eq!(sessions.reserve("ada"), Err(Refused::TooManyOfCaller));
        assert_eq!(sessions.check("a1", "ada"), Ok(()));
        assert_eq!(sessions.check("a1", "bob"), Err(Refused::NotFound));
        assert_eq!(sessions.check("nope", "ada"), Err(Refused::NotFound));
        sessions.reserve("bob").expect("room");
        sessions.not_opened("bob");
        sessions.reserve("bob").expect("room");
        sessions.opened("b1", "bob");
        assert_eq!(sessions.reserve("cy"), Err(Refused::TooMany));
        sessions.closed("a1");
        sessions.owners.run_pending_tasks();
        sessions.reserve("ada").expect("a place came back");
    }
}
