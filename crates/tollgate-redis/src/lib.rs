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
//! script, so it needs all of them on one node: a standalone Redis 7 or later
//! (with replicas or Sentinel), not a Cluster.
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

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RevocationStore, Store, StoreError, StoreFuture,
    TokenRef, Verdict,
};

/// Allowances, costs and refunds above this are taken as this: Lua's
/// numbers are exact up to it.
const EXACT: u64 = 1 << 53;

/// The least `grace` (seconds): the authenticator's default leeway.
const MIN_GRACE: i64 = tollgate_core::DEFAULT_LEEWAY.as_secs() as i64;

/// The most `grace` (seconds, about 30 years).
const MAX_GRACE: i64 = 1 << 30;

/// The latest expiry handed to Redis (Unix seconds, about year 36,800):
/// exact in Lua, and far from `EXPIREAT`'s overflow.
const MAX_EXPIRY: i64 = 1 << 40;

/// Lua helpers in front of every script: `at(expiry, grace)` is the later
/// of `expiry` and Redis's now + `grace`; `keep(key, at)` makes the key live
/// at least until `at` (never shortening its life); `consume(counter,
/// allowance, cost, expiry, grace)` takes `cost` out of what is left and
/// returns `{1, left}` charged or `{2, left}` exhausted.
const PRELUDE: &str = r"
local function at(expiry, grace)
  local now = tonumber(redis.call('TIME')[1])
  return math.max(tonumber(expiry), now + tonumber(grace))
end
local function keep(key, until_)
  if redis.call('EXPIRETIME', key) < until_ then redis.call('EXPIREAT', key, until_) end
end
local function consume(counter, allowance, cost, expiry, grace)
  local spent = redis.call('GET', counter)
  local left = tonumber(allowance) - tonumber(spent or '0')
  if left < 0 then left = 0 end
  if tonumber(cost) > left then return {2, left} end
  -- The integer as sent, never a Lua number.
  redis.call('INCRBY', counter, cost)
  if not spent then redis.call('EXPIREAT', counter, at(expiry, grace)) end
  return {1, left - tonumber(cost)}
end
";

/// Revocation + watermarks + consumption, in one call.
///
/// KEYS: revoked marker, subject watermark, client watermark, counter.
/// ARGV: iat (or ""), consume? ("1"/"0"), allowance, cost, counter expiry
/// (Unix seconds), grace. Returns `{-1}` revoked, `{0}` admitted without a
/// consumption, `{1, left}` charged, `{2, left}` exhausted.
const CHECK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local iat = tonumber(ARGV[1])
for i = 2, 3 do
  local mark = redis.call('GET', KEYS[i])
  if mark and (iat == nil or iat < tonumber(mark)) then return {-1, 0} end
end
if ARGV[2] ~= '1' then return {0, 0} end
return consume(KEYS[4], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
";

/// Consumption without the revocation checks. KEYS: counter. ARGV:
/// allowance, cost, counter expiry, grace.
const CONSUME: &str = r"
return consume(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
";

/// Refund, never below zero. KEYS: counter. ARGV: allowance, amount.
/// Returns the credits left.
const REFUND: &str = r"
local spent = redis.call('GET', KEYS[1])
if not spent then return tonumber(ARGV[1]) end
local amount = tonumber(ARGV[2])
local rest = 0
if amount < tonumber(spent) then
  redis.call('DECRBY', KEYS[1], ARGV[2])
  rest = tonumber(spent) - amount
else
  redis.call('DECRBY', KEYS[1], spent)
end
local left = tonumber(ARGV[1]) - rest
if left < 0 then left = 0 end
return left
";

/// Revokes one token, never shortening an earlier revocation's life.
/// KEYS: marker. ARGV: expiry (Unix seconds), grace.
const REVOKE: &str = r"
redis.call('SET', KEYS[1], '1', 'KEEPTTL')
keep(KEYS[1], at(ARGV[1], ARGV[2]))
return 1
";

/// Raises a watermark (never lowers it, nor shortens its life). KEYS:
/// watermark. ARGV: before, expiry (Unix seconds), grace.
const WATERMARK: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
keep(KEYS[1], at(ARGV[2], ARGV[3]))
return 1
";

/// A script with the [`PRELUDE`] helpers in front.
fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

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
        let check = script(CHECK);
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
            consume: script(CONSUME),
            refund: Script::new(REFUND),
            revoke: script(REVOKE),
            watermark: script(WATERMARK),
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
    revoke: Script,
    watermark: Script,
    /// Bumped by every revocation through this store (and its clones): a
    /// "not revoked" answer is cached only if no revocation began while it
    /// was in flight.
    generation: Arc<AtomicU64>,
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
        exp.saturating_add(self.grace).clamp(1, MAX_EXPIRY)
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

    async fn run_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Result<Verdict, StoreError> {
        let none = self.none_key();
        let (revoked, counter) = match (token.token_id, consume) {
            (Some(jti), _) => (
                self.token_key("r", token.issuer, jti),
                self.token_key("c", token.issuer, jti),
            ),
            (None, Some(_)) => return Err(StoreError::missing_jti()),
            (None, None) => (none.clone(), none.clone()),
        };
        let sub = token.subject.map_or_else(
            || none.clone(),
            |s| self.watermark_key("ws", token.issuer, s),
        );
        let client = token.client_id.map_or_else(
            || none.clone(),
            |c| self.watermark_key("wc", token.issuer, c),
        );
        let (allowance, cost) = consume.map_or((0, 0), |c| (c.allowance, c.cost));
        let seen = self.generation.load(Ordering::SeqCst);
        let reply: Vec<i64> = self
            .check
            .key(revoked)
            .key(sub)
            .key(client)
            .key(counter)
            .arg(token.issued_at.map(|i| i.to_string()).unwrap_or_default())
            .arg(if consume.is_some() { "1" } else { "0" })
            .arg(allowance.min(EXACT))
            .arg(cost.min(EXACT))
            .arg(self.expiry(token.expires_at))
            .arg(self.grace)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        match reply.first() {
            Some(-1) => Ok(Verdict::Revoked),
            Some(0) => {
                self.remember_not_revoked(&token, seen);
                Ok(Verdict::Admitted(None))
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
            let done: Result<i64, _> = self
                .revoke
                .key(self.token_key("r", issuer, token_id))
                .arg(self.expiry(expires_at))
                .arg(self.grace)
                .invoke_async(&mut self.conn.clone())
                .await;
            // Even on an error: the revocation may have been applied.
            self.forget_not_revoked();
            done.map(drop).map_err(store_error)
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
            let done: Result<i64, _> = self
                .watermark
                .key(key)
                .arg(before)
                .arg(self.expiry(keep_until))
                .arg(self.grace)
                .invoke_async(&mut self.conn.clone())
                .await;
            self.forget_not_revoked();
            done.map(drop).map_err(store_error)
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
            let jti = token.token_id.ok_or_else(StoreError::missing_jti)?;
            let reply: Vec<i64> = self
                .consume
                .key(self.token_key("c", token.issuer, jti))
                .arg(c.allowance.min(EXACT))
                .arg(c.cost.min(EXACT))
                .arg(self.expiry(token.expires_at))
                .arg(self.grace)
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
