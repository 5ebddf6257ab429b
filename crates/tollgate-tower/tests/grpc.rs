//! A tonic service behind the tower layers, called by a tonic client over
//! HTTP/2 on 127.0.0.1: a gRPC call is refused with a gRPC status
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`), not an
//! HTTP 401/403/402 a gRPC client would report as a transport error.
//! Needs `--features grpc-tests` (tonic is slow to compile).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_conformance::grpc::{Echo, say, tonic};
use tollgate_conformance::jwt::{Signer, good_claims, now};
use tollgate_core::policy::{Credits, MemoryStore, Policies};
use tollgate_core::{Authenticator, TrustedIssuer, Verified};
use tollgate_tower::{AuthLayer, RequireClaimsLayer, RequireScopeLayer};
use tonic::Code;

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn token(changes: Value) -> String {
    let mut c = good_claims(ISS);
    c["scope"] = json!("echo");
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

async fn serve() -> SocketAddr {
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .policies(Policies::new(Arc::new(MemoryStore::new())).credits(Credits::new()))
        .build()
        .unwrap();
    let layers = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(auth).realm("api"))
        .layer(RequireScopeLayer::all(["echo"]))
        .layer(RequireClaimsLayer::new(|t: &Verified| {
            t.subject() != Some("banned")
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layers)
            .serve_with_incoming(Echo, incoming)
            .await
            .unwrap()
    });
    addr
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_get_grpc_statuses() {
    let addr = serve().await;

    let ok = say(addr, "hi", &bearer(&token(json!({})))).await.unwrap();
    assert_eq!(ok.get_ref().as_ref(), b"user-1: hi");

    let expired = token(json!({"exp": now() - 3600}));
    let cases = [
        (vec![], Code::Unauthenticated, "missing_token"),
        (bearer(&expired), Code::Unauthenticated, "token_expired"),
        (
            vec![("authorization", "Bearer a b".to_owned())],
            Code::Unauthenticated,
            "malformed_authorization",
        ),
        (
            bearer(&token(json!({"scope": "other"}))),
            Code::PermissionDenied,
            "insufficient_scope",
        ),
        (
            bearer(&token(json!({"sub": "banned"}))),
            Code::PermissionDenied,
            "access_denied",
        ),
    ];
    for (metadata, code, reason) in cases {
        let status = say(addr, "hi", &metadata).await.unwrap_err();
        assert_eq!(status.code(), code, "{reason}: {status:?}");
        assert_eq!(
            status.metadata().get("tollgate-error").unwrap(),
            reason,
            "{reason}"
        );
        if let Some((_, header)) = metadata.first() {
            let token = header.trim_start_matches("Bearer ");
            assert!(!status.message().contains(token), "{reason}");
        }
    }
    let status = say(addr, "hi", &[]).await.unwrap_err();
    assert_eq!(status.message(), "no bearer token in the request");
    assert_eq!(
        status.metadata().get("www-authenticate").unwrap(),
        "Bearer realm=\"api\""
    );

    // One credit: the first call spends it, the second is RESOURCE_EXHAUSTED.
    let metered = token(json!({"credits": 1, "jti": "grpc-1"}));
    let first = say(addr, "one", &bearer(&metered)).await.unwrap();
    assert_eq!(first.get_ref().as_ref(), b"user-1: one");
    assert_eq!(first.metadata().get("credits-remaining").unwrap(), "0");
    let status = say(addr, "two", &bearer(&metered)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.metadata().get("tollgate-error").unwrap(),
        "credits_exhausted"
    );
    assert_eq!(status.metadata().get("credits-limit").unwrap(), "1");
}
