//! The writer thread: owns the connection and runs queued requests in
//! groups, one transaction (and so one fsync) per group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use tollgate_core::policy::{
    Consumed, Consumption, RefreshGrant, Rotation, StoreError, TokenRef, Verdict,
};

use crate::mirror::{Change, Mirror, Revs};

/// Takes `cost` out of `allowance`, in one conditional statement: inserts
/// the counter only when the cost fits the allowance, adds to it only when
/// the sum stays within it (cost 0 always passes). One row changed: charged;
/// none: exhausted, nothing changed. `?5 - ?3` cannot overflow (both are in
/// 0..=i64::MAX), a sum could. (No `RETURNING`: SQLite buffers its rows in
/// a temporary table, which costs more than reading the counter again.)
const CONSUME: &str = "INSERT INTO credits (iss, jti, spent, exp) \
    SELECT ?1, ?2, ?3, ?4 WHERE ?3 <= ?5 \
    ON CONFLICT (iss, jti) DO UPDATE SET spent = spent + ?3 \
    WHERE ?3 = 0 OR credits.spent <= ?5 - ?3";

const SPENT: &str = "SELECT spent FROM credits WHERE iss = ?1 AND jti = ?2";

/// Gives `?3` back, never below zero spent.
const REFUND: &str = "UPDATE credits SET spent = max(spent - ?3, 0) \
    WHERE iss = ?1 AND jti = ?2";

const REVOKE: &str = "INSERT INTO revoked_tokens (iss, jti, exp) VALUES (?1, ?2, ?3) \
    ON CONFLICT (iss, jti) DO UPDATE SET exp = max(exp, excluded.exp)";

const WATERMARK: &str = "INSERT INTO watermarks (iss, kind, name, mark, keep_until) \
    VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (iss, kind, name) DO UPDATE SET mark = max(mark, excluded.mark), \
    keep_until = max(keep_until, excluded.keep_until)";

const PURGE: [&str; 4] = [
    "DELETE FROM credits WHERE exp < ?1",
    "DELETE FROM revoked_tokens WHERE exp < ?1",
    "DELETE FROM watermarks WHERE keep_until < ?1",
    "DELETE FROM refresh_tokens WHERE exp < ?1",
];

const PUT_REFRESH: &str = "INSERT INTO refresh_tokens (iss, hash, family, grant_json, exp, spent) \
    VALUES (?1, ?2, ?3, ?4, ?5, 0) \
    ON CONFLICT (iss, hash) DO UPDATE SET family = excluded.family, \
    grant_json = excluded.grant_json, exp = excluded.exp, spent = 0";

const FIND_REFRESH: &str = "SELECT family, grant_json, exp, spent FROM refresh_tokens \
    WHERE iss = ?1 AND hash = ?2";

const SPEND_REFRESH: &str = "UPDATE refresh_tokens SET spent = 1 \
    WHERE iss = ?1 AND hash = ?2 AND spent = 0";

/// The largest value a counter holds (SQLite integers are i64).
const MAX: u64 = i64::MAX as u64;

/// Values are stored as SQLite integers (i64): larger ones are capped.
fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::with_cause(format!("sqlite: {e}"), e)
}

/// Counters behind [`crate::Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) operations: AtomicU64,
    pub(crate) failed_groups: AtomicU64,
    pub(crate) largest_group: AtomicU64,
    pub(crate) purged: AtomicU64,
}

/// What the callers and the writer share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) mirror: Mirror,
    pub(crate) counters: Counters,
}

/// A token's fields, owned so that they cross to the writer thread.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) issuer: Box<str>,
    pub(crate) token_id: Box<str>,
    pub(crate) subject: Option<Box<str>>,
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) expires_at: i64,
}

impl Held {
    /// `with_names`: keep `sub` and `client_id` too (for a revocation check).
    pub(crate) fn new(token: TokenRef<'_>, token_id: &str, with_names: bool) -> Self {
        Held {
            issuer: token.issuer.into(),
            token_id: token_id.into(),
            subject: token.subject.filter(|_| with_names).map(Into::into),
            client_id: token.client_id.filter(|_| with_names).map(Into::into),
            issued_at: token.issued_at,
            expires_at: token.expires_at,
        }
    }

    fn as_ref(&self) -> TokenRef<'_> {
        TokenRef {
            issuer: &self.issuer,
            token_id: Some(&self.token_id),
            subject: self.subject.as_deref(),
            client_id: self.client_id.as_deref(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }
}

/// Where a request's answer goes, and the answer once computed (sent only
/// after the group commits).
#[derive(Debug)]
pub(crate) struct Reply<T> {
    tx: oneshot::Sender<Result<T, StoreError>>,
    answer: Option<T>,
}

impl<T> Reply<T> {
    pub(crate) fn new() -> (Self, oneshot::Receiver<Result<T, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx, answer: None }, rx)
    }

    fn finish(self, failed: Option<&StoreError>) {
        let result = match (failed, self.answer) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(answer)) => Ok(answer),
            (None, None) => Err(StoreError::new("sqlite: request left unanswered")),
        };
        // The caller may have gone away; what was committed stays committed.
        let _ = self.tx.send(result);
    }
}

/// One caller's request to the writer.
#[derive(Debug)]
pub(crate) enum Request {
    /// A consumption; with `check`, refused (nothing spent) when the token
    /// is revoked.
    Consume {
        token: Held,
        c: Consumption,
        check: bool,
        reply: Reply<Verdict>,
    },
    Refund {
        issuer: Box<str>,
        token_id: Box<str>,
        allowance: u64,
        amount: u64,
        reply: Reply<u64>,
    },
    Spent {
        issuer: Box<str>,
        token_id: Box<str>,
        reply: Reply<Option<u64>>,
    },
    /// A revocation by `jti` or a watermark.
    Revoke { change: Change, reply: Reply<()> },
    /// Removes entries whose expiry is before `cutoff`.
    Purge { cutoff: i64, reply: Reply<u64> },
    PutRefresh {
        issuer: Box<str>,
        hash: Box<str>,
        grant: RefreshGrant,
        reply: Reply<()>,
    },
    /// Spends `old` and keeps `new` for its grant, in this group's order:
    /// the writer is the only one, so of two rotations of one token the
    /// second sees it spent.
    RotateRefresh {
        issuer: Box<str>,
        old: Box<str>,
        new: Box<str>,
        now: i64,
        reply: Reply<Rotation>,
    },
    FindRefresh {
        issuer: Box<str>,
        hash: Box<str>,
        now: i64,
        reply: Reply<Option<(RefreshGrant, bool)>>,
    },
}

impl Request {
    fn finish(self, failed: Option<&StoreError>) {
        match self {
            Request::Consume { reply, .. } => reply.finish(failed),
            Request::Refund { reply, .. } => reply.finish(failed),
            Request::Spent { reply, .. } => reply.finish(failed),
            Request::Revoke { reply, .. } => reply.finish(failed),
            Request::Purge { reply, .. } => reply.finish(failed),
            Request::PutRefresh { reply, .. } => reply.finish(failed),
            Request::RotateRefresh { reply, .. } => reply.finish(failed),
            Request::FindRefresh { reply, .. } => reply.finish(failed),
        }
    }
}

/// Revocations written in the group being built, not yet committed: the
/// consumptions later in the group must see them, other callers must not
/// until the commit.
#[derive(Default)]
struct Staged {
    changes: Vec<Change>,
    revs: Revs,
    /// Entries deleted by purges in the group.
    purged: u64,
}

impl Staged {
    fn push(&mut self, change: Change) {
        self.revs.apply(&change);
        self.changes.push(change);
    }

    fn clear(&mut self) {
        self.purged = 0;
        self.changes.clear();
        if !self.revs.is_empty() {
            self.revs = Revs::default();
        }
    }
}

/// The writer's settings.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub(crate) max_batch: usize,
    pub(crate) group_wait: Duration,
    pub(crate) grace: i64,
    pub(crate) purge_every: Duration,
}

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    config: WriterConfig,
    staged: Staged,
    /// Requests in the last group committed.
    last_group: usize,
}

/// While a group waits for more requests, it stops waiting when none came
/// for this long.
const IDLE_GAP: Duration = Duration::from_micros(50);

fn now_secs() -> i64 {
    tollgate_core::Clock::now_secs(&tollgate_core::SystemClock)
}

impl Writer {
    pub(crate) fn new(conn: Connection, shared: Arc<Shared>, config: WriterConfig) -> Self {
        Writer {
            conn,
            shared,
            config,
            staged: Staged::default(),
            last_group: 0,
        }
    }

    /// Runs until every sender is gone, then closes the connection.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.config.max_batch.max(1));
        let mut next_purge = Instant::now() + self.config.purge_every;
        while let Ok(first) = rx.recv() {
            batch.push(first);
            self.group(&mut batch, &rx);
            if Instant::now() >= next_purge {
                self.purge_in_background();
                next_purge = Instant::now() + self.config.purge_every;
            }
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "tollgate-sqlite: closing the database failed");
        }
    }

    /// Runs `batch` in one transaction, then answers every request in it:
    /// all with their answers once committed, all with an error otherwise.
    fn group(&mut self, batch: &mut Vec<Request>, rx: &Receiver<Request>) {
        self.staged.clear();
        match self.run_group(batch, rx) {
            Ok(()) => {
                self.committed();
                let n = batch.len() as u64;
                self.last_group = batch.len();
                let c = &self.shared.counters;
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.operations.fetch_add(n, Ordering::Relaxed);
                c.largest_group.fetch_max(n, Ordering::Relaxed);
                for req in batch.drain(..) {
                    req.finish(None);
                }
            }
            Err(e) => {
                self.rollback();
                self.last_group = 0;
                tracing::warn!(error = %e, requests = batch.len(), "tollgate-sqlite: group failed");
                self.shared
                    .counters
                    .failed_groups
                    .fetch_add(1, Ordering::Relaxed);
                let e = sql_error(e);
                for req in batch.drain(..) {
                    req.finish(Some(&e));
                }
            }
        }
        self.staged.clear();
    }

    /// After a commit: the staged revocations become visible.
    fn committed(&self) {
        self.shared.mirror.apply_all(&self.staged.changes);
        self.shared
            .counters
            .purged
            .fetch_add(self.staged.purged, Ordering::Relaxed);
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "tollgate-sqlite: rollback failed");
        }
    }

    /// Runs the group's transaction: the requests in `batch`, then those
    /// that arrive while it runs, until the queue stays empty (or the group
    /// is full). After a group of several requests, it waits up to
    /// `group_wait` for more: the callers just answered are on their way
    /// back, and without the wait they would form a group of their own,
    /// each group waiting for the other's sync.
    fn run_group(
        &mut self,
        batch: &mut Vec<Request>,
        rx: &Receiver<Request>,
    ) -> rusqlite::Result<()> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let max = self.config.max_batch;
        let deadline = (self.last_group > 1).then(|| Instant::now() + self.config.group_wait);
        let mut done = 0;
        loop {
            while done < batch.len() {
                self.run_one(&mut batch[done])?;
                done += 1;
            }
            if batch.len() >= max {
                break;
            }
            match rx.try_recv() {
                Ok(req) => {
                    batch.push(req);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            let Some(wait) = deadline.and_then(|d| d.checked_duration_since(now)) else {
                break;
            };
            match rx.recv_timeout(wait.min(IDLE_GAP)) {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn run_one(&mut self, req: &mut Request) -> rusqlite::Result<()> {
        match req {
            Request::Consume {
                token,
                c,
                check,
                reply,
            } => {
                let t = token.as_ref();
                let revoked =
                    *check && (self.shared.mirror.is_revoked(t) || self.staged.revs.is_revoked(t));
                reply.answer = Some(if revoked {
                    Verdict::Revoked
                } else {
                    Verdict::Admitted(Some(self.consume(token, *c)?))
                });
            }
            Request::Refund {
                issuer,
                token_id,
                allowance,
                amount,
                reply,
            } => {
                self.conn.prepare_cached(REFUND)?.execute(params![
                    &**issuer,
                    &**token_id,
                    to_db(*amount)
                ])?;
                let spent = self.spent(issuer, token_id)?;
                let allowance = (*allowance).min(MAX);
                reply.answer = Some(match spent {
                    Some(spent) => allowance.saturating_sub(spent),
                    None => allowance,
                });
            }
            Request::Spent {
                issuer,
                token_id,
                reply,
            } => {
                reply.answer = Some(self.spent(issuer, token_id)?);
            }
            Request::Revoke { change, reply } => {
                match &*change {
                    Change::Token { iss, jti, exp } => {
                        self.conn
                            .prepare_cached(REVOKE)?
                            .execute(params![iss, jti, exp])?;
                    }
                    Change::Watermark {
                        iss,
                        kind,
                        name,
                        before,
                        keep_until,
                    } => {
                        self.conn.prepare_cached(WATERMARK)?.execute(params![
                            iss,
                            *kind as i64,
                            name,
                            before,
                            keep_until
                        ])?;
                    }
                    Change::Purge { .. } => {}
                }
                self.staged.push(change.clone());
                reply.answer = Some(());
            }
            Request::Purge { cutoff, reply } => {
                let n = self.purge(*cutoff)?;
                reply.answer = Some(n);
            }
            Request::PutRefresh {
                issuer,
                hash,
                grant,
                reply,
            } => {
                self.put_refresh(issuer, hash, grant)?;
                reply.answer = Some(());
            }
            Request::RotateRefresh {
                issuer,
                old,
                new,
                now,
                reply,
            } => {
                reply.answer = Some(match self.find_refresh(issuer, old)? {
                    Some((grant, _)) if grant.expires_at < *now => Rotation::Unknown,
                    Some((grant, true)) => Rotation::Reused(grant),
                    Some((grant, false)) => {
                        self.conn
                            .prepare_cached(SPEND_REFRESH)?
                            .execute(params![&**issuer, &**old])?;
                        self.put_refresh(issuer, new, &grant)?;
                        Rotation::Rotated(grant)
                    }
                    None => Rotation::Unknown,
                });
            }
            Request::FindRefresh {
                issuer,
                hash,
                now,
                reply,
            } => {
                reply.answer = Some(
                    self.find_refresh(issuer, hash)?
                        .filter(|(g, _)| g.expires_at >= *now),
                );
            }
        }
        Ok(())
    }

    fn put_refresh(&self, issuer: &str, hash: &str, g: &RefreshGrant) -> rusqlite::Result<()> {
        self.conn.prepare_cached(PUT_REFRESH)?.execute(params![
            issuer,
            hash,
            &g.family,
            &g.grant,
            g.expires_at
        ])?;
        Ok(())
    }

    fn find_refresh(
        &self,
        issuer: &str,
        hash: &str,
    ) -> rusqlite::Result<Option<(RefreshGrant, bool)>> {
        self.conn
            .prepare_cached(FIND_REFRESH)?
            .query_row(params![issuer, hash], |r| {
                Ok((
                    RefreshGrant {
                        family: r.get(0)?,
                        grant: r.get(1)?,
                        expires_at: r.get(2)?,
                    },
                    r.get::<_, i64>(3)? != 0,
                ))
            })
            .optional()
    }

    /// An allowance above `i64::MAX` counts as `i64::MAX`; a cost above the
    /// allowance is refused without touching the counter.
    fn consume(&self, token: &Held, c: Consumption) -> rusqlite::Result<Consumed> {
        let allowance = c.allowance.min(MAX);
        let charged = c.cost <= allowance
            && self.conn.prepare_cached(CONSUME)?.execute(params![
                token.issuer,
                token.token_id,
                to_db(c.cost),
                token.expires_at,
                to_db(allowance)
            ])? == 1;
        // The statement decided; the counter is read for the answer only
        // (no other writer exists between the two).
        let spent = self.spent(&token.issuer, &token.token_id)?.unwrap_or(0);
        let remaining = allowance.saturating_sub(spent);
        Ok(if charged {
            Consumed::Charged { remaining }
        } else {
            Consumed::Exhausted { remaining }
        })
    }

    fn spent(&self, issuer: &str, token_id: &str) -> rusqlite::Result<Option<u64>> {
        let spent: Option<i64> = self
            .conn
            .prepare_cached(SPENT)?
            .query_row(params![issuer, token_id], |r| r.get(0))
            .optional()?;
        Ok(spent.map(from_db))
    }

    /// Deletes what expired before `cutoff`; the mirror follows at commit.
    fn purge(&mut self, cutoff: i64) -> rusqlite::Result<u64> {
        let mut n = 0;
        for sql in PURGE {
            n += self.conn.prepare_cached(sql)?.execute([cutoff])? as u64;
        }
        self.staged.push(Change::Purge { cutoff });
        self.staged.purged += n;
        Ok(n)
    }

    /// The periodic purge, in a transaction of its own.
    fn purge_in_background(&mut self) {
        let cutoff = now_secs().saturating_sub(self.config.grace);
        self.staged.clear();
        let result = (|| {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let n = self.purge(cutoff)?;
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok::<_, rusqlite::Error>(n)
        })();
        match result {
            Ok(n) => {
                self.committed();
                tracing::debug!(removed = n, "tollgate-sqlite: purged expired entries");
            }
            Err(e) => {
                self.rollback();
                tracing::warn!(error = %e, "tollgate-sqlite: periodic purge failed");
            }
        }
        self.staged.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: &str) -> Held {
        Held {
            issuer: "iss".into(),
            token_id: jti.into(),
            subject: None,
            client_id: None,
            issued_at: None,
            expires_at: i64::MAX,
        }
    }

    /// One request of a group fails (here: its table is missing): every
    /// caller of the group gets an error, and the group's writes are rolled
    /// back. The next group works.
    #[test]
    fn a_failed_group_answers_everyone_with_an_error() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE credits (iss TEXT NOT NULL, jti TEXT NOT NULL, \
             spent INTEGER NOT NULL, exp INTEGER NOT NULL, PRIMARY KEY (iss, jti))",
        )
        .expect("schema");
        let shared = Arc::new(Shared {
            mirror: Mirror::default(),
            counters: Counters::default(),
        });
        let writer = Writer::new(
            conn,
            shared.clone(),
            WriterConfig {
                max_batch: 16,
                group_wait: Duration::ZERO,
                grace: 0,
                purge_every: Duration::from_secs(3600),
            },
        );
        let c = Consumption {
            allowance: 10,
            cost: 1,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (first, first_rx) = Reply::new();
        let (revoke, revoke_rx) = Reply::new();
        let (last, last_rx) = Reply::new();
        let consume = |reply| Request::Consume {
            token: token("a"),
            c,
            check: false,
            reply,
        };
        // Queued before the writer starts: one group.
        tx.send(consume(first)).expect("send");
        tx.send(Request::Revoke {
            change: Change::Token {
                iss: "iss".into(),
                jti: "a".into(),
                exp: 0,
            },
            reply: revoke,
        })
        .expect("send");
        tx.send(consume(last)).expect("send");
        let thread = std::thread::spawn(move || writer.run(rx));

        assert!(first_rx.blocking_recv().expect("answer").is_err());
        assert!(revoke_rx.blocking_recv().expect("answer").is_err());
        assert!(!shared.mirror.is_revoked(token("a").as_ref()));
        // The group stopped at the failure: the last request, not yet
        // taken, forms the next group. Nothing of the failed group was kept.
        assert_eq!(
            last_rx.blocking_recv().expect("answer"),
            Ok(Verdict::Admitted(Some(Consumed::Charged { remaining: 9 })))
        );
        drop(tx);
        thread.join().expect("writer");
        let c = &shared.counters;
        assert_eq!(c.failed_groups.load(Ordering::Relaxed), 1);
        assert_eq!(c.commits.load(Ordering::Relaxed), 1);
        assert_eq!(c.operations.load(Ordering::Relaxed), 1);
        assert_eq!(c.largest_group.load(Ordering::Relaxed), 1);
    }
}
