//! `tollgate serve`: the token server and a metered demo API on one port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tollgate_axum::{AuthLayer, Claims};
use tollgate_core::policy::{Credits, IpBinding, MemoryStore, Policies, Store};
use tollgate_core::{Algorithm, Authenticator, RemoteOptions, TrustedIssuer};
use tollgate_issuer::{Client, KeyRing, Settings, TokenServer};

use crate::config::Config;
use crate::tls::Tls;
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
        "redis-cluster" => {
            let nodes = config.store.nodes.clone().unwrap_or_default();
            let mut b = tollgate_redis::RedisStore::cluster_builder(nodes);
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

/// `serve` publishes its keys for the APIs to verify with; HS256 keys are
/// never published (they would hand out the signing secret), so a ring
/// holding one cannot serve. `token mint` may still use them.
fn check_publishable(config: &Config, ring: &KeyRing) -> Result<(), Failure> {
    match ring
        .keys()
        .iter()
        .find(|k| k.algorithm() == Algorithm::HS256)
    {
        None => Ok(()),
        Some(k) => Err(hs256_refused(&format!(
            "{}: key `{}`",
            config
                .data_dir
                .join("keys")
                .join(format!("{}.json", k.kid()))
                .display(),
            k.kid()
        ))),
    }
}

/// Why `serve` refuses HS256; `place` names the file and key that ask for it.
pub(crate) fn hs256_refused(place: &str) -> Failure {
    Failure::Usage(format!(
        "{place}: HS256 cannot be served: HS256 keys are never published in the JWKS, \
         so no API (the demo API included) could verify the tokens; use ES256, RS256, \
         PS256 or EdDSA (HS256 stays available to `tollgate token mint`)"
    ))
}

/// The clients `serve` knows: the data directory's and the file's.
fn all_clients(config: &Config) -> Result<Vec<Client>, Failure> {
    let mut clients = read_clients(config)?;
    clients.extend(config.clients.clone());
    Ok(clients)
}

/// SIGHUP: the key ring and the clients are read again from the data
/// directory (after `tollgate keys rotate` or `tollgate clients add|remove`).
/// Whatever cannot be read is reported and the running state kept.
fn reload(config: &Config, server: &TokenServer) {
    // Clients first: once the new keys show in the JWKS, the clients are in.
    match all_clients(config) {
        Ok(clients) => {
            let n = clients.len();
            match server.replace_clients(clients) {
                Ok(()) => tracing::info!(clients = n, "clients reloaded"),
                Err(e) => tracing::error!(error = %e, "clients not reloaded"),
            }
        }
        Err(Failure::Usage(e) | Failure::Runtime(e)) => {
            tracing::error!(error = %e, "clients not reloaded");
        }
    }
    // Read only: `tollgate keys rotate` may be writing the directory now,
    // and a reload must neither generate keys nor remove files.
    let ring = config
        .algorithm()
        .map_err(Failure::Usage)
        .and_then(|alg| KeyRing::load(&config.data_dir.join("keys"), alg).map_err(runtime))
        .and_then(|ring| check_publishable(config, &ring).map(|()| ring));
    match ring {
        Ok(ring) => {
            let kids: Vec<String> = ring
                .keys()
                .iter()
                .map(|k| format!("{}={:?}", k.kid(), k.state()))
                .collect();
            match server.replace_keys(ring) {
                Ok(()) => tracing::info!(keys = %kids.join(" "), "key ring reloaded"),
                Err(e) => tracing::error!(error = %e, "key ring not reloaded"),
            }
        }
        Err(Failure::Usage(e) | Failure::Runtime(e)) => {
            tracing::error!(error = %e, "key ring not reloaded");
        }
    }
}

pub(crate) async fn serve(config: Config) -> Result<(), Failure> {
    // TLS and keys first: plain HTTP where it is not safe, or a ring that
    // cannot serve, is a configuration error found before anything listens.
    let tls = Tls::from_config(&config, config.listen)?;
    let rustls = match &tls {
        Some(t) => Some(t.load().await?),
        None => None,
    };
    let ring = open_ring(&config)?;
    check_publishable(&config, &ring)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| cannot_listen(&config, &e))?;
    let addr = listener.local_addr().map_err(runtime)?;
    // Port 0 picks a free port; the issuer URL follows the real one.
    let issuer_url = config.issuer_url_at(addr);
    if config.issuer.is_none() && addr.ip().is_unspecified() {
        tracing::warn!(
            %addr,
            issuer = %issuer_url,
            "bound to every address without `issuer`: set `issuer` to the URL other machines use"
        );
    }
    let mut stored = read_clients(&config)?;
    let mut new_secret = None;
    if stored.is_empty() && config.clients.is_empty() {
        // First start: a development client, its secret printed once.
        let (mut client, secret) = Client::generate(
            "dev",
            vec![demo_audience(&issuer_url)],
            vec!["demo:read".into()],
        );
        // Restricted tokens with `refresh=true` get refresh tokens, for a day.
        client.refresh_lifetime = 86_400;
        stored.push(client);
        write_clients(&config, &stored)?;
        new_secret = Some(secret);
    }
    let mut clients = stored;
    clients.extend(config.clients.clone());
    let dev_client = clients.iter().any(|c| c.id == "dev");
    let store = open_store(&config).await?;
    let server = TokenServer::new(
        Settings::new(issuer_url.clone()),
        ring,
        clients,
        store.clone(),
    )
    .map_err(runtime)?;

    // Client revocations queued while the server was down.
    crate::clients::apply_client_revocations(&config, &server).await;

    let mut app = server.router();
    if config.demo.enabled {
        // The demo API verifies like any Tollgate API: keys from the JWKS
        // URL, here this server's own listener. The request never leaves
        // this process, so plain http is no risk even where the listener is
        // not on a loopback address (the issuer URL may name a proxy that
        // need not be reachable from here).
        let own = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
            }
            _ => addr,
        };
        let (jwks_url, remote) = match &tls {
            None => (
                format!("http://{own}/.well-known/jwks.json"),
                RemoteOptions::new().allow_insecure_http(),
            ),
            // Over TLS, by a name the certificate holds, resolved to the
            // own listener, trusting the certificate's CA.
            Some(t) => {
                let url = match &config.issuer {
                    Some(issuer) => format!("{issuer}/.well-known/jwks.json"),
                    None => format!("https://localhost:{}/.well-known/jwks.json", addr.port()),
                };
                let client = t.own_client(&url, own)?;
                (url, RemoteOptions::new().client(client))
            }
        };
        let auth: Authenticator = Authenticator::builder()
            .issuer(
                TrustedIssuer::new(issuer_url.clone())
                    .audience(demo_audience(&issuer_url))
                    .jwks_url(jwks_url)
                    .remote_options(remote),
            )
            // Credits, and the client addresses restricted tokens are bound to
            // (the peer address comes from the connect info below).
            .policies(
                Policies::new(store.clone())
                    .credits(Credits::new().cost(config.demo.cost))
                    .ip_binding(IpBinding::new()),
            )
            .build()
            .map_err(runtime)?;
        let demo = Router::new()
            .route(
                "/demo/hello",
                get(|c: Claims| async move {
                    format!("hello {}\n", c.subject().unwrap_or("anonymous"))
                }),
            )
            // Routes only: a path nothing serves stays a 404.
            .route_layer(AuthLayer::new(auth).realm("tollgate-demo"));
        app = app.merge(demo);
    }
    let app = app
        .merge(crate::ops::health(store.clone(), issuer_url.clone()))
        .fallback(crate::ops::not_found);
    let metrics = match config.metrics.listen {
        Some(listen) => Some(crate::ops::serve_metrics(listen).await?),
        None => None,
    };

    // Before the banner: once it is out, a SIGHUP must not end the process.
    #[cfg(unix)]
    {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(runtime)?;
        let server = server.clone();
        let config = config.clone();
        let (tls, rustls) = (tls.clone(), rustls.clone());
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let (config, server) = (config.clone(), server.clone());
                // Reading and parsing keys is blocking file work.
                let (c, s) = (config.clone(), server.clone());
                let _ = tokio::task::spawn_blocking(move || reload(&c, &s)).await;
                crate::clients::apply_client_revocations(&config, &server).await;
                if let (Some(t), Some(r)) = (&tls, &rustls) {
                    match r.reload_from_pem_file(&t.cert, &t.key).await {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                        }
                    }
                }
            }
        });
    }

    let pid_file = crate::output::pid_file(&config);
    if let Err(e) =
        tollgate_issuer::write_private(&pid_file, std::process::id().to_string().as_bytes())
    {
        tracing::warn!(error = %e, "pid file not written");
    }
    print_walkthrough(&Walkthrough {
        issuer: &issuer_url,
        secret: new_secret.as_deref(),
        demo: config.demo.enabled,
        dev_client,
        data_dir: &config.data_dir,
        metrics,
        tls: tls.as_ref(),
        listening: addr,
    });
    tracing::info!(%addr, issuer = %issuer_url, data_dir = %config.data_dir.display(), "tollgate serving");
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match rustls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(runtime)?,
        Some(rustls) => {
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tokio::spawn(async move {
                shutdown().await;
                stop.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            let std_listener = listener.into_std().map_err(runtime)?;
            axum_server::from_tcp_rustls(std_listener, rustls)
                .map_err(runtime)?
                .handle(handle)
                .serve(app)
                .await
                .map_err(runtime)?;
        }
    }
    let _ = std::fs::remove_file(&pid_file);
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

/// Why `serve` could not listen, and what to do about it.
fn cannot_listen(config: &Config, e: &std::io::Error) -> Failure {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (another `tollgate serve`? choose a free port with --listen, e.g. --listen {}; \
             without `issuer` in the configuration the issuer URL follows the address, \
             so tokens minted for the old one stop validating)",
            config.listen.port().wrapping_add(1)
        ),
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges; choose another with --listen)".to_owned()
        }
        _ => String::new(),
    };
    Failure::Runtime(format!("cannot listen on {}: {e}{hint}", config.listen))
}

/// What the banner prints.
struct Walkthrough<'a> {
    issuer: &'a str,
    /// The development client's secret, on the start that created it.
    secret: Option<&'a str>,
    demo: bool,
    /// The development client exists.
    dev_client: bool,
    data_dir: &'a std::path::Path,
    metrics: Option<SocketAddr>,
    tls: Option<&'a Tls>,
    /// The bound address.
    listening: SocketAddr,
}

/// The banner: a walkthrough that works on every start. On the first start
/// the development client's secret is in it; later it shows how to issue a
/// new one, since the old one was shown once and only its hash is kept.
fn print_walkthrough(w: &Walkthrough<'_>) {
    let issuer = w.issuer;
    let mut out: Vec<String> = Vec::new();
    out.push(format!("Tollgate is serving {issuer}"));
    out.push(format!("Listening on {}", w.listening));
    // Over TLS with the development CA, every curl line trusts it.
    let curl = match w.tls.and_then(|t| t.ca.as_ref().map(|ca| (t, ca))) {
        Some((t, ca)) => {
            let ca = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
            out.push(format!(
                "TLS: development CA {} (SHA-256 {})",
                ca.display(),
                t.fingerprint().unwrap_or_default()
            ));
            format!("curl --cacert '{}'", ca.display())
        }
        None => "curl".to_owned(),
    };
    if let Some(m) = w.metrics {
        out.push(format!("Prometheus metrics: http://{m}/metrics"));
    }
    if let Some(s) = w.secret {
        out.push(String::new());
        out.push("A development client was created. Its secret is shown this once:".to_string());
        out.push("  client_id:     dev".to_string());
        out.push(format!("  client_secret: {s}"));
    }
    out.push(String::new());
    out.push("Try it:".to_string());
    match (w.secret, w.dev_client) {
        (Some(s), _) => out.push(format!("  export SECRET='{s}'")),
        (None, true) => {
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "tollgate".to_owned());
            let dir = std::path::absolute(w.data_dir)
                .unwrap_or_else(|_| w.data_dir.to_owned());
            out.push(
                "  # the dev secret was shown at the first start; a new one (the old one then stops working):"
                    .to_string(),
            );
            out.push(format!(
                "  export SECRET=$('{exe}' clients secret dev --secret-only --data-dir '{}') && kill -HUP {}",
                dir.display(),
                std::process::id()
            ));
        }
        (None, false) => out.push(
            "  # add a client first: tollgate clients add NAME --audience tollgate-demo, then kill -HUP"
                .to_string(),
        ),
    }
    out.push(format!(
        "  {curl} -s -u dev:$SECRET -d grant_type=client_credentials {issuer}/connect/token"
    ));
    if w.demo {
        out.push("  # a token worth 3 credits for an end user, bound to 127.0.0.1:".to_string());
        out.push(format!(
            "  TOKEN=$({curl} -s -u dev:$SECRET -d credits=3 -d lifetime=600 -d ip=127.0.0.1 {issuer}/connect/jwt | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')"
        ));
        out.push(
            "  # three calls succeed (watch credits-remaining), the fourth is 402:".to_string(),
        );
        out.push(format!(
            "  {curl} -i -H \"Authorization: Bearer $TOKEN\" {issuer}/demo/hello"
        ));
        out.push(format!(
            "  {curl} -s -u dev:$SECRET -d token=$TOKEN {issuer}/connect/introspect"
        ));
        out.push("  # revoke it, and the API answers 401:".to_string());
        out.push(format!(
            "  {curl} -s -u dev:$SECRET -d token=$TOKEN {issuer}/connect/revocation"
        ));
        out.push(format!(
            "  {curl} -i -H \"Authorization: Bearer $TOKEN\" {issuer}/demo/hello"
        ));
    }
    #[cfg(unix)]
    {
        out.push(String::new());
        out.push(format!(
            "After `tollgate keys rotate` or `tollgate clients add`: kill -HUP {}",
            std::process::id()
        ));
    }
    out.push(String::new());
    // A closed stdout must not take the server down.
    let mut text = out.join("\n");
    text.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    let _ = std::io::Write::flush(&mut std::io::stdout());
}
