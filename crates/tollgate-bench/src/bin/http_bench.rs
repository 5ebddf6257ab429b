//! HTTP overhead of Tollgate: bare axum against axum + Tollgate, and bare
//! actix-web against actix-web + Tollgate, on loopback, in one run, driven by
//! `wrk`.
//!
//! ```text
//! scripts/bench-http.sh            # installs wrk, builds in release, runs this
//! ```
//!
//! axum is measured two ways: `Router::layer(AuthLayer)` (the layer wraps
//! each route, and axum boxes and clones each route's service per request)
//! and `AuthLayer` around the whole router (one service, before routing).
//!
//! axum is built with its default features, as applications use it (they
//! record the matched path and original URI in each request's extensions).
//! Each server runs on one tokio worker (a current-thread runtime on its own
//! thread); the script pins this process, servers included, to core 0 and
//! `wrk` runs pinned to core 1 when `taskset` is present, so the load never
//! shares the server's core.
//! Every configuration gets the same request, `Authorization` header
//! included, and the bare server of its framework is measured with that
//! same request right before and right after it: on a shared virtual
//! machine the capacity drifts from second to second, and the ratio to the
//! neighbouring bare runs cancels most of that drift. Next to requests/s the
//! table shows each server thread's CPU time per request (Linux
//! `schedstat`), which time given to other guests of the machine cannot
//! inflate, and its ratio to bare.

#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate::axum::AuthLayer;
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
use tollgate_bench::{Config, Server, compare, rounds, spawn_server, start_axum, thread_id};

const ISS: &str = "https://issuer.example";

fn sign(alg: Algorithm, signer: &dyn Fn(&[u8]) -> Vec<u8>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let header = serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": "k1"});
    let claims = serde_json::json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": exp,
        "iat": exp - 86_400, "jti": "c6b0f1e2", "scope": "read write"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signer(input.as_bytes()))
    )
}

/// Starts `app` wrapped, as one service, in `AuthLayer` (the layer runs
/// before routing instead of around each route).
fn start_outer(app: Router, auth: Authenticator) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let tid = spawn_server(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let svc = tower::Layer::layer(&AuthLayer::new(auth), app);
            let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(svc);
            axum::serve(listener, make).await.unwrap();
        });
    });
    Server { addr, tid }
}

/// Starts `app` on its own thread with a one-worker runtime.
fn start(app: Router) -> Server {
    start_axum(move || async move { app })
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rng = SystemRandom::new();
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let hs = sign(Algorithm::HS256, &|m| {
        aws_lc_rs::hmac::sign(&hkey, m).as_ref().to_vec()
    });
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rs = sign(Algorithm::RS256, &|m| {
        let mut s = vec![0; rsa.public_modulus_len()];
        rsa.sign(&sig::RSA_PKCS1_SHA256, &rng, m, &mut s).unwrap();
        s
    });
    let rsa_public = rsa.public_key().as_ref().to_vec();

    let handler = || Router::new().route("/", get(|| async { "ok" }));
    let authenticator = |alg: Algorithm, cache: bool| {
        let key = if alg == Algorithm::HS256 {
            VerifyingKey::hmac(&secret, alg).unwrap()
        } else {
            VerifyingKey::from_der(&rsa_public, alg).unwrap()
        };
        let mut b = Authenticator::builder().issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(key.with_kid("k1")),
        );
        if !cache {
            b = b.without_cache();
        }
        b.build().unwrap()
    };

    // HTTP_BENCH_ONLY=<substring> runs only the matching configurations.
    let only = std::env::var("HTTP_BENCH_ONLY").unwrap_or_default();
    let bare_axum = start(handler());
    let bare_actix = start_actix(None);
    let mut configs = Vec::new();
    for fw in [Framework::Axum, Framework::AxumOuter, Framework::Actix] {
        for (alg, cache, token) in [
            (Algorithm::HS256, true, &hs),
            (Algorithm::HS256, false, &hs),
            (Algorithm::RS256, true, &rs),
            (Algorithm::RS256, false, &rs),
        ] {
            let label = label(fw, Some((alg, cache)));
            if !label.contains(only.as_str()) {
                continue;
            }
            let auth = authenticator(alg, cache);
            let (server, bare) = match fw {
                Framework::Axum => (start(handler().layer(AuthLayer::new(auth))), bare_axum),
                Framework::AxumOuter => (start_outer(handler(), auth), bare_axum),
                Framework::Actix => (start_actix(Some(auth)), bare_actix),
            };
            configs.push(Config {
                label,
                server,
                bare,
                token: token.clone(),
            });
        }
    }
    compare(&configs, rounds("HTTP_BENCH_ROUNDS", 7), seconds);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framework {
    Axum,
    /// axum with `AuthLayer` around the whole router (compared to bare axum).
    AxumOuter,
    Actix,
}

fn label(fw: Framework, cfg: Option<(Algorithm, bool)>) -> String {
    let fw = match fw {
        Framework::Axum => "axum",
        Framework::AxumOuter => "axum (around router)",
        Framework::Actix => "actix-web",
    };
    match cfg {
        None => format!("bare {fw}"),
        Some((alg, cache)) => format!(
            "{fw} + {alg}, token cache {}",
            if cache { "on" } else { "off" }
        ),
    }
}

/// Starts actix-web on its own thread with one worker, bare or with `Auth`.
fn start_actix(auth: Option<Authenticator>) -> Server {
    use actix_web::{App, HttpServer, web};
    let (tx, rx) = std::sync::mpsc::channel();
    // The app factory runs on the worker thread: it tells its id.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let tell = move || {
        let _ = tid_tx.send(thread_id());
    };
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let ok = || web::get().to(|| async { "ok" });
            match auth {
                None => {
                    let server = HttpServer::new(move || {
                        tell();
                        App::new().route("/", ok())
                    })
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                    tx.send(server.addrs()[0]).unwrap();
                    server.run().await.unwrap();
                }
                Some(auth) => {
                    let server = HttpServer::new(move || {
                        tell();
                        App::new()
                            .route("/", ok())
                            .wrap(tollgate::actix::Auth::new(auth.clone()))
                    })
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                    tx.send(server.addrs()[0]).unwrap();
                    server.run().await.unwrap();
                }
            }
        });
    });
    let addr = rx.recv().unwrap();
    let tid = tid_rx.recv().unwrap();
    Server { addr, tid }
}
