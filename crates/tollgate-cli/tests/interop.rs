//! The refresh flow against `tollgate serve` with Authlib, an independent
//! OAuth 2.0 client library, as a public client: refresh, refresh again, the
//! first refresh token presented again is `invalid_grant` and the family is
//! dead. The refreshed access tokens verify in PyJWT and node `jose`.
//!
//! The tools come from `scripts/interop-setup.sh` (PyPI, npm) in the
//! workspace's `target/interop`; without them the test is skipped with a
//! warning, unless `TOLLGATE_INTEROP_REQUIRED` is set (as `.ci/run` does).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;
use tollgate_conformance::interop::{lines_of, tools, workspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_refreshes_and_reuse_kills_the_family() {
    let Some(tools) = tools() else { return };
    let dir = temp_dir("authlib");
    let server = serve(&dir);
    let url = server.url.clone();
    let secret = server.secret.clone().unwrap();
    // The confidential side (the API provider's backend) starts the family.
    let r = reqwest::Client::new()
        .post(format!("{url}/connect/jwt"))
        .basic_auth("dev", Some(&secret))
        .form_urlencoded("credits=10&refresh=true&sub=browser-user")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let first = body["refresh_token"].as_str().unwrap().to_owned();

    // The browser's side, with Authlib.
    let python = tools.join("venv/bin/python");
    let out = lines_of(
        Command::new(&python)
            .arg(workspace().join("tests/interop/refresh_authlib.py"))
            .args([&format!("{url}/connect/token"), "dev", &first]),
        &[],
    );
    assert_eq!(out.len(), 4, "{out:?}");
    let access: Vec<String> = out[..2]
        .iter()
        .map(|l| l.strip_prefix("access ").unwrap().to_owned())
        .collect();
    assert_eq!(out[2], "reuse invalid_grant", "{out:?}");
    assert_eq!(out[3], "after invalid_grant", "the family is dead: {out:?}");

    // The refreshed tokens verify in PyJWT and jose (signature, iss, aud,
    // exp, typ), and the demo API refuses them: their family is revoked.
    let script = tools.join("node/verify_jose.mjs");
    std::fs::copy(workspace().join("tests/interop/verify_jose.mjs"), &script).unwrap();
    let jwks = format!("{url}/.well-known/jwks.json");
    let py = lines_of(
        Command::new(&python)
            .arg(workspace().join("tests/interop/verify_pyjwt.py"))
            .args([&jwks, &url, "tollgate-demo"]),
        &access,
    );
    let node = lines_of(
        Command::new("node")
            .arg(&script)
            .args([&jwks, &url, "tollgate-demo"]),
        &access,
    );
    assert_eq!(py, ["ok ES256", "ok ES256"], "PyJWT");
    assert_eq!(node, ["ok ES256", "ok ES256"], "jose");
    let r = reqwest::Client::new()
        .get(format!("{url}/demo/hello"))
        .bearer_auth(&access[1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
