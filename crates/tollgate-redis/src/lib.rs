//! Redis-backed credit and revocation store for Tollgate: every API instance
//! agrees on each token's credits and revocations, on one Redis (with
//! replicas or Sentinel) or on a Redis Cluster.
//!
//! A metered request is one round trip: one Lua script (loaded once, called
//! by SHA with `EVALSHA`) checks revocation and consumes; checks arriving
//! together share one call. Unmetered requests are answered by the
//! revocation replica, kept in this process by what every revocation
//! publishes: no round trip. Keys expire with their token and are
//! namespaced by a prefix.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate_core::policy::{Credits, Policies};
//! use tollgate_redis::RedisStore;
//!
//! # async fn run() -> Result<(), tollgate_core::policy::StoreError> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/")
//!     .prefix("myapi")
//!     .connect()
//!     .await?;
//! let policies = Policies::new(Arc::new(store)).credits(Credits::new());
//! # let _ = policies; Ok(()) }
//! ```
//!
//! **Keys.** A token's counter and revocation marker are
//! `{prefix}:c:{iss␟jti}` and `{prefix}:r:{iss␟jti}`: the braces are a
//! Redis Cluster hash tag, so one token's keys share a slot. Watermarks are
//! `{prefix}:ws:iss␟sub` and `{prefix}:wc:iss␟client`, in other slots: on a
//! cluster they are checked by the replica (read from Redis while it is out
//! of sync), see [`RedisStore::cluster_builder`]. Needs Redis 7 or later.
//!
//! Tokens without a `jti` have no revocation marker of their own (only the
//! watermarks apply to them) and no counter: a metered token needs a `jti`.
//!
//! **Expiry.** A counter, revocation marker or watermark expires `grace`
//! seconds after its token's `exp` (the latest `exp` for a watermark), and
//! never earlier than `grace` seconds after it is written, by Redis's own
//! clock: an `exp` already past (a token inside the validation leeway, or an
//! API clock behind Redis's) never deletes a live key at once. A later write
//! with a shorter life never shortens a key's life. `grace` is at least
//! 60 s, the authenticator's default leeway
//! ([`DEFAULT_LEEWAY`](tollgate_core::DEFAULT_LEEWAY)), and must stay above
//! the leeway actually configured: a counter gone while its token is still
//! accepted would hand its credits back.
//!
//! **Failure.** When Redis cannot answer (down, timeout) every operation
//! returns [`StoreError`]; the policies then fail closed (503 with
//! `Retry-After`). The connection manager reconnects by itself: service
//! resumes when Redis is back, without a restart.
//!
//! **Large numbers.** Allowances, costs and refunds above 2^53 are taken as
//! 2^53 (about 9 * 10^15): the scripts compare them as Lua numbers
//! (doubles), exact up to there, and hand Redis's `INCRBY`/`DECRBY` the
//! integers as sent, never a Lua number.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acks;
mod batch;
mod builder;
mod conn;
mod replica;
mod scripts;

pub use builder::RedisStoreBuilder;
use scripts::{EXACT, MAX_EXPIRY};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use conn::Conn;
use redis::{AsyncCommands, Script};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RefreshGrant, RevocationStore, Rotation, Store,
    StoreError, StoreFuture, TokenRef, Verdict,
};

/// Credits and revocations in Redis, shared by every API instance that uses
/// the same Redis and prefix.
///
/// Point the APIs and `tollgate serve` (`[store] kind = "redis"`, same
/// `url`, same `prefix`) at one Redis, and a token revoked at the token
/// server is refused by every API at its next request, and a token's
/// credits count down across all of them. An API with a store of its own
/// (memory, SQLite) sees neither.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use tollgate_core::policy::{Credits, IpBinding, Policies};
/// use tollgate_core::{Authenticator, TrustedIssuer};
/// use tollgate_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // The Redis of the token server's `[store]`, and its prefix (default `tollgate`).
/// let store = RedisStore::builder("redis://127.0.0.1:6379/").prefix("tollgate").connect().await?;
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("http://127.0.0.1:8080").audience("tollgate-demo")
///         .jwks_url("http://127.0.0.1:8080/.well-known/jwks.json"))
///     .policies(Policies::new(Arc::new(store)).credits(Credits::new()).ip_binding(IpBinding::new()))
///     .build()?;
/// # let _ = auth; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Conn,
    pub(crate) prefix: String,
    pub(crate) grace: i64,
    pub(crate) check: Script,
    pub(crate) check_token: Script,
    /// Standalone: checks arriving together leave together.
    pub(crate) batcher: Option<batch::Batcher>,
    pub(crate) consume: Script,
    pub(crate) refund: Script,
    pub(crate) revoke: Script,
    pub(crate) watermark: Script,
    pub(crate) spend_refresh: Script,
    /// Revocations replicated here (on by default): unmetered requests are
    /// answered without a round trip.
    pub(crate) replica: Option<Arc<replica::Replica>>,
    /// Bumped by every revocation through this store (and its clones): a
    /// "not revoked" answer is cached only if no revocation began while it
    /// was in flight.
    pub(crate) generation: Arc<AtomicU64>,
    /// Replicas that must acknowledge a write (a charge, a revocation, a
    /// spent refresh token) before it is answered: `WAIT` after it.
    pub(crate) acks: usize,
    /// A charge whose answer was lost is sent again (same receipt) for
    /// this long (cluster).
    pub(crate) retry_charges: Duration,
    /// This store's part of every receipt id: random.
    pub(crate) instance: u64,
    /// The other part: a count.
    pub(crate) charges: Arc<AtomicU64>,
    /// Writes wait for replicas here (`None`: no acknowledgement).
    pub(crate) acker: Option<Arc<acks::Acks>>,
    pub(crate) not_revoked: Option<moka::sync::Cache<String, ()>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("grace", &self.grace)
            .field("not_revoked_cache", &self.not_revoked.is_some())
            .field("revocation_replica", &self.replica.is_some())
            .field("cluster", &self.conn.is_cluster())
            .field("acknowledging_replicas", &self.acks)
            .finish_non_exhaustive()
    }
}

/// The channel the revocation scripts publish on.
pub(crate) fn revocation_channel(prefix: &str) -> String {
    format!("{prefix}:revocations")
}

pub(crate) fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::with_cause(format!("redis: {}", e.kind_str()), e)
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    /// The error's category and Redis's own message, never the command's
    /// arguments (they name tokens).
    fn kind_str(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_io_error() || self.is_connection_dropped() || self.is_connection_refusal()
        {
            "connection unavailable".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

/// Worth sending again: the connection, a timeout, the cluster moving
/// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, a master down or loading),
/// or a write not acknowledged in time. Not a wrong type, a script error,
/// `CROSSSLOT`: sending them again cannot help. Read from the message this
/// crate wrote ([`KindStr`]).
fn transient(e: &StoreError) -> bool {
    const AGAIN: [&str; 11] = [
        "timed out",
        "connection unavailable",
        "Moved",
        "Ask",
        "TryAgain",
        "ClusterDown",
        "MasterDown",
        "BusyLoading",
        "ClusterConnectionNotFound",
        "acknowledged",
        "Parse",
    ];
    AGAIN.iter().any(|m| e.message().contains(m))
}

/// A timeout or a lost connection: the cluster connection may be stuck.
fn stuck(e: &StoreError) -> bool {
    let m = e.message();
    m == "redis: timed out" || m == "redis: connection unavailable"
}

fn consumed(reply: &[i64]) -> Result<Consumed, StoreError> {
    match reply {
        [1, left, ..] => Ok(Consumed::Charged {
            remaining: (*left).max(0) as u64,
        }),
        [2, left, ..] => Ok(Consumed::Exhausted {
            remaining: (*left).max(0) as u64,
        }),
        _ => Err(StoreError::new("redis: unexpected script reply")),
    }
}

impl RedisStore {
    /// A builder for `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            cluster: None,
            acks: None,
            batching: true,
            retry_charges: Duration::from_secs(5),
            prefix: "tollgate".into(),
            grace: 300,
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            not_revoked_ttl: None,
            replica_heartbeat: Some(Duration::from_millis(500)),
        }
    }

    /// A builder for a Redis Cluster reached through any of `nodes`
    /// (`redis://host:port`, a few masters are enough: the client learns
    /// the rest).
    ///
    /// On a cluster, a token's counter and revocation marker share a slot
    /// (their hash tag), so a metered request stays one script call; the
    /// subject and client watermarks live in other slots and are checked
    /// by the revocation replica (read from Redis while it is out of
    /// sync). `MOVED`/`ASK` redirections and failovers are followed by the
    /// client. By default every write (a charge, a revocation, a spent
    /// refresh token) waits until one replica has it (`WAIT`), so a
    /// failover cannot give spent credits back; see
    /// [`RedisStoreBuilder::acknowledged_by`].
    ///
    /// ```no_run
    /// use tollgate_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), tollgate_core::policy::StoreError> {
    /// let store = RedisStore::cluster_builder([
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .prefix("tollgate")
    /// .connect()
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut b = Self::builder(nodes.first().cloned().unwrap_or_default());
        b.cluster = Some(nodes);
        b
    }

    /// Connects to `url` with the defaults.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        Self::builder(url).connect().await
    }

    fn token_key(&self, kind: &str, issuer: &str, jti: &str) -> String {
        format!("{}:{kind}:{{{issuer}\u{1f}{jti}}}", self.prefix)
    }

    fn watermark_key(&self, kind: &str, issuer: &str, name: &str) -> String {
        format!("{}:{kind}:{issuer}\u{1f}{name}", self.prefix)
    }

    fn expiry(&self, exp: i64) -> i64 {
        exp.saturating_add(self.grace).clamp(1, MAX_EXPIRY)
    }

    /// The channel revocations are published on.
    pub(crate) fn channel(&self) -> String {
        revocation_channel(&self.prefix)
    }

    /// Whether the revocation replica answers now (`false` without one):
    /// after a lost subscription it answers again once rebuilt.
    pub fn replica_in_sync(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| r.in_sync())
    }

    /// The replica's answer for `token`: `None` without a replica, or while
    /// it is out of sync (then Redis answers).
    fn replica_revoked(&self, token: &TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        let replica = self.replica.as_ref()?;
        // Most of the time nothing is revoked: no key to build.
        if replica.in_sync() && replica.is_empty() {
            return Some(Ok(false));
        }
        let revoked = token
            .token_id
            .map(|jti| self.token_key("r", token.issuer, jti));
        let sub = token
            .subject
            .map(|s| self.watermark_key("ws", token.issuer, s));
        let client = token
            .client_id
            .map(|c| self.watermark_key("wc", token.issuer, c));
        replica
            .is_revoked(token, revoked.as_deref(), sub.as_deref(), client.as_deref())
            .map(Ok)
    }

    /// What the script keeps a revocation for: until `expiry`, and at
    /// least `grace` from now.
    fn kept_until(&self, expiry: i64) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.expiry(expiry).max(now + self.grace)
    }

    /// The key no one writes: what a missing name reads.
    fn none_key(&self) -> String {
        format!("{}:none", self.prefix)
    }

    /// Keeps a "not revoked" answer, unless a revocation through this store
    /// began after `seen` was read (before the answer was asked for): then
    /// the answer may predate it. SeqCst with [`Self::forget_not_revoked`]:
    /// an entry inserted before the bump is cleared by its `invalidate_all`,
    /// one inserted after is removed here.
    fn remember_not_revoked(&self, token: &TokenRef<'_>, seen: u64) {
        let Some(cache) = &self.not_revoked else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != seen {
            return;
        }
        let key = Self::cache_key(token);
        cache.insert(key.clone(), ());
        if self.generation.load(Ordering::SeqCst) != seen {
            cache.invalidate(&key);
        }
    }

    /// After a revocation: no cached "not revoked" answer survives it.
    fn forget_not_revoked(&self) {
        if let Some(cache) = &self.not_revoked {
            self.generation.fetch_add(1, Ordering::SeqCst);
            cache.invalidate_all();
        }
    }

    /// One entry per distinct token: `Debug` quotes and escapes each part,
    /// and tells a missing `jti` from an empty one.
    fn cache_key(token: &TokenRef<'_>) -> String {
        format!(
            "{:?}",
            (
                token.issuer,
                token.token_id,
                token.subject,
                token.client_id,
                token.issued_at
            )
        )
    }

    /// After a write that must survive a failover: `WAIT` for the
    /// configured replicas where `key` lives. Not acknowledged in time is
    /// an error: the write may be lost with its master, so it is not
    /// answered as done (a charge then fails closed: never overspent, at
    /// worst one credit spent for a refused request).
    async fn acknowledged(&self, key: &str) -> Result<(), StoreError> {
        match &self.acker {
            Some(acks) => acks.acknowledged(key).await,
            None => Ok(()),
        }
    }

    /// The watermark part of a check on a cluster: from the replica when
    /// it is in sync, else read from Redis (each key in its own slot).
    async fn watermarked(&self, token: &TokenRef<'_>) -> Result<bool, StoreError> {
        let sub = token
            .subject
            .map(|s| self.watermark_key("ws", token.issuer, s));
        let client = token
            .client_id
            .map(|c| self.watermark_key("wc", token.issuer, c));
        if let Some(replica) = &self.replica
            && let Some(revoked) =
                replica.is_revoked(token, None, sub.as_deref(), client.as_deref())
        {
            return Ok(revoked);
        }
        for key in [sub, client].into_iter().flatten() {
            let mark: Option<i64> = self.conn.clone().get(&key).await.map_err(store_error)?;
            if let Some(mark) = mark
                && token.issued_at.is_none_or(|iat| iat <= mark)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A check on a cluster: the watermarks, then one script on the
    /// token's own slot.
    async fn run_cluster_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Result<Verdict, StoreError> {
        if consume.is_some() && token.token_id.is_none() {
            return Err(StoreError::missing_jti());
        }
        let seen = self.generation.load(Ordering::SeqCst);
        // A metered check is retried through a failover, reads included.
        let deadline = self.charge_deadline(consume);
        if self.retrying(deadline, || self.watermarked(&token)).await? {
            return Ok(Verdict::Revoked);
        }
        let Some(jti) = token.token_id else {
            self.remember_not_revoked(&token, seen);
            return Ok(Verdict::Admitted(None));
        };
        let reply = self
            .token_script(&token, jti, "r", consume, deadline)
            .await?;
        match reply.first() {
            Some(-1) => Ok(Verdict::Revoked),
            Some(0) => {
                self.remember_not_revoked(&token, seen);
                Ok(Verdict::Admitted(None))
            }
            _ => Ok(Verdict::Admitted(Some(consumed(&reply)?))),
        }
    }

    /// [`scripts::CHECK_TOKEN`] on a cluster, the marker `marker` (`r`, or
    /// `none` for a consumption without revocation check). A charge
    /// carries a receipt id: when its answer is lost (a master failed
    /// between the script and the reply, `WAIT` not acknowledged, a
    /// timeout) the same charge is sent again until
    /// [`RedisStoreBuilder::retry_charges_for`] has passed, and Redis
    /// answers a repeat from the receipt instead of charging twice. So a
    /// failover neither loses a charge (acknowledged by a replica) nor
    /// refuses a request whose charge went through.
    async fn token_script(
        &self,
        token: &TokenRef<'_>,
        jti: &str,
        marker: &str,
        consume: Option<Consumption>,
        deadline: std::time::Instant,
    ) -> Result<Vec<i64>, StoreError> {
        let counter = self.token_key("c", token.issuer, jti);
        let marker = self.token_key(marker, token.issuer, jti);
        let (allowance, cost) = consume.map_or((0, 0), |c| (c.allowance, c.cost));
        let n = self.charges.fetch_add(1, Ordering::Relaxed);
        let receipt = format!("{counter}:{:016x}{n:016x}", self.instance);
        self.retrying(deadline, || async {
            let reply: Vec<i64> = self
                .check_token
                .key(&marker)
                .key(&counter)
                .key(&receipt)
                .arg(if consume.is_some() { "1" } else { "0" })
                .arg(allowance.min(EXACT))
                .arg(cost.min(EXACT))
                .arg(self.expiry(token.expires_at))
                .arg(self.grace)
                // Resent at most `retry_charges` after the first try: the
                // receipt outlives that, and no more (one key per charge).
                .arg(self.retry_charges.as_secs() + 10)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            if reply.first() == Some(&1) {
                self.acknowledged(&counter).await?;
            }
            Ok::<_, StoreError>(reply)
        })
        .await
    }

    /// Until when an idempotent write (a revocation, a watermark) or a read
    /// is sent again after an error: on a cluster, through a failover.
    fn write_deadline(&self) -> std::time::Instant {
        let now = std::time::Instant::now();
        match &self.conn {
            Conn::Cluster(_) => now + self.retry_charges,
            Conn::Single(_) => now,
        }
    }

    /// Until when a check is sent again after an error: a metered one for
    /// [`RedisStoreBuilder::retry_charges_for`], others not.
    fn charge_deadline(&self, consume: Option<Consumption>) -> std::time::Instant {
        let now = std::time::Instant::now();
        match consume {
            Some(_) => now + self.retry_charges,
            None => now,
        }
    }

    /// `attempt` until it succeeds or `deadline` would pass, pausing
    /// 20 ms, doubling to 250 ms, between tries.
    async fn retrying<T, F, Fut>(
        &self,
        deadline: std::time::Instant,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut pause = Duration::from_millis(20);
        loop {
            match attempt().await {
                Err(e) if transient(&e) && std::time::Instant::now() + pause < deadline => {
                    tracing::debug!(error = %e, "tollgate-redis: a check is sent again");
                    if let Conn::Cluster(h) = &self.conn
                        && stuck(&e)
                    {
                        h.renew();
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    async fn run_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Result<Verdict, StoreError> {
        if self.conn.is_cluster() {
            return self.run_cluster_check(token, consume).await;
        }
        let none = self.none_key();
        let (revoked, counter) = match (token.token_id, consume) {
            (Some(jti), _) => (
                self.token_key("r", token.issuer, jti),
                self.token_key("c", token.issuer, jti),
            ),
            (None, Some(_)) => return Err(StoreError::missing_jti()),
            (None, None) => (none.clone(), none.clone()),
        };
        // Metered checks see a revocation made anywhere at once: the
        // script reads the marker and watermarks with the counter (the
        // replica answers only unmetered checks here).
        let sub = token.subject.map_or_else(
            || none.clone(),
            |s| self.watermark_key("ws", token.issuer, s),
        );
        let client = token.client_id.map_or_else(
            || none.clone(),
            |c| self.watermark_key("wc", token.issuer, c),
        );
        let (allowance, cost) =
            consume.map_or((0, 0), |c| (c.allowance.min(EXACT), c.cost.min(EXACT)));
        let expiry = self.expiry(token.expires_at);
        let seen = self.generation.load(Ordering::SeqCst);
        // Two numbers, kept on the stack (a batched check's reply is one).
        let reply: [i64; 2] = match &self.batcher {
            Some(b) => {
                let keys = batch::Keys {
                    revoked,
                    sub,
                    client,
                    counter: counter.clone(),
                    consume: consume.is_some(),
                    issued_at: token.issued_at,
                };
                b.check(keys, allowance, cost, expiry).await?
            }
            None => {
                let mode = if consume.is_some() { "1" } else { "0" };
                let reply: Vec<i64> = self
                    .check
                    .key(revoked)
                    .key(sub)
                    .key(client)
                    .key(&counter)
                    .arg(token.issued_at.map(|i| i.to_string()).unwrap_or_default())
                    .arg(mode)
                    .arg(allowance)
                    .arg(cost)
                    .arg(expiry)
                    .arg(self.grace)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(store_error)?;
                // A shorter reply reads as a code no script gives.
                [
                    reply.first().copied().unwrap_or(i64::MIN),
                    reply.get(1).copied().unwrap_or(0),
                ]
            }
        };
        match reply.first() {
            Some(-1) => Ok(Verdict::Revoked),
            Some(0) => {
                self.remember_not_revoked(&token, seen);
                Ok(Verdict::Admitted(None))
            }
            Some(1) => {
                self.acknowledged(&counter).await?;
                Ok(Verdict::Admitted(Some(consumed(&reply)?)))
            }
            _ => Ok(Verdict::Admitted(Some(consumed(&reply)?))),
        }
    }
}

impl RevocationStore for RedisStore {
    /// Revokes the token `(issuer, token_id)`; the id "" is the token
    /// whose `jti` is "" (as in the memory store), never the tokens
    /// without one.
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.token_key("r", issuer, token_id);
            // Revoking again changes nothing: sent again through a failover.
            let done = self
                .retrying(self.write_deadline(), || async {
                    let _: i64 = self
                        .revoke
                        .key(&key)
                        .arg(self.expiry(expires_at))
                        .arg(self.grace)
                        .arg(self.channel())
                        .invoke_async(&mut self.conn.clone())
                        .await
                        .map_err(store_error)?;
                    self.acknowledged(&key).await
                })
                .await;
            // Even on an error: the revocation may have been applied.
            self.forget_not_revoked();
            if let Some(r) = &self.replica {
                r.record(key, 1, self.kept_until(expires_at));
            }
            done
        })
    }

    fn revoke_issued_until<'a>(
        &'a self,
        issuer: &'a str,
        principal: Principal<'a>,
        before: i64,
        keep_until: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = match principal {
                Principal::Subject(s) => self.watermark_key("ws", issuer, s),
                Principal::Client(c) => self.watermark_key("wc", issuer, c),
            };
            // Within what a published message carries exactly.
            let before = before.min(MAX_EXPIRY);
            let done = self
                .retrying(self.write_deadline(), || async {
                    let _: i64 = self
                        .watermark
                        .key(&key)
                        .arg(before)
                        .arg(self.expiry(keep_until))
                        .arg(self.grace)
                        .arg(self.channel())
                        .invoke_async(&mut self.conn.clone())
                        .await
                        .map_err(store_error)?;
                    self.acknowledged(&key).await
                })
                .await;
            self.forget_not_revoked();
            // Seen here at once, even on an error.
            if let Some(r) = &self.replica {
                r.record(key, before, self.kept_until(keep_until));
            }
            done
        })
    }

    fn is_revoked<'a>(&'a self, token: TokenRef<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if let Some(answer) = self.replica_revoked(&token) {
                return answer;
            }
            Ok(matches!(
                self.run_check(token, None).await?,
                Verdict::Revoked
            ))
        })
    }

    fn try_is_revoked(&self, token: TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        if let Some(answer) = self.replica_revoked(&token) {
            return Some(answer);
        }
        let cache = self.not_revoked.as_ref()?;
        cache.get(&Self::cache_key(&token)).map(|()| Ok(false))
    }
}

impl CreditStore for RedisStore {
    fn consume<'a>(&'a self, token: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed> {
        Box::pin(async move {
            let jti = token.token_id.ok_or_else(StoreError::missing_jti)?;
            if self.conn.is_cluster() {
                let deadline = self.charge_deadline(Some(c));
                return consumed(
                    &self
                        .token_script(&token, jti, "none", Some(c), deadline)
                        .await?,
                );
            }
            let counter = self.token_key("c", token.issuer, jti);
            let reply: Vec<i64> = self
                .consume
                .key(&counter)
                .arg(c.allowance.min(EXACT))
                .arg(c.cost.min(EXACT))
                .arg(self.expiry(token.expires_at))
                .arg(self.grace)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            if reply.first() == Some(&1) {
                self.acknowledged(&counter).await?;
            }
            consumed(&reply)
        })
    }

    fn refund<'a>(
        &'a self,
        token: TokenRef<'a>,
        allowance: u64,
        amount: u64,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let jti = token.token_id.ok_or_else(StoreError::missing_jti)?;
            let left: i64 = self
                .refund
                .key(self.token_key("c", token.issuer, jti))
                .arg(allowance.min(EXACT))
                .arg(amount.min(EXACT))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            Ok(left.max(0) as u64)
        })
    }

    fn spent<'a>(&'a self, issuer: &'a str, token_id: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let key = self.token_key("c", issuer, token_id);
            // A read: sent again through a failover or a slot migration
            // (a multiplexed connection can lose an `ASKING` to another
            // command), as a charge is.
            self.retrying(self.write_deadline(), || async {
                self.conn.clone().get(&key).await.map_err(store_error)
            })
            .await
        })
    }
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        token: TokenRef<'a>,
        consume: Option<Consumption>,
    ) -> StoreFuture<'a, Verdict> {
        if consume.is_none()
            && let Some(answer) = self.replica_revoked(&token)
        {
            let verdict = answer.map(|revoked| {
                if revoked {
                    Verdict::Revoked
                } else {
                    Verdict::Admitted(None)
                }
            });
            return Box::pin(std::future::ready(verdict));
        }
        Box::pin(self.run_check(token, consume))
    }

    fn try_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Option<Result<Verdict, StoreError>> {
        if consume.is_some() {
            return None;
        }
        match self.try_is_revoked(token)? {
            Ok(false) => Some(Ok(Verdict::Admitted(None))),
            other => Some(other.map(|_| Verdict::Revoked)),
        }
    }

    /// Redis expires keys by itself: nothing to do.
    fn grace_secs(&self) -> i64 {
        self.grace
    }

    fn purge_expired(&self, _now: i64) -> StoreFuture<'_, u64> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn put_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        grant: &'a RefreshGrant,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.put_refresh_now(issuer, hash, grant))
    }

    /// Spending the old token is one script on its key; its successor is
    /// written after (another key, possibly another cluster slot). If that
    /// write fails the caller gets the error and the family can no longer
    /// be refreshed: closed, never widened.
    fn rotate_refresh<'a>(
        &'a self,
        issuer: &'a str,
        old: &'a str,
        new: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Rotation> {
        Box::pin(async move {
            let key = self.token_key("rt", issuer, old);
            let reply: redis::Value = self
                .spend_refresh
                .key(&key)
                .arg(now)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            let (code, grant) = refresh_reply(reply)?;
            if code == 1 {
                // Only the acknowledgement is sent again: spending again
                // would read as a reuse.
                self.retrying(self.write_deadline(), || self.acknowledged(&key))
                    .await?;
            }
            Ok(match (code, grant) {
                (1, Some(grant)) => {
                    self.put_refresh_now(issuer, new, &grant).await?;
                    Rotation::Rotated(grant)
                }
                (2, Some(grant)) => Rotation::Reused(grant),
                _ => Rotation::Unknown,
            })
        })
    }

    fn find_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(RefreshGrant, bool)>> {
        Box::pin(async move {
            let v: (Option<String>, Option<String>, Option<i64>, Option<String>) =
                redis::cmd("HMGET")
                    .arg(self.token_key("rt", issuer, hash))
                    .arg(&["family", "grant", "exp", "spent"])
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(store_error)?;
            Ok(match v {
                (Some(family), Some(grant), Some(expires_at), spent) if expires_at >= now => {
                    Some((
                        RefreshGrant {
                            family,
                            grant,
                            expires_at,
                        },
                        spent.as_deref() == Some("1"),
                    ))
                }
                _ => None,
            })
        })
    }
}

impl RedisStore {
    async fn put_refresh_now(
        &self,
        issuer: &str,
        hash: &str,
        grant: &RefreshGrant,
    ) -> Result<(), StoreError> {
        let key = self.token_key("rt", issuer, hash);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("family", grant.family.as_str()),
                    ("grant", grant.grant.as_str()),
                    ("exp", &grant.expires_at.to_string()),
                    ("spent", "0"),
                ],
            )
            .ignore()
            .cmd("EXPIREAT")
            .arg(&key)
            .arg(self.expiry(grant.expires_at))
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(store_error)
    }
}

/// `{code}` or `{code, family, grant, exp}` from [`scripts::SPEND_REFRESH`].
fn refresh_reply(reply: redis::Value) -> Result<(i64, Option<RefreshGrant>), StoreError> {
    let bad = || StoreError::new("redis: unexpected reply from the refresh script");
    let redis::Value::Array(items) = reply else {
        return Err(bad());
    };
    let text = |v: &redis::Value| -> Option<String> {
        match v {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            redis::Value::SimpleString(s) => Some(s.clone()),
            redis::Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let code = match items.first() {
        Some(redis::Value::Int(n)) => *n,
        _ => return Err(bad()),
    };
    if items.len() < 4 {
        return Ok((code, None));
    }
    let grant = RefreshGrant {
        family: text(&items[1]).ok_or_else(bad)?,
        grant: text(&items[2]).ok_or_else(bad)?,
        expires_at: text(&items[3])
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)?,
    };
    Ok((code, Some(grant)))
}
