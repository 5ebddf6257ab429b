//! One connection type for a standalone Redis and a Redis Cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A standalone Redis (reconnecting by itself) or a cluster (following
/// `MOVED`/`ASK` and failovers by itself, renewed when it stops answering).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<ClusterHandle>),
}

/// The cluster connection, and what renews it. Under many concurrent
/// requests through a master's failure the cluster client was seen to stop
/// answering for good (every request timing out after the failover had
/// completed); a fresh connection reads the topology anew.
pub(crate) struct ClusterHandle {
    client: ClusterClient,
    current: RwLock<ClusterConnection>,
    renewing: AtomicBool,
    renewed: Mutex<Option<Instant>>,
}

/// At most one renewal per this long.
const RENEW_EVERY: Duration = Duration::from_secs(1);

impl ClusterHandle {
    pub(crate) fn new(client: ClusterClient, conn: ClusterConnection) -> Arc<ClusterHandle> {
        Arc::new(ClusterHandle {
            client,
            current: RwLock::new(conn),
            renewing: AtomicBool::new(false),
            renewed: Mutex::new(None),
        })
    }

    fn get(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the connection by a fresh one, in the background, at most
    /// once per [`RENEW_EVERY`].
    pub(crate) fn renew(self: &Arc<Self>) {
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let recent = self
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < RENEW_EVERY);
        if recent {
            self.renewing.store(false, Ordering::Release);
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let fresh =
                tokio::time::timeout(RENEW_EVERY * 2, me.client.get_async_connection()).await;
            if let Ok(Ok(conn)) = fresh {
                *me.current.write().unwrap_or_else(|p| p.into_inner()) = conn;
                tracing::info!("tollgate-redis: cluster connection renewed");
            }
            *me.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            me.renewing.store(false, Ordering::Release);
        });
    }
}

/// Where a command goes: the standalone server, or one cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Single,
    At { host: String, port: u16 },
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Single => f.write_str("redis"),
            Node::At { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Conn {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// The nodes holding data: the server, or every cluster master not
    /// marked failed (from `CLUSTER NODES`).
    pub(crate) async fn masters(&mut self) -> RedisResult<Vec<Node>> {
        match self {
            Conn::Single(_) => Ok(vec![Node::Single]),
            Conn::Cluster(h) => {
                let v = h
                    .get()
                    .route_command(
                        redis::cmd("CLUSTER").arg("NODES").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                let text: String = redis::from_redis_value(v)?;
                cluster_masters(&text).ok_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                        "a master is failing or slots are unserved: not every key can be read",
                    ))
                })
            }
        }
    }

    /// One command on `node`.
    pub(crate) async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: &Node,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match (self, node) {
            (Conn::Cluster(h), Node::At { host, port }) => {
                let v = h
                    .get()
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }

    /// A pipeline on `node` (its replies, in order).
    pub(crate) async fn pipe_on<T: redis::FromRedisValue>(
        &mut self,
        node: &Node,
        pipe: &Pipeline,
    ) -> RedisResult<T> {
        match (self, node) {
            (Conn::Cluster(h), Node::At { host, port }) => {
                let n = pipe.len();
                let v = h
                    .get()
                    .route_pipeline(
                        pipe.clone(),
                        0,
                        n,
                        SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        },
                    )
                    .await?;
                Ok(redis::from_redis_value(Value::Array(v))?)
            }
            (conn, _) => pipe.query_async(conn).await,
        }
    }

    /// `WAIT replicas timeout` where `key` lives, after this connection's
    /// writes: how many replicas acknowledged them.
    pub(crate) async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: usize,
        timeout_ms: u64,
    ) -> RedisResult<usize> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(h) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let v = h
                    .get()
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }
}

/// One line of a `CLUSTER NODES` reply: `id ip:port@cport[,hostname]
/// flags master ping pong epoch link slots...`.
struct NodeLine<'a> {
    id: &'a str,
    addr: &'a str,
    flags: Vec<&'a str>,
    /// The id of the master a replica follows (`-` for a master).
    master: &'a str,
    /// How many slots it serves (migration markers `[..]` not counted).
    slots: u32,
}

impl NodeLine<'_> {
    fn is(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    fn failing(&self) -> bool {
        self.flags.iter().any(|f| f.starts_with("fail"))
    }
}

fn node_lines(text: &str) -> impl Iterator<Item = NodeLine<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let slots = f
            .iter()
            .skip(8)
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some(b.parse::<u32>().ok()? + 1 - a.parse::<u32>().ok()?),
                None => r.parse::<u32>().ok().map(|_| 1),
            })
            .sum();
        Some(NodeLine {
            id: f.first()?,
            addr: f.get(1)?,
            flags: f.get(2)?.split(',').collect(),
            master: f.get(3)?,
            slots,
        })
    })
}

/// The masters serving slots in a `CLUSTER NODES` reply, or `None` while
/// one of them is failing (`fail`, `fail?`) or the slots they serve do not
/// cover all 16384: a rebuild from them would miss keys.
fn cluster_masters(text: &str) -> Option<Vec<Node>> {
    let mut nodes = Vec::new();
    let mut covered = 0u32;
    for n in node_lines(text).filter(|n| n.is("master") && n.slots > 0) {
        if n.failing() {
            return None;
        }
        covered += n.slots;
        let hostport = n.addr.split(['@', ',']).next()?;
        let (host, port) = hostport.rsplit_once(':')?;
        if host.is_empty() {
            return None;
        }
        nodes.push(Node::At {
            host: host.to_owned(),
            port: port.parse().ok()?,
        });
    }
    (covered == 16384).then_some(nodes)
}

/// The fewest replicas (not failing) any master serving slots has, in a
/// `CLUSTER NODES` reply; `None` when no master serves slots.
pub(crate) fn least_replicas(text: &str) -> Option<usize> {
    let lines: Vec<NodeLine<'_>> = node_lines(text).filter(|n| !n.failing()).collect();
    lines
        .iter()
        .filter(|n| n.is("master") && n.slots > 0)
        .map(|m| {
            lines
                .iter()
                .filter(|r| (r.is("slave") || r.is("replica")) && r.master == m.id)
                .count()
        })
        .min()
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(h) => {
                let mut c = h.get();
                Box::pin(async move { c.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(h) => {
                let mut c = h.get();
                Box::pin(async move { c.req_packed_commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(h) => h.get().get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host-b master - 0 0 2 connected 5461-10921 10922 [10923->-e5]
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 ::1:7005@17005 master - 0 0 4 connected 10923-16383
";
        // A failed master without slots (replaced) does not matter; a
        // failing one with slots, or slots nobody serves, do.
        assert_eq!(cluster_masters(&text.replace("0-5460", "0-5459")), None);
        assert_eq!(
            cluster_masters(&text.replace("myself,master", "myself,master,fail?")),
            None
        );
        assert_eq!(least_replicas(text), Some(0));
        assert_eq!(
            least_replicas(&text.replace("d4 127.0.0.1:7004@17004 slave a1", "d4 x:1@2 slave b2")),
            Some(0)
        );
        assert_eq!(
            cluster_masters(text).unwrap(),
            vec![
                Node::At {
                    host: "127.0.0.1".into(),
                    port: 7001
                },
                Node::At {
                    host: "127.0.0.1".into(),
                    port: 7002
                },
                Node::At {
                    host: "::1".into(),
                    port: 7005
                },
            ]
        );
    }
}
