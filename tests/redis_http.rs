//! Three axum API instances sharing one real `redis-server`, or a real
//! Redis Cluster, over real HTTP on 127.0.0.1: credits are exact across
//! instances (on a cluster also through a master failover), a revocation
//! on one is seen by all, and Redis killed under load fails closed and
//! recovers by itself.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use support::{Signer, good_claims, now};
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::policy::{CreditStore, Credits, Policies, RevocationStore};
use tollgate::core::{Authenticator, TrustedIssuer};
use tollgate::redis::RedisStore;
use tollgate_conformance::redis_cluster::RedisCluster;
use tollgate_conformance::redis_server::RedisServer;
use tollgate_conformance::unique;

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// One API instance: its own process state, its own Redis connection.
async fn instance(redis_url: &str) -> (SocketAddr, Arc<RedisStore>) {
    let store = Arc::new(RedisStore::connect(redis_url).await.unwrap());
    (serve(store.clone()).await, store)
}

/// An API on `store`, serving on a free loopback port.
async fn serve(store: Arc<RedisStore>) -> SocketAddr {
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .policies(Policies::new(store.clone()).credits(Credits::new()))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/api",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .layer(AuthLayer::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn token(changes: Value) -> String {
    let mut c = good_claims(ISS);
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

async fn status(client: &reqwest::Client, addr: SocketAddr, token: &str) -> (u16, Option<String>) {
    let resp = client
        .get(format!("http://{addr}/api"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body["code"].as_str().map(str::to_owned))
}

/// Three API instances on one Redis: their addresses and stores.
async fn three_instances(url: &str) -> (Vec<SocketAddr>, Vec<Arc<RedisStore>>) {
    let mut addrs = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..3 {
        let (addr, store) = instance(url).await;
        addrs.push(addr);
        stores.push(store);
    }
    (addrs, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_allowance_exactly_spent() {
    let redis = RedisServer::start();
    let (addrs, stores) = three_instances(&redis.url()).await;
    let jti = unique("shared");
    let t = Arc::new(token(json!({"credits": 1000, "jti": jti})));
    let client = reqwest::Client::new();
    // 200 clients, 7 requests each (1,400 in all), round-robin over the
    // three instances.
    let mut tasks = Vec::new();
    for c in 0..200usize {
        let (client, t, addrs) = (client.clone(), t.clone(), addrs.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = (0u32, 0u32);
            for i in 0..7 {
                match status(&client, addrs[(c + i) % 3], &t).await {
                    (200, _) => seen.0 += 1,
                    (402, Some(code)) if code == "credits_exhausted" => seen.1 += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            seen
        }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for task in tasks {
        let (o, e) = task.await.unwrap();
        ok += o;
        exhausted += e;
    }
    assert_eq!((ok, exhausted), (1000, 400));
    assert_eq!(stores[0].spent(ISS, &jti).await.unwrap(), Some(1000));

    // Revoked through one instance's store: refused by all on the next request.
    let victim = unique("victim");
    let v = token(json!({"credits": 50, "jti": victim}));
    for addr in &addrs {
        assert_eq!(status(&client, *addr, &v).await.0, 200);
    }
    stores[1].revoke(ISS, &victim, now() + 600).await.unwrap();
    for addr in &addrs {
        assert_eq!(
            status(&client, *addr, &v).await,
            (401, Some("token_revoked".into()))
        );
    }
    assert_eq!(stores[2].spent(ISS, &victim).await.unwrap(), Some(3));
}

/// Unmetered tokens on three instances: answered from each instance's
/// revocation replica with no Redis call; a revocation through one
/// instance's store is refused by all three, the delay measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmetered_requests_make_no_redis_call_and_revocations_reach_every_instance() {
    let redis = RedisServer::start();
    let (addrs, stores) = three_instances(&redis.url()).await;
    let client = reqwest::Client::new();
    let jti = unique("unmetered");
    let t = token(json!({"jti": jti}));
    redis.command("CONFIG RESETSTAT").unwrap();
    for i in 0..300 {
        assert_eq!(status(&client, addrs[i % 3], &t).await.0, 200);
    }
    let calls = redis.all_command_calls();
    assert!(
        calls
            .iter()
            .all(|(c, _)| c == "publish" || c == "config|resetstat"),
        "300 unmetered requests, only heartbeats reach Redis: {calls:?}"
    );
    let revoked_at = Instant::now();
    stores[1].revoke(ISS, &jti, now() + 600).await.unwrap();
    let mut delays = Vec::new();
    for addr in &addrs {
        loop {
            let answer = status(&client, *addr, &t).await;
            if answer == (401, Some("token_revoked".into())) {
                delays.push(revoked_at.elapsed());
                break;
            }
            assert_eq!(answer.0, 200, "{answer:?}");
            assert!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "never refused"
            );
        }
    }
    println!(
        "300 unmetered requests: INFO commandstats {calls:?}; revocation refused by the 3 \
         instances after {delays:?} (each includes one HTTP request)"
    );
}

/// Redis is up, then killed (SIGKILL).
const UP: u8 = 0;
const KILLED: u8 = 1;

/// One answer under load: its status and the phase when the request was
/// sent and when its answer arrived.
#[derive(Debug, Clone, Copy)]
struct Seen {
    status: u16,
    sent: u8,
    answered: u8,
}

/// One client spending `t` round-robin over `addrs` until `stop`.
async fn spend_until_stopped(
    client: reqwest::Client,
    addrs: Vec<SocketAddr>,
    first: usize,
    t: Arc<String>,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    answered: Arc<[AtomicU64; 2]>,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut i = first;
    while !stop.load(Ordering::SeqCst) {
        let sent = phase.load(Ordering::SeqCst);
        let resp = client
            .get(format!("http://{}/api", addrs[i % addrs.len()]))
            .bearer_auth(&*t)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        i += 1;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap();
        let now_phase = phase.load(Ordering::SeqCst);
        match status {
            200 => {
                answered[0].fetch_add(1, Ordering::SeqCst);
            }
            402 => {}
            503 => {
                assert_eq!(retry_after.as_deref(), Some("5"), "{body}");
                assert!(body.contains("store_unavailable"), "{body}");
                assert!(!body.contains(&*t), "no token in error bodies");
                if sent == KILLED {
                    answered[1].fetch_add(1, Ordering::SeqCst);
                }
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
        seen.push(Seen {
            status,
            sent,
            answered: now_phase,
        });
        if status == 503 {
            // Do not spin on a dead store.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    seen
}

/// Waits (bounded) until `counter` reaches `target`.
async fn wait_for(counter: &AtomicU64, target: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The counter of `jti` read straight from Redis.
fn counter_in_redis(redis: &RedisServer, jti: &str) -> u64 {
    let reply = redis
        .command(&format!("GET \"tollgate:c:{{{ISS}\u{1f}{jti}}}\""))
        .unwrap();
    // A bulk string: `$len\r\nvalue\r\n`.
    reply.lines().nth(1).unwrap().parse().unwrap()
}

/// Redis killed mid-load under 50 concurrent clients on three instances:
/// every answer is 200, 402 or 503 (fail closed, never a 500); no request
/// sent after the kill succeeds; restarted with AOF, the counter holds every
/// 200 (a 200 is always paid) and at most the requests in flight at the kill
/// besides; then service resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_mid_load_fails_closed_and_service_resumes() {
    let mut redis = RedisServer::start_with_aof();
    let (addrs, stores) = three_instances(&redis.url()).await;
    let client = reqwest::Client::new();
    let jti = unique("outage");
    let t = Arc::new(token(json!({"credits": 10_000_000, "jti": jti})));
    let phase = Arc::new(AtomicU8::new(UP));
    let stop = Arc::new(AtomicBool::new(false));
    // 200s, and 503s to requests sent after the kill, so far.
    let answered = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut clients = Vec::new();
    for c in 0..50usize {
        clients.push(tokio::spawn(spend_until_stopped(
            client.clone(),
            addrs.clone(),
            c,
            t.clone(),
            phase.clone(),
            stop.clone(),
            answered.clone(),
        )));
    }
    wait_for(&answered[0], 1_000, "1,000 paid requests").await;
    redis.kill();
    phase.store(KILLED, Ordering::SeqCst);
    wait_for(&answered[1], 200, "200 refusals after the kill").await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.unwrap());
    }

    let count = |f: &dyn Fn(&Seen) -> bool| seen.iter().filter(|s| f(s)).count() as u64;
    let paid = count(&|s| s.status == 200);
    // Sent before the kill and refused: in flight at the kill, their
    // consumption may have been applied with the reply lost.
    let in_flight = count(&|s| s.sent == UP && s.status == 503);
    let paid_after_kill = count(&|s| s.sent == KILLED && s.status == 200);
    let refused_after_kill = count(&|s| s.sent == KILLED && s.status == 503);
    println!(
        "{} answers: {paid} paid, {in_flight} refused in flight at the kill, \
         {refused_after_kill} refused after it ({} answered after the kill)",
        seen.len(),
        count(&|s| s.answered == KILLED),
    );
    assert_eq!(paid_after_kill, 0, "nothing succeeds while Redis is down");
    assert!(refused_after_kill >= 200);

    redis.restart();
    let spent = counter_in_redis(&redis, &jti);
    println!("after the restart (AOF): counter {spent}, {paid} paid");
    assert!(
        spent >= paid && spent <= paid + in_flight,
        "counter {spent}, paid {paid}, in flight at the kill {in_flight}"
    );

    // Service resumes on every instance without a restart (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut resumed, mut refused) = (0u64, 0u64);
    for addr in &addrs {
        loop {
            match status(&client, *addr, &t).await.0 {
                200 => break,
                503 => refused += 1,
                other => panic!("unexpected answer {other}"),
            }
            assert!(
                Instant::now() < deadline,
                "service did not resume on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        resumed += 1;
    }
    let now_spent = stores[0].spent(ISS, &jti).await.unwrap().unwrap();
    assert!(
        now_spent >= spent + resumed && now_spent <= spent + resumed + refused,
        "counter {now_spent}, before {spent}, paid since {resumed}"
    );
}

/// Three API instances on one Redis Cluster, each with its own connection.
async fn three_cluster_instances(
    cluster: &RedisCluster,
) -> (Vec<SocketAddr>, Vec<Arc<RedisStore>>) {
    let mut addrs = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..3 {
        let store = Arc::new(
            // A failover here takes about 2 s; leave room on a busy machine.
            RedisStore::cluster_builder(cluster.urls())
                .retry_charges_for(Duration::from_secs(15))
                .connect()
                .await
                .unwrap(),
        );
        addrs.push(serve(store.clone()).await);
        stores.push(store);
    }
    (addrs, stores)
}

/// 3,000 requests from 300 concurrent clients (10 each, round-robin over
/// `addrs`) with a 1,000-credit token: (paid, exhausted), every other
/// answer a failure. `paid` counts as the answers come.
async fn spend_3000(addrs: &[SocketAddr], t: &Arc<String>, paid: &Arc<AtomicU64>) -> (u64, u64) {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..300usize {
        let (client, t, addrs, paid) = (client.clone(), t.clone(), addrs.to_vec(), paid.clone());
        tasks.push(tokio::spawn(async move {
            let mut exhausted = 0u64;
            for i in 0..10 {
                match status(&client, addrs[(c + i) % 3], &t).await {
                    (200, _) => {
                        paid.fetch_add(1, Ordering::SeqCst);
                    }
                    (402, Some(code)) if code == "credits_exhausted" => exhausted += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            exhausted
        }));
    }
    let mut exhausted = 0;
    for task in tasks {
        exhausted += task.await.unwrap();
    }
    (paid.load(Ordering::SeqCst), exhausted)
}

/// Three instances on a three-master cluster (a replica each): a
/// 1,000-credit token is spent exactly 1,000 times out of 3,000 concurrent
/// requests; a revocation through one instance is refused by all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_a_cluster_spend_an_allowance_exactly() {
    let cluster = RedisCluster::start(3, 1);
    let (addrs, stores) = three_cluster_instances(&cluster).await;
    let jti = unique("cluster");
    let t = Arc::new(token(json!({"credits": 1000, "jti": jti})));
    let paid = Arc::new(AtomicU64::new(0));
    assert_eq!(spend_3000(&addrs, &t, &paid).await, (1000, 2000));
    assert_eq!(stores[2].spent(ISS, &jti).await.unwrap(), Some(1000));

    let client = reqwest::Client::new();
    let victim = unique("victim");
    let v = token(json!({"credits": 50, "jti": victim}));
    for addr in &addrs {
        assert_eq!(status(&client, *addr, &v).await.0, 200);
    }
    let revoked_at = Instant::now();
    stores[0].revoke(ISS, &victim, now() + 600).await.unwrap();
    let mut delays = Vec::new();
    for addr in &addrs[1..] {
        loop {
            match status(&client, *addr, &v).await {
                (401, Some(code)) if code == "token_revoked" => break,
                (200, _) => {}
                other => panic!("unexpected answer {other:?}"),
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "never refused"
            );
        }
        delays.push(revoked_at.elapsed());
    }
    println!("cluster: revocation through instance 0 refused by the others after {delays:?}");
}

/// The same with the master of the token's slot killed (SIGKILL) after
/// 300 paid requests: a replica takes over, and still exactly 1,000 of
/// 3,000 are paid, none refused for the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_a_cluster_spend_exactly_through_a_master_failover() {
    // One replica per master: the one promoted holds every acknowledged
    // write (with two, WAIT 1 might be answered by the one not promoted).
    let cluster = RedisCluster::start(3, 1);
    let (addrs, stores) = three_cluster_instances(&cluster).await;
    let jti = unique("failover");
    let slot = cluster.keyslot(&format!("tollgate:c:{{{ISS}\u{1f}{jti}}}"));
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let t = Arc::new(token(json!({"credits": 1000, "jti": jti})));
    let paid = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (addrs, t, paid) = (addrs.clone(), t.clone(), paid.clone());
        async move { spend_3000(&addrs, &t, &paid).await }
    });
    wait_for(&paid, 300, "300 paid requests").await;
    let started = Instant::now();
    let c = cluster.clone();
    let (killed, promoted) = tokio::task::spawn_blocking(move || {
        let mut c = c.lock().unwrap();
        let killed = c.kill_master_of(slot);
        let promoted = c.wait_for_master_of(slot, killed);
        // The failed node, restarted, rejoins as the new master's replica.
        c.restart(killed);
        (killed, promoted)
    })
    .await
    .unwrap();
    let failover = started.elapsed();
    assert_eq!(load.await.unwrap(), (1000, 2000));
    assert_eq!(stores[0].spent(ISS, &jti).await.unwrap(), Some(1000));
    println!(
        "master {killed} killed after 300 paid; replica {promoted} took over in {failover:?}; \
         1000 paid, 2000 exhausted"
    );
}
