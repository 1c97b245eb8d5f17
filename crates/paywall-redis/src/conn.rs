//! The connection to Redis: one server (a connection manager that reconnects), or a
//! Redis Cluster (redis-rs's cluster connection: it follows MOVED and ASK, refreshes
//! the topology after a failover, and routes each script to the shard of its keys).
//! Both connect lazily, so an instance starts while Redis is down.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// Where budgets are kept.
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(Box<Cluster>),
}

/// A cluster's client and its connection, made on first use.
pub(crate) struct Cluster {
    pub(crate) client: ClusterClient,
    pub(crate) connection: OnceCell<ClusterConnection>,
    pub(crate) connect_timeout: Duration,
}

impl Conn {
    /// Whether keys must be hash-tagged by budget.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// A handle for one call (cheap: both kinds are multiplexed and cloned).
    pub(crate) async fn handle(&self) -> RedisResult<Handle> {
        match self {
            Conn::Single(manager) => Ok(Handle::Single(manager.clone())),
            Conn::Cluster(cluster) => {
                let connected = cluster
                    .connection
                    .get_or_try_init(|| async {
                        tokio::time::timeout(
                            cluster.connect_timeout,
                            cluster.client.get_async_connection(),
                        )
                        .await
                        .map_err(|_| {
                            redis::RedisError::from(std::io::Error::from(
                                std::io::ErrorKind::TimedOut,
                            ))
                        })?
                    })
                    .await?;
                Ok(Handle::Cluster(connected.clone()))
            }
        }
    }
}

/// One call's connection.
pub(crate) enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(conn) => conn.req_packed_command(cmd),
            Handle::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Handle::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(conn) => conn.get_db(),
            Handle::Cluster(conn) => conn.get_db(),
        }
    }
}
