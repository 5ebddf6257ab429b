//! Redis-specific behaviour on a real `redis-server`: one round trip per
//! check, keys that expire with the token, prefixes, the optional
//! "not revoked" cache, and surviving a killed Redis.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tollgate_conformance::redis_server::RedisServer;
use tollgate_conformance::{now, unique};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, RevocationStore, Store, TokenRef, Verdict,
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
    let store = RedisStore::connect(&server.url()).await.unwrap();
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
    let cached = RedisStore::builder(server.url())
        .not_revoked_cache(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    let plain = RedisStore::connect(&server.url()).await.unwrap();
    let other = RedisStore::connect(&server.url()).await.unwrap();
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
    while acked.load(Ordering::Relaxed) < 2_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let failed_at_kill = failed.load(Ordering::Relaxed);
    while failed.load(Ordering::Relaxed) < failed_at_kill + 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.load(Ordering::Relaxed);
    assert!(failed.load(Ordering::Relaxed) >= 50);
    let err = store.check(token(&jti), None).await.unwrap_err();
    assert!(!err.0.contains(&*jti), "errors never name the token");

    server.restart();
    // The same store reconnects by itself (bounded wait).
    let mut back = None;
    for _ in 0..200 {
        if let Ok(v) = store.spent(ISS, &jti).await {
            back = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let spent = back.expect("store reconnected").unwrap();
    // Every acknowledged consumption survived (AOF, fsync always); at most
    // the 16 in flight at the kill were applied without an answer.
    assert!(
        spent >= acked && spent <= acked + 16,
        "spent {spent}, acked {acked}"
    );
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
