//! [`RedisBudgetsBuilder`]: the Redis URL, timeouts and lease timing, validated in
//! [`build`](RedisBudgetsBuilder::build).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;

use crate::conn::{Cluster, Conn};
use crate::scripts::Scripts;
use crate::store::*;

/// Configures [`RedisBudgets`]; see [`RedisBudgets::builder`].
pub struct RedisBudgetsBuilder {
    /// One URL, or a cluster's seed nodes.
    pub(crate) urls: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) session_ttl: Duration,
    pub(crate) lock_ttl: Duration,
    pub(crate) key_ttl: Duration,
}

impl fmt::Debug for RedisBudgetsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetsBuilder")
            .field("urls", &"<redacted>")
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBudgetsBuilder {
    /// Prefix of every key (default `paywall`). Instances sharing budgets must agree.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Longest wait for one Redis call (default 250 ms). Past it the engine falls back.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest wait for a (re)connection (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often the instance renews its session (default 1 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long after the last answer from Redis leased units may still be used
    /// (default 3 s). Must exceed the heartbeat and, with the timeout, stay below the
    /// session TTL.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long a session lives without renewal before other instances may forget its
    /// leases (default 10 s).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// How long the refresh lock is held at most (default 10 s; released as soon as
    /// the refresh is installed).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Budgets unused this long are deleted from Redis (default 24 h).
    pub fn key_ttl(mut self, ttl: Duration) -> Self {
        self.key_ttl = ttl;
        self
    }

    /// Validates the settings, prepares the connection (made on first use, so an
    /// instance starts even while Redis is down) and starts the heartbeat on the
    /// current Tokio runtime.
    pub fn build(self) -> Result<RedisBudgets, RedisBudgetsError> {
        let invalid = |name, reason| Err(RedisBudgetsError::InvalidSetting { name, reason });
        for (name, value) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("heartbeat", self.heartbeat),
            ("lock_ttl", self.lock_ttl),
            ("key_ttl", self.key_ttl),
        ] {
            if value.is_zero() {
                return invalid(name, "must be greater than zero");
            }
        }
        if self.lease_ttl <= self.heartbeat {
            return invalid("lease_ttl", "must exceed the heartbeat");
        }
        if self.lease_ttl + self.timeout >= self.session_ttl {
            return invalid("session_ttl", "must exceed lease_ttl + timeout");
        }
        if self.prefix.is_empty() {
            return invalid("prefix", "must not be empty");
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisBudgetsError::NoRuntime)?;
        let invalid_url =
            |err: redis::RedisError| RedisBudgetsError::InvalidUrl(format!("{:?}", err.kind()));
        let conn = if self.cluster {
            if self.urls.is_empty() {
                return invalid("cluster", "needs at least one seed node");
            }
            let client = ClusterClient::builder(self.urls.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.timeout)
                .retries(3)
                .build()
                .map_err(invalid_url)?;
            Conn::Cluster(Box::new(Cluster {
                client,
                connection: tokio::sync::OnceCell::new(),
                connect_timeout: self.connect_timeout,
            }))
        } else {
            let url = self.urls.first().map(String::as_str).unwrap_or_default();
            let client = redis::Client::open(url).map_err(invalid_url)?;
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(self.timeout))
                .set_connection_timeout(Some(self.connect_timeout))
                .set_number_of_retries(1)
                .set_max_delay(self.timeout);
            let _guard = runtime.enter();
            Conn::Single(
                ConnectionManager::new_lazy_with_config(client, config).map_err(invalid_url)?,
            )
        };
        let cluster = conn.is_cluster();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let inner = Arc::new(Inner {
            conn,
            scripts: Scripts::new(cluster),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            prefix: self.prefix,
            timeout: self.timeout,
            lease_ttl_ms: ms(self.lease_ttl),
            session_ttl_ms: ms(self.session_ttl),
            lock_ttl_ms: ms(self.lock_ttl),
            key_ttl_ms: ms(self.key_ttl),
            origin: Instant::now(),
            last_contact: AtomicU64::new(0),
            session: AtomicU64::new(0),
            registered: AtomicU64::new(UNREGISTERED),
            registering: tokio::sync::Mutex::new(()),
            lost: LostCalls::default(),
        });
        runtime.spawn(heartbeat(Arc::downgrade(&inner), self.heartbeat));
        Ok(RedisBudgets { inner })
    }
}
