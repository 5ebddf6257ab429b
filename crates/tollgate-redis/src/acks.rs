//! Writes acknowledged by replicas, one `WAIT` for many.
//!
//! `WAIT` covers every earlier write of the connection it is sent on, and
//! a blocked `WAIT` holds up every later command on that connection (the
//! cluster client shares one per node). So at most one `WAIT` per token
//! (hash tag) is outstanding: a write that completed joins the next one,
//! sent when the one in flight returns, and every write that joined before
//! it was sent is answered by it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tollgate_core::policy::StoreError;

use crate::KindStr as _;
use crate::conn::Conn;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The writes waiting for the next `WAIT`, per hash tag.
pub(crate) struct Acks {
    conn: Conn,
    replicas: usize,
    timeout_ms: u64,
    /// Tags with a `WAIT` in flight, and who waits for the next one.
    waiting: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl Acks {
    pub(crate) fn new(conn: Conn, replicas: usize, timeout_ms: u64) -> Acks {
        Acks {
            conn,
            replicas,
            timeout_ms,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// Returns once `replicas` replicas have every write this process made
    /// to `key`'s node before now (the write to `key` included).
    pub(crate) async fn acknowledged(self: &Arc<Self>, key: &str) -> Result<(), StoreError> {
        let tag = hash_tag(key).to_owned();
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match waiting.get_mut(&tag) {
                Some(next) => {
                    next.push(tx);
                    false
                }
                None => {
                    waiting.insert(tag.clone(), vec![tx]);
                    true
                }
            }
        };
        if start {
            tokio::spawn(self.clone().drive(tag, key.to_owned()));
        }
        rx.await
            .map_err(|_| StoreError::new("redis: the acknowledgement was dropped"))?
            .map_err(StoreError::new)
    }

    /// Sends `WAIT`s for `tag` while anyone waits.
    async fn drive(self: Arc<Self>, tag: String, key: String) {
        loop {
            let batch = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                let Some(next) = waiting.get_mut(&tag) else {
                    return;
                };
                if next.is_empty() {
                    waiting.remove(&tag);
                    return;
                }
                std::mem::take(next)
            };
            let answer = match self
                .conn
                .clone()
                .wait_replicas(&key, self.replicas, self.timeout_ms)
                .await
            {
                Ok(got) if got >= self.replicas => Ok(()),
                Ok(got) => Err(format!(
                    "redis: write acknowledged by {got} of {} replicas",
                    self.replicas
                )),
                Err(e) => Err(format!("redis: {}", e.kind_str())),
            };
            for w in batch {
                let _ = w.send(answer.clone());
            }
        }
    }
}

/// The part of `key` Redis Cluster hashes: between the first `{` and the
/// next `}` when not empty, else the whole key.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn hash_tags_as_redis_reads_them() {
        assert_eq!(hash_tag("p:c:{iss\u{1f}jti}"), "iss\u{1f}jti");
        assert_eq!(hash_tag("p:c:{iss\u{1f}jti}:receipt"), "iss\u{1f}jti");
        assert_eq!(hash_tag("p:ws:iss\u{1f}sub"), "p:ws:iss\u{1f}sub");
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
    }
}
