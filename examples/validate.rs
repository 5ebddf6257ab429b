//! Validation with `tollgate-core` alone, no framework layer: an HTTP
//! service on 127.0.0.1 that extracts and verifies bearer tokens itself and
//! answers failures with `error_response`.
//!
//! ```text
//! cargo run --example validate
//! ```
//!
//! With no settings it trusts an embedded demo HS256 key and prints a token
//! signed with it, so `curl` works at once. Point it at a real issuer with
//! `TOLLGATE_ISSUER`, `TOLLGATE_AUDIENCE` and `TOLLGATE_JWKS_URL` (or
//! `TOLLGATE_DISCOVERY_URL`); `TOLLGATE_ADDR` sets the listen address
//! (default `127.0.0.1:8080`).
//!
//! `GET /whoami` answers the verified claims, or the RFC 6750 / RFC 9457
//! error with its status.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tollgate::core::{
    Algorithm, Authenticator, BearerExtractor, TrustedIssuer, VerifyingKey, error_response,
};

const DEMO_ISSUER: &str = "https://demo.tollgate.invalid";
const DEMO_AUDIENCE: &str = "demo-api";
/// Demo only: a published secret protects nothing.
const DEMO_SECRET: &[u8] = b"tollgate demo secret - never use in production";

#[derive(Clone)]
struct App {
    auth: Authenticator,
    extractor: BearerExtractor,
}

async fn whoami(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let result = async {
        let token = app.extractor.extract(&headers, &uri)?;
        app.auth.verify(&token).await
    }
    .await;
    match result {
        Ok(v) => axum::Json(json!({
            "iss": v.issuer(),
            "sub": v.subject(),
            "aud": v.audiences(),
            "exp": v.expires_at(),
            "scope": v.scopes().collect::<Vec<_>>(),
            "client_id": v.client_id(),
        }))
        .into_response(),
        Err(e) => error_response(&e, Some("tollgate-demo")).map(axum::body::Body::from),
    }
}

fn demo_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": "demo-user",
        "scope": "read", "iat": now, "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("demo".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEMO_SECRET),
    )
    .unwrap()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let addr = env("TOLLGATE_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
    let issuer = match env("TOLLGATE_ISSUER") {
        Some(iss) => {
            let aud = env("TOLLGATE_AUDIENCE").ok_or("TOLLGATE_AUDIENCE is required")?;
            let issuer = TrustedIssuer::new(iss).audience(aud);
            match (env("TOLLGATE_JWKS_URL"), env("TOLLGATE_DISCOVERY_URL")) {
                (Some(url), _) => issuer.jwks_url(url),
                (None, Some(url)) => issuer.discovery_url(url),
                (None, None) => {
                    return Err("set TOLLGATE_JWKS_URL or TOLLGATE_DISCOVERY_URL".into());
                }
            }
        }
        None => TrustedIssuer::new(DEMO_ISSUER)
            .audience(DEMO_AUDIENCE)
            .key(VerifyingKey::hmac(DEMO_SECRET, Algorithm::HS256)?.with_kid("demo")),
    };
    let demo = env("TOLLGATE_ISSUER").is_none();
    let auth = Authenticator::builder().issuer(issuer).build()?;
    // Keys first, traffic second.
    tokio::time::timeout(Duration::from_secs(10), auth.ready()).await??;

    let app = Router::new().route("/whoami", get(whoami)).with_state(App {
        auth,
        extractor: BearerExtractor::default(),
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "tollgate demo listening on http://{}",
        listener.local_addr()?
    );
    if demo {
        println!(
            "try:\n  curl -H 'Authorization: Bearer {}' http://{}/whoami",
            demo_token(),
            listener.local_addr()?
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
