//! `SqliteStore` beyond the conformance suite: reopening keeps counters and
//! revocations, one owner per file, group commit, periodic purge, odd
//! inputs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, now};
use tollgate_core::policy::{
    Consumed, Consumption, CreditStore, Principal, RevocationStore, Store, TokenRef, Verdict,
};
use tollgate_sqlite::SqliteStore;

const ISS: &str = "https://issuer.test";

fn token(jti: &str) -> TokenRef<'_> {
    TokenRef {
        issuer: ISS,
        token_id: Some(jti),
        subject: Some("user-1"),
        client_id: Some("client-1"),
        issued_at: Some(now() - 10),
        expires_at: now() + 3600,
    }
}

fn charge(allowance: u64, cost: u64) -> Consumption {
    Consumption { allowance, cost }
}

#[tokio::test]
async fn survives_close_and_reopen() {
    let dir = TempDir::new("tollgate-sqlite-reopen");
    let t = now();
    {
        let store = SqliteStore::open(dir.db()).expect("open");
        for _ in 0..3 {
            store
                .consume(token("a"), charge(10, 2))
                .await
                .expect("consume");
        }
        assert_eq!(store.refund(token("a"), 10, 1).await.expect("refund"), 5);
        store
            .consume(token("b"), charge(1, 1))
            .await
            .expect("consume");
        store.revoke(ISS, "gone", t + 3600).await.expect("revoke");
        store
            .revoke_issued_until(ISS, Principal::Subject("sub-x"), t, t + 3600)
            .await
            .expect("watermark");
        store
            .revoke_issued_until(ISS, Principal::Client("client-x"), t, t + 3600)
            .await
            .expect("watermark");
        store.close().expect("close");
    }
    // Dropping (rather than closing) also joins the writer and releases the
    // file.
    {
        let store = SqliteStore::open(dir.db()).expect("reopen");
        store
            .consume(token("c"), charge(10, 4))
            .await
            .expect("consume");
    }

    let store = SqliteStore::open(dir.db()).expect("reopen");
    assert_eq!(store.spent(ISS, "a").await.expect("spent"), Some(5));
    assert_eq!(store.spent(ISS, "b").await.expect("spent"), Some(1));
    assert_eq!(store.spent(ISS, "c").await.expect("spent"), Some(4));
    assert_eq!(
        store
            .consume(token("a"), charge(10, 5))
            .await
            .expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    assert_eq!(
        store
            .consume(token("b"), charge(1, 1))
            .await
            .expect("consume"),
        Consumed::Exhausted { remaining: 0 }
    );
    // The revocations are back in memory: answered without waiting.
    assert_eq!(store.try_is_revoked(token("gone")), Some(Ok(true)));
    assert_eq!(store.try_is_revoked(token("a")), Some(Ok(false)));
    let mut by_sub = token("s1");
    by_sub.subject = Some("sub-x");
    by_sub.issued_at = Some(t - 1);
    assert_eq!(store.try_is_revoked(by_sub), Some(Ok(true)));
    by_sub.issued_at = Some(t);
    assert_eq!(store.try_is_revoked(by_sub), Some(Ok(true)));
    by_sub.issued_at = Some(t + 1);
    assert_eq!(store.try_is_revoked(by_sub), Some(Ok(false)));
    let mut by_client = token("c1");
    by_client.client_id = Some("client-x");
    by_client.issued_at = None;
    assert_eq!(store.try_is_revoked(by_client), Some(Ok(true)));
    assert_eq!(
        store
            .check(token("gone"), Some(charge(10, 1)))
            .await
            .expect("check"),
        Verdict::Revoked
    );
    assert_eq!(store.spent(ISS, "gone").await.expect("spent"), None);
}

#[tokio::test]
async fn one_store_per_file() {
    let dir = TempDir::new("tollgate-sqlite-owner");
    let first = SqliteStore::open(dir.db()).expect("open");
    first
        .consume(token("a"), charge(10, 1))
        .await
        .expect("consume");
    let second = SqliteStore::builder(dir.db())
        .busy_timeout(Duration::from_millis(100))
        .open();
    assert!(second.is_err(), "a second owner opened the file");
    // The first store is unharmed.
    first
        .consume(token("a"), charge(10, 1))
        .await
        .expect("consume");
    first.close().expect("close");
    let second = SqliteStore::open(dir.db()).expect("open after close");
    assert_eq!(second.spent(ISS, "a").await.expect("spent"), Some(2));
}

/// 64 tasks x 500 consumptions: every one charged exactly once, and the
/// writer committed them in groups (fewer commits than operations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit() {
    let dir = TempDir::new("tollgate-sqlite-groups");
    let store = Arc::new(SqliteStore::open(dir.db()).expect("open"));
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("own-{t}");
            for i in 0..500 {
                // Half on the task's own token, half on one shared token.
                let jti = if i % 2 == 0 { own.as_str() } else { "shared" };
                let c = store
                    .consume(token(jti), charge(1_000_000, 1))
                    .await
                    .expect("consume");
                assert!(matches!(c, Consumed::Charged { .. }));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = store.stats();
    assert_eq!(stats.operations, 64 * 500);
    assert_eq!(stats.failed_groups, 0);
    assert!(
        stats.commits < stats.operations,
        "no groups formed: {stats:?}"
    );
    assert!(stats.largest_group > 1, "{stats:?}");
    assert_eq!(
        store.spent(ISS, "shared").await.expect("spent"),
        Some(16_000)
    );
    for t in 0..64 {
        let own = format!("own-{t}");
        assert_eq!(store.spent(ISS, &own).await.expect("spent"), Some(250));
    }
    eprintln!(
        "group commit: {} operations in {} commits (mean group {:.1}, largest {})",
        stats.operations,
        stats.commits,
        stats.operations as f64 / stats.commits as f64,
        stats.largest_group
    );
}

#[tokio::test]
async fn writer_purges_by_itself() {
    let dir = TempDir::new("tollgate-sqlite-purge");
    let store = SqliteStore::builder(dir.db())
        .grace(10)
        .purge_interval(Duration::ZERO)
        .open()
        .expect("open");
    let mut dead = token("dead");
    dead.expires_at = now() - 60;
    store.consume(dead, charge(5, 1)).await.expect("consume");
    store.revoke(ISS, "dead", now() - 60).await.expect("revoke");
    store
        .consume(token("live"), charge(5, 1))
        .await
        .expect("consume");
    // The purge after each group has removed the expired entries.
    assert_eq!(store.spent(ISS, "dead").await.expect("spent"), None);
    assert_eq!(store.spent(ISS, "live").await.expect("spent"), Some(1));
    assert_eq!(store.try_is_revoked(dead), Some(Ok(false)));
    assert!(store.stats().purged >= 2);
}

#[tokio::test]
async fn grace_keeps_recently_expired_entries() {
    let dir = TempDir::new("tollgate-sqlite-grace");
    let store = SqliteStore::builder(dir.db())
        .grace(100)
        .open()
        .expect("open");
    let mut t = token("recent");
    t.expires_at = now() - 50;
    store.consume(t, charge(5, 1)).await.expect("consume");
    assert_eq!(store.purge_expired(now()).await.expect("purge"), 0);
    assert_eq!(store.spent(ISS, "recent").await.expect("spent"), Some(1));
    assert_eq!(store.purge_expired(now() + 60).await.expect("purge"), 1);
    assert_eq!(store.spent(ISS, "recent").await.expect("spent"), None);
}

#[tokio::test]
async fn odd_inputs_are_answered_not_panicked() {
    let dir = TempDir::new("tollgate-sqlite-odd");
    let store = SqliteStore::open(dir.db()).expect("open");
    let mut no_jti = token("x");
    no_jti.token_id = None;
    assert!(store.consume(no_jti, charge(5, 1)).await.is_err());
    assert!(store.refund(no_jti, 5, 1).await.is_err());
    assert!(store.check(no_jti, Some(charge(5, 1))).await.is_err());
    assert_eq!(
        store.check(no_jti, None).await.expect("check"),
        Verdict::Admitted(None)
    );

    // Allowances above i64::MAX count as i64::MAX; a cost above the
    // allowance is refused even when both are huge.
    let max = i64::MAX as u64;
    assert_eq!(
        store
            .consume(token("huge"), charge(u64::MAX - 1, u64::MAX))
            .await
            .expect("consume"),
        Consumed::Exhausted { remaining: max }
    );
    assert_eq!(
        store
            .consume(token("huge"), charge(u64::MAX, 5))
            .await
            .expect("consume"),
        Consumed::Charged { remaining: max - 5 }
    );
    assert_eq!(
        store
            .consume(token("huge"), charge(u64::MAX, u64::MAX))
            .await
            .expect("consume"),
        Consumed::Exhausted { remaining: max - 5 }
    );
    assert_eq!(
        store
            .refund(token("huge"), u64::MAX, u64::MAX)
            .await
            .expect("refund"),
        max
    );

    // Names with NUL bytes, quotes and non-ASCII are plain data.
    let odd = "a\0b'c\"; DROP TABLE credits; --é";
    let t = TokenRef {
        issuer: odd,
        ..token(odd)
    };
    assert_eq!(
        store.consume(t, charge(3, 1)).await.expect("consume"),
        Consumed::Charged { remaining: 2 }
    );
    assert_eq!(store.spent(odd, odd).await.expect("spent"), Some(1));
    store.revoke(odd, odd, now() + 60).await.expect("revoke");
    assert_eq!(store.try_is_revoked(t), Some(Ok(true)));

    // Cost 0 passes on an exhausted counter, and creates a new one.
    store
        .consume(token("zero"), charge(1, 1))
        .await
        .expect("consume");
    assert_eq!(
        store
            .consume(token("zero"), charge(0, 0))
            .await
            .expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    assert_eq!(
        store
            .consume(token("fresh"), charge(0, 0))
            .await
            .expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    assert_eq!(store.spent(ISS, "fresh").await.expect("spent"), Some(0));
}

#[test]
fn open_fails_cleanly_on_a_bad_path() {
    let dir = TempDir::new("tollgate-sqlite-badpath");
    assert!(SqliteStore::open(dir.path().join("missing/dir/x.db")).is_err());
    // A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).expect("write");
    assert!(SqliteStore::open(&junk).is_err());
}

#[test]
fn an_authenticator_refuses_a_store_whose_grace_is_below_the_leeway() {
    use tollgate_core::policy::Policies;
    use tollgate_core::{Algorithm, Authenticator, ConfigError, TrustedIssuer, VerifyingKey};
    let dir = TempDir::new("tollgate-sqlite-grace");
    let issuer = |leeway: u64| {
        TrustedIssuer::new("https://issuer.example")
            .audience("api")
            .leeway(Duration::from_secs(leeway))
            .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap())
    };
    let build = |store: Arc<SqliteStore>, leeway: u64| {
        Authenticator::builder()
            .issuer(issuer(leeway))
            .policies(Policies::new(store))
            .build()
    };
    // Grace 0: a spent counter could be purged while its token is still
    // accepted inside the default 60 s leeway.
    let store = Arc::new(
        SqliteStore::builder(dir.path().join("zero.db"))
            .grace(0)
            .open()
            .unwrap(),
    );
    let err = build(store, 60).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid(m) if m.contains("leeway")),
        "{err}"
    );
    let store = Arc::new(
        SqliteStore::builder(dir.path().join("short.db"))
            .grace(90)
            .open()
            .unwrap(),
    );
    assert!(build(store.clone(), 60).is_ok());
    assert!(
        build(store, 120).is_err(),
        "a longer leeway needs a longer grace"
    );
}
