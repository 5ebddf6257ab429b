//! Two axum API instances sharing one Redis: they agree on every token's
//! credits and revocations.
//!
//! ```text
//! redis-server --port 6379 &                        # any Redis 7
//! cargo run --features axum,redis --example redis_two_instances
//! ```
//!
//! `REDIS_URL` picks the Redis (default `redis://127.0.0.1:6379/`). The
//! instances listen on 127.0.0.1:8081 and 127.0.0.1:8082; a demo token worth
//! 5 credits is printed with curl commands: spend it on either instance and
//! watch `credits-remaining` count down across both, then 402.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::policy::{Credits, IpBinding, Policies};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
use tollgate::redis::RedisStore;

const ISS: &str = "https://demo.tollgate.invalid";
/// Demo only: a published secret protects nothing.
const SECRET: &[u8] = b"tollgate demo secret - never use in production";

async fn instance(port: u16, redis_url: &str) {
    let store = RedisStore::connect(redis_url).await.unwrap_or_else(|e| {
        eprintln!("cannot reach Redis at {redis_url}: {e}; set REDIS_URL");
        std::process::exit(1);
    });
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS).audience("demo-api").key(
                VerifyingKey::hmac(SECRET, Algorithm::HS256)
                    .unwrap()
                    .with_kid("demo"),
            ),
        )
        .policies(
            Policies::new(Arc::new(store))
                .credits(Credits::new())
                .ip_binding(IpBinding::new()),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/api",
            get(move |c: Claims| async move {
                format!("instance :{port} served {}\n", c.subject().unwrap_or("?"))
            }),
        )
        .layer(AuthLayer::new(auth).realm("demo"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await.unwrap();
}

fn demo_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "demo"});
    let claims = serde_json::json!({"iss": ISS, "aud": "demo-api", "sub": "demo-user",
        "iat": now, "exp": now + 3600, "jti": format!("demo-{now}"), "credits": 5});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let token = demo_token();
    println!("demo token (5 credits):\n{token}\n");
    for port in [8081, 8082, 8081, 8082, 8081, 8082] {
        println!("curl -i -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api");
    }
    let a = tokio::spawn({
        let url = url.clone();
        async move { instance(8081, &url).await }
    });
    let b = tokio::spawn(async move { instance(8082, &url).await });
    let _ = tokio::join!(a, b);
}
