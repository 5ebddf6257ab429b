//! [`SqliteStoreBuilder`]: the settings, the schema, and opening the
//! database with its writer thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tollgate_core::policy::StoreError;

use crate::SqliteStore;
use crate::mirror::{Change, Kind, Mirror, Revs};
use crate::writer::{Counters, Shared, Writer, WriterConfig, sql_error};

/// The schema version this crate writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

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
CREATE TABLE IF NOT EXISTS refresh_tokens (
    iss TEXT NOT NULL,
    hash TEXT NOT NULL,
    family TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    exp INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    PRIMARY KEY (iss, hash)
) WITHOUT ROWID;
PRAGMA user_version = 2;
";

/// Default time an entry outlives its token's `exp` (covers clock leeway).
pub(crate) const DEFAULT_GRACE: i64 = 300;
/// Default largest number of requests committed in one transaction.
pub(crate) const DEFAULT_MAX_BATCH: usize = 512;

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
#[must_use]
pub struct SqliteStoreBuilder {
    pub(crate) path: PathBuf,
    pub(crate) grace: i64,
    pub(crate) max_batch: usize,
    pub(crate) group_wait: Duration,
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) purge_interval: Duration,
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
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database cannot be opened or created, its
    /// schema is of another version, or the writer thread cannot start.
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
            .map_err(|e| StoreError::new(format!("sqlite: cannot start the writer thread: {e}")))?;
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
        return Err(StoreError::new(format!(
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
            return Ok(Err(StoreError::new(format!(
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
