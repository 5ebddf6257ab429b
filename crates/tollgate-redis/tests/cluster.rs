//! The store on a real Redis Cluster the test starts on 127.0.0.1: three
//! instances share one allowance exactly while the token's slot moves to
//! another master (`TRYAGAIN`, `ASK`, `MOVED`) and while its master is
//! killed and a replica takes over; unmetered checks make no call; a
//! revocation reaches every instance; a dropped subscription is rebuilt
//! from every master's keys.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tollgate_conformance::redis_cluster::RedisCluster;
use tollgate_conformance::{now, unique};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RevocationStore, Store, TokenRef, Verdict,
};
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

/// The slot of a token's keys (their hash tag).
fn slot_of(cluster: &RedisCluster, jti: &str) -> u16 {
    cluster.keyslot(&format!("tollgate:c:{{{ISS}\u{1f}{jti}}}"))
}

async fn instances(cluster: &RedisCluster, n: usize) -> Vec<Arc<RedisStore>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        // A failover here takes about 2 s; leave room on a busy machine.
        let store = RedisStore::cluster_builder(cluster.urls())
            .retry_charges_for(Duration::from_secs(15))
            .connect()
            .await
            .unwrap();
        stores.push(Arc::new(store));
    }
    stores
}

/// What `requests` metered checks of cost 1 against `allowance`, spread
/// over `stores` by `workers` tasks, answered: (charged, exhausted,
/// errors). `charged` counts as they come, for the caller to act mid-load.
async fn spend(
    stores: &[Arc<RedisStore>],
    jti: &str,
    allowance: u64,
    requests: usize,
    workers: usize,
    charged: Arc<AtomicU64>,
) -> (u64, u64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, next, charged) = (
            stores[w % stores.len()].clone(),
            next.clone(),
            charged.clone(),
        );
        let jti = jti.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut exhausted, mut errors) = (0, 0);
            while next.fetch_add(1, Ordering::Relaxed) < requests as u64 {
                let c = Consumption { allowance, cost: 1 };
                match store.check(token(&jti, "user-1"), Some(c)).await {
                    Ok(Verdict::Admitted(Some(Consumed::Charged { .. }))) => {
                        charged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Verdict::Admitted(Some(Consumed::Exhausted { .. }))) => exhausted += 1,
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(_) => errors += 1,
                }
            }
            (exhausted, errors)
        }));
    }
    let (mut exhausted, mut errors) = (0, 0);
    for t in tasks {
        let (e, f) = t.await.unwrap();
        exhausted += e;
        errors += f;
    }
    (charged.load(Ordering::Relaxed), exhausted, errors)
}

async fn until_charged(charged: &AtomicU64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while charged.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowance_stays_exact_while_its_slot_moves() {
    let cluster = Arc::new(RedisCluster::start(3, 1));
    let stores = instances(&cluster, 3).await;
    let jti = unique("moving");
    let slot = slot_of(&cluster, &jti);
    let from = cluster.master_of(slot);
    let to = (0..cluster.len())
        .find(|&i| i != from && cluster.master_of(slot) != i && is_master(&cluster, i))
        .unwrap();
    let charged = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (stores, jti, charged) = (stores.clone(), jti.clone(), charged.clone());
        async move { spend(&stores, &jti, 1000, 3000, 48, charged).await }
    });
    until_charged(&charged, 200).await;
    // The standard migration, with load between its steps: while the slot
    // is MIGRATING the script (keys present and missing) gets TRYAGAIN,
    // once the keys moved a read gets ASK, once done everything gets MOVED.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.begin_migration(slot, to))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = cluster.clone();
    let moved = tokio::task::spawn_blocking(move || c.migrate_keys(slot))
        .await
        .unwrap();
    // Asked of the old master, answered by the new one (ASK).
    let mid = stores[0].spent(ISS, &jti).await;
    let mid = mid
        .map_err(|e| tollgate_core::with_causes(&e))
        .unwrap()
        .unwrap();
    assert!(mid >= 200, "{mid}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.finish_migration(slot, to))
        .await
        .unwrap();
    let (ok, exhausted, errors) = load.await.unwrap();
    assert!(moved >= 1, "the counter moved");
    assert_eq!(cluster.master_of(slot), to);
    assert_eq!((ok, exhausted, errors), (1000, 2000, 0));
    for s in &stores {
        assert_eq!(s.spent(ISS, &jti).await.unwrap(), Some(1000));
    }
    println!(
        "slot {slot} moved from node {from} to node {to} under load: 1000 charged, 2000 exhausted"
    );
}

fn is_master(cluster: &RedisCluster, i: usize) -> bool {
    cluster
        .node(i)
        .command("ROLE")
        .is_some_and(|r| r.contains("master"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowance_stays_exact_through_a_failover() {
    // One replica per master: the one promoted holds every acknowledged
    // write (with two, WAIT 1 might be answered by the one not promoted).
    let cluster = RedisCluster::start(3, 1);
    let jti = unique("failover");
    let (stores, slot) = (instances(&cluster, 3).await, slot_of(&cluster, &jti));
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let charged = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (stores, jti, charged) = (stores.clone(), jti.clone(), charged.clone());
        async move { spend(&stores, &jti, 1000, 3000, 300, charged).await }
    });
    until_charged(&charged, 300).await;
    let c = cluster.clone();
    let started = Instant::now();
    let (killed, promoted) = tokio::task::spawn_blocking(move || {
        let mut c = c.lock().unwrap();
        let killed = c.kill_master_of(slot);
        let promoted = c.wait_for_master_of(slot, killed);
        // Writes to that shard wait for a replica again: the failed node,
        // restarted, rejoins as one.
        c.restart(killed);
        (killed, promoted)
    })
    .await
    .unwrap();
    let failover = started.elapsed();
    let (ok, exhausted, errors) = load.await.unwrap();
    assert_ne!(killed, promoted);
    // Every charge acknowledged by a replica before it was answered, and a
    // charge whose answer was lost sent again with its receipt: none lost,
    // none doubled, no request refused for the failover.
    assert_eq!((ok, exhausted, errors), (1000, 2000, 0));
    assert_eq!(stores[1].spent(ISS, &jti).await.unwrap(), Some(1000));
    println!(
        "master {killed} of slot {slot} killed after 300 charges; replica {promoted} took over in {failover:?}; 1000 charged, 2000 exhausted, 0 errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmetered_checks_make_no_call_and_revocations_reach_every_instance() {
    let cluster = RedisCluster::start(3, 1);
    let stores = instances(&cluster, 3).await;
    assert!(stores.iter().all(|s| s.replica_in_sync()));
    let jti = unique("quiet");
    let t = token(&jti, "user-1");
    let before = cluster.command_calls("evalsha") + cluster.command_calls("get");
    for _ in 0..1000 {
        for s in &stores {
            assert_eq!(s.check(t, None).await.unwrap(), Verdict::Admitted(None));
        }
    }
    let after = cluster.command_calls("evalsha") + cluster.command_calls("get");
    assert_eq!(after, before, "3,000 unmetered checks, no call");

    let mut delays = Vec::new();
    for round in 0..20 {
        let jti = unique(&format!("push-{round}"));
        let sub = unique("user");
        let (by_jti, by_sub) = (token(&jti, "someone"), token("other", &sub));
        let writer = &stores[round % 3];
        let start = Instant::now();
        if round % 2 == 0 {
            writer.revoke(ISS, &jti, now() + 600).await.unwrap();
        } else {
            writer
                .revoke_issued_until(ISS, Principal::Subject(&sub), now(), now() + 600)
                .await
                .unwrap();
        }
        let t = if round % 2 == 0 { by_jti } else { by_sub };
        for s in &stores {
            let deadline = start + Duration::from_secs(10);
            while s.try_check(t, None) != Some(Ok(Verdict::Revoked)) {
                assert!(Instant::now() < deadline, "never refused");
                tokio::task::yield_now().await;
            }
            delays.push(start.elapsed());
        }
        // Metered checks see the watermark too (the replica answers for it).
        let c = Consumption {
            allowance: 10,
            cost: 1,
        };
        assert_eq!(
            stores[(round + 1) % 3].check(t, Some(c)).await.unwrap(),
            Verdict::Revoked
        );
    }
    delays.sort();
    println!(
        "cluster: revocation to refusal on 3 instances, 20 revocations: median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_is_rebuilt_from_every_master() {
    let cluster = RedisCluster::start(3, 1);
    let watcher = RedisStore::cluster_builder(cluster.urls())
        .revocation_replica(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let writer = RedisStore::cluster_builder(cluster.urls())
        .without_revocation_replica()
        .connect()
        .await
        .unwrap();
    // Revocations on every master: ids until each master holds one.
    let mut revoked = Vec::new();
    let mut masters_hit = std::collections::HashSet::new();
    while masters_hit.len() < 3 {
        let jti = unique("missed");
        masters_hit.insert(
            cluster.master_of(cluster.keyslot(&format!("tollgate:r:{{{ISS}\u{1f}{jti}}}"))),
        );
        revoked.push(jti);
    }
    for i in 0..cluster.len() {
        let _ = cluster.node(i).command("CLIENT KILL TYPE pubsub");
    }
    for jti in &revoked {
        writer.revoke(ISS, jti, now() + 600).await.unwrap();
    }
    writer
        .revoke_issued_until(ISS, Principal::Client("client-9"), now(), now() + 600)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for jti in &revoked {
        while watcher.try_check(token(jti, "u"), None) != Some(Ok(Verdict::Revoked)) {
            assert!(
                Instant::now() < deadline,
                "a missed revocation never arrived"
            );
            tokio::task::yield_now().await;
        }
    }
    let by_client = TokenRef {
        client_id: Some("client-9"),
        ..token("any", "u")
    };
    while watcher.try_check(by_client, None) != Some(Ok(Verdict::Revoked)) {
        assert!(
            Instant::now() < deadline,
            "the missed watermark never arrived"
        );
        tokio::task::yield_now().await;
    }
    assert!(watcher.replica_in_sync());
}
