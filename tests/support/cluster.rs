//! A real Redis Cluster for the length of a test: three primaries and three replicas,
//! each a `redis-server` on loopback (ports at most 55535: the cluster bus takes the
//! port plus 10000), joined by `redis-cli --cluster create`. Every process is stopped
//! by its own id when the cluster is dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of the cluster.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A Redis Cluster of 3 primaries with a replica each.
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// A port that is free with its cluster-bus port (`port + 10000`), at most 55535.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(address) = listener.local_addr() else {
            continue;
        };
        let port = address.port();
        if port > 55_535 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair below 55535");
}

impl RedisCluster {
    /// Starts six nodes and creates the cluster (retrying on a port clash), then waits
    /// until every node says the cluster is ok and every primary has its replica
    /// attached.
    pub fn start() -> Self {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start() {
                return cluster;
            }
        }
        panic!("could not start a Redis Cluster (is redis-server installed?)");
    }

    fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port_pair();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(["--loglevel", "warning"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install -y redis-server)");
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let cluster = Self { nodes, _dir: dir };
        if !cluster.nodes.iter().all(|node| wait_for_ping(node.port)) {
            return None;
        }
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !created.success() {
            return None;
        }
        // A failed try drops the cluster, which stops its nodes.
        (cluster.wait_until_ok() && cluster.wait_until_replicated()).then_some(cluster)
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// A plain connection to the node on `port`.
    pub fn node(&self, port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to a node")
    }

    /// The port of the primary that serves `key` now, asked of a live node.
    pub fn primary_of(&self, key: &str) -> u16 {
        let mut conn = self.live_node();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .expect("CLUSTER SLOTS");
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(redis::Value::Int(start)), Some(redis::Value::Int(end))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            if (*start..=*end).contains(&i64::from(slot)) {
                if let Some(redis::Value::Array(primary)) = parts.get(2) {
                    if let Some(redis::Value::Int(port)) = primary.get(1) {
                        return u16::try_from(*port).expect("a port");
                    }
                }
            }
        }
        panic!("no primary serves slot {slot}");
    }

    /// The port of a replica of the primary on `port`. The cluster is started with every
    /// replica attached, so this only asks the primary's own view of the cluster.
    pub fn replica_of(&self, port: u16) -> u16 {
        self.replica_in_view(port)
            .expect("the primary has a replica")
    }

    /// The replica the node on `port` lists for itself, once the replica is attached
    /// and streaming (`connected_slaves:1`, state online). `None` while gossip or the
    /// first sync is still under way: `cluster_state:ok` says only that every slot is
    /// served, not that the primary has learnt of its replica yet.
    fn replica_in_view(&self, port: u16) -> Option<u16> {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .ok()?;
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .ok()?;
        if !replication.contains("connected_slaves:1") || !replication.contains("state=online") {
            return None;
        }
        let id: String = redis::cmd("CLUSTER").arg("MYID").query(&mut conn).ok()?;
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).ok()?;
        nodes
            .lines()
            .find(|line| line.split(' ').nth(3) == Some(id.as_str()))
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|address| address.split(['@', ':']).nth(1))
            .and_then(|port| port.parse().ok())
    }

    /// Whether every primary lists an attached replica within 60 s.
    fn wait_until_replicated(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let primaries = self.primaries();
            if primaries.len() == 3
                && primaries
                    .iter()
                    .all(|port| self.replica_in_view(*port).is_some())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits until the primary on `port` has replicated every write so far to its
    /// replica.
    pub fn replicate(&self, port: u16) {
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5_000)
            .query(&mut self.node(port))
            .expect("WAIT");
        assert_eq!(acked, 1, "the replica acknowledged");
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Promotes the replica on `port` at once (`CLUSTER FAILOVER TAKEOVER`), then waits
    /// until the cluster is ok again. A replica the cluster has already promoted on its
    /// own (its primary silent past the node timeout) is left as it is.
    pub fn promote(&self, port: u16) {
        let taken: Result<(), _> = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .arg("TAKEOVER")
            .query(&mut self.node(port));
        if let Err(error) = taken {
            assert!(
                self.primaries().contains(&port),
                "CLUSTER FAILOVER TAKEOVER: {error}"
            );
        }
        assert!(
            self.wait_until_ok(),
            "the cluster recovers after the failover"
        );
    }

    /// Whether every live node reports `cluster_state:ok` (and the live primaries
    /// cover every slot) within 60 s (a loaded machine gossips slowly).
    fn wait_until_ok(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|node| {
                let info: Result<String, _> =
                    redis::Client::open(format!("redis://127.0.0.1:{}", node.port))
                        .and_then(|client| {
                            client.get_connection_with_timeout(Duration::from_secs(1))
                        })
                        .and_then(|mut conn| redis::cmd("CLUSTER").arg("INFO").query(&mut conn));
                info.is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn live_node(&self) -> redis::Connection {
        let port = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .map(|n| n.port)
            .expect("a live node");
        self.node(port)
    }

    /// The number of keys on the node on `port`.
    pub fn keys_on(&self, port: u16) -> usize {
        redis::cmd("DBSIZE")
            .query(&mut self.node(port))
            .expect("DBSIZE")
    }

    /// The ports of the primaries now.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter(|n| {
                let role: Result<Vec<redis::Value>, _> =
                    redis::cmd("ROLE").query(&mut self.node(n.port));
                matches!(role.as_deref(), Ok([redis::Value::BulkString(kind), ..]) if kind == b"master")
            })
            .map(|n| n.port)
            .collect()
    }
}

fn wait_for_ping(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let pong = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
        if pong.is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
