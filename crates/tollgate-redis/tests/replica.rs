//! The revocation replica on a real `redis-server`: unmetered checks make
//! no Redis call, a revocation made through one instance reaches the others
//! (its delay measured and printed), a dropped subscription is rebuilt from
//! the keys with what was missed, and an instance cut off stops answering.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tollgate_conformance::redis_server::RedisServer;
use tollgate_conformance::{now, unique};
use tollgate_core::policy::{Consumption, Principal, RevocationStore, Store, TokenRef, Verdict};
use tollgate_redis::RedisStore;

const ISS: &str = "https://issuer.example";

fn token<'a>(jti: &'a str, sub: &'a str) -> TokenRef<'a> {
    TokenRef {
        issuer: ISS,
        token_id: Some(jti),
        subject: Some(sub),
        client_id: Some("client-1"),
        issued_at: Some(now() - 5),
        expires_at: now() + 600,
    }
}

/// Waits (bounded) until `store` answers `want` for `t` from memory; the
/// time it took.
async fn until(store: &RedisStore, t: TokenRef<'_>, want: Verdict) -> Duration {
    let start = Instant::now();
    loop {
        if store.try_check(t, None) == Some(Ok(want)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never saw {want:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmetered_checks_make_no_redis_call() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert!(store.replica_in_sync());
    let jti = unique("quiet");
    let t = token(&jti, "user-1");
    server.command("CONFIG RESETSTAT").unwrap();
    for _ in 0..1000 {
        assert_eq!(store.check(t, None).await.unwrap(), Verdict::Admitted(None));
        assert_eq!(store.try_check(t, None), Some(Ok(Verdict::Admitted(None))));
    }
    let metered = Consumption {
        allowance: 100,
        cost: 1,
    };
    for _ in 0..10 {
        store.check(t, Some(metered)).await.unwrap();
    }
    // 2,000 unmetered answers and 10 metered ones: 10 scripts, and inside
    // them (INFO commandstats counts those too) 4 GETs each (the marker,
    // two watermarks, the counter: a metered check sees a revocation made
    // anywhere at once) and the counter written. Nothing for the unmetered
    // checks.
    let calls = server.all_command_calls();
    let count = |name: &str| calls.iter().find(|(c, _)| c == name).map_or(0, |(_, n)| *n);
    assert_eq!(count("evalsha") + count("eval"), 10, "{calls:?}");
    assert_eq!(count("get"), 40, "{calls:?}");
    assert_eq!(count("incrby"), 10, "{calls:?}");
    println!("1,000 x2 unmetered + 10 metered checks: INFO commandstats {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_instance() {
    let server = RedisServer::start();
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(RedisStore::connect(&server.url()).await.unwrap());
    }
    let mut delays = Vec::new();
    for round in 0..20 {
        let jti = unique(&format!("push-{round}"));
        let sub = unique("user");
        let (by_jti, by_sub) = (token(&jti, "someone"), token("other", &sub));
        for s in &instances {
            until(s, by_jti, Verdict::Admitted(None)).await;
        }
        let writer = &instances[round % 3];
        let before = Instant::now();
        if round % 2 == 0 {
            writer.revoke(ISS, &jti, now() + 600).await.unwrap();
        } else {
            writer
                .revoke_issued_until(ISS, Principal::Subject(&sub), now(), now() + 600)
                .await
                .unwrap();
        }
        let written = before.elapsed();
        let t = if round % 2 == 0 { by_jti } else { by_sub };
        for s in &instances {
            let seen = until(s, t, Verdict::Revoked).await;
            delays.push(written + seen);
        }
    }
    delays.sort();
    println!(
        "revocation to refusal on 3 instances, 20 revocations: median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_is_rebuilt_with_what_it_missed() {
    let server = RedisServer::start();
    let watcher = RedisStore::builder(server.url())
        .revocation_replica(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let writer = RedisStore::builder(server.url())
        .without_revocation_replica()
        .connect()
        .await
        .unwrap();
    let jti = unique("missed");
    let t = token(&jti, "user-1");
    assert_eq!(
        watcher.try_check(t, None),
        Some(Ok(Verdict::Admitted(None)))
    );
    // Drop every subscription, then revoke at once: the message may be
    // lost, the key is not.
    server.command("CLIENT KILL TYPE pubsub").unwrap();
    writer.revoke(ISS, &jti, now() + 600).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out_of_sync = false;
    loop {
        match watcher.try_check(t, None) {
            Some(Ok(Verdict::Revoked)) => break,
            None => out_of_sync = true,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the missed revocation never arrived"
        );
        tokio::task::yield_now().await;
    }
    assert!(watcher.replica_in_sync());
    println!("subscription dropped; answered out of sync meanwhile: {out_of_sync}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_stops_answering_within_three_heartbeats() {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .revocation_replica(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let jti = unique("cut");
    let t = token(&jti, "user-1");
    assert_eq!(store.try_check(t, None), Some(Ok(Verdict::Admitted(None))));
    // Silent, with the connection up (every client paused, as behind a
    // partition that drops packets): no heartbeat arrives, so after three
    // heartbeats the replica stops answering, then resyncs.
    server.command("CLIENT PAUSE 2000 ALL").unwrap();
    let paused = Instant::now();
    let deadline = paused + Duration::from_secs(10);
    while store.replica_in_sync() {
        assert!(Instant::now() < deadline, "still answering while silent");
        tokio::task::yield_now().await;
    }
    let silent = paused.elapsed();
    assert_eq!(
        store.try_check(t, None),
        None,
        "out of sync: Redis must answer"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.replica_in_sync() {
        assert!(Instant::now() < deadline, "never resynced after the pause");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("silent channel: stopped answering after {silent:?} (heartbeat 100 ms)");
    // Redis gone: the subscription ends, the replica stops at once.
    server.kill();
    let cut = Instant::now();
    let deadline = cut + Duration::from_secs(10);
    while store.replica_in_sync() {
        assert!(Instant::now() < deadline, "still answering");
        tokio::task::yield_now().await;
    }
    let after = cut.elapsed();
    assert_eq!(
        store.try_check(t, None),
        None,
        "out of sync: Redis must answer"
    );
    assert!(
        store.check(t, None).await.is_err(),
        "fails closed without Redis"
    );
    println!("cut off: stopped answering after {after:?} (heartbeat 100 ms)");
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.replica_in_sync() {
        assert!(Instant::now() < deadline, "never resynced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.try_check(t, None), Some(Ok(Verdict::Admitted(None))));
}

/// A TCP proxy to Redis that can hold everything both ways while keeping
/// the connections open: a partition that drops packets, as TCP sees it
/// (nothing arrives; once healed, what was sent arrives, in order).
struct Partition {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    async fn to(upstream: std::net::SocketAddr) -> Partition {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                for (mut from, mut to, cut) in [
                    (
                        Box::new(dr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(uw) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                        flag.clone(),
                    ),
                    (Box::new(ur), Box::new(dw), flag.clone()),
                ] {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while cut.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Partition { addr, cut }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An instance cut off from Redis by a partition that drops packets (its
/// connections stay up) while another revokes a token: it stops answering
/// from its replica within three heartbeats, never accepts the revoked
/// token after that (Redis cannot answer it: it fails closed), and once the
/// partition heals it resyncs and refuses the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_during_a_partition_is_never_accepted_beyond_the_bound() {
    let server = RedisServer::start();
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let partition = Partition::to(upstream).await;
    let heartbeat = Duration::from_millis(100);
    let cut_off = RedisStore::builder(partition.url())
        .revocation_replica(heartbeat)
        .response_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let writer = RedisStore::connect(&server.url()).await.unwrap();
    let jti = unique("partitioned");
    let t = token(&jti, "user-1");
    assert_eq!(
        cut_off.check(t, None).await.unwrap(),
        Verdict::Admitted(None)
    );

    partition.cut(true);
    let cut_at = Instant::now();
    writer.revoke(ISS, &jti, now() + 600).await.unwrap();
    // Answers while cut off: accepted only until the replica noticed the
    // silence; after that Redis is asked and cannot answer.
    let mut last_accepted = None;
    let deadline = cut_at + Duration::from_secs(2);
    while Instant::now() < deadline {
        match cut_off.check(t, None).await {
            Ok(Verdict::Admitted(None)) => last_accepted = Some(cut_at.elapsed()),
            Ok(other) => panic!("cut off, yet answered {other:?}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bound = heartbeat * 3 + Duration::from_millis(150);
    assert!(
        last_accepted.is_none_or(|at| at <= bound),
        "accepted the revoked token {last_accepted:?} after the partition (bound {bound:?})"
    );
    assert!(!cut_off.replica_in_sync());
    partition.cut(false);
    let healed = Instant::now();
    loop {
        if cut_off.try_check(t, None) == Some(Ok(Verdict::Revoked)) {
            break;
        }
        assert!(healed.elapsed() < Duration::from_secs(30), "never resynced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "partition: revoked token last accepted {last_accepted:?} after the cut (heartbeat {heartbeat:?}, bound {bound:?}); resynced {:?} after healing",
        healed.elapsed()
    );
}
