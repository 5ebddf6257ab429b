//! Scopes per route: `route_layer(RequireScopeLayer::all(..))` applies to the
//! routes above it; a token without the scopes gets 403 `insufficient_scope`
//! with the `scope` attribute in the challenge.
//!
//! ```text
//! cargo run --example axum_scopes --features axum
//! ```

#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    routing::{get, post},
};
use tollgate::axum::{AuthLayer, Claims, RequireScopeLayer, Scopes};
use tollgate::core::{Algorithm, Authenticator, Issuer, VerifyingKey};

async fn read(scopes: Scopes) -> String {
    format!("you hold: {:?}\n", scopes)
}

async fn write(claims: Claims) -> String {
    format!("written by {}\n", claims.subject().unwrap_or("?"))
}

#[tokio::main]
async fn main() {
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            Issuer::new("https://issuer.example").audience("api").key(
                VerifyingKey::hmac(b"example secret, at least 32 bytes long", Algorithm::HS256)
                    .unwrap(),
            ),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/reports", post(write))
        .route_layer(RequireScopeLayer::all(["reports:write"]))
        .route("/reports", get(read))
        .route_layer(RequireScopeLayer::any(["reports:read", "admin"]))
        .layer(AuthLayer::new(auth).realm("reports"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8083")
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
