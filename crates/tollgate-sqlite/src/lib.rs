//! Durable embedded credit and revocation store for Tollgate, on SQLite: a
//! single API node whose credits and revocations survive restarts, crashes
//! and power loss.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate_core::policy::{Credits, Policies};
//! use tollgate_sqlite::SqliteStore;
//!
//! # fn run() -> Result<(), tollgate_core::policy::StoreError> {
//! let store = SqliteStore::open("/var/lib/myapi/tollgate.db")?;
//! let policies = Policies::new(Arc::new(store)).credits(Credits::new());
//! # let _ = policies; Ok(()) }
//! ```
//!
//! **Durability.** The database runs in WAL mode with `synchronous=FULL` by
//! default: a consumption, refund or revocation is acknowledged only after
//! the transaction holding it has committed and been synced to disk, so
//! nothing acknowledged is lost to a crash (SIGKILL) or a power cut.
//!
//! **Group commit.** One writer thread owns the connection. Callers queue
//! their requests to it and wait for the answer; the writer takes a request,
//! drains whatever else is queued (up to [`SqliteStoreBuilder::max_batch`]),
//! runs them all in one `BEGIN IMMEDIATE ... COMMIT`, and only then answers
//! each caller. One sync per group, not per request: under concurrency the
//! groups grow and the throughput with them. When a group's transaction
//! fails, every caller in it gets a [`StoreError`] (the policies fail
//! closed); nothing is acknowledged that was not committed. (The reverse
//! may happen: when the disk fails the sync itself, the group's frames may
//! still be on disk and be found at the next open, credits spent that no
//! caller was told of; never more than the allowance.) After a group of
//! several requests the writer waits a little (up to
//! [`SqliteStoreBuilder::group_wait`]) for the callers it just answered, so
//! that their next requests share one sync.
//!
//! **Exact credits.** Each consumption is one conditional SQL statement (an
//! upsert that adds the cost only when the sum stays within the allowance),
//! never a read followed by a write. Counters are SQLite integers: an
//! allowance above `i64::MAX` counts as `i64::MAX`.
//!
//! **Revocation checks from memory.** The revocations are mirrored in memory
//! (loaded at open, updated after each commit), so
//! [`RevocationStore::is_revoked`] does no I/O and
//! [`RevocationStore::try_is_revoked`] answers without waiting. A
//! [`Store::check`] with a consumption is one trip to the writer.
//!
//! **One process per database.** The connection holds the database file in
//! SQLite's exclusive locking mode: a second store (in this process or
//! another) on the same file fails to open once the busy timeout runs out.
//! Several API instances sharing credits need a shared store (Redis).
//!
//! **Expiry.** Counters and revocations are kept until their token's `exp`
//! plus a grace period (default 300 s); [`Store::purge_expired`] removes
//! older ones, and the writer purges by itself every minute of activity
//! ([`SqliteStoreBuilder::purge_interval`]).
//!
//! **Schema** (version 2, in `PRAGMA user_version`; version 1 files gain
//! the refresh-token table when opened):
//!
//! ```sql
//! CREATE TABLE credits (iss TEXT NOT NULL, jti TEXT NOT NULL,
//!     spent INTEGER NOT NULL, exp INTEGER NOT NULL,
//!     PRIMARY KEY (iss, jti)) WITHOUT ROWID;
//! CREATE INDEX credits_exp ON credits (exp);
//! CREATE TABLE revoked_tokens (iss TEXT NOT NULL, jti TEXT NOT NULL,
//!     exp INTEGER NOT NULL, PRIMARY KEY (iss, jti)) WITHOUT ROWID;
//! -- kind: 0 = subject, 1 = client
//! CREATE TABLE watermarks (iss TEXT NOT NULL, kind INTEGER NOT NULL,
//!     name TEXT NOT NULL, mark INTEGER NOT NULL, keep_until INTEGER NOT NULL,
//!     PRIMARY KEY (iss, kind, name)) WITHOUT ROWID;
//! -- refresh tokens by the hash of their value; spent: 0 or 1
//! CREATE TABLE refresh_tokens (iss TEXT NOT NULL, hash TEXT NOT NULL,
//!     family TEXT NOT NULL, grant_json TEXT NOT NULL, exp INTEGER NOT NULL,
//!     spent INTEGER NOT NULL, PRIMARY KEY (iss, hash)) WITHOUT ROWID;
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod mirror;
mod writer;

use builder::{DEFAULT_GRACE, DEFAULT_MAX_BATCH};
pub use builder::{SqliteStoreBuilder, Synchronous};

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RefreshGrant, RevocationStore, Rotation, Store,
    StoreError, StoreFuture, TokenRef, Verdict,
};

use crate::mirror::{Change, Kind};
use crate::writer::{Held, Reply, Request, Shared};

/// What the writer has done since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Groups of requests committed (one transaction, one sync each).
    pub commits: u64,
    /// Requests answered from committed groups; `operations / commits` is
    /// the mean group size.
    pub operations: u64,
    /// Groups whose transaction failed (each of their callers got an error).
    pub failed_groups: u64,
    /// The largest group committed.
    pub largest_group: u64,
    /// Expired entries removed (by [`Store::purge_expired`] and the
    /// periodic purge).
    pub purged: u64,
}

/// Credits and revocations in a SQLite database: durable, exact, one
/// process. See the [crate documentation](crate).
///
/// Dropping the store (or [`close`](Self::close)) lets the writer finish
/// what is queued, closes the database and joins the writer thread.
///
/// # Examples
///
/// ```
/// use tollgate_core::policy::{RevocationStore, TokenRef};
/// use tollgate_sqlite::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("tollgate-sqlite-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("tollgate.db");
/// let store = SqliteStore::open(&path)?;
/// store.revoke("https://issuer.example", "t-1", 4_102_444_800).await?;
/// store.close()?;
///
/// // The revocation survived the restart.
/// let store = SqliteStore::open(&path)?;
/// let token = TokenRef { issuer: "https://issuer.example", token_id: Some("t-1"), subject: None,
///     client_id: None, issued_at: None, expires_at: 4_102_444_800 };
/// assert!(store.is_revoked(token).await?);
/// # store.close()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub struct SqliteStore {
    pub(crate) tx: Option<Sender<Request>>,
    pub(crate) thread: Option<JoinHandle<()>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: SqliteStoreBuilder,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn stopped() -> StoreError {
    StoreError::new("sqlite: the writer thread has stopped")
}

fn ready<'a, T: Send + 'a>(v: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with the default settings:
    /// WAL, `synchronous=FULL`, grace 300 s, groups of up to 512 requests.
    /// Blocks on disk I/O: call it at startup.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder(path).open()
    }

    /// A builder for a store at `path`, to change the settings.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_path_buf(),
            grace: DEFAULT_GRACE,
            max_batch: DEFAULT_MAX_BATCH,
            group_wait: Duration::from_micros(500),
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(5),
            purge_interval: Duration::from_secs(60),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            commits: c.commits.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
            failed_groups: c.failed_groups.load(Ordering::Relaxed),
            largest_group: c.largest_group.load(Ordering::Relaxed),
            purged: c.purged.load(Ordering::Relaxed),
        }
    }

    /// Finishes the queued requests, closes the database and joins the
    /// writer thread. Dropping the store does the same, without the error.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        // The writer stops once its queue is empty and every sender is gone.
        drop(self.tx.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| StoreError::new("sqlite: the writer thread panicked")),
            None => Ok(()),
        }
    }

    /// Queues a request for the writer; the future resolves once its group
    /// has committed (or failed).
    fn ask<'a, T: Send + 'a>(
        &'a self,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> StoreFuture<'a, T> {
        let (reply, rx) = Reply::new();
        let sent = match &self.tx {
            Some(tx) => tx.send(make(reply)).map_err(|_| stopped()),
            None => Err(stopped()),
        };
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| stopped())?
        })
    }

    fn consume_request<'a>(
        &'a self,
        token: TokenRef<'_>,
        c: Consumption,
        check: bool,
    ) -> StoreFuture<'a, Verdict> {
        let Some(jti) = token.token_id else {
            return ready(Err(StoreError::missing_jti()));
        };
        let token = Held::new(token, jti, check);
        self.ask(move |reply| Request::Consume {
            token,
            c,
            check,
            reply,
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "tollgate-sqlite: shutdown failed");
        }
    }
}

impl RevocationStore for SqliteStore {
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        token_id: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        let change = Change::Token {
            iss: issuer.into(),
            jti: token_id.into(),
            exp: expires_at,
        };
        self.ask(move |reply| Request::Revoke { change, reply })
    }

    fn revoke_issued_until<'a>(
        &'a self,
        issuer: &'a str,
        principal: Principal<'a>,
        before: i64,
        keep_until: i64,
    ) -> StoreFuture<'a, ()> {
        let (kind, name) = match principal {
            Principal::Subject(s) => (Kind::Subject, s),
            Principal::Client(c) => (Kind::Client, c),
        };
        let change = Change::Watermark {
            iss: issuer.into(),
            kind,
            name: name.into(),
            before,
            keep_until,
        };
        self.ask(move |reply| Request::Revoke { change, reply })
    }

    fn is_revoked<'a>(&'a self, token: TokenRef<'a>) -> StoreFuture<'a, bool> {
        ready(Ok(self.shared.mirror.is_revoked(token)))
    }

    fn try_is_revoked(&self, token: TokenRef<'_>) -> Option<Result<bool, StoreError>> {
        Some(Ok(self.shared.mirror.is_revoked(token)))
    }
}

impl CreditStore for SqliteStore {
    fn consume<'a>(&'a self, token: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed> {
        let verdict = self.consume_request(token, c, false);
        Box::pin(async move {
            match verdict.await? {
                Verdict::Admitted(Some(consumed)) => Ok(consumed),
                _ => Err(StoreError::new("sqlite: consumption left unanswered")),
            }
        })
    }

    fn refund<'a>(
        &'a self,
        token: TokenRef<'a>,
        allowance: u64,
        amount: u64,
    ) -> StoreFuture<'a, u64> {
        let Some(jti) = token.token_id else {
            return ready(Err(StoreError::missing_jti()));
        };
        let (issuer, token_id) = (token.issuer.into(), jti.into());
        self.ask(move |reply| Request::Refund {
            issuer,
            token_id,
            allowance,
            amount,
            reply,
        })
    }

    fn spent<'a>(&'a self, issuer: &'a str, token_id: &'a str) -> StoreFuture<'a, Option<u64>> {
        let (issuer, token_id) = (issuer.into(), token_id.into());
        self.ask(move |reply| Request::Spent {
            issuer,
            token_id,
            reply,
        })
    }
}

impl Store for SqliteStore {
    fn check<'a>(
        &'a self,
        token: TokenRef<'a>,
        consume: Option<Consumption>,
    ) -> StoreFuture<'a, Verdict> {
        // Revoked tokens (and plain checks) are answered from memory; a
        // consumption goes to the writer, which checks the revocations
        // again in order with the revocations it commits.
        if self.shared.mirror.is_revoked(token) {
            return ready(Ok(Verdict::Revoked));
        }
        match consume {
            None => ready(Ok(Verdict::Admitted(None))),
            Some(c) => self.consume_request(token, c, true),
        }
    }

    fn grace_secs(&self) -> i64 {
        self.settings.grace
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        let cutoff = now.saturating_sub(self.settings.grace);
        self.ask(move |reply| Request::Purge { cutoff, reply })
    }

    fn put_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        grant: &'a RefreshGrant,
    ) -> StoreFuture<'a, ()> {
        let (issuer, hash, grant) = (issuer.into(), hash.into(), grant.clone());
        self.ask(move |reply| Request::PutRefresh {
            issuer,
            hash,
            grant,
            reply,
        })
    }

    fn rotate_refresh<'a>(
        &'a self,
        issuer: &'a str,
        old: &'a str,
        new: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Rotation> {
        let (issuer, old, new) = (issuer.into(), old.into(), new.into());
        self.ask(move |reply| Request::RotateRefresh {
            issuer,
            old,
            new,
            now,
            reply,
        })
    }

    fn find_refresh<'a>(
        &'a self,
        issuer: &'a str,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(RefreshGrant, bool)>> {
        let (issuer, hash) = (issuer.into(), hash.into());
        self.ask(move |reply| Request::FindRefresh {
            issuer,
            hash,
            now,
            reply,
        })
    }
}
