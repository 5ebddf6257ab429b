//! [`RedisStoreBuilder`]: connecting a [`RedisStore`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_core::policy::StoreError;

use crate::replica::{Replica, prefix_pattern};
use crate::scripts::{
    CHECK, CONSUME, MAX_GRACE, MIN_GRACE, REFUND, REVOKE, SPEND_REFRESH, WATERMARK, script,
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
    /// ask Redis: their consumption does the revocation check with it.
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
        let client = redis::Client::open(self.url.as_str()).map_err(store_error)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(store_error)?;
        let check = script(CHECK);
        // Loaded once here; later calls go by SHA (and reload after a restart).
        check
            .prepare_invoke()
            .load_async(&mut conn.clone())
            .await
            .map_err(store_error)?;
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
                    client.clone(),
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
        Ok(RedisStore {
            conn,
            prefix: self.prefix,
            grace: self.grace,
            check,
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
