//! Scopes per route and method: a token without the scopes gets 403
//! `insufficient_scope` with the `scope` attribute in the challenge.
//! `Router::route_layer` covers every route added before it; a layer on one
//! handler (`Handler::layer`) covers just that method.
//!
//! ```text
//! cargo run --example axum_scopes --features axum
//! ```

#![allow(clippy::unwrap_used)]

use axum::handler::Handler;
use axum::{Router, routing::get};
use tollgate::axum::{AuthLayer, Claims, RequireScopeLayer, Scopes};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

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
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .key(
                    VerifyingKey::hmac(b"example secret, at least 32 bytes long", Algorithm::HS256)
                        .unwrap(),
                ),
        )
        .build()
        .unwrap();
    // `route_layer` covers the routes added before it, here all of `admin`.
    let admin = Router::new()
        .route("/admin", get(read))
        .route_layer(RequireScopeLayer::all(["admin"]).realm("reports"));
    let app = Router::new()
        .route(
            "/reports",
            get(read.layer(RequireScopeLayer::any(["reports:read", "admin"]).realm("reports")))
                .post(write.layer(RequireScopeLayer::all(["reports:write"]).realm("reports"))),
        )
        .merge(admin)
        .layer(AuthLayer::new(auth).realm("reports"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8083")
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
