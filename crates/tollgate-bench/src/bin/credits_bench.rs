//! Requests/s of axum + Tollgate with credits on Redis against credits in
//! memory (and bare axum for scale), in one run, on loopback, driven by
//! `wrk`. Starts its own `redis-server` on a free port.
//!
//! ```text
//! scripts/bench-credits.sh         # installs wrk and redis-server, runs this
//! ```
//!
//! Each run sits between two runs of bare axum with the same request (see
//! the `tollgate_bench` method); medians of `CREDITS_BENCH_ROUNDS` (5)
//! rounds.
//!
//! Every request spends one credit of one metered token (allowance 10^12),
//! so each is a consumption: in memory, a lock and a counter; on Redis, a
//! round trip in which the checks arriving together share one `EVALSHA`
//! (and, for comparison, one `EVALSHA` per check); on a Redis Cluster
//! (three masters, one replica each), one `EVALSHA` and one `WAIT` per
//! check. Unmetered tokens (revocation checked) are answered from the
//! revocation replica, no round trip. The API server runs on one tokio
//! worker on core 0; wrk and the Redis servers run on core 1 (as on a
//! machine of their own; `CREDITS_BENCH_REDIS_CORE=0` puts Redis beside
//! the API server instead, to see what sharing a core costs).
//! `CREDITS_BENCH_ONLY=text` runs the configurations whose label holds it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate::axum::AuthLayer;
use tollgate::core::policy::{Credits, MemoryStore, Policies, Store};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
use tollgate::redis::RedisStore;
use tollgate_bench::{Config, compare, rounds, start_axum};
use tollgate_conformance::redis_cluster::RedisCluster;
use tollgate_conformance::redis_server::RedisServer;

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn token(jti: &str) -> String {
    token_with(jti, Some(1_000_000_000_000))
}

fn token_with(jti: &str, credits: Option<u64>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let mut claims = serde_json::json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": exp,
        "jti": jti});
    if let Some(c) = credits {
        claims["credits"] = c.into();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn metered(store: Arc<dyn Store>) -> Router {
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS).audience("api").key(
                VerifyingKey::hmac(SECRET, Algorithm::HS256)
                    .unwrap()
                    .with_kid("k1"),
            ),
        )
        .policies(Policies::new(store).credits(Credits::new()))
        .build()
        .unwrap();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(AuthLayer::new(auth))
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let redis = RedisServer::start();
    let cluster = RedisCluster::start(3, 1);
    let core = std::env::var("CREDITS_BENCH_REDIS_CORE").unwrap_or_else(|_| "1".into());
    let pids = std::iter::once(&redis)
        .chain((0..cluster.len()).map(|i| cluster.node(i)))
        .filter_map(RedisServer::pid);
    for pid in pids {
        // Best effort, as the script's own pinning: without taskset the
        // operating system places them.
        let _ = std::process::Command::new("taskset")
            .args(["-p", "-c", &core, &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status();
    }
    println!("redis-server processes on core {core}");
    let url = redis.url();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let bare = start_axum(|| async { Router::new().route("/", get(|| async { "ok" })) });
    let memory = Arc::new(MemoryStore::new());
    let mem_store = memory.clone();
    let on_memory = start_axum(move || async move { metered(mem_store) });
    let (tx, rx) = std::sync::mpsc::channel();
    let on_redis = start_axum(move || async move {
        // Connected on the server's own runtime, as an application would.
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        tx.send(store.clone()).unwrap();
        metered(store)
    });
    let redis_store = rx.recv().unwrap();
    let url = redis.url();
    let unbatched_on_redis = start_axum(move || async move {
        let store = RedisStore::builder(url).without_batching().connect();
        metered(Arc::new(store.await.unwrap()))
    });
    let url = redis.url();
    let unmetered_on_redis =
        start_axum(
            move || async move { metered(Arc::new(RedisStore::connect(&url).await.unwrap())) },
        );
    let nodes = cluster.urls();
    let (tx, rx) = std::sync::mpsc::channel();
    let on_cluster = start_axum(move || async move {
        let store = Arc::new(RedisStore::cluster_builder(nodes).connect().await.unwrap());
        tx.send(store.clone()).unwrap();
        metered(store)
    });
    let cluster_store = rx.recv().unwrap();
    let nodes = cluster.urls();
    let unmetered_on_cluster = start_axum(move || async move {
        metered(Arc::new(
            RedisStore::cluster_builder(nodes).connect().await.unwrap(),
        ))
    });

    let configs = [
        Config {
            label: "axum + Tollgate, credits in memory".into(),
            server: on_memory,
            bare,
            token: token("memory-run"),
        },
        Config {
            label: "axum + Tollgate, credits on Redis".into(),
            server: on_redis,
            bare,
            token: token("redis-run"),
        },
        Config {
            label: "axum + Tollgate, credits on Redis, one call per check".into(),
            server: unbatched_on_redis,
            bare,
            token: token("redis-unbatched-run"),
        },
        Config {
            label: "axum + Tollgate, unmetered, revocation on Redis (replica)".into(),
            server: unmetered_on_redis,
            bare,
            token: token_with("unmetered-run", None),
        },
        Config {
            label: "axum + Tollgate, credits on Redis Cluster".into(),
            server: on_cluster,
            bare,
            token: token("cluster-run"),
        },
        Config {
            label: "axum + Tollgate, unmetered, revocation on Redis Cluster (replica)".into(),
            server: unmetered_on_cluster,
            bare,
            token: token_with("cluster-unmetered-run", None),
        },
    ];
    // CREDITS_BENCH_ONLY=Redis: the configurations whose label holds it.
    let only = std::env::var("CREDITS_BENCH_ONLY").unwrap_or_default();
    let configs: Vec<Config> = configs
        .into_iter()
        .filter(|c| c.label.contains(&only))
        .collect();
    compare(&configs, rounds("CREDITS_BENCH_ROUNDS", 5), seconds);
    let spent = |store: &dyn Store, jti| rt.block_on(store.spent(ISS, jti)).unwrap().unwrap_or(0);
    let (batched, unbatched) = (
        spent(&*redis_store, "redis-run"),
        spent(&*redis_store, "redis-unbatched-run"),
    );
    let calls = redis.command_calls("evalsha");
    println!(
        "credits spent: memory {}, Redis {batched} + {unbatched} (one call per check), Redis Cluster {}",
        spent(&*memory, "memory-run"),
        spent(&*cluster_store, "cluster-run"),
    );
    println!(
        "Redis EVALSHA calls: {calls}, {:.1} checks per call when batched",
        batched as f64 / (calls.saturating_sub(unbatched).max(1)) as f64
    );
}
