//! Checks that arrive together go to Redis together: one `EVALSHA` of
//! [`CHECK_MANY`](crate::scripts::CHECK_MANY) runs each in turn, atomically
//! and in arrival order, exactly as if each were its own script call.
//!
//! Nothing waits for company: a check is sent at once while fewer than
//! [`IN_FLIGHT`] calls are outstanding; only when that many are, the checks
//! arriving meanwhile queue and leave together in the next call. Under
//! load this spares most of the per-call cost on both sides (encoding,
//! system calls, reply parsing here; command dispatch and script set-up in
//! Redis), which on a machine shared with `redis-server` is most of it.

use std::sync::Arc;

use redis::Script;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tollgate_core::policy::StoreError;

use crate::KindStr as _;
use crate::conn::Conn;

/// Script calls outstanding at once.
pub(crate) const IN_FLIGHT: usize = 2;

/// Most checks in one call.
pub(crate) const MOST: usize = 128;

/// What Redis checks for one request: the revocation marker, the
/// watermarks, and (on `consume`) the counter.
pub(crate) struct Keys {
    pub(crate) revoked: String,
    pub(crate) sub: String,
    pub(crate) client: String,
    pub(crate) counter: String,
    pub(crate) consume: bool,
    pub(crate) issued_at: Option<i64>,
}

/// One check, as [`CHECK_MANY`](crate::scripts::CHECK_MANY) takes it.
pub(crate) struct Job {
    pub(crate) keys: Keys,
    pub(crate) allowance: u64,
    pub(crate) cost: u64,
    pub(crate) expiry: i64,
    pub(crate) reply: oneshot::Sender<Result<[i64; 2], StoreError>>,
}

/// The queue in front of Redis; the task behind it ends with the last
/// clone of the store.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    pub(crate) fn start(conn: Conn, script: Script, grace: i64) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, conn, Arc::new(script), grace));
        Batcher { tx }
    }

    /// The check's reply, `{code, left}` as [`CHECK`](crate::scripts::CHECK) gives it.
    pub(crate) async fn check(
        &self,
        keys: Keys,
        allowance: u64,
        cost: u64,
        expiry: i64,
    ) -> Result<[i64; 2], StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                keys,
                allowance,
                cost,
                expiry,
                reply,
            })
            .map_err(|_| StoreError::new("redis: the store is shutting down"))?;
        answer
            .await
            .map_err(|_| StoreError::new("redis: the check was dropped"))?
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, conn: Conn, script: Arc<Script>, grace: i64) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = Vec::with_capacity(8);
        jobs.push(first);
        while jobs.len() < MOST {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (mut conn, script) = (conn.clone(), script.clone());
        tokio::spawn(async move {
            let answer = call(&mut conn, &script, grace, &jobs).await;
            drop(permit);
            match answer {
                Ok(codes) => {
                    for (job, pair) in jobs.into_iter().zip(codes.chunks_exact(2)) {
                        let _ = job.reply.send(Ok([pair[0], pair[1]]));
                    }
                }
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(StoreError::new(e.clone())));
                    }
                }
            }
        });
    }
}

/// One script call for `jobs`: two numbers per job, in order.
async fn call(
    conn: &mut Conn,
    script: &Script,
    grace: i64,
    jobs: &[Job],
) -> Result<Vec<i64>, String> {
    // EVALSHA written straight into one command buffer: no allocation
    // per key or argument.
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(jobs.len() * 4);
    for Job { keys: k, .. } in jobs {
        cmd.arg(&k.revoked)
            .arg(&k.sub)
            .arg(&k.client)
            .arg(&k.counter);
    }
    cmd.arg(grace);
    for job in jobs {
        cmd.arg(if job.keys.consume { "1" } else { "0" });
        match job.keys.issued_at {
            Some(iat) => cmd.arg(iat),
            None => cmd.arg(""),
        };
        cmd.arg(job.allowance).arg(job.cost).arg(job.expiry);
    }
    // The error's kind only: never the command, which names tokens.
    let kind = |e: redis::RedisError| format!("redis: {}", e.kind_str());
    let codes: Vec<i64> = match cmd.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            // Redis restarted or flushed its scripts: load, then again.
            script
                .prepare_invoke()
                .load_async(conn)
                .await
                .map_err(kind)?;
            cmd.query_async(conn).await.map_err(kind)?
        }
        other => other.map_err(kind)?,
    };
    if codes.len() != jobs.len() * 2 {
        return Err("redis: unexpected script reply".to_owned());
    }
    Ok(codes)
}
