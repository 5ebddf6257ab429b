//! The token server's request parsing: client authentication (Basic and
//! body), forms and JSON bodies, on every endpoint, in process. The input's
//! first byte picks the endpoint and content type, the first line is the
//! `Authorization` value, the rest the body. No answer may be a 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tollgate_core::Algorithm;
use tollgate_core::policy::MemoryStore;
use tollgate_issuer::{Client, KeyRing, Settings, TokenServer};
use tower::ServiceExt;

fn app() -> &'static (Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let mut client = Client::generate("app", vec!["api".into()], vec!["read".into()]).0;
        client.secret_hash = tollgate_issuer::hash_secret("s3cret");
        let server = TokenServer::new(
            Settings::new("https://issuer.example"),
            KeyRing::ephemeral(Algorithm::ES256).expect("a ring"),
            vec![client],
            Arc::new(MemoryStore::new()),
        )
        .expect("a server");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        (server.router(), rt)
    })
}

const PATHS: [&str; 4] = [
    "/connect/token",
    "/connect/jwt",
    "/connect/introspect",
    "/connect/revocation",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (auth, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let content_type = if pick & 4 != 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut req = Request::post(PATHS[usize::from(pick) % 4])
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
        .expect("a request");
    if let Ok(v) = HeaderValue::from_bytes(auth) {
        req.headers_mut().insert("authorization", v);
    }
    let (router, rt) = app();
    let resp = rt
        .block_on(router.clone().oneshot(req))
        .expect("infallible");
    assert!(
        resp.status().as_u16() < 500,
        "a client's input answered {}",
        resp.status()
    );
});
