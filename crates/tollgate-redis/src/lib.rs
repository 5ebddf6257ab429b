//! Redis-backed credit and revocation store for Tollgate: every API instance
//! agrees on each token's credits and revocations.
//!
//! One Lua script (loaded once, called by SHA with `EVALSHA`) answers a
//! request's revocation check, watermark check and credit consumption in a
//! single round trip. Keys expire with their token and are namespaced by a
//! prefix.
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
//! `{prefix}:ws:iss␟sub` and `{prefix}:wc:iss␟client`. The combined check
//! reads a token's keys and its subject's and client's watermarks in one
//! script, so it needs all of them on one node: a standalone Redis (with
//! replicas or Sentinel), not a Cluster.
//!
//! **Failure.** When Redis cannot answer (down, timeout) every operation
//! returns [`StoreError`]; the policies then fail closed (503 with
//! `Retry-After`). The connection manager reconnects by itself: service
//! resumes when Redis is back, without a restart. Allowances and costs are
//! exact up to 2^53 (Lua numbers).

#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RevocationStore, Store, StoreError, StoreFuture,
    TokenRef, Verdict,
};

/// Revocation + watermarks + consumption, in one call.
///
/// KEYS: revoked marker, subject watermark, client watermark, counter.
/// ARGV: iat (or ""), consume? ("1"/"0"), allowance, cost, counter expiry
/// (Unix seconds). Returns `{-1}` revoked, `{0}` admitted without a
/// consumption, `{1, left}` charged, `{2, left}` exhausted.
const CHECK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local iat = tonumber(ARGV[1])
for i = 2, 3 do
  local mark = redis.call('GET', KEYS[i])
  if mark and (iat == nil or iat < tonumber(mark)) then return {-1, 0} end
end
if ARGV[2] ~= '1' then return {0, 0} end
local allowance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local spent = redis.call('GET', KEYS[4])
local left = allowance - tonumber(spent or '0')
if left < 0 then left = 0 end
if cost > left then return {2, left} end
redis.call('INCRBY', KEYS[4], cost)
if not spent then redis.call('EXPIREAT', KEYS[4], ARGV[5]) end
return {1, left - cost}
";

/// Consumption without the revocation checks. KEYS: counter. ARGV:
/// allowance, cost, counter expiry.
const CONSUME: &str = r"
local allowance = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local spent = redis.call('GET', KEYS[1])
local left = allowance - tonumber(spent or '0')
if left < 0 then left = 0 end
if cost > left then return {2, left} end
redis.call('INCRBY', KEYS[1], cost)
if not spent then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return {1, left - cost}
";

/// Refund, never below zero. KEYS: counter. ARGV: allowance, amount.
/// Returns the credits left.
const REFUND: &str = r"
local spent = redis.call('GET', KEYS[1])
if not spent then return tonumber(ARGV[1]) end
spent = tonumber(spent)
local back = math.min(spent, tonumber(ARGV[2]))
redis.call('DECRBY', KEYS[1], back)
local left = tonumber(ARGV[1]) - (spent - back)
if left < 0 then left = 0 end
return left
";

/// Raises a watermark (never lowers it). KEYS: watermark. ARGV: before,
/// expiry (Unix seconds).
const WATERMARK: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
local ttl = redis.call('EXPIRETIME', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return 1
";

/// Builds a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    grace: i64,
    response_timeout: Duration,
    connection_timeout: Duration,
    not_revoked_ttl: Option<Duration>,
}

impl RedisStoreBuilder {
    /// Key prefix (default `tollgate`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Seconds keys outlive their token's `exp` (default 300; keep it above
    /// the validation leeway).
    pub fn grace(mut self, seconds: i64) -> Self {
        self.grace = seconds.max(0);
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

    /// Remembers "not revoked" answers for unmetered tokens in this process
    /// for up to `ttl`, sparing the round trip. A revocation made through
    /// another instance is then seen up to `ttl` late (this instance's own
    /// revocations are seen at once). Off by default. Metered tokens always
    /// ask Redis: their consumption does the revocation check with it.
    pub fn not_revoked_cache(mut self, ttl: Duration) -> Self {
        self.not_revoked_ttl = Some(ttl);
        self
    }

    /// Connects (and fails when Redis cannot be reached now). Later
    /// outages are survived: the connection is re-established by itself.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str()).map_err(store_error)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(store_error)?;
        let check = Script::new(CHECK);
        // Loaded once here; later calls go by SHA (and reload after a restart).
        check
            .prepare_invoke()
            .load_async(&mut conn.clone())
            .await
            .map_err(store_error)?;
        Ok(RedisStore {
            conn,
            prefix: self.prefix,
            grace: self.grace,
            check,
            consume: Script::new(CONSUME),
            refund: Script::new(REFUND),
            watermark: Script::new(WATERMARK),
            not_revoked: self.not_revoked_ttl.map(|ttl| {
                moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build()
            }),
        })
    }
}

/// Credits and revocations in Redis, shared by every API instance that uses
/// the same Redis and prefix.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    grace: i64,
    check: Script,
    consume: Script,
    refund: Script,
    watermark: Script,
    not_revoked: Option<moka::sync::Cache<String, ()>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("grace", &self.grace)
            .field("not_revoked_cache", &self.not_revoked.is_some())
            .finish_non_exhaustive()
    }
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {}", e.kind_str()))
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

fn consumed(reply: &[i64]) -> Result<Consumed, StoreError> {
    match reply {
        [1, left, ..] => Ok(Consumed::Charged {
            remaining: (*left).max(0) as u64,
        }),
        [2, left, ..] => Ok(Consumed::Exhausted {
            remaining: (*left).max(0) as u64,
        }),
        _ => Err(StoreError("redis: unexpected script reply".into())),
    }
}

impl RedisStore {
    /// A builder for `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "tollgate".into(),
            grace: 300,
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            not_revoked_ttl: None,
        }
    }

    /// Connects to `url` with the defaults.
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
        exp.saturating_add(self.grace)
    }

    fn cache_key(token: &TokenRef<'_>) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
            token.issuer,
            token.token_id.unwrap_or(""),
            token.subject.unwrap_or(""),
            token.client_id.unwrap_or(""),
            token.issued_at
        )
    }

    async fn run_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Result<Verdict, StoreError> {
        let jti = token.token_id.unwrap_or("");
        let none = format!("{}:none", self.prefix);
        let sub = token.subject.map_or_else(
            || none.clone(),
            |s| self.watermark_key("ws", token.issuer, s),
        );
        let client = token.client_id.map_or_else(
            || none.clone(),
            |c| self.watermark_key("wc", token.issuer, c),
        );
        let (allowance, cost) = consume.map_or((0, 0), |c| (c.allowance, c.cost));
        let reply: Vec<i64> = self
            .check
            .key(self.token_key("r", token.issuer, jti))
            .key(sub)
            .key(client)
            .key(self.token_key("c", token.issuer, jti))
            .arg(token.issued_at.map(|i| i.to_string()).unwrap_or_default())
            .arg(if consume.is_some() { "1" } else { "0" })
            .arg(allowance)
            .arg(cost)
            .arg(self.expiry(token.expires_at))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        match reply.first() {
            Some(-1) => Ok(Verdict::Revoked),
            Some(0) => {
                if let Some(cache) = &self.not_revoked {
                    cache.insert(Self::cache_key(&token), ());
                }
                Ok(Verdict::Admitted(None))
            }
            _ => Ok(Verdict::Admitted(Some(consumed(&reply)?))),
        }
    }
}

impl RevocationStore for RedisStore {
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.token_key("r", issuer, token_id);
            let at = self.expiry(expires_at);
            let mut conn = self.conn.clone();
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("EXAT")
                .arg(at.max(1))
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            if let Some(cache) = &self.not_revoked {
                cache.invalidate_all();
            }
            Ok(())
        })
    }

    fn revoke_issued_before<'a>(
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
            let _: i64 = self
                .watermark
                .key(key)
                .arg(before)
                .arg(self.expiry(keep_until).max(1))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            if let Some(cache) = &self.not_revoked {
                cache.invalidate_all();
            }
            Ok(())
        })
    }

    fn is_revoked<'a>(&'a self, token: TokenRef<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(matches!(
                self.run_check(token, None).await?,
                Verdict::Revoked
            ))
        })
    }

    fn try_is_revoked(&self, token: TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        let cache = self.not_revoked.as_ref()?;
        cache.get(&Self::cache_key(&token)).map(|()| Ok(false))
    }
}

impl CreditStore for RedisStore {
    fn consume<'a>(&'a self, token: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed> {
        Box::pin(async move {
            let jti = token
                .token_id
                .ok_or_else(|| StoreError("a metered token needs a `jti`".into()))?;
            let reply: Vec<i64> = self
                .consume
                .key(self.token_key("c", token.issuer, jti))
                .arg(c.allowance)
                .arg(c.cost)
                .arg(self.expiry(token.expires_at))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
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
            let jti = token
                .token_id
                .ok_or_else(|| StoreError("a metered token needs a `jti`".into()))?;
            let left: i64 = self
                .refund
                .key(self.token_key("c", token.issuer, jti))
                .arg(allowance)
                .arg(amount)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(store_error)?;
            Ok(left.max(0) as u64)
        })
    }

    fn spent<'a>(&'a self, issuer: &'a str, token_id: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            conn.get(self.token_key("c", issuer, token_id))
                .await
                .map_err(store_error)
        })
    }
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        token: TokenRef<'a>,
        consume: Option<Consumption>,
    ) -> StoreFuture<'a, Verdict> {
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
    fn purge_expired(&self, _now: i64) -> StoreFuture<'_, u64> {
        Box::pin(std::future::ready(Ok(0)))
    }
}
