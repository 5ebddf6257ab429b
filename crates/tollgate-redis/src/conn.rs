//! One connection type for a standalone Redis and a Redis Cluster.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A standalone Redis (reconnecting by itself) or a cluster (following
/// `MOVED`/`ASK` and failovers by itself).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Where a command goes: the standalone server, or one cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Single,
    At { host: String, port: u16 },
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
            Conn::Cluster(c) => {
                let v = c
                    .route_command(
                        redis::cmd("CLUSTER").arg("NODES").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                let text: String = redis::from_redis_value(v)?;
                Ok(cluster_masters(&text))
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
            (Conn::Cluster(c), Node::At { host, port }) => {
                let v = c
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
            (Conn::Cluster(c), Node::At { host, port }) => {
                let n = pipe.len();
                let v = c
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
            Conn::Cluster(c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let v = c
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

/// The masters in a `CLUSTER NODES` reply that are not failed:
/// `id ip:port@cport[,hostname] flags ...`.
fn cluster_masters(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let addr = fields.next()?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                return None;
            }
            let hostport = addr.split(['@', ',']).next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            let port = port.parse().ok()?;
            (!host.is_empty()).then(|| Node::At {
                host: host.to_owned(),
                port,
            })
        })
        .collect()
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
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
b2 127.0.0.1:7002@17002,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 ::1:7005@17005 master - 0 0 4 connected 10923-16383
";
        assert_eq!(
            cluster_masters(text),
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
