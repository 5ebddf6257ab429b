//! Tokens from the issuer verify in two independent JOSE implementations,
//! PyJWT (Python) and `jose` (Node.js), each fetching the issuer's JWKS URL
//! on 127.0.0.1; a tampered token fails in both.
//!
//! The tools are installed by `scripts/interop-setup.sh` (from PyPI and
//! npm) into `target/interop`; `.ci/run` does it and sets
//! `TOLLGATE_INTEROP_REQUIRED=1`. Without them the test is skipped with a
//! warning, unless required.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use tollgate_conformance::interop::{lines_of, tools};

use tollgate::core::Algorithm;
use tollgate::core::policy::MemoryStore;
use tollgate::issuer::{Client, KeyRing, MintRequest, Settings, TokenServer};

const AUD: &str = "https://api.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_and_node_jose_verify_issued_tokens() {
    let Some(dir) = tools() else { return };
    let script = dir.join("node/verify_jose.mjs");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_jose.mjs"),
        &script,
    )
    .unwrap();
    for alg in [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (client, _) = Client::generate("interop", vec![AUD.into()], vec!["read".into()]);
        let server = TokenServer::new(
            Settings::new(issuer.clone()),
            KeyRing::ephemeral(alg).unwrap(),
            vec![client.clone()],
            Arc::new(MemoryStore::new()),
        )
        .unwrap();
        let app = server.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let access = server.mint(&client, &MintRequest::default()).unwrap().token;
        let restricted = server
            .mint(
                &client,
                &MintRequest {
                    credits: Some(10),
                    ip: Some(vec!["127.0.0.1".into()]),
                    subject: Some("end-user".into()),
                    restricted: true,
                    ..MintRequest::default()
                },
            )
            .unwrap()
            .token;
        // Signed by the key that retires at the next rotation.
        server.rotate_keys().unwrap();
        let after_rotation = server.mint(&client, &MintRequest::default()).unwrap().token;
        let mut tampered = access.clone();
        let sig_start = tampered.rfind('.').unwrap() + 1;
        let flipped = if &tampered[sig_start..sig_start + 1] == "A" {
            "B"
        } else {
            "A"
        };
        tampered.replace_range(sig_start..sig_start + 1, flipped);
        let tokens = vec![access, restricted, after_rotation, tampered];

        let jwks = format!("{issuer}/.well-known/jwks.json");
        let py = lines_of(
            Command::new(dir.join("venv/bin/python"))
                .arg(
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_pyjwt.py"),
                )
                .args([&jwks, &issuer, AUD]),
            &tokens,
        );
        let node = lines_of(
            Command::new("node")
                .arg(&script)
                .args([&jwks, &issuer, AUD]),
            &tokens,
        );
        for (name, lines) in [("PyJWT", &py), ("jose", &node)] {
            assert_eq!(lines.len(), 4, "{name} {}: {lines:?}", alg.as_str());
            for line in &lines[..3] {
                assert_eq!(line, &format!("ok {}", alg.as_str()), "{name}: {lines:?}");
            }
            assert!(
                lines[3].starts_with("fail"),
                "{name} accepted a tampered token"
            );
        }
        println!("{}: PyJWT {py:?}, jose {node:?}", alg.as_str());
    }
}
