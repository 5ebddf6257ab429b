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

use std::net::SocketAddr;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate::axum::AuthLayer;
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

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

/// A running server: its address and the thread that serves it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Server {
    addr: SocketAddr,
    /// Linux thread id of the serving thread (`None` elsewhere).
    tid: Option<u32>,
}

/// The calling thread's Linux thread id.
fn thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Nanoseconds thread `tid` has run on a CPU (`/proc/.../schedstat`):
/// exact, and blind to the time the machine gave to other guests.
fn cpu_ns(tid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", tid?)).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `serve` on a new thread with a one-worker runtime; waits until it
/// has recorded its thread id.
fn spawn_server(serve: impl FnOnce() + Send + 'static) -> Option<u32> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(thread_id()).unwrap();
        serve();
    });
    rx.recv().unwrap()
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
            axum::serve(listener, app).await.unwrap();
        });
    });
    Server { addr, tid }
}

/// What one wrk run measured: requests/s, and the server thread's CPU
/// nanoseconds per request (when the platform tells).
type Run = (f64, Option<f64>);

/// One wrk run against `server`.
fn wrk(server: Server, token: &str, seconds: u32) -> Run {
    let addr = server.addr;
    let cpu_before = cpu_ns(server.tid);
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk not found: run scripts/bench-http.sh, which installs it");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        panic!("non-2xx answers during the run:\n{text}");
    }
    let cpu = cpu_ns(server.tid)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let requests: Option<f64> = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let per_request = cpu
        .zip(requests)
        .filter(|(_, n)| *n > 0.0)
        .map(|(ns, n)| ns as f64 / n);
    (rps, per_request)
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
    let rounds: usize = std::env::var("HTTP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    println!("{rounds} rounds of wrk -t1 -c32 -d{seconds}s per run, each server on one worker;");
    println!("each run of a configuration sits between two runs of the bare server of the same");
    println!(
        "framework with the same request; ratio = run / mean of its neighbours; medians shown"
    );
    let mut configs: Vec<Config> = Vec::new();
    for fw in [Framework::Axum, Framework::AxumOuter, Framework::Actix] {
        for (alg, cache, token) in [
            (Algorithm::HS256, true, &hs),
            (Algorithm::HS256, false, &hs),
            (Algorithm::RS256, true, &rs),
            (Algorithm::RS256, false, &rs),
        ] {
            if label(fw, Some((alg, cache))).contains(only.as_str()) {
                configs.push((fw, (alg, cache), token));
            }
        }
    }
    let bare_axum = start(handler());
    let bare_actix = start_actix(None);
    let bare_of = |fw: Framework| match fw {
        Framework::Axum | Framework::AxumOuter => bare_axum,
        Framework::Actix => bare_actix,
    };
    let servers: Vec<Server> = configs
        .iter()
        .map(|(fw, (alg, cache), _)| match fw {
            Framework::Axum => start(handler().layer(AuthLayer::new(authenticator(*alg, *cache)))),
            Framework::AxumOuter => start_outer(handler(), authenticator(*alg, *cache)),
            Framework::Actix => start_actix(Some(authenticator(*alg, *cache))),
        })
        .collect();
    for ((fw, _, token), server) in configs.iter().zip(&servers) {
        wrk(bare_of(*fw), token, 1); // warm-up
        wrk(*server, token, 1);
    }
    let n = configs.len();
    let (mut rps, mut bare_rps, mut ratio, mut cpu, mut cpu_ratio) = (
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
    );
    for _ in 0..rounds {
        // The bare run after one configuration is the bare run before the
        // next when both send the same request to the same framework.
        let mut last_bare: Option<(Server, &String, Run)> = None;
        for (i, ((fw, _, token), server)) in configs.iter().zip(&servers).enumerate() {
            let bare = bare_of(*fw);
            let before = match last_bare {
                Some((b, t, r)) if b == bare && t == *token => r,
                _ => wrk(bare, token, seconds),
            };
            let (r, c) = wrk(*server, token, seconds);
            let after = wrk(bare, token, seconds);
            last_bare = Some((bare, token, after));
            let base = (before.0 + after.0) / 2.0;
            rps[i].push(r);
            bare_rps[i].push(base);
            ratio[i].push(r / base);
            if let (Some(c), Some(b0), Some(b1)) = (c, before.1, after.1) {
                cpu[i].push(c);
                // Bare CPU per request over this configuration's: the
                // throughput ratio a server would reach if it had its
                // core to itself.
                cpu_ratio[i].push((b0 + b1) / 2.0 / c);
            }
        }
    }
    println!(
        "{:<46} {:>8} {:>10} {:>7} {:>9} {:>7}   ratios per round",
        "configuration", "req/s", "bare req/s", "x bare", "CPU/req", "x bare"
    );
    for i in 0..n {
        let (fw, cfg, _) = configs[i];
        let rounds: Vec<String> = ratio[i].iter().map(|r| format!("{r:.2}")).collect();
        let (cpu_us, cpu_x) = if cpu[i].is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.2} us", median(&mut cpu[i]) / 1000.0),
                format!("{:.2}", median(&mut cpu_ratio[i])),
            )
        };
        println!(
            "{:<46} {:>8.0} {:>10.0} {:>7.2} {:>9} {:>7}   {}",
            label(fw, Some(cfg)),
            median(&mut rps[i]),
            median(&mut bare_rps[i]),
            median(&mut ratio[i]),
            cpu_us,
            cpu_x,
            rounds.join(" ")
        );
    }
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

/// Rounds unless `HTTP_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 7;

/// Framework, layer settings (algorithm, token cache), token to send.
type Config<'a> = (Framework, (Algorithm, bool), &'a String);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
