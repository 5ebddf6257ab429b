//! What a new user runs into, run as they run it: where the data directory
//! is, commands that must not create it, a secret after a restart, the
//! listen address, the token server's edges (404, liveness, readiness,
//! metrics), `token inspect`'s verdicts and exit codes, and output that
//! survives a closed pipe.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;
use tollgate_conformance::redis_server::RedisServer;

#[test]
fn read_only_commands_never_create_a_data_directory() {
    let dir = temp_dir("nodata");
    let absolute = dir.join("tollgate-data");
    for args in [
        &["keys", "list"][..],
        &["keys", "jwks"],
        &["keys", "rotate"],
        &["keys", "withdraw", "some-kid"],
        &["clients", "list"],
        &["clients", "add", "app", "--audience", "api"],
        &["clients", "secret", "app"],
        &["clients", "remove", "app"],
        &["token", "mint", "--client", "app"],
        &["token", "inspect", "a.b.c", "--local"],
    ] {
        let (code, out, err) = run(&dir, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains(&absolute.display().to_string()),
            "{args:?} names the directory it looked in: {err}"
        );
        assert!(
            err.contains("--data-dir") && err.contains("TOLLGATE_DATA_DIR"),
            "{args:?} says how to point elsewhere: {err}"
        );
        assert!(!absolute.exists(), "{args:?} created the data directory");
    }
    // `keys generate` creates; then, from another directory, the
    // environment variable finds it.
    let (code, out, err) = run(&dir, &["keys", "generate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("active"), "{out}");
    let elsewhere = temp_dir("elsewhere");
    let data = absolute.display().to_string();
    let (code, out, err) = run_env(
        &elsewhere,
        &["keys", "list"],
        &[("TOLLGATE_DATA_DIR", &data)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("active") && out.contains("next"), "{out}");
    let (code, _, err) = run_env(
        &elsewhere,
        &["clients", "add", "app", "--audience", "api"],
        &[("TOLLGATE_DATA_DIR", &data)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!elsewhere.join("tollgate-data").exists());
    // TOLLGATE_CONFIG names a file whose relative `data_dir` is read
    // beside the file, not in the working directory.
    std::fs::write(dir.join("tg.toml"), "data_dir = \"tollgate-data\"\n").unwrap();
    let config = dir.join("tg.toml").display().to_string();
    let (code, out, err) = run_env(
        &elsewhere,
        &["clients", "list"],
        &[("TOLLGATE_CONFIG", &config)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("app\t"), "{out}");
    // ./tollgate.toml is read without being named.
    std::fs::write(
        elsewhere.join("tollgate.toml"),
        format!("data_dir = {data:?}\n"),
    )
    .unwrap();
    let (code, out, err) = run(&elsewhere, &["clients", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["id"], "app");
    assert!(v.get("secret_hash").is_none(), "{v}");
    // A missing data directory named in the file is named in the error.
    std::fs::write(elsewhere.join("tollgate.toml"), "data_dir = \"gone\"\n").unwrap();
    let (code, _, err) = run(&elsewhere, &["keys", "list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("gone") && err.contains("tollgate.toml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn clients_add_refuses_what_could_never_work() {
    let dir = temp_dir("add");
    assert_eq!(run(&dir, &["keys", "generate"]).0, 0);
    for (args, why) in [
        (&["clients", "add", "", "--audience", "api"][..], "1 to"),
        (&["clients", "add", "a:b", "--audience", "api"], "`:`"),
        (
            &[
                "clients",
                "add",
                "a",
                "--audience",
                "api",
                "--lifetime",
                "0",
            ],
            "lifetime",
        ),
        (&["clients", "add", "a", "--audience", " "], "audience"),
    ] {
        let (code, _, err) = run(&dir, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (_, listed, _) = run(&dir, &["clients", "list"]);
    assert!(listed.is_empty(), "{listed}");
    // Keys list as JSON, with dates.
    let (code, out, _) = run(&dir, &["keys", "list", "--json"]);
    assert_eq!(code, 0);
    let keys: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    let created = keys[0]["created"].as_str().unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    // Completions.
    let (code, out, _) = run(&dir, &["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tollgate") && out.contains("complete"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_prints_a_walkthrough_that_works() {
    let dir = temp_dir("restart");
    let first = serve(&dir);
    let old = first.secret.clone().unwrap();
    let address = first.url.trim_start_matches("http://").to_owned();
    drop(first);
    let again = serve_on(&dir, &address);
    assert!(again.secret.is_none());
    let banner = again.banner.join("\n");
    assert!(!banner.contains("$TOLLGATE_SECRET"), "{banner}");
    // The printed line: a new secret, then the reload.
    let line = again
        .banner
        .iter()
        .find(|l| l.contains("clients secret dev --secret-only"))
        .unwrap_or_else(|| panic!("{banner}"));
    assert!(
        line.contains(&format!("kill -HUP {}", again.child.id())),
        "{line}"
    );
    let (code, out, err) = run(&dir, &["clients", "secret", "dev", "--secret-only"]);
    assert_eq!(code, 0, "{err}");
    let new = out.trim().to_owned();
    assert_eq!(new.len(), 43, "{out}");
    assert!(
        err.contains(&format!("pid {}", again.child.id())),
        "the reload is named: {err}"
    );
    signal(&again, "HUP");
    // Bounded wait for the reload: the new secret works, then the old fails.
    let http = reqwest::Client::new();
    let mut status = 0;
    for _ in 0..100 {
        status = http
            .post(format!("{}/connect/token", again.url))
            .basic_auth("dev", Some(&new))
            .form_urlencoded("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "the new secret works after SIGHUP");
    let r = http
        .post(format!("{}/connect/token", again.url))
        .basic_auth("dev", Some(&old))
        .form_urlencoded("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old secret stopped working");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_takes_a_bare_port_and_a_taken_port_says_what_to_do() {
    let dir = temp_dir("listen");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(&dir, &["serve", "--listen", &port]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--listen") && err.contains("issuer"), "{err}");
    drop(held);
    // A bare port is 127.0.0.1:PORT.
    let server = serve_with(&dir, &["--listen", &port], &[]);
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    let (code, _, err) = run(&dir, &["serve", "--listen", "80x"]);
    assert_eq!(code, 2);
    assert!(err.contains("port"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_edges_404_health_readiness_metrics() {
    let dir = temp_dir("edges");
    let mut redis = RedisServer::start();
    std::fs::write(
        dir.join("tollgate.toml"),
        format!("[store]\nkind = \"redis\"\nurl = \"{}\"\n", redis.url()),
    )
    .unwrap();
    let server = serve_with(
        &dir,
        &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        &[("TOLLGATE_LOG", "info")],
    );
    let http = reqwest::Client::new();
    let url = &server.url;
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    // Unknown paths: 404, not the demo API's 401.
    for path in ["/nope", "/demo", "/demo/hello/more", "/connect"] {
        let (status, _) = get(format!("{url}{path}")).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(get(format!("{url}/demo/hello")).await.0, 401);
    assert_eq!(get(format!("{url}/healthz")).await.0, 200);
    assert_eq!(get(format!("{url}/readyz")).await.0, 200);
    // Metrics on their own listener, counting the demo API's answers.
    let metrics = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("Prometheus metrics: "))
        .unwrap()
        .to_owned();
    assert_eq!(
        get(format!("{url}/metrics")).await.0,
        404,
        "not on the public listener"
    );
    let (status, text) = get(metrics).await;
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "tollgate_authentications_total{outcome=\"rejected\",reason=\"missing_token\"} 1"
        ),
        "{text}"
    );
    // The store gone: alive, not ready.
    redis.kill();
    assert_eq!(get(format!("{url}/healthz")).await.0, 200);
    let (status, body) = get(format!("{url}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store"), "{body}");
    // Logs into a file carry no colour codes.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("tollgate serving"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_says_what_it_checked_and_tells_unavailable_from_invalid() {
    let dir = temp_dir("inspect2");
    let server = serve(&dir);
    let secret = server.secret.clone().unwrap();
    let url = server.url.clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("tollgate-data/tollgate.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "tollgate.db is owner-only: {mode:o}");
    }
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/connect/jwt"))
        .basic_auth("dev", Some(&secret))
        .form_urlencoded("credits=1&lifetime=600")
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let env = [("TOLLGATE_CLIENT_SECRET", secret.as_str())];
    let inspect = |args: &[&str]| {
        let mut all = vec!["token", "inspect"];
        all.extend_from_slice(args);
        all.push("--json");
        let (code, out, err) = run_env(&dir, &all, &env);
        let v: Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, v)
    };
    // The data directory's keys: signature and claims, not revocation.
    let (code, v) = inspect(&[&token, "--local"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["not_checked"],
        serde_json::json!(["revocation", "credits"])
    );
    // With the server: credits left, then spent, then revoked.
    let server_args = ["--introspect", url.as_str(), "--client", "dev"];
    let (code, v) = inspect(&[&[token.as_str(), "--local"][..], &server_args].concat());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["server"]["credits_remaining"], 1);
    assert_eq!(v["not_checked"], serde_json::json!([]));
    let r = http
        .get(format!("{url}/demo/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (code, v) = inspect(&[&[token.as_str()][..], &server_args].concat());
    assert_eq!(
        (code, v["error"].as_str()),
        (1, Some("credits_exhausted")),
        "{v}"
    );
    http.post(format!("{url}/connect/revocation"))
        .basic_auth("dev", Some(&secret))
        .form_urlencoded(&format!("token={token}"))
        .send()
        .await
        .unwrap();
    let (code, v) = inspect(&[&[token.as_str()][..], &server_args].concat());
    assert_eq!((code, v["error"].as_str()), (1, Some("inactive")), "{v}");
    // A JWKS nobody serves: not judged, exit 3, with the real cause.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/jwks.json", dead.local_addr().unwrap());
    drop(dead);
    let (code, v) = inspect(&[&token, "--jwks", &dead_url]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["valid"], Value::Null);
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&dead_url) && detail.contains("onnect"),
        "{detail}"
    );
    // A forgery is still 1.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(inspect(&[&forged, "--local"]).0, 1);
    // Standard input, with a pasted `Bearer ` prefix: never in argv.
    let mut child = Command::new(BIN)
        .args(["token", "inspect", "-", "--local"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("Bearer {token}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid"));
    // A closed pipe (`| head -1`): no panic, the verdict's own exit code.
    for _ in 0..20 {
        let mut child = Command::new(BIN)
            .args(["token", "inspect", &token, "--local"])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[tls] self_signed`: a development CA and certificate in the data
/// directory, its fingerprint and `curl --cacert` lines in the banner, and
/// the walkthrough over HTTPS (the demo API included), bound to every
/// address; the certificate is kept across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_passes_the_walkthrough() {
    let dir = temp_dir("tls");
    std::fs::write(dir.join("tollgate.toml"), "[tls]\nself_signed = true\n").unwrap();
    let server = serve_on(&dir, "0.0.0.0:0");
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let banner = server.banner.join("\n");
    let ca = dir.join("tollgate-data/tls/ca.pem");
    assert!(banner.contains("SHA-256 "), "{banner}");
    assert!(
        banner.contains(&format!("curl --cacert '{}'", ca.display())),
        "{banner}"
    );
    let pem = std::fs::read(&ca).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}", server.port());
    let secret = server.secret.clone().unwrap();
    walkthrough(&http, &url, &secret).await;
    // The banner's own lines, run by curl as printed: a token bound to
    // 127.0.0.1, one paid call, introspection, revocation, then 401.
    let script: Vec<&str> = server
        .banner
        .iter()
        .skip_while(|l| !l.starts_with("Try it:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim())
        .collect();
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script.join("\n")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("credits-remaining: 2"), "{text}");
    assert!(text.contains("\"active\":true"), "{text}");
    assert!(text.contains("token_revoked"), "{text}");
    // Plain HTTP to the TLS port gets no answer a client could use.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.port()))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    // A restart keeps the certificate (same CA).
    signal(&server, "TERM");
    drop(server);
    let again = serve_on(&dir, "127.0.0.1:0");
    assert_eq!(std::fs::read(&ca).unwrap(), pem);
    let r = http
        .get(format!("https://localhost:{}/healthz", again.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}
