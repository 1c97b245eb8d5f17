//! One instance's side of the store: the connection, the scripts, the session it leases
//! under (registered, renewed by the heartbeat, restarted when Redis forgot it), the
//! time of the last answer, and the keys of a budget (hash-tagged on a cluster).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::{Duration, Instant};

use paywall::shared::{BudgetId, SharedError};
use redis::{FromRedisValue, ScriptInvocation};
use tracing::{info, warn};

use crate::conn::Conn;
use crate::scripts::Scripts;

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) scripts: Scripts,
    pub(crate) instance: String,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) lease_ttl_ms: u64,
    pub(crate) session_ttl_ms: u64,
    pub(crate) lock_ttl_ms: u64,
    pub(crate) key_ttl_ms: u64,
    pub(crate) origin: Instant,
    /// Milliseconds since `origin` of the last answer from Redis, plus one (0: never).
    pub(crate) last_contact: AtomicU64,
    pub(crate) session: AtomicU64,
    /// The last session Redis has added to the session set (`UNREGISTERED`: none).
    pub(crate) registered: AtomicU64,
    /// Registers one session at a time.
    pub(crate) registering: tokio::sync::Mutex<()>,
    /// Calls on a budget whose answer was lost, to settle with the next.
    pub(crate) lost: super::LostCalls,
}

pub(crate) const UNREGISTERED: u64 = u64::MAX;

/// Renews the session until the store is dropped.
pub(crate) async fn heartbeat(inner: Weak<Inner>, every: Duration) {
    let mut down = false;
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.renew().await {
            Ok(()) => {
                if std::mem::take(&mut down) {
                    info!("Redis reachable again");
                }
            }
            Err(err) => {
                if !std::mem::replace(&mut down, true) {
                    warn!(error = %err, "Redis heartbeat failed; leased units lapse soon");
                }
            }
        }
        drop(inner);
        tokio::time::sleep(every).await;
    }
}

impl Inner {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn member(&self, session: u64) -> String {
        format!("{}.{}", self.instance, session)
    }

    /// The session set: one for the server, or on a cluster the budget's own (in its
    /// hash slot).
    pub(super) fn sessions_key(&self, id: Option<BudgetId<'_>>) -> String {
        match id {
            Some(id) if self.conn.is_cluster() => {
                format!("{}:sessions:{}", self.prefix, tag(id))
            }
            _ => format!("{}:sessions", self.prefix),
        }
    }

    /// The budget's key; on a cluster its components are the hash tag, so that its
    /// lock and session set (the same tag) live on the same shard.
    pub(super) fn budget_key(&self, id: BudgetId<'_>) -> String {
        if self.conn.is_cluster() {
            format!("{}:budget:{}", self.prefix, tag(id))
        } else {
            format!(
                "{}:budget:{}:{}:{}",
                self.prefix,
                escape(id.customer.as_str()),
                escape(id.product),
                escape(id.meter)
            )
        }
    }

    /// Runs a script within the timeout; any answer counts as contact.
    pub(super) async fn call<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, SharedError> {
        let unavailable = |err: redis::RedisError| {
            if err.is_timeout() {
                SharedError::Timeout(self.timeout)
            } else {
                SharedError::Unavailable(format!("{:?}: {}", err.kind(), err))
            }
        };
        // Connecting (a cluster's first call) is bounded by the connect timeout, the
        // call itself by the call timeout.
        let mut conn = self.conn.handle().await.map_err(unavailable)?;
        let answer = tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut conn))
            .await
            .map_err(|_| SharedError::Timeout(self.timeout))?
            .map_err(unavailable)?;
        self.last_contact
            .store(self.now_ms().saturating_add(1), Ordering::Release);
        Ok(answer)
    }

    /// The current session, added to the session set before any call uses it, so that
    /// a later call that adds it again proves it had been forgotten.
    pub(super) async fn registered_session(&self) -> Result<u64, SharedError> {
        let session = self.session.load(Ordering::Acquire);
        if self.registered.load(Ordering::Acquire) == session {
            return Ok(session);
        }
        let _one_at_a_time = self.registering.lock().await;
        let session = self.session.load(Ordering::Acquire);
        if self.registered.load(Ordering::Acquire) != session {
            self.heartbeat(session).await?;
            self.registered.store(session, Ordering::Release);
        }
        Ok(session)
    }

    /// Renews the session in the server's session set (whether it was re-added). On a
    /// cluster sessions live in each budget's set, renewed by its leases and
    /// settlements; the heartbeat then only proves that the cluster answers (a `PING`
    /// to every primary).
    pub(super) async fn heartbeat(&self, session: u64) -> Result<bool, SharedError> {
        if self.conn.is_cluster() {
            let mut conn =
                self.conn.handle().await.map_err(|err| {
                    SharedError::Unavailable(format!("{:?}: {}", err.kind(), err))
                })?;
            tokio::time::timeout(
                self.timeout,
                redis::cmd("PING").query_async::<()>(&mut conn),
            )
            .await
            .map_err(|_| SharedError::Timeout(self.timeout))?
            .map_err(|err| SharedError::Unavailable(format!("{:?}: {}", err.kind(), err)))?;
            self.last_contact
                .store(self.now_ms().saturating_add(1), Ordering::Release);
            return Ok(false);
        }
        let mut invocation = self.scripts.heartbeat.prepare_invoke();
        invocation
            .key(self.sessions_key(None))
            .arg(self.member(session))
            .arg(self.session_ttl_ms);
        self.call::<i64>(&invocation)
            .await
            .map(|joined| joined == 1)
    }

    /// Renews the session's membership.
    pub(super) async fn renew(&self) -> Result<(), SharedError> {
        let session = self.registered_session().await?;
        let joined = self.heartbeat(session).await?;
        self.joined(session, joined);
        Ok(())
    }

    /// A call under the registered `session` added it to the set again: it had been
    /// forgotten (Redis restarted, or this instance was cut off past the session TTL),
    /// so a new session starts and every unit leased under the old one is void.
    pub(super) fn joined(&self, session: u64, joined: bool) {
        if !joined || self.registered.load(Ordering::Acquire) != session {
            return;
        }
        if self
            .session
            .compare_exchange(session, session + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            warn!(
                session,
                "Redis forgot this instance's session (restart or long partition); leased units dropped"
            );
        }
    }

    pub(super) fn current_session(&self) -> Option<u64> {
        let contact = self.last_contact.load(Ordering::Acquire);
        if contact == 0 || self.now_ms().saturating_sub(contact - 1) > self.lease_ttl_ms {
            return None;
        }
        let session = self.session.load(Ordering::Acquire);
        (self.registered.load(Ordering::Acquire) == session).then_some(session)
    }
}

/// Escapes `:` and `%` so key components cannot run into each other, and `{` and `}`
/// so that a component never makes its own hash tag.
pub(super) fn escape(component: &str) -> String {
    component
        .replace('%', "%25")
        .replace(':', "%3A")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// A budget's hash tag on a cluster: `{customer:product:meter}`, escaped.
fn tag(id: BudgetId<'_>) -> String {
    format!(
        "{{{}:{}:{}}}",
        escape(id.customer.as_str()),
        escape(id.product),
        escape(id.meter)
    )
}
