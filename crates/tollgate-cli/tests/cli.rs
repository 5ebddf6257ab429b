//! The `tollgate` binary, run as a user runs it: `serve` on embedded
//! defaults walked through with HTTP on 127.0.0.1, bad configuration, keys,
//! clients, and `token mint` / `token inspect` exit codes.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{name}-{nanos:x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Server {
    child: Child,
    url: String,
    secret: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tollgate serve` in `dir` on a free port and reads its banner.
fn serve(dir: &PathBuf) -> Server {
    serve_on(dir, "127.0.0.1:0")
}

fn serve_on(dir: &PathBuf, listen: &str) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", listen])
        .current_dir(dir)
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its banner");
        if let Some(u) = line.strip_prefix("Tollgate is serving ") {
            url = Some(u.trim().to_owned());
        }
        if let Some(s) = line.trim().strip_prefix("client_secret: ") {
            secret = Some(s.trim().to_owned());
        }
        if line.starts_with("Try it:") {
            break;
        }
    }
    Server {
        child,
        url: url.unwrap(),
        secret,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_defaults_walkthrough() {
    let dir = temp_dir("serve");
    let server = serve(&dir);
    let secret = server
        .secret
        .clone()
        .expect("first start prints the secret");
    let http = reqwest::Client::new();
    let url = &server.url;
    let r = http
        .post(format!("{url}/connect/token"))
        .basic_auth("dev", Some(&secret))
        .form_urlencoded("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/connect/jwt"))
        .basic_auth("dev", Some(&secret))
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
    assert_eq!(
        seen,
        [
            (200, "2".into()),
            (200, "1".into()),
            (200, "0".into()),
            (402, "0".into())
        ]
    );
    let r = http
        .post(format!("{url}/connect/revocation"))
        .basic_auth("dev", Some(&secret))
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

    // Keys and the client persist, owner-only; the secret is not stored.
    let clients = std::fs::read_to_string(dir.join("tollgate-data/clients.json")).unwrap();
    assert!(!clients.contains(&secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("tollgate-data/keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys directory is owner-only");
    }

    // SIGTERM: graceful exit, status 0.
    let mut server = server;
    let pid = server.child.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = server.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(status.expect("exited after SIGTERM").success());

    // A second start keeps the client and does not print a secret again.
    // Same address, so the same issuer URL.
    let again = serve_on(&dir, server.url.trim_start_matches("http://"));
    assert!(again.secret.is_none());
    // The durable store kept the revocation across the restart.
    let r = reqwest::Client::new()
        .get(format!("{}/demo/hello", again.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("token_revoked"));
    let _ = std::fs::remove_dir_all(&dir);
}

trait FormBody {
    fn form_urlencoded(self, body: &str) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_urlencoded(self, body: &str) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    }
}

fn run(dir: &PathBuf, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("TOLLGATE_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_names_file_key_and_reason() {
    let dir = temp_dir("config");
    let cases = [
        ("listen = \"nowhere\"\n", "listen"),
        ("[store]\nkind = \"mongo\"\n", "store.kind"),
        ("[store]\nkind = \"redis\"\n", "store.url"),
        ("[keys]\nalgorithm = \"none\"\n", "keys.algorithm"),
        ("colour = \"blue\"\n", "colour"),
        (
            "[[clients]]\nid = \"a\"\nsecret_hash = \"plain\"\naudiences = [\"x\"]\n",
            "clients[0].secret_hash",
        ),
    ];
    for (text, key) in cases {
        let path = dir.join("tollgate.toml");
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(&dir, &["serve", "--config", "tollgate.toml"]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains("tollgate.toml"), "{text}: {err}");
        assert!(err.contains(key), "{text}: wants `{key}` in: {err}");
    }
    // The documented example parses and checks.
    let example =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/tollgate.example.toml");
    let (code, out, err) = run(
        &dir,
        &[
            "clients",
            "list",
            "--config",
            example.to_str().unwrap(),
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reports"), "{out}");
    let (code, _, err) = run(&dir, &["serve", "--config", "missing.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_clients_mint_and_inspect() {
    let dir = temp_dir("tools");
    let (code, out, _) = run(&dir, &["keys", "generate"]);
    assert_eq!(code, 0);
    assert!(out.contains("active") && out.contains("next"), "{out}");
    let (code, out, _) = run(
        &dir,
        &[
            "clients",
            "add",
            "billing",
            "--audience",
            "https://api.example",
            "--scope",
            "read",
        ],
    );
    assert_eq!(code, 0);
    let secret_line = out
        .lines()
        .find(|l| l.starts_with("client_secret:"))
        .unwrap();
    let secret = secret_line.split_whitespace().nth(1).unwrap();
    let (_, listed, _) = run(&dir, &["clients", "list"]);
    assert!(listed.contains("billing") && !listed.contains(secret));

    let (code, token, err) = run(
        &dir,
        &[
            "token",
            "mint",
            "--client",
            "billing",
            "--scope",
            "read",
            "--credits",
            "5",
            "--ip",
            "127.0.0.1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_owned();
    let (_, jwks, _) = run(&dir, &["keys", "jwks"]);
    std::fs::write(dir.join("jwks.json"), jwks).unwrap();

    let (code, out, _) = run(
        &dir,
        &["token", "inspect", &token, "--jwks", "jwks.json", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["claims"]["credits"], 5);
    let (code, out, _) = run(&dir, &["token", "inspect", &token, "--jwks", "jwks.json"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("valid"), "{out}");

    // Wrong audience, tampered signature, garbage: 1.
    let (code, out, _) = run(
        &dir,
        &[
            "token",
            "inspect",
            &token,
            "--jwks",
            "jwks.json",
            "--aud",
            "other",
            "--json",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("invalid_audience"), "{out}");
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (code, _, _) = run(
        &dir,
        &["token", "inspect", &tampered, "--jwks", "jwks.json"],
    );
    assert_eq!(code, 1);
    let (code, _, _) = run(
        &dir,
        &["token", "inspect", "garbage", "--jwks", "jwks.json"],
    );
    assert_eq!(code, 1);
    // Usage errors: 2.
    let (code, _, _) = run(&dir, &["token", "inspect"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&dir, &["token", "mint", "--client", "nobody"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&dir, &["frobnicate"]);
    assert_eq!(code, 2);

    // Rotation keeps the old key published.
    let (code, out, _) = run(&dir, &["keys", "rotate"]);
    assert_eq!(code, 0);
    assert!(out.contains("retiring"), "{out}");
    let (code, _, _) = run(&dir, &["clients", "remove", "billing"]);
    assert_eq!(code, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
