//! `tollgate serve`: the token server and a metered demo API on one port.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tollgate_axum::{AuthLayer, Claims};
use tollgate_core::policy::{Credits, MemoryStore, Policies, Store};
use tollgate_core::{Authenticator, Issuer};
use tollgate_issuer::{Client, Settings, TokenServer};

use crate::config::Config;
use crate::{Failure, open_ring, read_clients, runtime, write_clients};

/// The audience of the demo API (the development client's default).
pub(crate) fn demo_audience(_issuer: &str) -> String {
    "tollgate-demo".to_owned()
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    match config.store.kind.as_str() {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "redis" => {
            let url = config.store.url.clone().unwrap_or_default();
            let mut b = tollgate_redis::RedisStore::builder(url);
            if let Some(p) = &config.store.prefix {
                b = b.prefix(p.clone());
            }
            Ok(Arc::new(b.connect().await.map_err(runtime)?))
        }
        _ => {
            let path = config
                .store
                .path
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tollgate.db"));
            crate::sqlite::open(&path)
        }
    }
}

pub(crate) async fn serve(config: Config) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(runtime)?;
    // Port 0 picks a free port; the issuer URL follows the real one.
    let issuer_url = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let ring = open_ring(&config)?;
    let mut stored = read_clients(&config)?;
    let mut new_secret = None;
    if stored.is_empty() && config.clients.is_empty() {
        // First start: a development client, its secret printed once.
        let (client, secret) = Client::generate(
            "dev",
            vec![demo_audience(&issuer_url)],
            vec!["demo:read".into()],
        );
        stored.push(client);
        write_clients(&config, &stored)?;
        new_secret = Some(secret);
    }
    let mut clients = stored;
    clients.extend(config.clients.clone());
    let store = open_store(&config).await?;
    let server = TokenServer::new(
        Settings::new(issuer_url.clone()),
        ring,
        clients,
        store.clone(),
    )
    .map_err(runtime)?;

    let mut app = server.router();
    if config.demo.enabled {
        // The demo API verifies like any Tollgate API: keys from the JWKS URL.
        let auth: Authenticator = Authenticator::builder()
            .issuer(
                Issuer::new(issuer_url.clone())
                    .audience(demo_audience(&issuer_url))
                    .jwks_url(format!("{issuer_url}/.well-known/jwks.json")),
            )
            .policies(Policies::new(store.clone()).credits(Credits::new().cost(config.demo.cost)))
            .build()
            .map_err(runtime)?;
        let demo = Router::new()
            .route(
                "/demo/hello",
                get(|c: Claims| async move {
                    format!("hello {}\n", c.subject().unwrap_or("anonymous"))
                }),
            )
            .layer(AuthLayer::new(auth).realm("tollgate-demo"));
        app = app.merge(demo);
    }

    print_walkthrough(&issuer_url, new_secret.as_deref(), config.demo.enabled);
    tracing::info!(%addr, issuer = %issuer_url, data_dir = %config.data_dir.display(), "tollgate serving");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .map_err(runtime)?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn print_walkthrough(issuer: &str, secret: Option<&str>, demo: bool) {
    let secret_shown = secret.unwrap_or("$TOLLGATE_SECRET");
    let mut out: Vec<String> = Vec::new();
    out.push(format!("Tollgate is serving {issuer}"));
    if let Some(s) = secret {
        out.push(String::new());
        out.push("A development client was created. Its secret is shown this once:".to_string());
        out.push("  client_id:     dev".to_string());
        out.push(format!("  client_secret: {s}"));
    }
    out.push(String::new());
    out.push("Try it:".to_string());
    out.push(format!("  export SECRET='{secret_shown}'"));
    out.push(format!(
        "  curl -s -u dev:$SECRET -d grant_type=client_credentials {issuer}/connect/token"
    ));
    if demo {
        out.push("  # a token worth 3 credits for an end user, bound to 127.0.0.1:".to_string());
        out.push(format!(
            "  TOKEN=$(curl -s -u dev:$SECRET -d credits=3 -d lifetime=600 -d ip=127.0.0.1 {issuer}/connect/jwt | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')"
        ));
        out.push(
            "  # three calls succeed (watch credits-remaining), the fourth is 402:".to_string(),
        );
        out.push(format!(
            "  curl -i -H \"Authorization: Bearer $TOKEN\" {issuer}/demo/hello"
        ));
        out.push(format!(
            "  curl -s -u dev:$SECRET -d token=$TOKEN {issuer}/connect/introspect"
        ));
        out.push("  # revoke it, and the API answers 401:".to_string());
        out.push(format!(
            "  curl -s -u dev:$SECRET -d token=$TOKEN {issuer}/connect/revocation"
        ));
        out.push(format!(
            "  curl -i -H \"Authorization: Bearer $TOKEN\" {issuer}/demo/hello"
        ));
    }
    out.push(String::new());
    // A closed stdout must not take the server down.
    let mut text = out.join("\n");
    text.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    let _ = std::io::Write::flush(&mut std::io::stdout());
}
