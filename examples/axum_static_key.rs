//! axum with a static key: the three lines are the `Authenticator`, the
//! `AuthLayer`, and the `Claims` extractor.
//!
//! ```text
//! cargo run --example axum_static_key --features axum
//! ```
//! It prints a token to try with `curl`.

#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Router, routing::get};
use serde::Deserialize;
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

const SECRET: &[u8] = b"example secret, at least 32 bytes long";

#[derive(Deserialize)]
struct Plan {
    tier: String,
}

async fn me(claims: Claims<Plan>) -> String {
    format!(
        "{} on {}\n",
        claims.subject().unwrap_or("?"),
        claims.claims().tier
    )
}

#[tokio::main]
async fn main() {
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .key(VerifyingKey::hmac(SECRET, Algorithm::HS256).unwrap()),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(me))
        .layer(AuthLayer::new(auth));

    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"iss": "https://issuer.example", "aud": "api",
                                    "sub": "alice", "tier": "gold", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081")
        .await
        .unwrap();
    println!("curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8081/me");
    axum::serve(listener, app).await.unwrap();
}
