//! A real Redis Cluster for tests: `redis-server` nodes on free loopback
//! ports, each in its own temporary directory, joined by
//! `redis-cli --cluster create`, and stopped (the directories removed) on
//! drop. Failover and slot migration are driven step by step, so a test can
//! run load in between. Every wait is bounded: a cluster that does not
//! settle fails the test.

use std::io::Read;
use std::ops::RangeInclusive;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{RedisServer, Reply};

/// The arguments that make a server a cluster node (after the defaults of
/// [`RedisServer`], which include `--appendonly no --save ""`). A replica's
/// first sync starts at once rather than after the default 5 s
/// `repl-diskless-sync-delay` (which would make [`RedisCluster::start`]
/// take three times as long).
const NODE_ARGS: [&str; 8] = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--repl-diskless-sync-delay",
    "0",
];

/// How long `redis-cli --cluster create` may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the cluster may take to settle: after creation, after a
/// failover, after a slot changes hands.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two looks at a cluster that has not settled yet.
const POLL: Duration = Duration::from_millis(50);

/// The number of hash slots.
const SLOTS: u16 = 16384;

/// Keys asked for (and moved) at once by [`RedisCluster::migrate_keys`].
const MIGRATE_BATCH: &[u8] = b"100";

/// `MIGRATE`'s own timeout, in milliseconds.
const MIGRATE_TIMEOUT_MS: &[u8] = b"5000";

/// A Redis Cluster owned by a test: masters first (indices
/// `0..masters` at creation), then their replicas. Dropping it kills every
/// node and removes their directories.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `CLUSTER MYID` of each node, by index.
    ids: Vec<String>,
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    port: u16,
    myself: bool,
    master: bool,
    failed: bool,
    slots: Vec<RangeInclusive<u16>>,
    /// `[slot->-target-id]`: slots this node is migrating away.
    migrating: Vec<(u16, String)>,
}

impl RedisCluster {
    /// Starts `masters * (1 + replicas_per_master)` nodes, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas N --cluster-yes`,
    /// and waits (bounded) until every node reports `cluster_state:ok` with
    /// all 16384 slots served, every node knows every other, and every
    /// replica's link to its master is up.
    ///
    /// Panics when `masters < 3` (Redis Cluster needs at least three), when
    /// `redis-cli` is missing (Debian package `redis-tools`), or when the
    /// cluster does not come up in time.
    pub fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        assert!(
            masters >= 3,
            "Redis Cluster needs at least 3 masters, {masters} asked"
        );
        let count = masters * (1 + replicas_per_master);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| RedisServer::start_with_args(&NODE_ARGS))
            .collect();
        let ids = nodes
            .iter()
            .map(|node| match node.command_reply(&[b"CLUSTER", b"MYID"]) {
                Some(Reply::Bulk(Some(id))) => String::from_utf8(id).expect("a node id is ASCII"),
                other => panic!("CLUSTER MYID on port {}: {other:?}", node.port()),
            })
            .collect();
        let cluster = RedisCluster { nodes, ids };
        cluster.create(replicas_per_master);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let Some(why) = cluster.not_ready(masters) else {
                return cluster;
            };
            assert!(
                Instant::now() < deadline,
                "the cluster was not ready in {SETTLE_TIMEOUT:?}: {why}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Runs `redis-cli --cluster create` over every node, bounded in time.
    fn create(&self, replicas_per_master: usize) {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--cluster", "create"]);
        for node in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port()));
        }
        cmd.arg("--cluster-replicas")
            .arg(replicas_per_master.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-cli must be installed (Debian package `redis-tools`): {e}")
            }
            Err(e) => panic!("redis-cli did not start: {e}"),
        };
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_bounded(&mut child, CREATE_TIMEOUT);
        let output = |h: std::thread::JoinHandle<String>| h.join().unwrap_or_default();
        let (stdout, stderr) = (output(stdout), output(stderr));
        match status {
            Some(status) if status.success() => {}
            Some(status) => {
                panic!("redis-cli --cluster create failed ({status}):\n{stdout}\n{stderr}")
            }
            None => panic!(
                "redis-cli --cluster create did not finish in {CREATE_TIMEOUT:?}:\n{stdout}\n{stderr}"
            ),
        }
    }

    /// Why the new cluster is not ready yet, or `None` when it is.
    fn not_ready(&self, masters: usize) -> Option<String> {
        let mut seen_masters = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(info) = node.command("CLUSTER INFO") else {
                return Some(format!("node {i} does not answer"));
            };
            for (field, want) in [
                ("cluster_state", "ok".to_owned()),
                ("cluster_slots_ok", SLOTS.to_string()),
                ("cluster_known_nodes", self.nodes.len().to_string()),
            ] {
                let got = field_of(&info, field);
                if got != Some(want.as_str()) {
                    return Some(format!("node {i}: {field}:{got:?}, want {want}"));
                }
            }
            // Every node's view names every replica (clients read the
            // topology from any node).
            let view = node.command("CLUSTER NODES").unwrap_or_default();
            let replicas_seen = view
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.contains("slave"))
                })
                .count();
            if replicas_seen != self.nodes.len() - masters {
                return Some(format!(
                    "node {i} sees {replicas_seen} replicas, want {}",
                    self.nodes.len() - masters
                ));
            }
            let replication = node.command("INFO replication").unwrap_or_default();
            match field_of(&replication, "role") {
                Some("master") => seen_masters += 1,
                Some("slave") => {
                    let link = field_of(&replication, "master_link_status");
                    if link != Some("up") {
                        return Some(format!("replica {i}: master_link_status:{link:?}"));
                    }
                }
                role => return Some(format!("node {i}: role:{role:?}")),
            }
        }
        (seen_masters != masters).then(|| format!("{seen_masters} masters, want {masters}"))
    }

    /// `redis://127.0.0.1:PORT/` of every node, killed ones included: the
    /// initial nodes a cluster client is given.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Node `i` (panics when out of range).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// The number of nodes, killed ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the cluster has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The hash slot of `key`, as a live node computes it
    /// (`CLUSTER KEYSLOT`, sent as RESP so the key may hold any bytes).
    pub fn keyslot(&self, key: &str) -> u16 {
        let (i, node) = self.any_live();
        match node.command_reply(&[b"CLUSTER", b"KEYSLOT", key.as_bytes()]) {
            Some(Reply::Integer(slot)) => u16::try_from(slot).expect("a slot fits in u16"),
            other => panic!("CLUSTER KEYSLOT {key:?} on node {i}: {other:?}"),
        }
    }

    /// The index of the node serving `slot` as master, as the first live
    /// node that answers sees it (`CLUSTER NODES`). A master that was
    /// killed and not yet replaced is still named.
    pub fn master_of(&self, slot: u16) -> usize {
        let (i, view) = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_running())
            .find_map(|(i, n)| Some((i, view_of(n)?)))
            .expect("no live node answers CLUSTER NODES");
        let port = master_in(&view, slot)
            .unwrap_or_else(|| panic!("node {i} sees no master for slot {slot}"));
        self.index_of_port(port)
    }

    /// Kills (SIGKILL) the master of `slot` and returns its index, without
    /// waiting for a failover.
    pub fn kill_master_of(&mut self, slot: u16) -> usize {
        let i = self.master_of(slot);
        self.nodes[i].kill();
        i
    }

    /// Starts node `i` again on its port and directory: a master that was
    /// replaced meanwhile rejoins as a replica of its successor.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Waits (bounded) until every live node agrees that a live node other
    /// than `not` serves `slot` as master, and every live node reports
    /// `cluster_state:ok`; returns that master's index.
    pub fn wait_for_master_of(&self, slot: u16, not: usize) -> usize {
        self.settle(|| {
            let master = self.agreed_master(slot)?;
            if master == not {
                return Err(format!("slot {slot} is still served by node {not}"));
            }
            if !self.nodes[master].is_running() {
                return Err(format!("slot {slot} is served by killed node {master}"));
            }
            self.all_ok()?;
            Ok(master)
        })
    }

    /// Starts moving `slot` from its master to master `to`:
    /// `CLUSTER SETSLOT slot IMPORTING <source-id>` on the target, then
    /// `CLUSTER SETSLOT slot MIGRATING <target-id>` on the source. From
    /// here the source answers `-ASK` for keys it does not hold.
    pub fn begin_migration(&self, slot: u16, to: usize) {
        let from = self.master_of(slot);
        assert_ne!(from, to, "slot {slot} is already served by node {to}");
        let slot_arg = slot.to_string();
        self.expect_ok(
            to,
            &[
                b"CLUSTER",
                b"SETSLOT",
                slot_arg.as_bytes(),
                b"IMPORTING",
                self.ids[from].as_bytes(),
            ],
        );
        self.expect_ok(
            from,
            &[
                b"CLUSTER",
                b"SETSLOT",
                slot_arg.as_bytes(),
                b"MIGRATING",
                self.ids[to].as_bytes(),
            ],
        );
    }

    /// Moves every key of `slot` from the source to the target of a
    /// migration begun with [`begin_migration`](Self::begin_migration):
    /// `CLUSTER GETKEYSINSLOT slot 100` on the source, then
    /// `MIGRATE 127.0.0.1 <target-port> "" 0 5000 KEYS ...`, until the
    /// source holds none. Returns how many keys were sent.
    pub fn migrate_keys(&self, slot: u16) -> usize {
        let from = self.master_of(slot);
        let view = view_of(&self.nodes[from])
            .unwrap_or_else(|| panic!("node {from} does not answer CLUSTER NODES"));
        let target_id = view
            .iter()
            .filter(|line| line.myself)
            .flat_map(|line| &line.migrating)
            .find_map(|(s, id)| (*s == slot).then_some(id))
            .unwrap_or_else(|| panic!("node {from} is not migrating slot {slot}"));
        let to = self.index_of_id(target_id);
        let slot_arg = slot.to_string();
        let port_arg = self.nodes[to].port().to_string();
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut moved = 0;
        loop {
            let keys = match self.nodes[from].command_reply(&[
                b"CLUSTER",
                b"GETKEYSINSLOT",
                slot_arg.as_bytes(),
                MIGRATE_BATCH,
            ]) {
                Some(Reply::Array(Some(keys))) => keys
                    .into_iter()
                    .map(|k| match k {
                        Reply::Bulk(Some(key)) => key,
                        other => panic!("CLUSTER GETKEYSINSLOT gave {other:?}"),
                    })
                    .collect::<Vec<_>>(),
                other => panic!("CLUSTER GETKEYSINSLOT {slot} on node {from}: {other:?}"),
            };
            if keys.is_empty() {
                return moved;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot} still had keys on node {from} after {SETTLE_TIMEOUT:?}"
            );
            let mut args: Vec<&[u8]> = vec![
                b"MIGRATE",
                b"127.0.0.1",
                port_arg.as_bytes(),
                b"",
                b"0",
                MIGRATE_TIMEOUT_MS,
                b"KEYS",
            ];
            args.extend(keys.iter().map(Vec::as_slice));
            match self.nodes[from].command_reply(&args) {
                Some(Reply::Status(s)) if s == "OK" => moved += keys.len(),
                // The keys went (expired) between the two commands.
                Some(Reply::Status(s)) if s == "NOKEY" => {}
                other => panic!("MIGRATE from node {from} to node {to}: {other:?}"),
            }
        }
    }

    /// Ends the migration of `slot` to `to`: `CLUSTER SETSLOT slot NODE
    /// <target-id>` on the target, then the source, then every other live
    /// master; then waits (bounded) until every live node sees `to` serving
    /// `slot`. The source must hold no key of `slot` any more (see
    /// [`migrate_keys`](Self::migrate_keys)).
    pub fn finish_migration(&self, slot: u16, to: usize) {
        let from = self.master_of(slot);
        let slot_arg = slot.to_string();
        let args: [&[u8]; 5] = [
            b"CLUSTER",
            b"SETSLOT",
            slot_arg.as_bytes(),
            b"NODE",
            self.ids[to].as_bytes(),
        ];
        self.expect_ok(to, &args);
        if from != to {
            self.expect_ok(from, &args);
        }
        for other in self.live_masters() {
            if other != to && other != from {
                self.expect_ok(other, &args);
            }
        }
        self.settle(|| match self.agreed_master(slot)? {
            m if m == to => Ok(()),
            m => Err(format!("slot {slot} is still served by node {m}")),
        });
    }

    /// Moves `slot` to master `to` in one go ([`begin_migration`],
    /// [`migrate_keys`], [`finish_migration`]); returns how many keys moved.
    ///
    /// [`begin_migration`]: Self::begin_migration
    /// [`migrate_keys`]: Self::migrate_keys
    /// [`finish_migration`]: Self::finish_migration
    pub fn migrate_slot(&self, slot: u16, to: usize) -> usize {
        self.begin_migration(slot, to);
        let moved = self.migrate_keys(slot);
        self.finish_migration(slot, to);
        moved
    }

    /// The `calls=` count of one command in `INFO commandstats`, summed over
    /// the live nodes.
    pub fn command_calls(&self, command: &str) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.command_calls(command))
            .sum()
    }

    /// The first live node.
    fn any_live(&self) -> (usize, &RedisServer) {
        self.nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.is_running())
            .expect("every node was killed")
    }

    /// The live nodes that see themselves as masters.
    fn live_masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .filter(|&i| {
                view_of(&self.nodes[i])
                    .is_some_and(|v| v.iter().any(|l| l.myself && l.master && !l.failed))
            })
            .collect()
    }

    /// The master of `slot` every live node agrees on.
    fn agreed_master(&self, slot: u16) -> Result<usize, String> {
        let mut agreed = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let view = view_of(node).ok_or(format!("node {i} does not answer"))?;
            let port =
                master_in(&view, slot).ok_or(format!("node {i} sees no master for slot {slot}"))?;
            let master = self
                .nodes
                .iter()
                .position(|n| n.port() == port)
                .ok_or(format!("node {i} names an unknown port {port}"))?;
            match agreed {
                None => agreed = Some(master),
                Some(m) if m == master => {}
                Some(m) => {
                    return Err(format!(
                        "slot {slot}: node {i} sees node {master}, another sees node {m}"
                    ));
                }
            }
        }
        agreed.ok_or_else(|| "every node was killed".to_owned())
    }

    /// `Ok` when every live node reports `cluster_state:ok`.
    fn all_ok(&self) -> Result<(), String> {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let info = node
                .command("CLUSTER INFO")
                .ok_or(format!("node {i} does not answer"))?;
            let state = field_of(&info, "cluster_state");
            if state != Some("ok") {
                return Err(format!("node {i}: cluster_state:{state:?}"));
            }
        }
        Ok(())
    }

    /// Polls `check` until it succeeds, panicking with its last complaint
    /// after [`SETTLE_TIMEOUT`].
    fn settle<T>(&self, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            match check() {
                Ok(done) => return done,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "the cluster did not settle in {SETTLE_TIMEOUT:?}: {why}"
                ),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends a command to node `i` and panics unless it answers `+OK`.
    fn expect_ok(&self, i: usize, args: &[&[u8]]) {
        let reply = self.nodes[i].command_reply(args);
        if reply != Some(Reply::Status("OK".to_owned())) {
            let shown: Vec<_> = args.iter().map(|a| String::from_utf8_lossy(a)).collect();
            panic!("node {i}: {}: {reply:?}", shown.join(" "));
        }
    }

    fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"))
    }

    fn index_of_id(&self, id: &str) -> usize {
        self.ids
            .iter()
            .position(|known| known == id)
            .unwrap_or_else(|| panic!("no node of this cluster has id {id}"))
    }
}

/// `CLUSTER NODES` of one node, parsed (`None` when it does not answer, or
/// a line is not in the documented format).
fn view_of(node: &RedisServer) -> Option<Vec<NodeLine>> {
    match node.command_reply(&[b"CLUSTER", b"NODES"])? {
        Reply::Bulk(Some(text)) => {
            let text = String::from_utf8(text).ok()?;
            text.lines().map(parse_node_line).collect()
        }
        _ => None,
    }
}

/// `id ip:port@cport[,hostname] flags master ping pong epoch link slots...`
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (addr, flags) = (fields.get(1)?, fields.get(2)?);
    let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags: Vec<&str> = flags.split(',').collect();
    let mut slots = Vec::new();
    let mut migrating = Vec::new();
    for field in fields.iter().skip(8) {
        if let Some(inner) = field.strip_prefix('[').and_then(|f| f.strip_suffix(']')) {
            if let Some((slot, target)) = inner.split_once("->-") {
                migrating.push((slot.parse().ok()?, target.to_owned()));
            }
            // `[slot-<-source]` (importing) is not needed here.
        } else if let Some((lo, hi)) = field.split_once('-') {
            slots.push(lo.parse().ok()?..=hi.parse().ok()?);
        } else {
            let slot = field.parse().ok()?;
            slots.push(slot..=slot);
        }
    }
    Some(NodeLine {
        port,
        myself: flags.contains(&"myself"),
        master: flags.contains(&"master"),
        failed: flags.contains(&"fail"),
        slots,
        migrating,
    })
}

/// The port of the master serving `slot` in one node's view.
fn master_in(view: &[NodeLine], slot: u16) -> Option<u16> {
    view.iter()
        .find(|l| l.master && l.slots.iter().any(|r| r.contains(&slot)))
        .map(|l| l.port)
}

/// The value of `field:` in an `INFO`-style reply.
fn field_of<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Reads a child's pipe to its end on a thread of its own (so a full pipe
/// never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Waits for `child` to exit, at most `timeout`; kills it (and returns
/// `None`) when it takes longer.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC16-XMODEM of the hash tag (or the whole key), modulo 16384: the
    /// Redis Cluster key slot, computed here to check `keyslot`.
    fn expected_slot(key: &[u8]) -> u16 {
        let hashed = key
            .iter()
            .position(|&b| b == b'{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                let close = rest.iter().position(|&b| b == b'}')?;
                (close > 0).then(|| &rest[..close])
            })
            .unwrap_or(key);
        let mut crc: u16 = 0;
        for &byte in hashed {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % SLOTS
    }

    fn set(node: &RedisServer, key: &str, value: &str) -> Option<Reply> {
        node.command_reply(&[b"SET", key.as_bytes(), value.as_bytes()])
    }

    fn get(node: &RedisServer, key: &str) -> Option<Reply> {
        node.command_reply(&[b"GET", key.as_bytes()])
    }

    fn bulk(value: &str) -> Option<Reply> {
        Some(Reply::Bulk(Some(value.as_bytes().to_vec())))
    }

    fn ok() -> Option<Reply> {
        Some(Reply::Status("OK".to_owned()))
    }

    /// A redirection (`MOVED` or `ASK`) naming `slot` and node `to`.
    fn redirects(reply: Option<Reply>, kind: &str, slot: u16, to: &RedisServer) -> bool {
        reply
            == Some(Reply::Error(format!(
                "{kind} {slot} 127.0.0.1:{}",
                to.port()
            )))
    }

    /// Three masters with a replica each come up; keys with braces and the
    /// unit separator hash as Redis says, live on the master `master_of`
    /// names, and other masters redirect to it.
    #[test]
    fn a_cluster_routes_keys() {
        let cluster = RedisCluster::start(3, 1);
        assert_eq!(cluster.len(), 6);
        assert_eq!(cluster.urls().len(), 6);
        assert!(cluster.urls()[0].starts_with("redis://127.0.0.1:"));
        for key in [
            "plain",
            "tollgate:c:{https://issuer\u{1f}jti-1}",
            "a{}b",
            "{}",
            "x{\u{1f}}",
            "café \"quoted\" key",
        ] {
            assert_eq!(
                cluster.keyslot(key),
                expected_slot(key.as_bytes()),
                "{key:?}"
            );
        }
        let key = "tollgate:c:{https://issuer\u{1f}route}";
        let slot = cluster.keyslot(key);
        let master = cluster.master_of(slot);
        assert_eq!(set(cluster.node(master), key, "1"), ok());
        assert_eq!(get(cluster.node(master), key), bulk("1"));
        for other in cluster.live_masters() {
            if other != master {
                let reply = get(cluster.node(other), key);
                assert!(
                    redirects(reply.clone(), "MOVED", slot, cluster.node(master)),
                    "{reply:?}"
                );
            }
        }
        assert!(cluster.command_calls("set") >= 1);
    }

    /// A slot moves, step by step, with its keys: between the steps the
    /// source asks for missing keys elsewhere; afterwards the target serves
    /// every key and the source answers `MOVED`.
    #[test]
    fn a_slot_migrates_with_its_keys() {
        let cluster = RedisCluster::start(3, 1);
        let tag = "{https://issuer\u{1f}migrate}";
        let slot = cluster.keyslot(tag);
        let from = cluster.master_of(slot);
        let to = *cluster
            .live_masters()
            .iter()
            .find(|&&m| m != from)
            .expect("another master");
        // More keys than one GETKEYSINSLOT batch.
        let keys: Vec<String> = (0..250).map(|n| format!("k:{tag}:{n}")).collect();
        for key in &keys {
            assert_eq!(set(cluster.node(from), key, key), ok());
        }

        cluster.begin_migration(slot, to);
        let missing = format!("missing:{tag}");
        let reply = get(cluster.node(from), &missing);
        assert!(
            redirects(reply.clone(), "ASK", slot, cluster.node(to)),
            "{reply:?}"
        );
        assert_eq!(get(cluster.node(from), &keys[0]), bulk(&keys[0]));

        assert_eq!(cluster.migrate_keys(slot), keys.len());
        assert_eq!(cluster.master_of(slot), from, "not finished yet");
        cluster.finish_migration(slot, to);

        assert_eq!(cluster.master_of(slot), to);
        for key in &keys {
            assert_eq!(get(cluster.node(to), key), bulk(key));
        }
        let reply = get(cluster.node(from), &keys[0]);
        assert!(
            redirects(reply.clone(), "MOVED", slot, cluster.node(to)),
            "{reply:?}"
        );
        assert!(cluster.command_calls("migrate") >= 3);

        // And back in one go.
        assert_eq!(cluster.migrate_slot(slot, from), keys.len());
        assert_eq!(cluster.master_of(slot), from);
        assert_eq!(get(cluster.node(from), &keys[249]), bulk(&keys[249]));
    }

    /// A killed master's replica takes its slots over, with what was
    /// replicated before the kill.
    #[test]
    fn a_replica_takes_over_a_killed_master() {
        let mut cluster = RedisCluster::start(3, 1);
        let key = "tollgate:c:{https://issuer\u{1f}failover}";
        let slot = cluster.keyslot(key);
        let master = cluster.master_of(slot);
        let replies = cluster
            .node(master)
            .commands(&[
                &[b"SET", key.as_bytes(), b"kept"],
                &[b"WAIT", b"1", b"1000"],
            ])
            .expect("SET and WAIT");
        assert_eq!(
            replies,
            vec![Reply::Status("OK".to_owned()), Reply::Integer(1)]
        );

        assert_eq!(cluster.kill_master_of(slot), master);
        assert!(!cluster.node(master).is_running());
        let promoted = cluster.wait_for_master_of(slot, master);
        assert_ne!(promoted, master);
        assert_eq!(cluster.master_of(slot), promoted);
        assert_eq!(get(cluster.node(promoted), key), bulk("kept"));
        assert_eq!(set(cluster.node(promoted), key, "after"), ok());
    }
}
