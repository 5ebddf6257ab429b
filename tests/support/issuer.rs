//! What the token server's end-to-end tests share: an axum API and an
//! actix-web API behind Tollgate, and form posts to the token server.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::Value;
use tollgate::core::Authenticator;

/// An axum API at `/api` answering the token's subject.
pub async fn start_axum(auth: Authenticator) -> SocketAddr {
    use axum::Router;
    use axum::routing::get;
    use tollgate::axum::{AuthLayer, Claims};
    let app = Router::new()
        .route(
            "/api",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .layer(AuthLayer::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub fn start_actix(auth: Authenticator) -> SocketAddr {
    use actix_web::{App, HttpServer, web};
    use tollgate::actix::{Auth, Claims};
    async fn me(c: Claims) -> String {
        c.subject().unwrap_or("?").to_owned()
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .route("/api", web::get().to(me))
                    .wrap(Auth::new(auth.clone()))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// HTTP Basic as RFC 6749 §2.3.1 has it: id and secret form-urlencoded,
/// then joined by `:` and base64-encoded.
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    raw_basic(&enc(id), &enc(secret))
}

/// HTTP Basic without the form-urlencoding step.
pub fn raw_basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> Reply {
    let mut req = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

pub async fn api(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
) -> (u16, Option<String>, Option<String>) {
    let resp = http
        .get(format!("http://{addr}/api"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let remaining = resp
        .headers()
        .get("credits-remaining")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    (status, remaining, body["code"].as_str().map(str::to_owned))
}
