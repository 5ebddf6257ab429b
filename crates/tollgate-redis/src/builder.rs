//! [`RedisStoreBuilder`]: connecting a [`RedisStore`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use tollgate_core::policy::StoreError;

use crate::acks::Acks;
use crate::batch::Batcher;
use crate::conn::{ClusterHandle, Conn};
use crate::replica::{Replica, prefix_pattern};
use crate::scripts::{
    CHECK, CHECK_MANY, CHECK_TOKEN, CONSUME, MAX_GRACE, MIN_GRACE, REFUND, REVOKE, SPEND_REFRESH,
    WATERMARK, script,
};
use crate::{RedisStore, store_error};

/// Builds a [`RedisStore`].
///
/// ```no_run
/// use std::time::Duration;
/// use tollgate_redis::RedisStore;
///
/// # async fn run() -> Result<(), tollgate_core::policy::StoreError> {
/// let store = RedisStore::builder("redis://redis.internal:6379/0")
///     .prefix("tollgate")
///     .response_timeout(Duration::from_millis(250))
///     // unmetered tokens: a revocation elsewhere is seen up to 2 s late
///     .not_revoked_cache(Duration::from_secs(2))
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    pub(crate) url: String,
    /// The initial nodes of a Redis Cluster (`None`: standalone).
    pub(crate) cluster: Option<Vec<String>>,
    /// Replicas that must acknowledge writes (`None`: 0 standalone, 1 on
    /// a cluster).
    pub(crate) acks: Option<usize>,
    /// Checks arriving together go in one script call (standalone).
    pub(crate) batching: bool,
    /// A charge whose answer was lost is sent again for this long.
    pub(crate) retry_charges: Duration,
    pub(crate) prefix: String,
    pub(crate) grace: i64,
    pub(crate) response_timeout: Duration,
    pub(crate) connection_timeout: Duration,
    pub(crate) not_revoked_ttl: Option<Duration>,
    /// `None`: no revocation replica.
    pub(crate) replica_heartbeat: Option<Duration>,
}

impl RedisStoreBuilder {
    /// Key prefix (default `tollgate`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Seconds keys outlive their token's `exp` (default 300). At least 60,
    /// the default leeway ([`DEFAULT_LEEWAY`](tollgate_core::DEFAULT_LEEWAY);
    /// less is taken as 60), and it must stay above the authenticator's
    /// leeway: a token is accepted until `exp` + leeway, and its counter must
    /// outlive that, or its credits come back. Keys also live at least
    /// `grace` seconds after they are written, by Redis's clock, whatever
    /// the `exp`.
    pub fn grace(mut self, seconds: i64) -> Self {
        self.grace = seconds.clamp(MIN_GRACE, MAX_GRACE);
        self
    }

    /// Longest wait for a reply before the request fails closed (default 1 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Longest wait for a connection (default 1 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The revocation replica (on by default): every revocation is kept in
    /// this process, filled from Redis at connection and after any
    /// reconnection, and kept current by the messages every revocation
    /// publishes, so unmetered requests need no round trip. Each instance
    /// publishes a heartbeat every `heartbeat` (default 500 ms); a replica
    /// that hears nothing for 3 heartbeats stops answering until it has
    /// resubscribed and rebuilt; meanwhile unmetered requests ask Redis
    /// (one round trip), and fail closed when it cannot answer (or pass
    /// with
    /// [`revocation_fail_open`](tollgate_core::policy::Policies::revocation_fail_open)).
    /// A revocation made anywhere is seen within the delivery time of a
    /// Redis message while connected; an instance cut off from Redis stops
    /// trusting its replica within 3 heartbeats. With Redis ACLs, the
    /// user needs the channel `<prefix>:revocations` (`&<prefix>:*`):
    /// `SUBSCRIBE` there, and `PUBLISH` in the revocation scripts.
    pub fn revocation_replica(mut self, heartbeat: Duration) -> Self {
        self.replica_heartbeat = Some(heartbeat.max(Duration::from_millis(10)));
        self
    }

    /// How many replicas must have a write (a charge, a revocation, a
    /// spent refresh token) before it is answered: `WAIT` after it, for at
    /// most the response timeout. Redis replicates asynchronously; without
    /// this, a master that fails right after a charge may hand its
    /// credits back through the promoted replica. `WAIT` waits at most a
    /// tenth of the response timeout (100 ms by default): it holds up the
    /// shared connection to that node meanwhile. A charge not acknowledged
    /// in time is sent again with its receipt (see
    /// [`retry_charges_for`](Self::retry_charges_for)); another write not
    /// acknowledged is an error.
    ///
    /// Give it the number of replicas each master has: with more replicas
    /// than acknowledgements, a failover may promote a replica that lacks
    /// an acknowledged write (Redis prefers the most up-to-date replica but
    /// does not guarantee it), and seen here: 1,023 charges answered for a
    /// 1,000-credit token with two replicas per master and `WAIT 1`. After
    /// a failover the new master has one replica fewer: that shard's writes
    /// wait (then fail closed) until a replica rejoins, for example the
    /// failed node restarted.
    ///
    /// Default: 1 on a cluster (every master needs a replica, checked at
    /// connection), 0 standalone. `acknowledged_by(0)` is the explicit
    /// opt-out, for a cluster without replicas or data that may be lost.
    pub fn acknowledged_by(mut self, replicas: usize) -> Self {
        self.acks = Some(replicas);
        self
    }

    /// One script call per check, even under load. By default (standalone
    /// Redis) checks that arrive while two calls are outstanding leave
    /// together in the next one, each run in turn as its own call would;
    /// a cluster always calls once per check (each token's keys may live
    /// on another node).
    pub fn without_batching(mut self) -> Self {
        self.batching = false;
        self
    }

    /// How long a charge whose answer was lost (a master failing over, a
    /// write not acknowledged in time, a timeout) is sent again before the
    /// request fails closed (cluster; default 5 s). Each charge carries a
    /// receipt id, so a repeat of a charge that went through is answered
    /// from its receipt, never charged twice. Make it longer than the
    /// cluster's failover time (`cluster-node-timeout` plus the election)
    /// for failovers to cost no credit; a request waits at most this long.
    /// At most 600 s. A charge's receipt lives this long plus 10 s.
    pub fn retry_charges_for(mut self, patience: Duration) -> Self {
        self.retry_charges = patience.min(Duration::from_secs(600));
        self
    }

    /// No revocation replica: every request asks Redis (one round trip).
    pub fn without_revocation_replica(mut self) -> Self {
        self.replica_heartbeat = None;
        self
    }

    /// Remembers "not revoked" answers for unmetered tokens in this process
    /// for up to `ttl`, sparing the round trip. A revocation made through
    /// another instance is then seen up to `ttl` late (this instance's own
    /// revocations are seen at once: an answer still in flight when this
    /// instance revokes is not kept). Off by default. Metered tokens always
    /// ask Redis: their consumption does the revocation check with it (on
    /// a cluster, the watermarks come from the revocation replica).
    pub fn not_revoked_cache(mut self, ttl: Duration) -> Self {
        self.not_revoked_ttl = Some(ttl);
        self
    }

    /// Connects (and fails when Redis cannot be reached now). Later
    /// outages are survived: the connection is re-established by itself.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the URL is invalid, Redis cannot be reached within
    /// the connection timeout, or the script cannot be loaded.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let (conn, subscribers) = match &self.cluster {
            None => {
                let client = redis::Client::open(self.url.as_str()).map_err(store_error)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(self.response_timeout))
                    .set_connection_timeout(Some(self.connection_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let conn = ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map_err(store_error)?;
                (Conn::Single(conn), vec![client])
            }
            Some(nodes) => {
                if nodes.is_empty() {
                    return Err(StoreError::new("redis: a cluster needs at least one node"));
                }
                // A brace in the prefix would move the hash tag: a token's
                // keys would land in different slots (CROSSSLOT).
                if self.prefix.contains(['{', '}']) {
                    return Err(StoreError::new(
                        "redis: a cluster key prefix cannot contain `{` or `}`",
                    ));
                }
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(self.connection_timeout)
                    .response_timeout(self.response_timeout)
                    .overall_response_timeout(Some(self.response_timeout * 2))
                    .retries(6)
                    .max_connection_attempts(
                        std::num::NonZeroUsize::new(2).unwrap_or(std::num::NonZeroUsize::MIN),
                    )
                    .min_retry_wait(20)
                    .max_retry_wait(250)
                    .build()
                    .map_err(store_error)?;
                let conn = tokio::time::timeout(
                    self.connection_timeout * 2,
                    client.get_async_connection(),
                )
                .await
                .map_err(|_| StoreError::new("redis: connecting to the cluster timed out"))?
                .map_err(store_error)?;
                // Any node hears every published message: subscribe to
                // one, move to the next when it fails.
                let subscribers = nodes
                    .iter()
                    .map(|n| redis::Client::open(n.as_str()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(store_error)?;
                (Conn::Cluster(ClusterHandle::new(client, conn)), subscribers)
            }
        };
        let acks = self.acks.unwrap_or(usize::from(self.cluster.is_some()));
        if acks > 0 && conn.is_cluster() {
            check_replicas(&mut conn.clone(), acks).await?;
        }
        let check = script(CHECK);
        let check_token = script(CHECK_TOKEN);
        let check_many = Script::new(CHECK_MANY);
        // Loaded once here (on every node of a cluster); later calls go by
        // SHA (and reload after a restart).
        for s in [&check, &check_token, &check_many] {
            s.prepare_invoke()
                .load_async(&mut conn.clone())
                .await
                .map_err(store_error)?;
        }
        let replica = match self.replica_heartbeat {
            None => None,
            Some(heartbeat) => {
                let replica = Arc::new(Replica::new(
                    crate::revocation_channel(&self.prefix),
                    heartbeat,
                ));
                let patterns = ["r", "ws", "wc"]
                    .iter()
                    .map(|kind| prefix_pattern(&format!("{}:{kind}:", self.prefix)))
                    .collect();
                tokio::spawn(crate::replica::run(
                    Arc::downgrade(&replica),
                    subscribers,
                    conn.clone(),
                    patterns,
                ));
                tokio::spawn(crate::replica::heartbeats(
                    Arc::downgrade(&replica),
                    conn.clone(),
                ));
                // The first answers come from the replica: wait (bounded)
                // for it, or requests fail closed until it is in sync.
                let deadline = std::time::Instant::now() + replica.silence() * 4;
                while !replica.in_sync() && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Some(replica)
            }
        };
        let batcher = (self.batching && !conn.is_cluster())
            .then(|| Batcher::start(conn.clone(), check_many, self.grace));
        // Short: a blocked WAIT holds up every later command on the shared
        // connection to that node; a charge not acknowledged in time is sent
        // again (with its receipt), not waited for.
        let acker = (acks > 0).then(|| {
            let ms = u64::try_from(self.response_timeout.as_millis() / 10)
                .unwrap_or(u64::MAX)
                .clamp(1, 100);
            Arc::new(Acks::new(conn.clone(), acks, ms))
        });
        Ok(RedisStore {
            conn,
            prefix: self.prefix,
            grace: self.grace,
            check,
            check_token,
            batcher,
            retry_charges: self.retry_charges,
            instance: random_u64(),
            charges: Arc::new(AtomicU64::new(0)),
            acks,
            acker,
            consume: script(CONSUME),
            refund: Script::new(REFUND),
            revoke: script(REVOKE),
            watermark: script(WATERMARK),
            spend_refresh: Script::new(SPEND_REFRESH),
            replica,
            generation: Arc::new(AtomicU64::new(0)),
            not_revoked: self.not_revoked_ttl.map(|ttl| {
                moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build()
            }),
        })
    }
}

/// Every master of the cluster has at least `acks` replicas linked to it,
/// or writes could never be acknowledged.
async fn check_replicas(conn: &mut Conn, acks: usize) -> Result<(), StoreError> {
    if !conn.is_cluster() {
        return Ok(());
    }
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .map_err(store_error)?;
    match crate::conn::least_replicas(&text) {
        Some(least) if least >= acks => Ok(()),
        Some(least) => Err(StoreError::new(format!(
            "redis: writes must be acknowledged by {acks} replica(s), but a cluster master has {least}; \
             add replicas, or opt out with acknowledged_by(0)"
        ))),
        None => Err(StoreError::new(
            "redis: the cluster has no master serving slots",
        )),
    }
}

/// 64 unpredictable bits from the standard library's per-process random
/// hash keys (seeded by the OS), mixed with the time.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
