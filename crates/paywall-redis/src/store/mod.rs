//! [`RedisBudgets`]: the [`SharedBudgets`] store on Redis (the protocol), over one
//! instance's session with Redis (`session.rs`).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use paywall::backend::Limits;
use paywall::shared::{
    BudgetId, LeaseAnswer, LeaseRequest, RefreshTicket, SharedBudgets, SharedError,
};
use tracing::debug;

use crate::builder::RedisBudgetsBuilder;
use crate::info;

mod lost;
mod session;

pub(crate) use lost::LostCalls;
#[cfg(test)]
use session::escape;
pub(crate) use session::{heartbeat, Inner, UNREGISTERED};

/// The environment variable the quickstarts read the Redis URL from.
pub const REDIS_URL_ENV: &str = "PAYWALL_REDIS_URL";

/// The environment variable the quickstarts read a Redis Cluster's seed nodes from
/// (comma-separated `redis://host:port`).
pub const REDIS_CLUSTER_URLS_ENV: &str = "PAYWALL_REDIS_CLUSTER_URLS";

/// [`RedisBudgets`] could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBudgetsError {
    /// The URL is not a Redis URL (`redis://[user:password@]host[:port][/db]`). The URL
    /// itself is not repeated: it may hold a password.
    #[error("the Redis URL is invalid: {0}")]
    InvalidUrl(String),
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `build` was called outside a Tokio runtime.
    #[error("RedisBudgets must be built inside a Tokio runtime")]
    NoRuntime,
    /// Both `PAYWALL_REDIS_URL` and `PAYWALL_REDIS_CLUSTER_URLS` are set.
    #[error("set PAYWALL_REDIS_URL (one Redis) or PAYWALL_REDIS_CLUSTER_URLS (a Redis Cluster), not both")]
    BothUrls,
}

/// Budgets shared through Redis; give it to
/// [`PaywallBuilder::shared_budgets`](paywall::PaywallBuilder::shared_budgets). Cheap
/// to clone. See the [crate docs](crate) for the guarantees.
#[derive(Clone)]
pub struct RedisBudgets {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RedisBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgets")
            .field("prefix", &self.inner.prefix)
            .field("instance", &self.inner.instance)
            .field("session", &self.inner.session.load(Ordering::Acquire))
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBudgets {
    /// Starts configuring a store on the Redis at `url`
    /// (`redis://[user:password@]host[:port][/db]`).
    pub fn builder(url: impl Into<String>) -> RedisBudgetsBuilder {
        Self::builder_for(vec![url.into()], false)
    }

    /// Starts configuring a store on a Redis Cluster known by some of its nodes
    /// (`redis://host:port` each; the others are found from them). Every key of a
    /// budget shares a hash tag, so each budget lives on one shard and budgets of
    /// different customers spread over the shards.
    pub fn cluster(seeds: impl IntoIterator<Item = impl Into<String>>) -> RedisBudgetsBuilder {
        Self::builder_for(seeds.into_iter().map(Into::into).collect(), true)
    }

    fn builder_for(urls: Vec<String>, cluster: bool) -> RedisBudgetsBuilder {
        RedisBudgetsBuilder {
            urls,
            cluster,
            prefix: "paywall".into(),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(250),
            heartbeat: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(3),
            session_ttl: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(10),
            key_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// A store on `$PAYWALL_REDIS_URL`, or on the cluster of
    /// `$PAYWALL_REDIS_CLUSTER_URLS`, with default settings; `None` when neither is set
    /// (an error when both are).
    pub fn from_env() -> Result<Option<Self>, RedisBudgetsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, RedisBudgetsError> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        match (set(REDIS_URL_ENV), set(REDIS_CLUSTER_URLS_ENV)) {
            (Some(_), Some(_)) => Err(RedisBudgetsError::BothUrls),
            (Some(url), None) => Self::builder(url.trim()).build().map(Some),
            (None, Some(urls)) => Self::cluster(
                urls.split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned),
            )
            .build()
            .map(Some),
            (None, None) => Ok(None),
        }
    }

    /// This instance's identifier in Redis (sessions are `<instance>.<n>`).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }
}

fn parse_u64(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

impl SharedBudgets for RedisBudgets {
    async fn lease(
        &self,
        id: BudgetId<'_>,
        request: LeaseRequest,
    ) -> Result<LeaseAnswer, SharedError> {
        let inner = &*self.inner;
        let session = inner.registered_session().await?;
        let key = inner.budget_key(id);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lost = inner.lost.tokens(&key);
        let mut invocation = inner.scripts.lease.prepare_invoke();
        invocation
            .key(&key)
            .key(format!("{key}:lock"))
            .key(inner.sessions_key(Some(id)))
            .arg(inner.member(session))
            .arg(request.need)
            .arg(request.want.max(request.need))
            .arg(request.acks)
            .arg(request.give_back)
            .arg(u8::from(request.stale_ok))
            .arg(inner.session_ttl_ms)
            .arg(inner.lock_ttl_ms)
            .arg(inner.key_ttl_ms)
            .arg(&token)
            .arg(&lost);
        let answer: Result<(String, u64, String, i64, i64, String), _> =
            inner.call(&invocation).await;
        let (kind, n, generation, joined, locked, info) = match answer {
            Ok(answer) => answer,
            Err(err) => {
                inner.lost.lost(&key, token);
                return Err(err);
            }
        };
        inner.lost.answered(&key, !lost.is_empty());
        inner.joined(session, joined == 1);
        let answer = match kind.as_str() {
            "granted" => LeaseAnswer::Granted {
                units: n,
                generation: parse_u64(&generation),
                session,
            },
            "exhausted" => LeaseAnswer::Exhausted {
                remaining: n,
                limits: info::decode(&info),
            },
            "refresh" => LeaseAnswer::Refresh(RefreshTicket {
                acked_before: n,
                // The lock's value in Redis: the token and the generation seen.
                lock: (locked == 1).then(|| format!("{token}:{generation}")),
            }),
            "unavailable" => LeaseAnswer::Unavailable {
                retry_after: Duration::from_millis(n),
            },
            other => {
                return Err(SharedError::Unavailable(format!(
                    "unexpected lease answer {other:?}"
                )))
            }
        };
        debug!(key, ?answer, "lease");
        Ok(answer)
    }

    async fn install(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        limits: &Limits,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let inner = &*self.inner;
        let key = inner.budget_key(id);
        let allowed = limits.allowed();
        let mut invocation = inner.scripts.install.prepare_invoke();
        invocation
            .key(&key)
            .key(format!("{key}:lock"))
            .key(inner.sessions_key(Some(id)))
            .arg(ticket.lock.as_deref().unwrap_or(""))
            .arg(u8::from(ticket.lock.is_some()))
            .arg(ticket.acked_before)
            .arg(allowed)
            .arg(info::encode(limits))
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(inner.key_ttl_ms);
        let installed: i64 = inner.call(&invocation).await?;
        debug!(key, installed = installed == 1, "refresh installed");
        Ok(())
    }

    async fn refresh_failed(
        &self,
        id: BudgetId<'_>,
        ticket: &RefreshTicket,
        retry_after: Duration,
    ) -> Result<(), SharedError> {
        let inner = &*self.inner;
        let key = inner.budget_key(id);
        let mut invocation = inner.scripts.refresh_failed.prepare_invoke();
        invocation
            .key(&key)
            .key(format!("{key}:lock"))
            .arg(ticket.lock.as_deref().unwrap_or(""))
            .arg(u8::from(ticket.lock.is_some()))
            .arg(
                u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
        inner.call::<i64>(&invocation).await.map(drop)
    }

    async fn settle(&self, id: BudgetId<'_>, acks: u64, give_back: u64) -> Result<(), SharedError> {
        let inner = &*self.inner;
        let session = inner.registered_session().await?;
        let key = inner.budget_key(id);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lost = inner.lost.tokens(&key);
        let mut invocation = inner.scripts.settle.prepare_invoke();
        invocation
            .key(&key)
            .key(inner.sessions_key(Some(id)))
            .arg(inner.member(session))
            .arg(acks)
            .arg(give_back)
            .arg(inner.session_ttl_ms)
            .arg(&token)
            .arg(&lost);
        let joined: i64 = match inner.call(&invocation).await {
            Ok(joined) => joined,
            Err(err) => {
                inner.lost.lost(&key, token);
                return Err(err);
            }
        };
        inner.lost.answered(&key, !lost.is_empty());
        inner.joined(session, joined == 1);
        Ok(())
    }

    async fn mark_stale(&self, id: BudgetId<'_>) -> Result<(), SharedError> {
        let inner = &*self.inner;
        let mut invocation = inner.scripts.mark_stale.prepare_invoke();
        invocation.key(inner.budget_key(id));
        inner.call::<i64>(&invocation).await.map(drop)
    }

    fn session(&self) -> Option<u64> {
        self.inner.current_session()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_components_cannot_collide() {
        assert_ne!(
            escape("a:b") + ":" + &escape("c"),
            escape("a") + ":" + &escape("b:c")
        );
        assert_eq!(escape("cus_1%3A"), "cus_1%253A");
    }

    #[tokio::test]
    async fn settings_are_checked_and_the_url_never_printed() {
        let err = RedisBudgets::builder("redis://:hunter2@127.0.0.1:1/")
            .lease_ttl(Duration::from_secs(20))
            .build()
            .expect_err("lease_ttl above session_ttl");
        assert!(matches!(
            err,
            RedisBudgetsError::InvalidSetting {
                name: "session_ttl",
                ..
            }
        ));
        let err = RedisBudgets::builder("http://:hunter2@nowhere/")
            .build()
            .expect_err("not a redis URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let store = RedisBudgets::builder("redis://:hunter2@127.0.0.1:1/")
            .build()
            .expect("lazy connection");
        assert!(!format!("{store:?}").contains("hunter2"));
        assert_eq!(store.session(), None, "no contact yet");
    }
}
