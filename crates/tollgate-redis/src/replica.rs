//! The revocation replica: every revocation (`jti` markers, subject and
//! client watermarks) kept in this process, filled from Redis at start and
//! after every reconnection, and kept current by the messages the
//! revocation scripts publish. Unmetered requests are answered from it
//! without a round trip.
//!
//! Why pub/sub: a revocation is small, rare and must reach every instance
//! at once; the replica is rebuilt from the keys themselves after any gap
//! (a stream would need its own trimming and still a rebuild when trimmed
//! past). Liveness is end to end: every instance publishes a heartbeat on
//! the channel; a replica that hears nothing (heartbeat or revocation) for
//! [`Replica::silence`] stops answering (requests ask Redis, and fail
//! closed if it cannot answer) and resubscribes, then rebuilds. A revocation made anywhere is seen here
//! within the pub/sub delivery time while connected, and never trusted
//! beyond the silence bound while cut off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use tollgate_core::policy::TokenRef;

use crate::conn::Conn;

/// What a message or a key read says: a key and its value (`1` for a
/// revoked marker, the mark for a watermark) live until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    value: i64,
    expires_at: i64,
}

/// The replica of one store's revocations.
#[derive(Debug)]
pub(crate) struct Replica {
    entries: RwLock<HashMap<String, Entry>>,
    trusted: AtomicBool,
    /// The channel revocations and heartbeats are published on.
    pub(crate) channel: String,
    /// Heartbeat period.
    pub(crate) heartbeat: Duration,
    /// On a cluster: the masters heartbeats are published on (each
    /// instance publishes on every master), and when each was last heard.
    /// Revocations come from each token's own master, so a master whose
    /// messages stop reaching this subscriber must show, even while the
    /// others' still do.
    masters: Mutex<Vec<String>>,
    heard: Mutex<HashMap<String, std::time::Instant>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Replica {
    pub(crate) fn new(channel: String, heartbeat: Duration) -> Replica {
        Replica {
            entries: RwLock::new(HashMap::new()),
            trusted: AtomicBool::new(false),
            channel,
            heartbeat,
            masters: Mutex::new(Vec::new()),
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// A master that has been silent for [`Self::silence`] (since `since`
    /// when never heard), if any.
    fn silent_master(&self, since: std::time::Instant) -> Option<String> {
        let masters = self.masters.lock().unwrap_or_else(|p| p.into_inner());
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        masters
            .iter()
            .find(|m| heard.get(*m).copied().unwrap_or(since).elapsed() > self.silence())
            .cloned()
    }

    /// How long without any message before the replica stops answering.
    pub(crate) fn silence(&self) -> Duration {
        self.heartbeat * 3
    }

    /// Whether it answers now.
    pub(crate) fn in_sync(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// Holds no revocation at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Revoked by `jti` (the `revoked` key) or by a watermark (`sub`,
    /// `client` keys), as the check script decides; `None` while out of
    /// sync (the caller asks Redis).
    pub(crate) fn is_revoked(
        &self,
        token: &TokenRef<'_>,
        revoked: Option<&str>,
        sub: Option<&str>,
        client: Option<&str>,
    ) -> Option<bool> {
        if !self.in_sync() {
            return None;
        }
        let now = now();
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let live = |k: &str| entries.get(k).filter(|e| e.expires_at >= now).copied();
        if revoked.and_then(live).is_some() {
            return Some(true);
        }
        for mark in [sub, client].into_iter().flatten().filter_map(live) {
            if token.issued_at.is_none_or(|iat| iat <= mark.value) {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Applies a revocation: a marker, or a watermark (never lowered).
    fn apply(&self, key: String, entry: Entry) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let e = entries.entry(key).or_insert(entry);
        e.value = e.value.max(entry.value);
        e.expires_at = e.expires_at.max(entry.expires_at);
    }

    /// Applies one published message: `["key", value, expireat]` as the
    /// scripts encode it, or a heartbeat (`hb`), which only proves
    /// liveness. `false` for anything else: a revocation this version
    /// cannot read, so the replica must be rebuilt from the keys.
    fn apply_message(&self, payload: &[u8]) -> bool {
        if payload == b"hb" {
            return true;
        }
        if let Some(master) = payload.strip_prefix(b"hb:") {
            let master = String::from_utf8_lossy(master).into_owned();
            self.heard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(master, std::time::Instant::now());
            return true;
        }
        match serde_json::from_slice::<(String, i64, i64)>(payload) {
            Ok((key, value, expires_at)) => {
                self.apply(key, Entry { value, expires_at });
                true
            }
            Err(_) => false,
        }
    }

    /// A revocation written through this store: seen at once here.
    pub(crate) fn record(&self, key: String, value: i64, expires_at: i64) {
        self.apply(key, Entry { value, expires_at });
    }

    fn sweep(&self) {
        let now = now();
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.expires_at >= now);
    }
}

/// Keeps `replica` in sync until the store is dropped: subscribe, rebuild
/// from the keys, apply messages; on silence or disconnection, stop
/// answering and start again.
pub(crate) async fn run(
    replica: Weak<Replica>,
    subscribers: Vec<redis::Client>,
    conn: Conn,
    patterns: Vec<String>,
) {
    let mut delay = Duration::from_millis(50);
    // A cluster: the next node after a failed subscription.
    let mut next = 0;
    loop {
        let client = &subscribers[next % subscribers.len()];
        next += 1;
        let Some(r) = replica.upgrade() else { return };
        let (channel, silence) = (r.channel.clone(), r.silence());
        drop(r);
        match session(&replica, client, conn.clone(), &patterns, &channel, silence).await {
            Ok(()) => return,
            Err(e) => {
                if let Some(r) = replica.upgrade() {
                    r.trusted.store(false, Ordering::Release);
                    tracing::warn!(error = %e, "tollgate-redis: revocation replica out of sync; resubscribing");
                } else {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// One subscription: `Ok` when the store is gone, `Err` when it must
/// start again.
async fn session(
    replica: &Weak<Replica>,
    client: &redis::Client,
    mut conn: Conn,
    patterns: &[String],
    channel: &str,
    silence: Duration,
) -> Result<(), String> {
    let mut pubsub = tokio::time::timeout(silence, client.get_async_pubsub())
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    pubsub.subscribe(channel).await.map_err(|e| e.to_string())?;
    // Subscribed first, then the keys: a revocation between the two is in
    // both, and applying twice changes nothing.
    let snapshot = tokio::time::timeout(silence * 4, read_all(&mut conn, patterns))
        .await
        .map_err(|_| "resync timed out".to_owned())??;
    {
        let Some(r) = replica.upgrade() else {
            return Ok(());
        };
        *r.entries.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        r.trusted.store(true, Ordering::Release);
        tracing::debug!("tollgate-redis: revocation replica in sync");
    }
    let mut messages = pubsub.into_on_message();
    let mut swept = std::time::Instant::now();
    let since = std::time::Instant::now();
    loop {
        match tokio::time::timeout(silence, messages.next()).await {
            Err(_) => return Err(format!("no message for {silence:?}")),
            Ok(None) => return Err("subscription closed".to_owned()),
            Ok(Some(msg)) => {
                let Some(r) = replica.upgrade() else {
                    return Ok(());
                };
                if let Some(master) = r.silent_master(since) {
                    return Err(format!(
                        "no heartbeat through master {master} for {silence:?}"
                    ));
                }
                if !r.apply_message(msg.get_payload_bytes()) {
                    return Err("a message that is not a revocation; rebuilding".to_owned());
                }
                if swept.elapsed() > Duration::from_secs(60) {
                    r.sweep();
                    swept = std::time::Instant::now();
                }
            }
        }
    }
}

/// Every revocation key matching `patterns`, with its value and expiry.
async fn read_all(conn: &mut Conn, patterns: &[String]) -> Result<HashMap<String, Entry>, String> {
    let mut all = HashMap::new();
    let masters = conn.masters().await.map_err(|e| e.to_string())?;
    let mut work = Vec::new();
    for node in masters {
        for pattern in patterns {
            work.push((node.clone(), pattern.clone()));
        }
    }
    for (node, pattern) in work {
        let node = &node;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = conn
                .query_on(
                    node,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await
                .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.get(k).cmd("EXPIRETIME").arg(k);
                }
                let values: Vec<(Option<i64>, i64)> =
                    conn.pipe_on(node, &pipe).await.map_err(|e| e.to_string())?;
                for (k, (value, expires_at)) in keys.into_iter().zip(values) {
                    // Gone since the scan (-2), or never expiring (-1: not
                    // written by Tollgate's scripts, kept as long as Redis
                    // keeps it).
                    let expires_at = match expires_at {
                        -2 => continue,
                        -1 => i64::MAX,
                        t => t,
                    };
                    if let Some(value) = value {
                        all.insert(k, Entry { value, expires_at });
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(all)
}

/// Publishes a heartbeat on the channel every `heartbeat` until the store
/// is gone: every replica listening hears that the channel works.
pub(crate) async fn heartbeats(replica: Weak<Replica>, mut conn: Conn) {
    loop {
        let Some(r) = replica.upgrade() else { return };
        let (channel, period) = (r.channel.clone(), r.heartbeat);
        drop(r);
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&channel).arg("hb");
        // On a cluster, from every master: revocations are published by
        // each token's master, so silence from any of them must show.
        match conn.masters().await {
            Ok(masters) if conn.is_cluster() => {
                let mut names = Vec::new();
                for node in &masters {
                    let name = node.to_string();
                    let mut publish = redis::cmd("PUBLISH");
                    publish.arg(&channel).arg(format!("hb:{name}"));
                    let _: Result<i64, _> = conn.query_on(node, &publish).await;
                    names.push(name);
                }
                if let Some(r) = replica.upgrade() {
                    *r.masters.lock().unwrap_or_else(|p| p.into_inner()) = names;
                }
            }
            _ => {
                let _: Result<i64, _> = publish.query_async(&mut conn).await;
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// A glob pattern matching `literal` then anything.
pub(crate) fn prefix_pattern(literal: &str) -> String {
    let mut p = String::with_capacity(literal.len() + 1);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}
