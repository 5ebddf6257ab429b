//! Running the `tollgate` binary as a user does: commands, and `serve` on a
//! free port with its banner read.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{name}-{nanos:x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub secret: Option<String>,
    /// The banner, up to its last line.
    pub banner: Vec<String>,
    /// Where its standard error goes.
    pub log: PathBuf,
}

impl Server {
    /// The port it listens on, from its banner's `Listening on` line.
    pub fn port(&self) -> u16 {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix("Listening on "))
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `Listening on` line: {:?}", self.banner))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tollgate serve` in `dir` on a free port and reads its banner.
pub fn serve(dir: &Path) -> Server {
    serve_on(dir, "127.0.0.1:0")
}

pub fn serve_on(dir: &Path, listen: &str) -> Server {
    serve_with(dir, &["--listen", listen], &[])
}

/// `tollgate serve ARGS` in `dir` with extra environment; standard error
/// goes to a log file in `dir`.
pub fn serve_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let log = dir.join(format!("serve-{nanos:x}.log"));
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .current_dir(dir)
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining: a closed pipe would fail the server's next print.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut secret = None;
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "serve printed no banner: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        if let Some(u) = line.strip_prefix("Tollgate is serving ") {
            url = Some(u.trim().to_owned());
        }
        if let Some(s) = line.trim().strip_prefix("client_secret: ") {
            secret = Some(s.trim().to_owned());
        }
        let last = line.starts_with("After `tollgate keys rotate`");
        banner.push(line);
        if last {
            break;
        }
    }
    Server {
        child,
        url: url.unwrap(),
        secret,
        banner,
        log,
    }
}

pub trait FormBody {
    fn form_urlencoded(self, body: &str) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_urlencoded(self, body: &str) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    }
}

/// `tollgate ARGS` in `dir`: exit code, stdout, stderr.
pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_env(dir, args, &[])
}

pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env("TOLLGATE_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub async fn client_credentials(url: &str, id: &str, secret: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{url}/connect/token"))
        .basic_auth(id, Some(secret))
        .form_urlencoded("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{id}");
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Sends `signal` (`HUP`, `TERM`) to the server.
pub fn signal(server: &Server, signal: &str) {
    Command::new("kill")
        .args([&format!("-{signal}"), &server.child.id().to_string()])
        .status()
        .unwrap();
}

/// The README's walkthrough against a running server at `url`: a client
/// credentials token; a token worth 3 credits bound to 127.0.0.1 spent at
/// the demo API (credits-remaining 2, 1, 0, then 402); revoked, then 401.
/// Returns that token.
pub async fn walkthrough(http: &reqwest::Client, url: &str, secret: &str) -> String {
    let r = http
        .post(format!("{url}/connect/token"))
        .basic_auth("dev", Some(secret))
        .form_urlencoded("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/connect/jwt"))
        .basic_auth("dev", Some(secret))
        .form_urlencoded("credits=3&lifetime=600&ip=127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{url}/demo/hello"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let left = r.headers()["credits-remaining"]
            .to_str()
            .unwrap()
            .to_owned();
        seen.push((r.status().as_u16(), left));
    }
    let expected: Vec<(u16, String)> = [(200, "2"), (200, "1"), (200, "0"), (402, "0")]
        .into_iter()
        .map(|(s, l)| (s, l.to_owned()))
        .collect();
    assert_eq!(seen, expected);
    let r = http
        .post(format!("{url}/connect/revocation"))
        .basic_auth("dev", Some(secret))
        .form_urlencoded(&format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{url}/demo/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    token
}
