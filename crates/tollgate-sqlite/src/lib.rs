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
//! **Schema** (version 1, in `PRAGMA user_version`):
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
//! ```

#![forbid(unsafe_code)]

mod mirror;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RevocationStore, Store, StoreError, StoreFuture,
    TokenRef, Verdict,
};

use crate::mirror::{Change, Kind, Mirror, Revs};
use crate::writer::{Counters, Held, Reply, Request, Shared, Writer, WriterConfig, sql_error};

/// The schema version this crate writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credits (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    spent INTEGER NOT NULL,
    exp INTEGER NOT NULL,
    PRIMARY KEY (iss, jti)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS credits_exp ON credits (exp);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    exp INTEGER NOT NULL,
    PRIMARY KEY (iss, jti)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks (
    iss TEXT NOT NULL,
    kind INTEGER NOT NULL,
    name TEXT NOT NULL,
    mark INTEGER NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (iss, kind, name)
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// Default time an entry outlives its token's `exp` (covers clock leeway).
const DEFAULT_GRACE: i64 = 300;
/// Default largest number of requests committed in one transaction.
const DEFAULT_MAX_BATCH: usize = 512;

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// No syncs: fast, but a crash of the machine (not of the process) may
    /// lose acknowledged consumptions or corrupt the database.
    Off,
    /// Syncs at checkpoints only (in WAL mode): the database stays
    /// consistent, but a power cut may lose the last acknowledged
    /// consumptions (a process crash loses nothing).
    Normal,
    /// Syncs the WAL at every commit: an acknowledged consumption survives a
    /// crash or a power cut. The default.
    #[default]
    Full,
    /// SQLite's `EXTRA`: like `Full`, plus a directory sync when a rollback
    /// journal is deleted; in WAL mode (always used here) the same as
    /// `Full`.
    Extra,
}

impl Synchronous {
    fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// Builds a [`SqliteStore`]: grace period, group size, sync mode.
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    grace: i64,
    max_batch: usize,
    group_wait: Duration,
    synchronous: Synchronous,
    busy_timeout: Duration,
    purge_interval: Duration,
}

impl SqliteStoreBuilder {
    /// Entries outlive their token's `exp` by `seconds` (default 300; keep it
    /// above the validation leeway). Negative values count as 0.
    pub fn grace(mut self, seconds: i64) -> Self {
        self.grace = seconds.max(0);
        self
    }

    /// The largest number of requests committed in one transaction (default
    /// 512; at least 1).
    pub fn max_batch(mut self, requests: usize) -> Self {
        self.max_batch = requests.max(1);
        self
    }

    /// After a group of several requests, how long the next group may wait
    /// for more before it commits (default 500 µs; it stops waiting as soon
    /// as the queue stays empty for 50 µs). The callers answered by one
    /// group come back together: waiting for them lets one sync serve all
    /// of them. Zero: commit as soon as the queue is empty. A lone caller
    /// never waits.
    pub fn group_wait(mut self, wait: Duration) -> Self {
        self.group_wait = wait;
        self
    }

    /// SQLite's `synchronous` mode (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, mode: Synchronous) -> Self {
        self.synchronous = mode;
        self
    }

    /// How long to wait for a lock held by someone else (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How often, while requests come in, the writer removes expired
    /// entries by itself (default 60 s).
    pub fn purge_interval(mut self, every: Duration) -> Self {
        self.purge_interval = every;
        self
    }

    /// Opens (or creates) the database, loads the revocations into memory
    /// and starts the writer thread. Blocks on disk I/O: call it at startup
    /// (or from `spawn_blocking`).
    pub fn open(self) -> Result<SqliteStore, StoreError> {
        let conn = open_connection(&self)?;
        let revs = load_revocations(&conn).map_err(sql_error)?;
        let shared = Arc::new(Shared {
            mirror: Mirror::new(revs),
            counters: Counters::default(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            conn,
            shared.clone(),
            WriterConfig {
                max_batch: self.max_batch,
                group_wait: self.group_wait,
                grace: self.grace,
                purge_every: self.purge_interval,
            },
        );
        let thread = std::thread::Builder::new()
            .name("tollgate-sqlite".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError(format!("sqlite: cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            tx: Some(tx),
            thread: Some(thread),
            shared,
            settings: self,
        })
    }
}

fn open_connection(o: &SqliteStoreBuilder) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&o.path, flags).map_err(sql_error)?;
    conn.busy_timeout(o.busy_timeout).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sql_error)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError(format!(
            "sqlite: WAL journal mode unavailable for {} (got {mode})",
            o.path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", o.synchronous.as_sql())
        .map_err(sql_error)?;
    // Takes the write lock now (and, in exclusive mode, keeps it), so a
    // second owner of the file fails here rather than on its first write.
    conn.execute_batch("BEGIN EXCLUSIVE").map_err(sql_error)?;
    let schema = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Ok(Err(StoreError(format!(
                "sqlite: {} has schema version {version}, newer than this version knows ({SCHEMA_VERSION})",
                o.path.display()
            ))));
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch("COMMIT")?;
        Ok(Ok(()))
    })();
    match schema {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(sql_error(e))
        }
    }
}

fn load_revocations(conn: &Connection) -> rusqlite::Result<Revs> {
    let mut revs = Revs::default();
    let mut stmt = conn.prepare("SELECT iss, jti, exp FROM revoked_tokens")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        revs.apply(&Change::Token {
            iss: row.get::<_, String>(0)?.into(),
            jti: row.get::<_, String>(1)?.into(),
            exp: row.get(2)?,
        });
    }
    let mut stmt = conn.prepare("SELECT iss, kind, name, mark, keep_until FROM watermarks")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let Some(kind) = Kind::from_db(row.get(1)?) else {
            continue;
        };
        revs.apply(&Change::Watermark {
            iss: row.get::<_, String>(0)?.into(),
            kind,
            name: row.get::<_, String>(2)?.into(),
            before: row.get(3)?,
            keep_until: row.get(4)?,
        });
    }
    Ok(revs)
}

/// What the writer has done since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
pub struct SqliteStore {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    settings: SqliteStoreBuilder,
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
    StoreError("sqlite: the writer thread has stopped".into())
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
                .map_err(|_| StoreError("sqlite: the writer thread panicked".into())),
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

    fn revoke_issued_before<'a>(
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
                _ => Err(StoreError("sqlite: consumption left unanswered".into())),
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

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        let cutoff = now.saturating_sub(self.settings.grace);
        self.ask(move |reply| Request::Purge { cutoff, reply })
    }
}
