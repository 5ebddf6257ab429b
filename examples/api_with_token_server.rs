//! Your own API beside `tollgate serve`, both on one Redis: a token revoked
//! at the token server is refused here at the next request, and a token's
//! credits count down across the server's demo API and this one.
//!
//! Revocations and spent credits live in the store. An API with a store of
//! its own (a `MemoryStore`, say) never hears of a revocation made at the
//! token server, and counts credits by itself; sharing one Redis, with the
//! same key prefix, is what makes them agree.
//!
//! ```text
//! redis-server --port 6379 &
//! printf '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:6379/"\n' > tollgate.toml
//! cargo run -p tollgate-cli -- serve --config tollgate.toml         # token server, :8080
//! cargo run --features axum,redis --example api_with_token_server   # this API, :3000
//! ```
//!
//! Then, with the `dev` client's secret that `serve` printed:
//!
//! ```text
//! TOKEN=$(curl -s -u dev:$SECRET -d credits=3 -d lifetime=600 \
//!   http://127.0.0.1:8080/connect/jwt | sed 's/.*"token":"\([^"]*\)".*/\1/')
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/demo/hello  # credits-remaining: 2
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api         # credits-remaining: 1
//! curl -s -u dev:$SECRET -d token=$TOKEN http://127.0.0.1:8080/connect/revocation
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api         # 401 token_revoked
//! ```
//!
//! `ISSUER` (default `http://127.0.0.1:8080`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379/`) and `TOLLGATE_PREFIX` (default `tollgate`,
//! the server's `[store] prefix`) change the set-up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate::axum::{AuthLayer, Claims};
use tollgate::redis::RedisStore;
use tollgate::{Authenticator, Credits, IpBinding, Policies, TrustedIssuer};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = env_or("ISSUER", "http://127.0.0.1:8080");
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/");
    let prefix = env_or("TOLLGATE_PREFIX", "tollgate");

    // The token server's store: the same Redis and the same key prefix.
    let store = RedisStore::builder(redis_url.clone())
        .prefix(prefix)
        .connect()
        .await
        .map_err(|e| format!("cannot reach Redis at {redis_url}: {e}"))?;

    // Keys from the token server's JWKS; `tollgate-demo` is the audience
    // of the `dev` client's tokens.
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(issuer.clone())
                .audience("tollgate-demo")
                .jwks_url(format!("{issuer}/.well-known/jwks.json")),
        )
        .policies(
            Policies::new(Arc::new(store))
                .credits(Credits::new())
                .ip_binding(IpBinding::new()),
        )
        .build()?;
    tokio::time::timeout(Duration::from_secs(10), auth.ready())
        .await
        .map_err(|_| {
            format!("no keys from {issuer} within 10 s; is `tollgate serve` running?")
        })??;

    let app =
        Router::new()
            .route(
                "/api",
                get(|c: Claims| async move {
                    format!("this API served {}\n", c.subject().unwrap_or("?"))
                }),
            )
            .layer(AuthLayer::new(auth).realm("api"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("API on http://127.0.0.1:3000/api, tokens of {issuer}, store {redis_url}");
    // The peer address is needed for tokens bound to addresses (`ip`).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
