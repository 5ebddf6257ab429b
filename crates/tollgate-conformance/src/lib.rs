//! The conformance suite every Tollgate store passes: exact consumption
//! under concurrency, refunds, revocation by `jti` and by watermark, and
//! expiry.
//!
//! A store crate runs it with one line in a test file:
//!
//! ```ignore
//! tollgate_conformance::store_conformance!(make_harness);
//! ```
//!
//! where `make_harness` is an `async fn() -> Harness`. Every case uses its
//! own token ids, so one store (or one Redis) may serve all cases.

#![forbid(unsafe_code)]

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_core::policy::{
    Consumed, Consumption, Principal, RefreshGrant, Rotation, Store, TokenRef, Verdict,
};

#[cfg(feature = "grpc")]
pub mod grpc;
pub mod interop;
pub mod jwt;
pub mod redis_cluster;
pub mod redis_server;

/// A store under test, and whatever must live as long as it (a temporary
/// directory, a server process).
pub struct Harness {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Dropped after the case.
    pub guard: Box<dyn Any + Send>,
    /// The store removes expired entries on [`Store::purge_expired`] (stores
    /// whose entries expire by themselves say `false`).
    pub purges: bool,
}

impl Harness {
    /// A harness for a store that needs nothing kept alive.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Harness {
            store,
            guard: Box::new(()),
            purges: true,
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A token id no other case (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos:x}-{n}")
}

const ISS: &str = "https://issuer.conformance";

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

/// 64 tasks race 20,000 consumptions of 1 against an allowance of 10,000:
/// exactly 10,000 succeed and the counter says 10,000.
pub async fn exact_under_concurrency(h: &Harness) {
    let jti: Arc<str> = unique("race").into();
    let tickets = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, jti) = (h.store.clone(), jti.clone());
        let (tickets, ok, refused) = (tickets.clone(), ok.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            while tickets.fetch_add(1, Ordering::Relaxed) < 20_000 {
                match store.consume(token(&jti), charge(10_000, 1)).await {
                    Ok(Consumed::Charged { .. }) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(Consumed::Exhausted { remaining }) => {
                        assert_eq!(remaining, 0);
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => panic!("store error: {e}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(ok.load(Ordering::Relaxed), 10_000);
    assert_eq!(refused.load(Ordering::Relaxed), 10_000);
    assert_eq!(h.store.spent(ISS, &jti).await.expect("spent"), Some(10_000));
}

/// Racing consumptions of mixed cost never spend more than the allowance,
/// and what was granted is exactly what the counter holds.
pub async fn mixed_costs_never_overspend(h: &Harness) {
    let jti: Arc<str> = unique("mixed").into();
    let granted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (store, jti, granted) = (h.store.clone(), jti.clone(), granted.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                let cost = (t + i) % 4; // 0..=3, cost 0 included
                if let Consumed::Charged { .. } = store
                    .consume(token(&jti), charge(1_000, cost))
                    .await
                    .expect("consume")
                {
                    granted.fetch_add(cost, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let granted = granted.load(Ordering::Relaxed);
    assert!(granted <= 1_000);
    assert!(granted >= 997, "allowance left unused: {granted}");
    assert_eq!(
        h.store.spent(ISS, &jti).await.expect("spent"),
        Some(granted)
    );
}

/// Credits count down; an exhausted consumption changes nothing; cost 0
/// passes even when nothing is left.
pub async fn counts_down_and_stops(h: &Harness) {
    let jti = unique("down");
    let s = &h.store;
    assert_eq!(s.spent(ISS, &jti).await.expect("spent"), None);
    for left in [2, 1, 0] {
        assert_eq!(
            s.consume(token(&jti), charge(3, 1)).await.expect("consume"),
            Consumed::Charged { remaining: left }
        );
    }
    assert_eq!(
        s.consume(token(&jti), charge(3, 1)).await.expect("consume"),
        Consumed::Exhausted { remaining: 0 }
    );
    assert_eq!(
        s.consume(token(&jti), charge(3, 0)).await.expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    assert_eq!(s.spent(ISS, &jti).await.expect("spent"), Some(3));

    let big = unique("big");
    assert_eq!(
        s.consume(token(&big), charge(5, 6)).await.expect("consume"),
        Consumed::Exhausted { remaining: 5 }
    );
    assert_eq!(
        s.consume(token(&big), charge(5, 5)).await.expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    // Counters are per (iss, jti): the same jti from another issuer is apart.
    let other = TokenRef {
        issuer: "https://other.conformance",
        ..token(&big)
    };
    assert_eq!(
        s.consume(other, charge(5, 1)).await.expect("consume"),
        Consumed::Charged { remaining: 4 }
    );
}

/// Refunds give credits back and never push spending below zero.
pub async fn refunds(h: &Harness) {
    let jti = unique("refund");
    let s = &h.store;
    s.consume(token(&jti), charge(10, 4))
        .await
        .expect("consume");
    assert_eq!(s.refund(token(&jti), 10, 3).await.expect("refund"), 9);
    assert_eq!(s.spent(ISS, &jti).await.expect("spent"), Some(1));
    assert_eq!(s.refund(token(&jti), 10, 5).await.expect("refund"), 10);
    assert_eq!(s.spent(ISS, &jti).await.expect("spent"), Some(0));
    assert_eq!(
        s.consume(token(&jti), charge(10, 10))
            .await
            .expect("consume"),
        Consumed::Charged { remaining: 0 }
    );
    let unknown = unique("refund-unknown");
    assert_eq!(s.refund(token(&unknown), 10, 5).await.expect("refund"), 10);
}

/// Revocation by (`iss`, `jti`); a revoked token spends nothing in `check`.
pub async fn revocation_by_jti(h: &Harness) {
    let jti = unique("revoke");
    let keep = unique("keep");
    let s = &h.store;
    assert_eq!(
        s.check(token(&jti), Some(charge(5, 1)))
            .await
            .expect("check"),
        Verdict::Admitted(Some(Consumed::Charged { remaining: 4 }))
    );
    s.revoke(ISS, &jti, now() + 3600).await.expect("revoke");
    assert!(s.is_revoked(token(&jti)).await.expect("is_revoked"));
    assert!(!s.is_revoked(token(&keep)).await.expect("is_revoked"));
    assert_eq!(
        s.check(token(&jti), Some(charge(5, 1)))
            .await
            .expect("check"),
        Verdict::Revoked
    );
    assert_eq!(s.spent(ISS, &jti).await.expect("spent"), Some(1));
    assert_eq!(
        s.check(token(&keep), None).await.expect("check"),
        Verdict::Admitted(None)
    );
    // Another issuer's token with the same jti is not revoked.
    let other = TokenRef {
        issuer: "https://other.conformance",
        ..token(&jti)
    };
    assert!(!s.is_revoked(other).await.expect("is_revoked"));
}

/// Watermarks: every token of a subject (or client) issued at or before T.
pub async fn revocation_by_watermark(h: &Harness) {
    let s = &h.store;
    let t = now();
    let sub = unique("sub");
    let client = unique("client");
    let mut old = token("w-old");
    old.subject = Some(&sub);
    old.issued_at = Some(t - 100);
    let mut new = old;
    new.issued_at = Some(t + 1);
    // Issued in the very second of the revocation: revoked with it.
    let mut same_second = old;
    same_second.issued_at = Some(t);
    let mut no_iat = old;
    no_iat.issued_at = None;
    assert!(!s.is_revoked(old).await.expect("is_revoked"));
    s.revoke_issued_until(ISS, Principal::Subject(&sub), t, t + 3600)
        .await
        .expect("watermark");
    assert!(s.is_revoked(old).await.expect("is_revoked"));
    assert!(s.is_revoked(same_second).await.expect("is_revoked"));
    assert!(s.is_revoked(no_iat).await.expect("is_revoked"));
    assert!(!s.is_revoked(new).await.expect("is_revoked"));
    assert_eq!(
        s.check(old, Some(charge(5, 1))).await.expect("check"),
        Verdict::Revoked
    );
    // An earlier watermark does not lower it.
    s.revoke_issued_until(ISS, Principal::Subject(&sub), t - 1000, t + 3600)
        .await
        .expect("watermark");
    assert!(s.is_revoked(old).await.expect("is_revoked"));

    let mut by_client = token("w-client");
    by_client.subject = Some("someone-else");
    by_client.client_id = Some(&client);
    by_client.issued_at = Some(t - 5);
    assert!(!s.is_revoked(by_client).await.expect("is_revoked"));
    s.revoke_issued_until(ISS, Principal::Client(&client), t, t + 3600)
        .await
        .expect("watermark");
    assert!(s.is_revoked(by_client).await.expect("is_revoked"));
    // A subject watermark does not touch the same name as a client, nor
    // another issuer.
    let mut named_like_client = token("w-sub");
    named_like_client.subject = Some(&client);
    named_like_client.client_id = None;
    named_like_client.issued_at = Some(t - 5);
    assert!(!s.is_revoked(named_like_client).await.expect("is_revoked"));
    let other = TokenRef {
        issuer: "https://other.conformance",
        ..old
    };
    assert!(!s.is_revoked(other).await.expect("is_revoked"));
}

/// Live counters survive a purge; expired ones go.
pub async fn expiry(h: &Harness) {
    if !h.purges {
        return;
    }
    let s = &h.store;
    let live = unique("live");
    let dead = unique("dead");
    let mut dead_token = token(&dead);
    dead_token.expires_at = now() - 100_000;
    s.consume(token(&live), charge(5, 2))
        .await
        .expect("consume");
    s.consume(dead_token, charge(5, 2)).await.expect("consume");
    s.revoke(ISS, &dead, now() - 100_000).await.expect("revoke");
    s.purge_expired(now()).await.expect("purge");
    assert_eq!(s.spent(ISS, &live).await.expect("spent"), Some(2));
    assert_eq!(s.spent(ISS, &dead).await.expect("spent"), None);
    assert!(!s.is_revoked(dead_token).await.expect("is_revoked"));
    // Far in the future, everything of this case has expired.
    s.purge_expired(now() + 10_000_000).await.expect("purge");
    assert_eq!(s.spent(ISS, &live).await.expect("spent"), None);
}

fn grant(family: &str, expires_at: i64) -> RefreshGrant {
    RefreshGrant {
        family: family.to_owned(),
        grant: format!(r#"{{"client":"client-1","credits":100,"family":"{family}"}}"#),
        expires_at,
    }
}

/// Rotation: a live refresh token rotates once; the new one is live and
/// carries the same grant; the old one is spent, and presenting it again is
/// a reuse that changes nothing; unknown and ended families are unknown.
pub async fn refresh_rotation_and_reuse(h: &Harness) {
    let s = &h.store;
    let family = unique("family");
    let g = grant(&family, now() + 3600);
    let (first, second, third) = (unique("rt1"), unique("rt2"), unique("rt3"));
    s.put_refresh(ISS, &first, &g).await.expect("put");
    assert_eq!(
        s.find_refresh(ISS, &first, now()).await.expect("find"),
        Some((g.clone(), false))
    );
    assert_eq!(
        s.rotate_refresh(ISS, &first, &second, now())
            .await
            .expect("rotate"),
        Rotation::Rotated(g.clone())
    );
    assert_eq!(
        s.find_refresh(ISS, &first, now()).await.expect("find"),
        Some((g.clone(), true))
    );
    assert_eq!(
        s.find_refresh(ISS, &second, now()).await.expect("find"),
        Some((g.clone(), false))
    );
    // The first token again: a reuse; the chain is untouched.
    assert_eq!(
        s.rotate_refresh(ISS, &first, &third, now())
            .await
            .expect("reuse"),
        Rotation::Reused(g.clone())
    );
    assert_eq!(
        s.find_refresh(ISS, &third, now()).await.expect("find"),
        None
    );
    assert_eq!(
        s.find_refresh(ISS, &second, now()).await.expect("find"),
        Some((g.clone(), false))
    );
    // Unknown tokens, other issuers.
    assert_eq!(
        s.rotate_refresh(ISS, &unique("never"), &unique("x"), now())
            .await
            .expect("rotate"),
        Rotation::Unknown
    );
    assert_eq!(
        s.rotate_refresh("https://other.issuer", &second, &unique("x"), now())
            .await
            .expect("rotate"),
        Rotation::Unknown
    );
    // A family that has ended rotates no more.
    let ended = grant(&unique("ended"), now() - 1);
    let old = unique("rt-old");
    s.put_refresh(ISS, &old, &ended).await.expect("put");
    assert_eq!(
        s.rotate_refresh(ISS, &old, &unique("x"), now())
            .await
            .expect("rotate"),
        Rotation::Unknown
    );
    assert_eq!(s.find_refresh(ISS, &old, now()).await.expect("find"), None);
}

/// 32 tasks rotate one refresh token at once: exactly one wins, every other
/// sees a reuse, and only the winner's new token is live.
pub async fn refresh_rotation_race(h: &Harness) {
    let family = unique("race");
    let g = grant(&family, now() + 3600);
    let old = unique("rt");
    h.store.put_refresh(ISS, &old, &g).await.expect("put");
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, old, new) = (h.store.clone(), old.clone(), format!("{old}-next-{i}"));
        tasks.push(tokio::spawn(async move {
            let r = store
                .rotate_refresh(ISS, &old, &new, now())
                .await
                .expect("rotate");
            (new, r)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (new, r) = t.await.expect("task");
        match r {
            Rotation::Rotated(got) => {
                assert_eq!(got, g);
                winners.push(new);
            }
            Rotation::Reused(got) => assert_eq!(got, g),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    for i in 0..32 {
        let new = format!("{old}-next-{i}");
        let found = h.store.find_refresh(ISS, &new, now()).await.expect("find");
        assert_eq!(found.is_some(), winners.contains(&new), "{new}");
    }
}

/// A family is revoked as one token (its id): every access token stored as
/// the family is refused, its credits stay spent, and other families are
/// untouched.
pub async fn refresh_family_revocation(h: &Harness) {
    let s = &h.store;
    let (family, other) = (unique("fam"), unique("fam-other"));
    let end = now() + 3600;
    s.put_refresh(ISS, &unique("rt"), &grant(&family, end))
        .await
        .expect("put");
    s.consume(token(&family), charge(10, 4))
        .await
        .expect("consume");
    s.revoke(ISS, &family, end)
        .await
        .expect("revoke the family");
    assert!(s.is_revoked(token(&family)).await.expect("is_revoked"));
    assert_eq!(
        s.check(token(&family), Some(charge(10, 1)))
            .await
            .expect("check"),
        Verdict::Revoked
    );
    assert_eq!(s.spent(ISS, &family).await.expect("spent"), Some(4));
    assert!(!s.is_revoked(token(&other)).await.expect("is_revoked"));
}

/// Refresh tokens of an ended family go on a purge; live ones stay.
pub async fn refresh_expiry(h: &Harness) {
    if !h.purges {
        return;
    }
    let s = &h.store;
    let (live, dead) = (unique("rt-live"), unique("rt-dead"));
    s.put_refresh(ISS, &live, &grant(&unique("f"), now() + 3600))
        .await
        .expect("put");
    s.put_refresh(ISS, &dead, &grant(&unique("f"), now() - 100_000))
        .await
        .expect("put");
    s.purge_expired(now()).await.expect("purge");
    assert!(
        s.find_refresh(ISS, &live, now())
            .await
            .expect("find")
            .is_some()
    );
    // Even asked as of long ago, the purged token is gone.
    assert_eq!(
        s.find_refresh(ISS, &dead, now() - 200_000)
            .await
            .expect("find"),
        None
    );
}

/// One test per case for a store. `$make` is an `async fn() -> Harness`.
#[macro_export]
macro_rules! store_conformance {
    ($make:ident) => {
        $crate::store_conformance!(@cases $make;
            exact_under_concurrency,
            mixed_costs_never_overspend,
            counts_down_and_stops,
            refunds,
            revocation_by_jti,
            revocation_by_watermark,
            expiry,
            refresh_rotation_and_reuse,
            refresh_rotation_race,
            refresh_family_revocation,
            refresh_expiry,
        );
    };
    (@cases $make:ident; $($case:ident,)*) => {
        mod conformance {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::$make().await;
                    $crate::$case(&h).await;
                }
            )*
        }
    };
}
