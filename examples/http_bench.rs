//! HTTP overhead of the Tollgate layer: bare axum against axum + Tollgate,
//! on loopback, in one run, driven by `wrk`.
//!
//! ```text
//! scripts/bench-http.sh            # installs wrk, builds in release, runs this
//! ```
//!
//! Each server runs on one tokio worker (a current-thread runtime on its own
//! thread); `wrk` runs pinned to the other core when `taskset` is present.
//! Every configuration gets the same request, `Authorization` header included.

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
use tollgate::core::{Algorithm, Authenticator, Issuer, VerifyingKey};

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

/// Starts `app` on its own thread with a one-worker runtime.
fn start(app: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn wrk(addr: SocketAddr, token: &str, seconds: u32) -> f64 {
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
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
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
    let layered = |alg: Algorithm, cache: bool| {
        let key = if alg == Algorithm::HS256 {
            VerifyingKey::hmac(&secret, alg).unwrap()
        } else {
            VerifyingKey::from_der(&rsa_public, alg).unwrap()
        };
        let mut b = Authenticator::builder()
            .issuer(Issuer::new(ISS).audience("api").key(key.with_kid("k1")));
        if !cache {
            b = b.without_cache();
        }
        handler().layer(AuthLayer::new(b.build().unwrap()))
    };

    // HTTP_BENCH_ONLY=<substring> runs bare plus the matching configurations.
    let only = std::env::var("HTTP_BENCH_ONLY").unwrap_or_default();
    println!("each run: wrk -t1 -c32 -d{seconds}s, server on one tokio worker");
    let bare_addr = start(handler());
    wrk(bare_addr, &hs, 1); // warm-up
    let bare = wrk(bare_addr, &hs, seconds);
    println!(
        "{:<28} {:>12} {:>8}",
        "configuration", "requests/s", "x bare"
    );
    println!("{:<28} {:>12.0} {:>8.2}", "bare axum", bare, 1.0);
    for (name, alg, token, cache) in [
        ("HS256, token cache on", Algorithm::HS256, &hs, true),
        ("HS256, token cache off", Algorithm::HS256, &hs, false),
        ("RS256, token cache on", Algorithm::RS256, &rs, true),
        ("RS256, token cache off", Algorithm::RS256, &rs, false),
    ] {
        if !name.contains(only.as_str()) {
            continue;
        }
        let addr = start(layered(alg, cache));
        wrk(addr, token, 1);
        let rps = wrk(addr, token, seconds);
        println!("{name:<28} {rps:>12.0} {:>8.2}", rps / bare);
    }
}
