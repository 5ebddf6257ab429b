//! Durable consumptions per second: 64 tokio tasks on a multi-thread
//! runtime consume concurrently from a `SqliteStore` with
//! `synchronous=FULL` (every acknowledged consumption synced to disk), on
//! distinct tokens and on one shared token. Prints the mean group size
//! (requests per commit) after each benchmark.
//!
//! Target: >= 20,000 durable consumptions/s on 2 cores.
//!
//! Each caller waits for its consumption's sync, so with 64 callers the
//! ceiling is 64 / (the disk's sync latency): the bench measures that
//! latency first and prints it beside the results.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_core::policy::{Consumed, Consumption, CreditStore, TokenRef};
use tollgate_sqlite::{SqliteStore, Synchronous};

const TASKS: u64 = 64;

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

/// Runs `iters` consumptions split over `TASKS` tasks; returns the time.
fn run(
    rt: &tokio::runtime::Runtime,
    store: &Arc<SqliteStore>,
    iters: u64,
    shared: bool,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let n = iters / TASKS + u64::from(t < iters % TASKS);
            let store = store.clone();
            let jti = if shared {
                "shared".to_string()
            } else {
                format!("task-{t}")
            };
            tasks.push(tokio::spawn(async move {
                for _ in 0..n {
                    let c = store.consume(token(&jti), FOREVER).await.unwrap();
                    assert!(matches!(c, Consumed::Charged { .. }));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

/// Median time of a 4 KiB write + fsync in `dir`, the price of one commit.
fn sync_latency(dir: &std::path::Path) -> Duration {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("sync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[0u8; 1 << 20]).unwrap();
    f.sync_all().unwrap();
    let mut times: Vec<Duration> = (0..100u64)
        .map(|i| {
            let start = Instant::now();
            f.seek(SeekFrom::Start((i % 200) * 4096)).unwrap();
            f.write_all(&[1u8; 4096]).unwrap();
            f.sync_all().unwrap();
            start.elapsed()
        })
        .collect();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    times.sort();
    times[times.len() / 2]
}

fn consume(c: &mut Criterion) {
    let probe = common::TempDir::new("tollgate-sqlite-bench");
    let sync = sync_latency(probe.path());
    println!(
        "disk: write + fsync takes {:.2} ms (median): ceiling with {TASKS} callers {:.0} consumptions/s",
        sync.as_secs_f64() * 1e3,
        TASKS as f64 / sync.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("sqlite_store_durable");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for (name, shared) in [
        ("consume_64_tasks_distinct_tokens", false),
        ("consume_64_tasks_one_token", true),
    ] {
        let dir = common::TempDir::new("tollgate-sqlite-bench");
        let store = Arc::new(
            SqliteStore::builder(dir.db())
                .synchronous(Synchronous::Full)
                .open()
                .unwrap(),
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| run(&rt, &store, iters, shared))
        });
        let s = store.stats();
        println!(
            "{name}: {} consumptions in {} commits, mean group {:.1}, largest {}",
            s.operations,
            s.commits,
            s.operations as f64 / s.commits.max(1) as f64,
            s.largest_group
        );
    }
    g.finish();
}

criterion_group!(benches, consume);
criterion_main!(benches);
