//! Redis-specific behaviour on a real `redis-server`: one round trip per
//! check, keys that expire with the token, prefixes, the optional
//! "not revoked" cache, and surviving a killed Redis.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tollgate_conformance::redis_server::RedisServer;
use tollgate_conformance::{now, unique};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, MemoryStore, Principal, RevocationStore, Store, TokenRef,
    Verdict,
};
use tollgate_redis::RedisStore;

const ISS: &str = "https://issuer.example";

fn token(jti: &str) -> TokenRef<'_> {
    TokenRef {
        issuer: ISS,
        token_id: Some(jti),
        subject: Some("user-1"),
        client_id: Some("client-1"),
        issued_at: Some(now() - 5),
        expires_at: now() + 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_per_check() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .without_revocation_replica()
        .connect()
        .await
        .unwrap();
    let jti = unique("rt");
    let monitor = server.monitor();
    // MONITOR is on once its own `OK` arrived; a first marker proves it.
    server.command("ECHO monitor-on").unwrap();
    let _ = monitor.client_commands_until("monitor-on");
    server.command("CONFIG RESETSTAT").unwrap();
    for _ in 0..100 {
        let v = store
            .check(
                token(&jti),
                Some(Consumption {
                    allowance: 1000,
                    cost: 1,
                }),
            )
            .await
            .unwrap();
        assert!(matches!(
            v,
            Verdict::Admitted(Some(Consumed::Charged { .. }))
        ));
    }
    for _ in 0..50 {
        assert_eq!(
            store.check(token(&jti), None).await.unwrap(),
            Verdict::Admitted(None)
        );
    }
    server.command("ECHO checks-done").unwrap();
    let from_clients = monitor.client_commands_until("checks-done");
    let checks: Vec<_> = from_clients
        .iter()
        .filter(|c| !matches!(c.as_str(), "echo" | "config"))
        .collect();
    // 150 checks, 150 client commands, all EVALSHA: one round trip each.
    assert_eq!(checks.len(), 150, "{checks:?}");
    assert!(checks.iter().all(|c| *c == "evalsha"), "{checks:?}");
    assert_eq!(server.command_calls("evalsha"), 150);
    // INFO commandstats also counts what the script runs inside Redis.
    println!(
        "MONITOR: 150 checks -> {} client commands (all EVALSHA), {} commands inside the script; \
         INFO commandstats: {:?}",
        checks.len(),
        monitor.script_commands(),
        server.all_command_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_with_the_token_and_are_namespaced() {
    let server = RedisServer::start();
    let a = RedisStore::builder(server.url())
        .prefix("api-a")
        .grace(60)
        .connect()
        .await
        .unwrap();
    let b = RedisStore::builder(server.url())
        .prefix("api-b")
        .connect()
        .await
        .unwrap();
    let jti = unique("exp");
    let t = token(&jti);
    a.consume(
        t,
        Consumption {
            allowance: 5,
            cost: 2,
        },
    )
    .await
    .unwrap();
    a.revoke(ISS, &jti, t.expires_at).await.unwrap();
    let at = |key: String| {
        let reply = server.command(&format!("EXPIRETIME \"{key}\"")).unwrap();
        reply.trim().trim_start_matches(':').parse::<i64>().unwrap()
    };
    assert_eq!(
        at(format!("api-a:c:{{{ISS}\u{1f}{jti}}}")),
        t.expires_at + 60
    );
    assert_eq!(
        at(format!("api-a:r:{{{ISS}\u{1f}{jti}}}")),
        t.expires_at + 60
    );
    // Another prefix is another namespace.
    assert_eq!(b.spent(ISS, &jti).await.unwrap(), None);
    assert!(!b.is_revoked(t).await.unwrap());
    assert_eq!(a.spent(ISS, &jti).await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_revoked_cache_is_off_by_default_and_bounded_when_on() {
    let server = RedisServer::start();
    // The cache matters without the revocation replica.
    let without = || RedisStore::builder(server.url()).without_revocation_replica();
    let cached = without()
        .not_revoked_cache(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let plain = without().connect().await.unwrap();
    let other = without().connect().await.unwrap();
    let jti = unique("cache");
    let t = token(&jti);
    assert_eq!(
        cached.check(t, None).await.unwrap(),
        Verdict::Admitted(None)
    );
    assert_eq!(cached.try_check(t, None), Some(Ok(Verdict::Admitted(None))));
    assert_eq!(plain.try_check(t, None), None, "off by default");
    // Revoked through another instance: the cached answer is stale until
    // its TTL; the plain store sees it at once.
    other.revoke(ISS, &jti, t.expires_at).await.unwrap();
    assert_eq!(plain.check(t, None).await.unwrap(), Verdict::Revoked);
    assert_eq!(cached.try_check(t, None), Some(Ok(Verdict::Admitted(None))));
    // Metered requests always ask Redis.
    let metered = cached
        .check(
            t,
            Some(Consumption {
                allowance: 5,
                cost: 1,
            }),
        )
        .await
        .unwrap();
    assert_eq!(metered, Verdict::Revoked);
    // This instance's own revocations clear its cache.
    let jti2 = unique("cache2");
    let t2 = token(&jti2);
    assert_eq!(
        cached.check(t2, None).await.unwrap(),
        Verdict::Admitted(None)
    );
    cached.revoke(ISS, &jti2, t2.expires_at).await.unwrap();
    assert_eq!(cached.try_check(t2, None), None);
    assert_eq!(cached.check(t2, None).await.unwrap(), Verdict::Revoked);
}

/// Redis killed mid-load: calls fail (closed), none is acknowledged
/// without being recorded; restarted with AOF, counters and revocations are
/// intact and the same store object works again without reconnecting by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_killed_redis() {
    let mut server = RedisServer::start_with_aof();
    let store = Arc::new(RedisStore::connect(&server.url()).await.unwrap());
    let jti: Arc<str> = unique("kill").into();
    let revoked = unique("revoked");
    store.revoke(ISS, &revoked, now() + 600).await.unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, jti, acked, failed, stop) = (
            store.clone(),
            jti.clone(),
            acked.clone(),
            failed.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match store
                    .consume(
                        token(&jti),
                        Consumption {
                            allowance: 1_000_000,
                            cost: 1,
                        },
                    )
                    .await
                {
                    Ok(Consumed::Charged { .. }) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Consumed::Exhausted { .. }) => panic!("allowance is ample"),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 2_000 {
        assert!(Instant::now() < deadline, "load never reached 2,000 calls");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let failed_at_kill = failed.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while failed.load(Ordering::Relaxed) < failed_at_kill + 50 {
        assert!(
            Instant::now() < deadline,
            "calls kept succeeding after the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.load(Ordering::Relaxed);
    assert!(failed.load(Ordering::Relaxed) >= 50);
    // The revocation replica stops answering once it hears nothing for
    // three heartbeats (bounded wait); unmetered checks then fail closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.replica_in_sync() {
        assert!(Instant::now() < deadline, "replica still trusted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = store.check(token(&jti), None).await.unwrap_err();
    assert!(
        !err.to_string().contains(&*jti),
        "errors never name the token"
    );

    server.restart();
    // The same store reconnects by itself (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let spent = loop {
        if let Ok(v) = store.spent(ISS, &jti).await {
            break v.unwrap();
        }
        assert!(Instant::now() < deadline, "store did not reconnect");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Every acknowledged consumption survived (AOF, fsync always); at most
    // the 16 in flight at the kill were applied without an answer.
    assert!(
        spent >= acked && spent <= acked + 16,
        "spent {spent}, acked {acked}"
    );
    // The replica resubscribes and rebuilds by itself (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.replica_in_sync() {
        assert!(Instant::now() < deadline, "replica did not resync");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.is_revoked(token(&revoked)).await.unwrap());
    assert!(matches!(
        store
            .consume(
                token(&jti),
                Consumption {
                    allowance: 1_000_000,
                    cost: 1
                }
            )
            .await,
        Ok(Consumed::Charged { .. })
    ));
}

/// `EXPIRETIME` of a key, read straight from Redis (-2: no such key).
fn expire_time(server: &RedisServer, key: &str) -> i64 {
    let reply = server.command(&format!("EXPIRETIME \"{key}\"")).unwrap();
    reply.trim().trim_start_matches(':').parse::<i64>().unwrap()
}

fn key(kind: &str, id: &str) -> String {
    format!("tollgate:{kind}:{{{ISS}\u{1f}{id}}}")
}

fn one_credit() -> Consumption {
    Consumption {
        allowance: 1,
        cost: 1,
    }
}

/// `grace(0)` would let a token still inside the validation leeway (60 s)
/// expire its own counter at once, and with it every credit it spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_zero_still_outlives_the_leeway() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .grace(0)
        .connect()
        .await
        .unwrap();
    let jti = unique("leeway");
    // Expired 30 s ago: still accepted with the default 60 s leeway.
    let t = TokenRef {
        expires_at: now() - 30,
        ..token(&jti)
    };
    assert!(matches!(
        store.consume(t, one_credit()).await.unwrap(),
        Consumed::Charged { remaining: 0 }
    ));
    assert_eq!(
        store.check(t, Some(one_credit())).await.unwrap(),
        Verdict::Admitted(Some(Consumed::Exhausted { remaining: 0 }))
    );
    assert_eq!(store.spent(ISS, &jti).await.unwrap(), Some(1));
    assert!(expire_time(&server, &key("c", &jti)) >= t.expires_at + 60);

    let revoked = unique("leeway-revoked");
    let r = TokenRef {
        expires_at: now() - 30,
        ..token(&revoked)
    };
    store.revoke(ISS, &revoked, r.expires_at).await.unwrap();
    assert!(store.is_revoked(r).await.unwrap());
    assert!(expire_time(&server, &key("r", &revoked)) >= r.expires_at + 60);
}

/// An expiry already in the past (an API clock behind Redis's) never
/// deletes a fresh counter, marker or watermark: they live at least
/// `grace` seconds from now, by Redis's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_in_the_past_never_deletes_a_live_key() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let before = now();
    let jti = unique("past");
    let t = TokenRef {
        expires_at: before - 1000,
        ..token(&jti)
    };
    assert!(matches!(
        store.check(t, Some(one_credit())).await.unwrap(),
        Verdict::Admitted(Some(Consumed::Charged { remaining: 0 }))
    ));
    assert_eq!(
        store.consume(t, one_credit()).await.unwrap(),
        Consumed::Exhausted { remaining: 0 }
    );
    assert!(expire_time(&server, &key("c", &jti)) >= before + 300);

    let revoked = unique("past-revoked");
    store.revoke(ISS, &revoked, before - 1000).await.unwrap();
    assert!(store.is_revoked(token(&revoked)).await.unwrap());
    assert!(expire_time(&server, &key("r", &revoked)) >= before + 300);

    store
        .revoke_issued_until(ISS, Principal::Subject("past-user"), before, before - 1000)
        .await
        .unwrap();
    let w = format!("tollgate:ws:{ISS}\u{1f}past-user");
    assert!(expire_time(&server, &w) >= before + 300);
    let of_user = TokenRef {
        subject: Some("past-user"),
        ..token(&jti)
    };
    assert!(store.is_revoked(of_user).await.unwrap());
}

/// A second revocation (or watermark raise) with a shorter life never
/// shortens the first one's, as in the memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_keep_their_longest_expiry() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let t0 = now();
    let jti = unique("longest");
    store.revoke(ISS, &jti, t0 + 10_000).await.unwrap();
    store.revoke(ISS, &jti, t0 + 600).await.unwrap();
    assert_eq!(expire_time(&server, &key("r", &jti)), t0 + 10_000 + 300);

    let subject = unique("longest-user");
    let w = format!("tollgate:ws:{ISS}\u{1f}{subject}");
    for (before, keep_until) in [(t0 - 10, t0 + 10_000), (t0, t0 + 600), (t0 - 20, t0 + 900)] {
        store
            .revoke_issued_until(ISS, Principal::Subject(&subject), before, keep_until)
            .await
            .unwrap();
        assert_eq!(expire_time(&server, &w), t0 + 10_000 + 300);
    }
    // The watermark itself only ever rose.
    let mark = server.command(&format!("GET \"{w}\"")).unwrap();
    assert!(mark.ends_with(&format!("{t0}\r\n")), "{mark}");
}

/// Tokens without a `jti` share no revocation marker: revoking the id ""
/// revokes the token whose `jti` is "" (as the memory store does), never
/// every token without one. A metered check needs a `jti`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_jti_share_no_revocation_marker() {
    let server = RedisServer::start();
    let redis = RedisStore::connect(&server.url()).await.unwrap();
    let memory = MemoryStore::new();
    let stores: [&dyn Store; 2] = [&redis, &memory];
    for store in stores {
        let without = TokenRef {
            token_id: None,
            ..token("")
        };
        let empty = token("");
        store.revoke(ISS, "", now() + 600).await.unwrap();
        assert!(!store.is_revoked(without).await.unwrap());
        assert_eq!(
            store.check(without, None).await.unwrap(),
            Verdict::Admitted(None)
        );
        assert!(store.is_revoked(empty).await.unwrap());
        assert!(store.check(without, Some(one_credit())).await.is_err());
        assert!(store.consume(without, one_credit()).await.is_err());
    }
    let keys = server.command("DBSIZE").unwrap();
    assert_eq!(keys.trim(), ":1", "only the marker of jti \"\" was written");
}

/// Allowances and costs are capped at 2^53, where Lua's numbers are exact,
/// and reach Redis's INCRBY/DECRBY as the integers they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_allowances_stay_exact() {
    const EXACT: u64 = 1 << 53;
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let jti = unique("large");
    let t = token(&jti);
    let huge = |cost| Consumption {
        allowance: u64::MAX,
        cost,
    };
    assert_eq!(
        store.check(t, Some(huge(1))).await.unwrap(),
        Verdict::Admitted(Some(Consumed::Charged {
            remaining: EXACT - 1
        }))
    );
    assert_eq!(
        store.consume(t, huge(EXACT - 2)).await.unwrap(),
        Consumed::Charged { remaining: 1 }
    );
    assert_eq!(store.spent(ISS, &jti).await.unwrap(), Some(EXACT - 1));
    assert_eq!(
        store.consume(t, huge(2)).await.unwrap(),
        Consumed::Exhausted { remaining: 1 }
    );
    assert_eq!(
        store.refund(t, u64::MAX, EXACT - 3).await.unwrap(),
        EXACT - 2
    );
    assert_eq!(store.spent(ISS, &jti).await.unwrap(), Some(2));
    // Beyond 2^53 a cost counts as 2^53: more than any allowance left.
    assert_eq!(
        store
            .consume(t, huge(100_000_000_000_000_000))
            .await
            .unwrap(),
        Consumed::Exhausted {
            remaining: EXACT - 2
        }
    );
    assert_eq!(store.refund(t, u64::MAX, u64::MAX).await.unwrap(), EXACT);
    assert_eq!(store.spent(ISS, &jti).await.unwrap(), Some(0));
}

/// A "not revoked" answer in flight while this instance revokes the token
/// never lands in the cache after the revocation cleared it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_revoked_cache_never_outlives_an_own_revocation() {
    let server = RedisServer::start();
    let store = Arc::new(
        RedisStore::builder(server.url())
            .without_revocation_replica()
            .not_revoked_cache(Duration::from_secs(3600))
            .connect()
            .await
            .unwrap(),
    );
    let mut stale = 0;
    for round in 0..200 {
        let jti: Arc<str> = unique(&format!("race-{round}")).into();
        let stop = Arc::new(AtomicBool::new(false));
        let mut checkers = Vec::new();
        for _ in 0..4 {
            let (store, jti, stop) = (store.clone(), jti.clone(), stop.clone());
            checkers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if store.check(token(&jti), None).await.unwrap() == Verdict::Revoked {
                        break;
                    }
                }
            }));
        }
        tokio::task::yield_now().await;
        store.revoke(ISS, &jti, now() + 600).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in checkers {
            c.await.unwrap();
        }
        if store.try_check(token(&jti), None) == Some(Ok(Verdict::Admitted(None))) {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "revoked tokens still cached as not revoked");
}

/// 64 tasks on three instances race one allowance: exactly the allowance
/// is charged, and checks arriving together shared script calls (fewer
/// calls than checks), each answered as its own call would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_arriving_together_share_a_call_and_stay_exact() {
    let server = RedisServer::start();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(RedisStore::connect(&server.url()).await.unwrap()));
    }
    let jti = unique("together");
    server.command("CONFIG RESETSTAT").unwrap();
    let mut tasks = Vec::new();
    for t in 0..64usize {
        let (store, jti) = (stores[t % 3].clone(), jti.clone());
        tasks.push(tokio::spawn(async move {
            let (mut charged, mut exhausted, mut last) = (0u64, 0u64, None);
            for _ in 0..100 {
                let c = Consumption {
                    allowance: 5000,
                    cost: 1,
                };
                match store.check(token(&jti), Some(c)).await.unwrap() {
                    Verdict::Admitted(Some(Consumed::Charged { remaining })) => {
                        // One task's answers count down.
                        assert!(last.is_none_or(|l| remaining < l));
                        last = Some(remaining);
                        charged += 1;
                    }
                    Verdict::Admitted(Some(Consumed::Exhausted { remaining: 0 })) => exhausted += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            (charged, exhausted)
        }));
    }
    let (mut charged, mut exhausted) = (0, 0);
    for t in tasks {
        let (c, e) = t.await.unwrap();
        charged += c;
        exhausted += e;
    }
    assert_eq!((charged, exhausted), (5000, 1400));
    assert_eq!(stores[0].spent(ISS, &jti).await.unwrap(), Some(5000));
    let calls = server.command_calls("evalsha");
    assert!(calls < 6400, "{calls} calls for 6,400 checks");
    println!("6,400 checks from 64 tasks on 3 instances: {calls} script calls");
}
