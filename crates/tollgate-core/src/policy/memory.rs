//! [`MemoryStore`]: credits and revocations in this process.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::store::{
    Consumed, Consumption, CreditStore, Principal, RefreshGrant, RevocationStore, Rotation, Store,
    StoreError, StoreFuture, TokenRef, Verdict,
};

const SHARDS: usize = 16;
/// How often (seconds) a shard sweeps out expired counters as it is used.
const SWEEP_EVERY: i64 = 60;
/// Default time an entry outlives its token's `exp` (covers clock leeway).
pub(crate) const DEFAULT_GRACE: i64 = 300;

/// Credits and revocations held in memory: exact under concurrency (one
/// lock per shard of counters), bounded by token expiry, and never evicting
/// a live counter (an evicted counter would hand credits back).
///
/// For one process. Several API instances need a shared store (Redis); a
/// single node that must survive restarts needs a durable one (SQLite).
/// A token revoked at a token server with its own store still passes an
/// API that uses a `MemoryStore`: revocations reach only the services
/// that share the store they were written to.
///
/// # Examples
///
/// Two APIs of one process over one store agree on a token's credits and
/// on its revocation:
///
/// ```
/// use std::sync::Arc;
/// use tollgate_core::gate::{Decision, Gate, HttpRequest};
/// use tollgate_core::policy::{Credits, MemoryStore, Policies, RevocationStore};
/// use tollgate_core::{Algorithm, Authenticator, Error, TrustedIssuer, VerifyingKey};
/// # fn hs256(secret: &[u8], claims: &str) -> String {
/// #     use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
/// #     let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims));
/// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
/// #     format!("{input}.{}", B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes())))
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = [7u8; 32];
/// let store = Arc::new(MemoryStore::new());
/// let api = || -> Result<Gate, tollgate_core::ConfigError> {
///     Ok(Gate::new(Authenticator::builder()
///         .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///             .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
///         .policies(Policies::new(store.clone()).credits(Credits::new()))
///         .build()?))
/// };
/// let (a, b) = (api()?, api()?);
///
/// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","jti":"t-1","exp":4102444800,"credits":2}"#);
/// let req = http::Request::get("/").header("authorization", format!("Bearer {token}")).body(())?;
/// let ask = |gate: &Gate| match gate.decide(&HttpRequest::new(&req, None)) {
///     Decision::Accepted(_) => Ok(()),
///     Decision::Rejected(rejection) => Err(rejection.error),
///     _ => unreachable!("the memory store answers at once"),
/// };
///
/// assert_eq!(ask(&a), Ok(()));
/// assert_eq!(ask(&b), Ok(())); // the second and last credit
/// assert_eq!(ask(&a), Err(Error::CreditsExhausted { limit: 2, remaining: 0 }));
///
/// store.revoke("https://issuer.example", "t-1", 4_102_444_800).await?;
/// assert_eq!(ask(&b), Err(Error::Revoked));
/// # Ok(()) }
/// ```
pub struct MemoryStore {
    grace: i64,
    hasher: std::collections::hash_map::RandomState,
    issuers: RwLock<Vec<Arc<IssuerData>>>,
    refresh: Mutex<RefreshTokens>,
}

/// Refresh tokens by (issuer, hash): the grant, and whether spent.
type RefreshTokens = HashMap<(Box<str>, Box<str>), (RefreshGrant, bool)>;

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

struct IssuerData {
    name: Box<str>,
    shards: [Mutex<Shard>; SHARDS],
    any_revoked: AtomicBool,
    revoked: RwLock<Revocations>,
}

#[derive(Default)]
struct Shard {
    counters: HashMap<Box<str>, Counter>,
    next_sweep: i64,
}

struct Counter {
    spent: u64,
    exp: i64,
}

#[derive(Default)]
struct Revocations {
    tokens: HashMap<Box<str>, i64>,
    /// Name -> (watermark, keep until).
    subjects: HashMap<Box<str>, (i64, i64)>,
    clients: HashMap<Box<str>, (i64, i64)>,
    next_sweep: i64,
}

impl Revocations {
    /// Drops entries whose tokens can no longer be accepted. Returns how
    /// many went.
    fn sweep(&mut self, now: i64, grace: i64) -> u64 {
        let before = self.tokens.len() + self.subjects.len() + self.clients.len();
        self.tokens
            .retain(|_, exp| exp.saturating_add(grace) >= now);
        self.subjects
            .retain(|_, (_, keep)| keep.saturating_add(grace) >= now);
        self.clients
            .retain(|_, (_, keep)| keep.saturating_add(grace) >= now);
        (before - self.tokens.len() - self.subjects.len() - self.clients.len()) as u64
    }

    /// Sweeps at most once a [`SWEEP_EVERY`], as revocations are added, so
    /// the lists stay bounded by the revocations still in force without a
    /// caller having to purge.
    fn sweep_now_and_then(&mut self, grace: i64) {
        let now = now();
        if now >= self.next_sweep {
            self.sweep(now, grace);
            self.next_sweep = now + SWEEP_EVERY;
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> i64 {
    crate::clock::unix_now_ms().div_euclid(1000)
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    /// An empty store; entries outlive their token's `exp` by 5 minutes.
    pub fn new() -> Self {
        Self::with_grace(DEFAULT_GRACE)
    }

    /// An empty store whose entries outlive their token's `exp` by `grace`
    /// seconds. It must stay above the validation leeway (a counter or a
    /// revocation gone while its token is still accepted would hand credits
    /// back or let the token in again): values under
    /// [`DEFAULT_LEEWAY`](crate::DEFAULT_LEEWAY) (60 s) are raised to it.
    pub fn with_grace(grace: i64) -> Self {
        MemoryStore {
            grace: grace.max(crate::DEFAULT_LEEWAY.as_secs() as i64),
            hasher: Default::default(),
            issuers: RwLock::new(Vec::new()),
            refresh: Mutex::new(HashMap::new()),
        }
    }

    fn issuer(&self, name: &str) -> Option<Arc<IssuerData>> {
        let list = self.issuers.read().unwrap_or_else(|p| p.into_inner());
        list.iter().find(|i| &*i.name == name).cloned()
    }

    fn issuer_or_insert(&self, name: &str) -> Arc<IssuerData> {
        if let Some(i) = self.issuer(name) {
            return i;
        }
        let mut list = self.issuers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = list.iter().find(|i| &*i.name == name) {
            return i.clone();
        }
        let data = Arc::new(IssuerData {
            name: name.into(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            any_revoked: AtomicBool::new(false),
            revoked: RwLock::new(Revocations::default()),
        });
        list.push(data.clone());
        data
    }

    fn shard<'i>(&self, issuer: &'i IssuerData, jti: &str) -> &'i Mutex<Shard> {
        let h = self.hasher.hash_one(jti);
        &issuer.shards[(h as usize) % SHARDS]
    }

    fn consume_now(&self, token: TokenRef<'_>, c: Consumption) -> Result<Consumed, StoreError> {
        let jti = token.token_id.ok_or_else(StoreError::missing_jti)?;
        let issuer = self.issuer_or_insert(token.issuer);
        let now = now();
        let mut shard = lock(self.shard(&issuer, jti));
        if now >= shard.next_sweep {
            let grace = self.grace;
            shard
                .counters
                .retain(|_, c| c.exp.saturating_add(grace) >= now);
            shard.next_sweep = now + SWEEP_EVERY;
        }
        let counter = match shard.counters.get_mut(jti) {
            Some(counter) => counter,
            None => shard.counters.entry(jti.into()).or_insert(Counter {
                spent: 0,
                exp: token.expires_at,
            }),
        };
        let left = c.allowance.saturating_sub(counter.spent);
        if c.cost > left {
            return Ok(Consumed::Exhausted { remaining: left });
        }
        counter.spent += c.cost;
        Ok(Consumed::Charged {
            remaining: left - c.cost,
        })
    }

    fn refund_now(
        &self,
        token: TokenRef<'_>,
        allowance: u64,
        amount: u64,
    ) -> Result<u64, StoreError> {
        let jti = token.token_id.ok_or_else(StoreError::missing_jti)?;
        let Some(issuer) = self.issuer(token.issuer) else {
            return Ok(allowance);
        };
        let mut shard = lock(self.shard(&issuer, jti));
        Ok(match shard.counters.get_mut(jti) {
            Some(counter) => {
                counter.spent = counter.spent.saturating_sub(amount);
                allowance.saturating_sub(counter.spent)
            }
            None => allowance,
        })
    }

    fn revoked_now(&self, token: TokenRef<'_>) -> bool {
        let Some(issuer) = self.issuer(token.issuer) else {
            return false;
        };
        if !issuer.any_revoked.load(Ordering::Acquire) {
            return false;
        }
        let r = issuer.revoked.read().unwrap_or_else(|p| p.into_inner());
        let before = |map: &HashMap<Box<str>, (i64, i64)>, name: Option<&str>| {
            name.and_then(|n| map.get(n))
                .is_some_and(|(mark, _)| token.issued_at.is_none_or(|iat| iat <= *mark))
        };
        token.token_id.is_some_and(|j| r.tokens.contains_key(j))
            || before(&r.subjects, token.subject)
            || before(&r.clients, token.client_id)
    }

    fn purge_now(&self, now: i64) -> u64 {
        let list = self
            .issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let grace = self.grace;
        let mut gone = 0;
        for issuer in list {
            for shard in &issuer.shards {
                let mut shard = lock(shard);
                let before = shard.counters.len();
                shard
                    .counters
                    .retain(|_, c| c.exp.saturating_add(grace) >= now);
                gone += (before - shard.counters.len()) as u64;
            }
            let mut r = issuer.revoked.write().unwrap_or_else(|p| p.into_inner());
            gone += r.sweep(now, grace);
        }
        let mut refresh = self.refresh_tokens();
        let before = refresh.len();
        refresh.retain(|_, (g, _)| g.expires_at.saturating_add(grace) >= now);
        gone += (before - refresh.len()) as u64;
        gone
    }

    fn refresh_tokens(&self) -> MutexGuard<'_, RefreshTokens> {
        self.refresh.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(v: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl RevocationStore for MemoryStore {
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        let issuer = self.issuer_or_insert(issuer);
        let mut r = issuer.revoked.write().unwrap_or_else(|p| p.into_inner());
        r.sweep_now_and_then(self.grace);
        let exp = r.tokens.entry(token_id.into()).or_insert(expires_at);
        *exp = (*exp).max(expires_at);
        issuer.any_revoked.store(true, Ordering::Release);
        ready(Ok(()))
    }

    fn revoke_issued_until<'a>(
        &'a self,
        issuer: &'a str,
        principal: Principal<'a>,
        before: i64,
        keep_until: i64,
    ) -> StoreFuture<'a, ()> {
        let issuer = self.issuer_or_insert(issuer);
        let mut r = issuer.revoked.write().unwrap_or_else(|p| p.into_inner());
        r.sweep_now_and_then(self.grace);
        let (map, name) = match principal {
            Principal::Subject(s) => (&mut r.subjects, s),
            Principal::Client(c) => (&mut r.clients, c),
        };
        let mark = map.entry(name.into()).or_insert((before, keep_until));
        mark.0 = mark.0.max(before);
        mark.1 = mark.1.max(keep_until);
        issuer.any_revoked.store(true, Ordering::Release);
        ready(Ok(()))
    }

    fn is_revoked<'a>(&'a self, token: TokenRef<'a>) -> StoreFuture<'a, bool> {
        ready(Ok(self.revoked_now(token)))
    }

    fn try_is_revoked(&self, token: TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        Some(Ok(self.revoked_now(token)))
    }
}

impl CreditStore for MemoryStore {
    fn consume<'a>(&'a self, token: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed> {
        ready(self.consume_now(token, c))
    }

    fn refund<'a>(
        &'a self,
        token: TokenRef<'a>,
        allowance: u64,
        amount: u64,
    ) -> StoreFuture<'a, u64> {
        ready(self.refund_now(token, allowance, amount))
    }

    fn spent<'a>(&'a self, issuer: &'a str, token_id: &'a str) -> StoreFuture<'a, Option<u64>> {
        let spent = self.issuer(issuer).and_then(|i| {
            lock(self.shard(&i, token_id))
                .counters
                .get(token_id)
                .map(|c| c.spent)
        });
        ready(Ok(spent))
    }

    fn try_consume(
        &self,
        token: TokenRef<'_>,
        c: Consumption,
    ) -> Option<Result<Consumed, StoreError>> {
        Some(self.consume_now(token, c))
    }

    fn try_refund(
        &self,
        token: TokenRef<'_>,
        allowance: u64,
        amount: u64,
    ) -> Option<Result<u64, StoreError>> {
        Some(self.refund_now(token, allowance, amount))
    }
}

impl Store for MemoryStore {
    fn check<'a>(
        &'a self,
        token: TokenRef<'a>,
        consume: Option<Consumption>,
    ) -> StoreFuture<'a, Verdict> {
        ready(self.check_now(token, consume))
    }

    fn try_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Option<Result<Verdict, StoreError>> {
        Some(self.check_now(token, consume))
    }

    fn grace_secs(&self) -> i64 {
        self.grace
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        ready(Ok(self.purge_now(now)))
    }

    fn put_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        grant: &'a RefreshGrant,
    ) -> StoreFuture<'a, ()> {
        self.refresh_tokens()
            .insert((issuer.into(), hash.into()), (grant.clone(), false));
        ready(Ok(()))
    }

    fn rotate_refresh<'a>(
        &'a self,
        issuer: &'a str,
        old: &'a str,
        new: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Rotation> {
        let mut all = self.refresh_tokens();
        let answer = match all.get_mut(&(issuer.into(), old.into())) {
            Some((grant, _)) if grant.expires_at < now => Rotation::Unknown,
            Some((grant, true)) => Rotation::Reused(grant.clone()),
            Some((grant, spent)) => {
                *spent = true;
                let grant = grant.clone();
                all.insert((issuer.into(), new.into()), (grant.clone(), false));
                Rotation::Rotated(grant)
            }
            None => Rotation::Unknown,
        };
        ready(Ok(answer))
    }

    fn find_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(RefreshGrant, bool)>> {
        let found = self
            .refresh_tokens()
            .get(&(issuer.into(), hash.into()))
            .filter(|(g, _)| g.expires_at >= now)
            .cloned();
        ready(Ok(found))
    }
}

impl MemoryStore {
    fn check_now(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Result<Verdict, StoreError> {
        if self.revoked_now(token) {
            return Ok(Verdict::Revoked);
        }
        match consume {
            Some(c) => Ok(Verdict::Admitted(Some(self.consume_now(token, c)?))),
            None => Ok(Verdict::Admitted(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocations(store: &MemoryStore) -> usize {
        let issuer = store.issuer("iss").unwrap();
        let r = issuer.revoked.read().unwrap();
        r.tokens.len() + r.subjects.len() + r.clients.len()
    }

    #[tokio::test]
    async fn revocations_of_expired_tokens_go_without_a_purge() {
        let store = MemoryStore::with_grace(0);
        assert_eq!(store.grace, 60, "never under the default leeway");
        let long_ago = now() - 3600;
        for i in 0..100 {
            store
                .revoke("iss", &format!("t-{i}"), long_ago)
                .await
                .unwrap();
        }
        store
            .revoke_issued_until("iss", Principal::Subject("s"), long_ago, long_ago)
            .await
            .unwrap();
        // The first revocation swept (nothing yet); the rest came within
        // the sweep interval.
        assert_eq!(revocations(&store), 101);
        store
            .issuer("iss")
            .unwrap()
            .revoked
            .write()
            .unwrap()
            .next_sweep = 0;
        store.revoke("iss", "live", now() + 600).await.unwrap();
        assert_eq!(revocations(&store), 1, "only the live revocation stays");
        let live = TokenRef {
            issuer: "iss",
            token_id: Some("live"),
            subject: None,
            client_id: None,
            issued_at: None,
            expires_at: now() + 600,
        };
        assert!(store.is_revoked(live).await.unwrap());
    }
}
