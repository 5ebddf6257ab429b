//! Token issuance over HTTP: `POST /connect/token` (client credentials,
//! HTTP Basic, ES256) driven by `wrk` on loopback; then refreshes
//! (`grant_type=refresh_token`, a public client), which `wrk` cannot drive
//! (each refresh token is spent once), by 32 chains of a Rust client, and
//! client-credentials issuance by the same client for comparison.
//!
//! ```text
//! scripts/bench-issuer.sh          # installs wrk, builds in release, runs this
//! ```
//!
//! The server runs on one tokio worker; `wrk` runs pinned to the other core
//! when `taskset` is present. Target: >= 5,000 tokens/s.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tollgate::core::Algorithm;
use tollgate::core::policy::MemoryStore;
use tollgate::issuer::{Client, KeyRing, Settings, TokenServer};

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut client, secret) = Client::generate("bench", vec!["api".into()], vec!["read".into()]);
    client.refresh_lifetime = 86_400;
    let server = TokenServer::new(
        Settings::new(format!("http://{addr}")),
        KeyRing::ephemeral(Algorithm::ES256).unwrap(),
        vec![client],
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    let app = server.router();
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

    let script = std::env::temp_dir().join(format!("tollgate-issue-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = \"grant_type=client_credentials&scope=read\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             wrk.headers[\"Authorization\"] = \"Basic {}\"\n",
            STANDARD.encode(format!("bench:{secret}"))
        ),
    )
    .unwrap();
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(format!("http://{addr}/connect/token"))
        .output()
        .expect("wrk not found: run scripts/bench-issuer.sh, which installs it");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "errors during the run:\n{text}");
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    println!("POST /connect/token, ES256, HTTP Basic, one server worker, wrk -t1 -c32 {seconds}s");
    println!("tokens issued per second: {rps:.0}");

    let basic = format!("Basic {}", STANDARD.encode(format!("bench:{secret}")));
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let (issued, refreshed) = client_rt.block_on(async move {
        let issued = drive(&base, &basic, seconds, false).await;
        let refreshed = drive(&base, &basic, seconds, true).await;
        (issued, refreshed)
    });
    println!("same Rust client, 32 concurrent chains, {seconds}s each:");
    println!("  client credentials per second: {issued:.0}");
    println!("  refreshes per second:          {refreshed:.0}");
}

/// 32 concurrent request chains for `seconds`: client credentials, or
/// refreshes (each chain starts a family with `/connect/jwt refresh=true`,
/// then rotates the refresh token it got back). Requests per second.
async fn drive(base: &str, basic: &str, seconds: u32, refresh: bool) -> f64 {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds.into());
    let mut chains = Vec::new();
    for _ in 0..32 {
        let (http, base, basic) = (http.clone(), base.to_owned(), basic.to_owned());
        chains.push(tokio::spawn(async move {
            let form = |path: &str, body: String| {
                http.post(format!("{base}{path}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            };
            let mut token = if refresh {
                let r = form("/connect/jwt", "refresh=true&credits=10".into())
                    .header("authorization", &basic)
                    .send()
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                v["refresh_token"].as_str().unwrap().to_owned()
            } else {
                String::new()
            };
            let mut n = 0u64;
            while std::time::Instant::now() < deadline {
                if refresh {
                    let r = form(
                        "/connect/token",
                        format!("grant_type=refresh_token&client_id=bench&refresh_token={token}"),
                    )
                    .send()
                    .await
                    .unwrap();
                    assert_eq!(r.status(), 200);
                    let v: serde_json::Value =
                        serde_json::from_str(&r.text().await.unwrap()).unwrap();
                    token = v["refresh_token"].as_str().unwrap().to_owned();
                } else {
                    let r = form(
                        "/connect/token",
                        "grant_type=client_credentials&scope=read".into(),
                    )
                    .header("authorization", basic.as_str())
                    .send()
                    .await
                    .unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await.unwrap();
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for c in chains {
        total += c.await.unwrap();
    }
    total as f64 / f64::from(seconds)
}
