//! The same cases against an axum server and an actix-web server over real
//! HTTP on 127.0.0.1: status, `WWW-Authenticate`, `Retry-After` and body
//! must be byte-identical. Both render through `tollgate_core::error_response`.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::net::SocketAddr;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;
use support::{Signer, good_claims, now};
use tollgate::core::{Authenticator, TrustedIssuer};

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn authenticator(down_iss: &str) -> Authenticator {
    Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .issuer(
            TrustedIssuer::new(down_iss)
                .audience("api")
                .jwks_url(format!("{down_iss}/keys")),
        )
        .build()
        .unwrap()
}

/// The `Authorization` header, and an `X-Api-Token` header of the
/// application's (a custom source).
fn extractor() -> tollgate::core::BearerExtractor {
    tollgate::core::BearerExtractor::new()
        .custom(|req| req.header("x-api-token").map(str::to_owned))
}

/// The check `/admin` makes of the token's claims.
fn is_admin(token: &tollgate::core::Verified) -> bool {
    token.subject() == Some("admin")
}

async fn start_axum(auth: Authenticator) -> SocketAddr {
    use axum::Router;
    use axum::routing::get;
    use tollgate::axum::{AuthLayer, Claims, RequireClaimsLayer, RequireScopeLayer};
    let me = |c: Claims| async move { c.subject().unwrap_or("?").to_owned() };
    let app = Router::new()
        .route("/reports", get(me))
        .route_layer(RequireScopeLayer::all(["reports:read"]).realm("api"))
        .route(
            "/admin",
            get(me).route_layer(RequireClaimsLayer::new(is_admin).realm("api")),
        )
        .route("/me", get(me))
        .layer(AuthLayer::new(auth).realm("api").extractor(extractor()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn start_actix(auth: Authenticator) -> SocketAddr {
    use actix_web::{App, HttpServer, web};
    use tollgate::actix::{Auth, Claims, RequireClaims, RequireScope};
    async fn me(c: Claims) -> String {
        c.subject().unwrap_or("?").to_owned()
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .service(
                        web::scope("/reports")
                            .wrap(RequireScope::all(["reports:read"]).realm("api"))
                            .route("", web::get().to(me)),
                    )
                    .service(
                        web::resource("/admin")
                            .wrap(RequireClaims::new(is_admin).realm("api"))
                            .route(web::get().to(me)),
                    )
                    .route("/me", web::get().to(me))
                    .wrap(Auth::new(auth.clone()).realm("api").extractor(extractor()))
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

#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: String,
}

async fn get_with(addr: SocketAddr, path: &str, headers: HeaderMap) -> Answer {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: resp.status().as_u16(),
        challenge: header("www-authenticate"),
        retry_after: header("retry-after"),
        content_type: header("content-type"),
        body: resp.text().await.unwrap(),
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn api_token(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-api-token", HeaderValue::from_str(token).unwrap());
    h
}

fn token(changes: serde_json::Value) -> String {
    let mut c = good_claims(ISS);
    c["scope"] = json!("reports:read");
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_and_actix_answer_byte_for_byte_alike() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down_iss = format!("http://{dead}");
    let axum_addr = start_axum(authenticator(&down_iss)).await;
    let actix_addr = start_actix(authenticator(&down_iss));

    let mut malformed = HeaderMap::new();
    malformed.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
    let mut two = bearer(&token(json!({})));
    two.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", token(json!({})))).unwrap(),
    );
    let unsigned = {
        let t = Signer::hs256(SECRET).sign_raw(
            r#"{"alg":"none","kid":"k1"}"#,
            &good_claims(ISS).to_string(),
        );
        format!("{}.", t.rsplit_once('.').unwrap().0)
    };
    let cases: Vec<(&str, &str, HeaderMap, u16)> = vec![
        ("no token", "/me", HeaderMap::new(), 401),
        ("malformed header", "/me", malformed, 400),
        ("two Authorization headers", "/me", two, 400),
        ("oversized token", "/me", bearer(&"a".repeat(9000)), 400),
        (
            "bad signature",
            "/me",
            bearer(&Signer::hs256(&[9; 32]).sign(Some("k1"), &good_claims(ISS))),
            401,
        ),
        ("alg none", "/me", bearer(&unsigned), 401),
        (
            "expired",
            "/me",
            bearer(&token(json!({"exp": now() - 3600}))),
            401,
        ),
        (
            "not yet valid",
            "/me",
            bearer(&token(json!({"nbf": now() + 3600}))),
            401,
        ),
        (
            "wrong iss",
            "/me",
            bearer(&token(json!({"iss": "https://evil.example"}))),
            401,
        ),
        (
            "wrong aud",
            "/me",
            bearer(&token(json!({"aud": "other"}))),
            401,
        ),
        (
            "unknown kid",
            "/me",
            bearer(&Signer::hs256(SECRET).sign(Some("k9"), &good_claims(ISS))),
            401,
        ),
        (
            "JWKS unavailable",
            "/me",
            bearer(&Signer::es256().sign(Some("r"), &good_claims(&down_iss))),
            503,
        ),
        (
            "missing scope",
            "/reports",
            bearer(&token(json!({"scope": "profile"}))),
            403,
        ),
        ("valid", "/me", bearer(&token(json!({}))), 200),
        ("custom source", "/me", api_token(&token(json!({}))), 200),
        ("custom source, malformed", "/me", api_token("a b"), 400),
        (
            "custom source and header",
            "/me",
            {
                let mut h = api_token(&token(json!({})));
                h.extend(bearer(&token(json!({}))));
                h
            },
            400,
        ),
        ("claims check, no token", "/admin", HeaderMap::new(), 401),
        (
            "claims check refused",
            "/admin",
            bearer(&token(json!({}))),
            403,
        ),
        (
            "claims check passed",
            "/admin",
            bearer(&token(json!({"sub": "admin"}))),
            200,
        ),
        (
            "valid with scope",
            "/reports",
            bearer(&token(json!({}))),
            200,
        ),
    ];
    for (name, path, headers, status) in cases {
        let a = get_with(axum_addr, path, headers.clone()).await;
        let b = get_with(actix_addr, path, headers).await;
        assert_eq!(a.status, status, "{name} (axum)");
        assert_eq!(a, b, "{name}: axum and actix differ");
    }
}
