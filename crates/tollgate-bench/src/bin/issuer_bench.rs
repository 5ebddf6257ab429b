//! Token issuance over HTTP: `POST /connect/token` (client credentials,
//! HTTP Basic, ES256) driven by `wrk` on loopback.
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
    let (client, secret) = Client::generate("bench", vec!["api".into()], vec!["read".into()]);
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
}
