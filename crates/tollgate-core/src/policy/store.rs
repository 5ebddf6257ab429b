//! The store traits: where credit counters and revocations live.

use crate::error::Cause;

use std::future::Future;
use std::pin::Pin;

/// A store operation in flight.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store could not answer (connection lost, disk error, timeout). The
/// policies turn it into a 503 with `Retry-After` (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store unavailable: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    cause: Option<Cause>,
}

impl StoreError {
    /// A store failure described by `message` (never a token or a secret).
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            cause: None,
        }
    }

    /// A store failure that `cause` (the client's or the database's error)
    /// led to; `message` says what it was without naming a token.
    pub fn with_cause(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError {
            message: message.into(),
            cause: Some(Cause::new(cause)),
        }
    }

    /// What went wrong, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A consumption asked for a token without a `jti`: a metered token
    /// cannot be counted without one.
    pub fn missing_jti() -> StoreError {
        StoreError::new("a metered token needs a `jti`")
    }
}

/// What a store needs to know about a token. Counters are keyed by
/// (`issuer`, `token_id`) and live until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `jti`; a metered token always has one.
    pub token_id: Option<&'a str>,
    /// `sub`.
    pub subject: Option<&'a str>,
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `iat`, seconds since the epoch.
    pub issued_at: Option<i64>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// Whose tokens a watermark revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// Every token with this `sub`.
    Subject(&'a str),
    /// Every token with this `client_id`.
    Client(&'a str),
}

/// A consumption: take `cost` out of `allowance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumption {
    /// The token's allowance (its credits claim).
    pub allowance: u64,
    /// What this request costs (0 allowed).
    pub cost: u64,
}

/// The answer to a consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Taken; `remaining` credits are left.
    Charged {
        /// Credits left after this consumption.
        remaining: u64,
    },
    /// Not taken: fewer than `cost` credits are left. Nothing changed.
    Exhausted {
        /// Credits left.
        remaining: u64,
    },
}

/// The combined answer of [`Store::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is revoked; nothing was spent.
    Revoked,
    /// Not revoked; the consumption's outcome, if one was asked for.
    Admitted(Option<Consumed>),
}

/// Revocations: single tokens by (`iss`, `jti`) until their `exp`, and
/// watermarks that revoke every token of a subject or client issued before a
/// time.
///
/// Write revocations to the store the APIs read: a revocation in another
/// store (the token server's own, say) is never seen by them.
///
/// # Examples
///
/// ```
/// use tollgate_core::policy::{MemoryStore, Principal, RevocationStore, TokenRef};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tollgate_core::policy::StoreError> {
/// let store = MemoryStore::new();
/// let iss = "https://issuer.example";
/// let now = 1_800_000_000;
///
/// // One leaked token, by its `jti`, until it would expire anyway:
/// store.revoke(iss, "t-1", now + 600).await?;
/// // Sign alice out everywhere: every token of hers issued up to now.
/// store.revoke_issued_until(iss, Principal::Subject("alice"), now, now + 3600).await?;
///
/// let older = TokenRef { issuer: iss, token_id: Some("t-2"), subject: Some("alice"),
///     client_id: None, issued_at: Some(now - 60), expires_at: now + 600 };
/// let newer = TokenRef { issued_at: Some(now + 5), ..older };
/// assert!(store.is_revoked(older).await?);
/// assert!(!store.is_revoked(newer).await?);
/// # Ok(()) }
/// ```
pub trait RevocationStore: Send + Sync + 'static {
    /// Revokes one token until `expires_at` (after which it is invalid anyway).
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()>;

    /// Revokes every token of `principal` from `issuer` whose `iat` is at
    /// or before `until` (tokens without `iat` included). Inclusive: `iat`
    /// counts whole seconds, which cannot order a token and a revocation
    /// within one second, so a token of the revocation's own second is
    /// revoked with it rather than surviving it. The watermark may be
    /// forgotten after `keep_until`: pass the latest `exp` such a token can
    /// have. A later call with an earlier `before` does not lower it.
    fn revoke_issued_until<'a>(
        &'a self,
        issuer: &'a str,
        principal: Principal<'a>,
        until: i64,
        keep_until: i64,
    ) -> StoreFuture<'a, ()>;

    /// True when the token is revoked by `jti` or by a watermark.
    fn is_revoked<'a>(&'a self, token: TokenRef<'a>) -> StoreFuture<'a, bool>;

    /// [`is_revoked`](Self::is_revoked) without waiting, for stores that can
    /// answer from memory. `None`: call the async method.
    fn try_is_revoked(&self, token: TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        let _ = token;
        None
    }
}

/// Credit counters: atomic consumption out of a token's allowance.
pub trait CreditStore: Send + Sync + 'static {
    /// Takes `c.cost` out of what is left of `c.allowance` for the token, in
    /// one atomic step: concurrent consumptions never spend more than the
    /// allowance. The counter lives until the token's `exp`.
    fn consume<'a>(&'a self, token: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed>;

    /// Gives `amount` back (never below zero spent). Returns the credits left.
    /// Callers only refund what they charged.
    fn refund<'a>(
        &'a self,
        token: TokenRef<'a>,
        allowance: u64,
        amount: u64,
    ) -> StoreFuture<'a, u64>;

    /// Credits spent so far by (`issuer`, `token_id`); `None` when no counter
    /// exists (never used, or expired and purged).
    fn spent<'a>(&'a self, issuer: &'a str, token_id: &'a str) -> StoreFuture<'a, Option<u64>>;

    /// [`consume`](Self::consume) without waiting; `None`: call the async method.
    fn try_consume(
        &self,
        token: TokenRef<'_>,
        c: Consumption,
    ) -> Option<Result<Consumed, StoreError>> {
        let _ = (token, c);
        None
    }

    /// [`refund`](Self::refund) without waiting; `None`: call the async method.
    fn try_refund(
        &self,
        token: TokenRef<'_>,
        allowance: u64,
        amount: u64,
    ) -> Option<Result<u64, StoreError>> {
        let _ = (token, allowance, amount);
        None
    }
}

/// A refresh-token grant as a store keeps it: under the hash of the token
/// (never the token), for one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// The family: every refresh token rotated from the first one, and the
    /// access tokens issued with them (their `sid`).
    pub family: String,
    /// What the family may do, opaque to the store (the token server's
    /// JSON: client, allowance, addresses, scopes, audience, subject).
    pub grant: String,
    /// When the family ends (seconds since the epoch); its tokens are
    /// forgotten after this plus the store's grace.
    pub expires_at: i64,
}

/// The answer to [`Store::rotate_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The old token was live: it is spent now, and the new one carries
    /// the grant.
    Rotated(RefreshGrant),
    /// The old token was spent already: a replay (RFC 9700 §4.14.2).
    /// Nothing changed; the caller revokes the family.
    Reused(RefreshGrant),
    /// No such token (never issued, or its family ended).
    Unknown,
}

fn no_refresh<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(async { Err(StoreError::new("this store keeps no refresh tokens")) })
}

/// A store of both kinds. [`check`](Store::check) answers revocation and
/// consumption together: a network store overrides it to need one round
/// trip; the default asks the two traits in turn.
pub trait Store: RevocationStore + CreditStore {
    /// Revocation check, then (only when not revoked) the consumption.
    fn check<'a>(
        &'a self,
        token: TokenRef<'a>,
        consume: Option<Consumption>,
    ) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            if self.is_revoked(token).await? {
                return Ok(Verdict::Revoked);
            }
            match consume {
                Some(c) => Ok(Verdict::Admitted(Some(self.consume(token, c).await?))),
                None => Ok(Verdict::Admitted(None)),
            }
        })
    }

    /// [`check`](Self::check) without waiting; `None`: call the async method.
    fn try_check(
        &self,
        token: TokenRef<'_>,
        consume: Option<Consumption>,
    ) -> Option<Result<Verdict, StoreError>> {
        match self.try_is_revoked(token)? {
            Err(e) => Some(Err(e)),
            Ok(true) => Some(Ok(Verdict::Revoked)),
            Ok(false) => match consume {
                None => Some(Ok(Verdict::Admitted(None))),
                Some(c) => Some(
                    self.try_consume(token, c)?
                        .map(|c| Verdict::Admitted(Some(c))),
                ),
            },
        }
    }

    /// Removes counters and revocations that expired before `now` (seconds
    /// since the epoch) minus the store's grace period. Returns how many
    /// entries went. Stores whose entries expire by themselves return 0.
    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64>;

    /// Keeps a new refresh token (by `hash`) for `grant`, live (not spent).
    ///
    /// The default refuses: a store that keeps no refresh tokens cannot
    /// back a token server that issues them.
    fn put_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        grant: &'a RefreshGrant,
    ) -> StoreFuture<'a, ()> {
        let _ = (issuer, hash, grant);
        no_refresh()
    }

    /// Rotates in one atomic step: when `old` is live and its family has
    /// not ended at `now`, `old` becomes spent and `new` is kept, live, for
    /// the same grant ([`Rotation::Rotated`]). Of concurrent rotations of
    /// one token exactly one is `Rotated`; the others (and any later one)
    /// are [`Rotation::Reused`]. Spent tokens are kept until their family
    /// ends, so a replay is always recognised.
    fn rotate_refresh<'a>(
        &'a self,
        issuer: &'a str,
        old: &'a str,
        new: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Rotation> {
        let _ = (issuer, old, new, now);
        no_refresh()
    }

    /// The grant of a refresh token and whether it is spent; `None` when
    /// unknown or its family ended at `now`.
    fn find_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(RefreshGrant, bool)>> {
        let _ = (issuer, hash, now);
        no_refresh()
    }

    /// Seconds a counter or a revocation outlives its token's `exp`. A
    /// token is accepted until `exp` plus the issuer's leeway, so an
    /// [`Authenticator`](crate::Authenticator) refuses to be built over a
    /// store whose grace is shorter than the longest leeway: an entry purged
    /// while its token is still accepted would hand credits back or let a
    /// revoked token in again.
    fn grace_secs(&self) -> i64;
}
