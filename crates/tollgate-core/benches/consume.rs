//! Credit consumption in the memory store, one core: the store call alone
//! (one hot token, and 100,000 tokens), and the whole policy decision
//! (revocation check + consumption) a request makes.
//!
//! Target: >= 2,000,000 consumptions/s on one core.

#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_core::policy::{Consumption, CreditStore, MemoryStore, Store, TokenRef};

fn token(jti: &str) -> TokenRef<'_> {
    TokenRef {
        issuer: "https://issuer.example",
        token_id: Some(jti),
        subject: Some("user-1"),
        client_id: Some("client-1"),
        issued_at: Some(1_900_000_000),
        expires_at: 4_000_000_000,
    }
}

const FOREVER: Consumption = Consumption {
    allowance: u64::MAX,
    cost: 1,
};

fn consume(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_store");
    g.throughput(Throughput::Elements(1));

    let store = MemoryStore::new();
    g.bench_function("consume_one_token", |b| {
        b.iter(|| black_box(store.try_consume(token("hot"), FOREVER)))
    });

    let ids: Vec<String> = (0..100_000).map(|i| format!("jti-{i:08}")).collect();
    let store = MemoryStore::new();
    let mut i = 0;
    g.bench_function("consume_100k_tokens", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(store.try_consume(token(&ids[i]), FOREVER))
        })
    });

    let store = MemoryStore::new();
    // One revoked token elsewhere, so the revocation check is not skipped.
    let revoke = tollgate_core::policy::RevocationStore::revoke(
        &store,
        "https://issuer.example",
        "gone",
        4_000_000_000,
    );
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::pin::pin!(revoke).poll(&mut cx).is_ready());
    g.bench_function("check_revocation_and_consume", |b| {
        b.iter(|| black_box(store.try_check(token("hot"), Some(FOREVER))))
    });
    g.finish();

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut g = c.benchmark_group("memory_store_dyn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("consume_via_dyn_store", |b| {
        b.iter(|| black_box(store.try_consume(token("hot"), FOREVER)))
    });
    g.finish();
}

criterion_group!(benches, consume);
criterion_main!(benches);
