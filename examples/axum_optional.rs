//! Optional authentication: no token means anonymous; a bad token is still
//! refused. Handlers take `Option<Claims>`.
//!
//! ```text
//! cargo run --example axum_optional --features axum
//! ```

#![allow(clippy::unwrap_used)]

use axum::{Router, routing::get};
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

async fn home(claims: Option<Claims>) -> String {
    match claims {
        Some(c) => format!("welcome back, {}\n", c.subject().unwrap_or("?")),
        None => "welcome, guest\n".into(),
    }
}

#[tokio::main]
async fn main() {
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .key(
                    VerifyingKey::hmac(b"example secret, at least 32 bytes long", Algorithm::HS256)
                        .unwrap(),
                ),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(home))
        .layer(AuthLayer::new(auth).optional());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8084")
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
