//! Three axum API instances sharing one real `redis-server`, over real HTTP
//! on 127.0.0.1: credits are exact across instances, a revocation on one is
//! seen by all, and a killed Redis fails closed and recovers by itself.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use support::{Signer, good_claims, now};
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::policy::{CreditStore, Credits, Policies, RevocationStore};
use tollgate::core::{Authenticator, Issuer};
use tollgate::redis::RedisStore;
use tollgate_conformance::redis_server::RedisServer;
use tollgate_conformance::unique;

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// One API instance: its own process state, its own Redis connection.
async fn instance(redis_url: &str) -> (SocketAddr, Arc<RedisStore>) {
    let store = Arc::new(RedisStore::connect(redis_url).await.unwrap());
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .policies(Policies::new(store.clone()).credits(Credits::new()))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/api",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .layer(AuthLayer::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, store)
}

fn token(changes: Value) -> String {
    let mut c = good_claims(ISS);
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

async fn status(client: &reqwest::Client, addr: SocketAddr, token: &str) -> (u16, Option<String>) {
    let resp = client
        .get(format!("http://{addr}/api"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body["code"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_allowance_exactly_spent() {
    let redis = RedisServer::start();
    let mut addrs = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..3 {
        let (addr, store) = instance(&redis.url()).await;
        addrs.push(addr);
        stores.push(store);
    }
    let jti = unique("shared");
    let t = Arc::new(token(json!({"credits": 1000, "jti": jti})));
    let client = reqwest::Client::new();
    // 200 clients, 7 requests each (1,400 in all), round-robin over the
    // three instances.
    let mut tasks = Vec::new();
    for c in 0..200usize {
        let (client, t, addrs) = (client.clone(), t.clone(), addrs.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = (0u32, 0u32);
            for i in 0..7 {
                match status(&client, addrs[(c + i) % 3], &t).await {
                    (200, _) => seen.0 += 1,
                    (402, Some(code)) if code == "credits_exhausted" => seen.1 += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            seen
        }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for task in tasks {
        let (o, e) = task.await.unwrap();
        ok += o;
        exhausted += e;
    }
    assert_eq!((ok, exhausted), (1000, 400));
    assert_eq!(stores[0].spent(ISS, &jti).await.unwrap(), Some(1000));

    // Revoked through one instance's store: refused by all on the next request.
    let victim = unique("victim");
    let v = token(json!({"credits": 50, "jti": victim}));
    for addr in &addrs {
        assert_eq!(status(&client, *addr, &v).await.0, 200);
    }
    stores[1].revoke(ISS, &victim, now() + 600).await.unwrap();
    for addr in &addrs {
        assert_eq!(
            status(&client, *addr, &v).await,
            (401, Some("token_revoked".into()))
        );
    }
    assert_eq!(stores[2].spent(ISS, &victim).await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_closed_and_service_resumes() {
    let mut redis = RedisServer::start_with_aof();
    let (addr, store) = instance(&redis.url()).await;
    let client = reqwest::Client::new();
    let jti = unique("outage");
    let t = token(json!({"credits": 100000, "jti": jti}));
    let mut paid = 0u64;
    for _ in 0..50 {
        assert_eq!(status(&client, addr, &t).await.0, 200);
        paid += 1;
    }
    redis.kill();
    for _ in 0..20 {
        let resp = client
            .get(format!("http://{addr}/api"))
            .bearer_auth(&t)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "fail closed");
        assert_eq!(resp.headers()["retry-after"], "5");
        let body = resp.text().await.unwrap();
        assert!(body.contains("store_unavailable"), "{body}");
        assert!(!body.contains(&t), "no token in error bodies");
    }
    redis.restart();
    // Service resumes without a restart of the API (bounded wait).
    let mut resumed = false;
    for _ in 0..200 {
        if status(&client, addr, &t).await.0 == 200 {
            paid += 1;
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(resumed, "service did not resume");
    // No request succeeded unpaid: every 200 is in the counter (AOF).
    assert_eq!(store.spent(ISS, &jti).await.unwrap(), Some(paid));
}
