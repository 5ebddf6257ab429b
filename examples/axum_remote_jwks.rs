//! axum trusting an issuer's published keys (OIDC discovery or a JWKS URL).
//!
//! ```text
//! ISSUER=https://login.example.com AUDIENCE=https://api.example.com \
//!     cargo run --example axum_remote_jwks --features axum
//! ```
//! Keys are fetched before the server accepts traffic; unknown `kid`s
//! trigger at most one refetch per 30 s; an outage keeps known keys working.

use std::time::Duration;

use axum::{Router, routing::get};
use tollgate::axum::{AuthLayer, Claims};
use tollgate::core::{Authenticator, TrustedIssuer};

async fn me(claims: Claims) -> String {
    format!("hello {}\n", claims.subject().unwrap_or("?"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("ISSUER").unwrap_or_else(|_| "https://login.example.com".into());
    let audience = std::env::var("AUDIENCE").unwrap_or_else(|_| "https://api.example.com".into());
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(issuer)
                .audience(audience)
                .discovery_url(discovery),
        )
        .build()?;
    // Readiness: wait for the keys, bounded.
    tokio::time::timeout(Duration::from_secs(10), auth.ready()).await??;

    let app = Router::new()
        .route("/me", get(me))
        .layer(AuthLayer::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
