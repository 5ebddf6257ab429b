//! Token issuance in process: client authentication plus signing, per
//! algorithm. Target: >= 5,000 tokens/s with ES256 (see also the HTTP
//! benchmark, `examples/issuer_bench.rs`).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_core::Algorithm;
use tollgate_core::policy::MemoryStore;
use tollgate_issuer::{Client, KeyRing, MintRequest, Settings, TokenServer};

fn mint(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let (client, secret) = Client::generate("bench", vec!["api".into()], vec!["read".into()]);
        let server = TokenServer::new(
            Settings::new("https://issuer.example"),
            KeyRing::ephemeral(alg).unwrap(),
            vec![client],
            Arc::new(MemoryStore::new()),
        )
        .unwrap();
        g.bench_function(format!("authenticate_and_mint_{}", alg.as_str()), |b| {
            b.iter(|| {
                let client = server.authenticate("bench", &secret).unwrap();
                black_box(server.mint(&client, &MintRequest::default()).unwrap())
            })
        });
    }
    g.finish();
}

/// One refresh in process: find, rotate (memory store), re-mint (ES256).
/// Each iteration rotates the token the previous one returned.
fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut client, _) = Client::generate("bench", vec!["api".into()], vec!["read".into()]);
    client.refresh_lifetime = 86_400;
    let server = TokenServer::new(
        Settings::new("https://issuer.example"),
        KeyRing::ephemeral(Algorithm::ES256).unwrap(),
        vec![client.clone()],
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    let first = rt
        .block_on(server.mint_refreshable(
            &client,
            &MintRequest {
                credits: Some(100),
                restricted: true,
                ..MintRequest::default()
            },
        ))
        .unwrap();
    let mut token = first.refresh_token;
    let mut g = c.benchmark_group("refresh");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rotate_and_mint_ES256", |b| {
        b.iter(|| {
            let next = rt
                .block_on(server.refresh_token_grant(&client, &token, None, None))
                .unwrap();
            token = next.refresh_token;
        })
    });
    g.finish();
}

criterion_group!(benches, mint, refresh);
criterion_main!(benches);
