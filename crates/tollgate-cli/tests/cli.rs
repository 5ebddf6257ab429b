//! The `tollgate` binary, run as a user runs it: `serve` on embedded
//! defaults walked through with HTTP on 127.0.0.1, bad configuration, keys,
//! clients, and `token mint` / `token inspect` exit codes.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

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
    let token = walkthrough(&http, url, &secret).await;
    // The demo API enforces the address binding: a token bound to another
    // address is refused from 127.0.0.1; ranges and lists that hold it pass.
    for (ip, status) in [
        ("10.9.8.7", 401),
        ("10.0.0.0/8", 401),
        ("127.0.0.0/8", 200),
        ("10.9.8.7,127.0.0.1", 200),
    ] {
        let r = http
            .post(format!("{url}/connect/jwt"))
            .basic_auth("dev", Some(&secret))
            .form_urlencoded(&format!("credits=3&ip={ip}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ip}");
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let bound = body["token"].as_str().unwrap().to_owned();
        let r = http
            .get(format!("{url}/demo/hello"))
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "token bound to {ip}");
        if status == 401 {
            assert!(r.headers().contains_key("www-authenticate"));
            let text = r.text().await.unwrap();
            assert!(text.contains("client_address_mismatch"), "{ip}: {text}");
        }
    }

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

#[test]
fn bad_configuration_names_file_key_and_reason() {
    let dir = temp_dir("config");
    let cases = [
        ("listen = \"nowhere\"\n", "listen"),
        ("[store]\nkind = \"mongo\"\n", "store.kind"),
        ("[store]\nkind = \"redis\"\n", "store.url"),
        ("[store]\nkind = \"redis-cluster\"\n", "store.nodes"),
        (
            "[store]\nkind = \"redis-cluster\"\nnodes = []\n",
            "store.nodes",
        ),
        (
            "[store]\nkind = \"redis-cluster\"\nnodes = [\"127.0.0.1:7000\"]\n",
            "store.nodes",
        ),
        ("[keys]\nalgorithm = \"none\"\n", "keys.algorithm"),
        ("colour = \"blue\"\n", "colour"),
        (
            "[[clients]]\nid = \"a\"\nsecret_hash = \"plain\"\naudiences = [\"x\"]\n",
            "clients[0].secret_hash",
        ),
        // HS256 keys are never published: nothing could verify the tokens.
        ("[keys]\nalgorithm = \"HS256\"\n", "keys.algorithm"),
    ];
    for (text, key) in cases {
        let path = dir.join("tollgate.toml");
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(
            &dir,
            &[
                "serve",
                "--config",
                "tollgate.toml",
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains("tollgate.toml"), "{text}: {err}");
        assert!(err.contains(key), "{text}: wants `{key}` in: {err}");
        if text.contains("HS256") {
            assert!(err.contains("never published"), "{err}");
        }
        if text.starts_with("listen") {
            // toml's layout kept: the line, a caret under the value.
            assert!(
                err.contains("1 | listen = \"nowhere\"") && err.contains('^'),
                "{err}"
            );
        }
    }
    // The refused HS256 configuration generated no key.
    assert!(!dir.join("tollgate-data/keys").exists());
    // Found in the working directory without --config, it is read too.
    let (code, _, err) = run(&dir, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tollgate.toml") && err.contains("HS256"),
        "{err}"
    );
    std::fs::remove_file(dir.join("tollgate.toml")).unwrap();
    // HS256 stays available to `token mint`.
    std::fs::write(dir.join("hs.toml"), "[keys]\nalgorithm = \"HS256\"\n").unwrap();
    let hs = ["--config", "hs.toml", "--data-dir", "hsdata"];
    let (code, _, err) = run(&dir, &[&["keys", "generate"][..], &hs[..]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &dir,
        &[
            &["clients", "add", "local", "--audience", "api"][..],
            &hs[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = run(
        &dir,
        &[&["token", "mint", "--client", "local"][..], &hs[..]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(token.starts_with("eyJhbGciOiJIUzI1NiI"), "HS256: {token}");
    // A data directory whose keys are HS256 cannot be served either: the
    // error names the key file.
    let (code, _, err) = run(
        &dir,
        &["serve", "--data-dir", "hsdata", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("hsdata") && err.contains("keys") && err.contains(".json"),
        "{err}"
    );
    assert!(
        err.contains("HS256") && err.contains("never published"),
        "{err}"
    );
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
            "hsdata",
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
    // A `:` would make `client:user` subjects ambiguous.
    let (code, _, err) = run(&dir, &["clients", "add", "bill:ing", "--audience", "a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`:`"), "{err}");
    let (_, listed, _) = run(&dir, &["clients", "list"]);
    assert!(!listed.contains("bill:ing"), "{listed}");

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
    // Without --jwks the token is decoded, not verified: a usage error.
    let (code, out, err) = run(&dir, &["token", "inspect", &token]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--jwks"), "{err}");
    assert!(out.contains("credits"), "the claims are shown: {out}");
    let (code, out, _) = run(&dir, &["token", "inspect", &token, "--json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["claims"]["credits"], 5);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_verifies_against_a_jwks_url() {
    let dir = temp_dir("inspect");
    let server = serve(&dir);
    let url = server.url.clone();
    let token = client_credentials(&url, "dev", server.secret.as_deref().unwrap()).await;
    let jwks = format!("{url}/.well-known/jwks.json");
    let inspect = |extra: &[&str]| {
        let mut args = vec!["token", "inspect", &token, "--jwks", &jwks, "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&dir, &args);
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        (code, v)
    };
    let (code, v) = inspect(&[]);
    assert_eq!((code, &v["valid"]), (0, &serde_json::json!(true)), "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["claims"]["iss"], url.as_str());
    let (code, v) = inspect(&["--iss", &url, "--aud", "tollgate-demo"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = inspect(&["--iss", "https://elsewhere.example"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"], "invalid_issuer");
    let (code, v) = inspect(&["--aud", "someone-else"]);
    assert_eq!((code, v["error"].as_str()), (1, Some("invalid_audience")));
    // Human-readable form.
    let (code, out, _) = run(&dir, &["token", "inspect", &token, "--jwks", &jwks]);
    assert_eq!(code, 0);
    assert!(out.starts_with("valid"), "{out}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_api_reads_keys_from_its_own_listener() {
    // Bound to every address, plain HTTP is refused unless a proxy in
    // front terminates TLS and the issuer is its https URL.
    let dir = temp_dir("own-listener");
    let (code, _, err) = run(&dir, &["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("[tls]"),
        "{err}"
    );
    assert!(
        !dir.join("tollgate-data").exists(),
        "refused before creating anything"
    );
    std::fs::write(dir.join("tollgate.toml"), "[tls]\nproxy = true\n").unwrap();
    let (code, _, err) = run(&dir, &["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("issuer") && err.contains("https"), "{err}");
    std::fs::write(
        dir.join("tollgate.toml"),
        "issuer = \"https://auth.example\"\n[tls]\nproxy = true\n",
    )
    .unwrap();
    // The issuer URL names the proxy, not a loopback URL: the demo API
    // still gets its keys, from its own listener.
    let server = serve_on(&dir, "0.0.0.0:0");
    assert_eq!(server.url, "https://auth.example");
    let local = format!("http://127.0.0.1:{}", server.port());
    let token = client_credentials(&local, "dev", server.secret.as_deref().unwrap()).await;
    let r = reqwest::Client::new()
        .get(format!("{local}/demo/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drop(server);

    // `token inspect` fetches keys over https, or plain http from a
    // loopback host only; refused before any request.
    let (code, _, err) = run(
        &dir,
        &[
            "token",
            "inspect",
            &token,
            "--jwks",
            "http://198.51.100.1/.well-known/jwks.json",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("https"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_keys_and_clients_on_sighup() {
    let dir = temp_dir("reload");
    let server = serve(&dir);
    let url = server.url.clone();
    let secret = server.secret.clone().unwrap();
    let http = reqwest::Client::new();
    let published = || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let text = http
                .get(format!("{url}/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let before = published().await;
    let old_token = client_credentials(&url, "dev", &secret).await;
    let old_kid = kid_of(&old_token);

    // Rotate on disk and add a client, while the server runs.
    let (code, out, err) = run(&dir, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    let state = |want: &str| {
        out.lines()
            .find(|l| l.split('\t').nth(2).is_some_and(|s| s.starts_with(want)))
            .and_then(|l| l.split('\t').next())
            .unwrap()
            .to_owned()
    };
    let (new_next, new_active) = (state("next"), state("active"));
    assert!(!before.contains(&new_next));
    assert!(before.contains(&new_active), "published before it signs");
    let (code, added, err) = run(
        &dir,
        &["clients", "add", "second", "--audience", "tollgate-demo"],
    );
    assert_eq!(code, 0, "{err}");
    let second_secret = added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret:"))
        .unwrap()
        .trim()
        .to_owned();

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The reload is asynchronous: poll the JWKS, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let kids = published().await;
        if kids.contains(&new_next) {
            break kids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the JWKS never showed {new_next}: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The retiring key stays published; the new active key signs.
    assert!(
        after.contains(&old_kid) && after.contains(&new_active),
        "{after:?}"
    );
    let new_token = client_credentials(&url, "dev", &secret).await;
    assert_eq!(kid_of(&new_token), new_active);
    // The new client is known, and the server did not restart to get there.
    client_credentials(&url, "second", &second_secret).await;
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none());
    // Tokens of both keys pass the demo API.
    for t in [&old_token, &new_token] {
        let r = http
            .get(format!("{url}/demo/hello"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A compromised client: `clients revoke-tokens`, then SIGHUP, and every API
/// sharing the store refuses the tokens it was issued; removal does the same.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_clients_tokens_reaches_the_apis_after_sighup() {
    let dir = temp_dir("revoke-client");
    let server = serve(&dir);
    let url = server.url.clone();
    let secret = server.secret.clone().unwrap();
    let http = reqwest::Client::new();
    let restricted = |credits: &'static str| {
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        async move {
            let r = http
                .post(format!("{url}/connect/jwt"))
                .basic_auth("dev", Some(&secret))
                .form_urlencoded(&format!("credits={credits}&ip=127.0.0.1"))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let hello = |token: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http
                .get(format!("{url}/demo/hello"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let token = restricted("5").await;
    assert_eq!(hello(token.clone()).await.0, 200);

    let (code, out, err) = run(&dir, &["clients", "revoke-tokens", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    // Nothing changes before the server reloads.
    assert_eq!(hello(token.clone()).await.0, 200);
    Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let answer = loop {
        let answer = hello(token.clone()).await;
        if answer.0 != 200 || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(answer.0, 401, "{}", answer.1);
    assert!(answer.1.contains("token_revoked"), "{}", answer.1);
    let r = http
        .post(format!("{url}/connect/introspect"))
        .basic_auth("dev", Some(&secret))
        .form_urlencoded(&format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"active":false}"#);
    // The queue is emptied once every watermark is written, just after the
    // revocation is seen: a bounded wait.
    let queue = dir.join("tollgate-data/revoke-clients.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while queue.exists() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert!(!queue.exists(), "the queue is emptied once applied");
}
