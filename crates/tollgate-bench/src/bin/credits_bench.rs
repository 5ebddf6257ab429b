//! Requests/s of axum + Tollgate with credits on Redis against credits in
//! memory (and bare axum for scale), in one run, on loopback, driven by
//! `wrk`. Starts its own `redis-server` on a free port.
//!
//! ```text
//! scripts/bench-credits.sh         # installs wrk and redis-server, runs this
//! ```
//!
//! Every request spends one credit of one metered token (allowance 10^12),
//! so each is a consumption: in memory, a lock and a counter; on Redis, one
//! `EVALSHA` round trip. The API server runs on one tokio worker.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate::axum::AuthLayer;
use tollgate::core::policy::{CreditStore, Credits, MemoryStore, Policies, Store};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
use tollgate::redis::RedisStore;
use tollgate_conformance::redis_server::RedisServer;

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn token(jti: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let claims = serde_json::json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": exp,
        "jti": jti, "credits": 1_000_000_000_000u64});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// Serves `make()`'s router on its own thread with a one-worker runtime.
fn start<F, Fut>(make: F) -> SocketAddr
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Router>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = make().await;
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
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

fn wrk(addr: SocketAddr, token: &str, seconds: u32) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk not found: run scripts/bench-credits.sh, which installs it");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        panic!("non-2xx answers during the run:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let redis = RedisServer::start();
    let url = redis.url();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let bare = start(|| async { Router::new().route("/", get(|| async { "ok" })) });
    let memory = Arc::new(MemoryStore::new());
    let mem_store = memory.clone();
    let on_memory = start(move || async move { metered(mem_store) });
    let (tx, rx) = std::sync::mpsc::channel();
    let on_redis = start(move || async move {
        // Connected on the server's own runtime, as an application would.
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        tx.send(store.clone()).unwrap();
        metered(store)
    });
    let redis_store = rx.recv().unwrap();

    let t_bare = token("bare");
    let t_mem = token("memory-run");
    let t_redis = token("redis-run");
    println!("{seconds} s per run, wrk -t1 -c32, one server worker");
    let r_bare = wrk(bare, &t_bare, seconds);
    let r_mem = wrk(on_memory, &t_mem, seconds);
    let r_redis = wrk(on_redis, &t_redis, seconds);
    let spent_mem = rt
        .block_on(memory.spent(ISS, "memory-run"))
        .unwrap()
        .unwrap_or(0);
    let spent_redis = rt
        .block_on(redis_store.spent(ISS, "redis-run"))
        .unwrap()
        .unwrap_or(0);
    println!("| server | requests/s | vs bare | credits spent |");
    println!("|---|---|---|---|");
    println!("| bare axum | {r_bare:.0} | 1.00 | - |");
    println!(
        "| axum + Tollgate, credits in memory | {r_mem:.0} | {:.2} | {spent_mem} |",
        r_mem / r_bare
    );
    println!(
        "| axum + Tollgate, credits on Redis | {r_redis:.0} | {:.2} | {spent_redis} |",
        r_redis / r_bare
    );
    println!("Redis / memory: {:.2}", r_redis / r_mem);
    println!(
        "Redis EVALSHA calls: {} (one per request)",
        redis.command_calls("evalsha")
    );
}
