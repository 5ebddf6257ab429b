//! The actix-web middleware over real HTTP on 127.0.0.1: handlers untouched
//! on rejection, typed claims, optional mode, a missing middleware, CORS
//! preflight, the error hook, and remote keys fetched once for waiting requests.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::json;
use support::{Signer, good_claims, now};
use tollgate_actix::{Auth, Claims, Scopes};
use tollgate_core::{Authenticator, Error, TrustedIssuer};

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Debug, Deserialize)]
struct Plan {
    tier: String,
}

/// Starts an actix server on its own thread; the closure builds the App.
macro_rules! serve {
    ($app:expr) => {{
        let app = $app;
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(app)
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                tx.send(server.addrs()[0]).unwrap();
                server.run().await.unwrap();
            });
        });
        rx.recv().unwrap()
    }};
}

fn static_auth<C: serde::de::DeserializeOwned + Send + Sync + 'static>() -> Authenticator {
    Authenticator::builder()
        .check_claims::<C>()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap()
}

fn token(changes: serde_json::Value) -> String {
    let mut c = good_claims(ISS);
    c["tier"] = json!("gold");
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        resp.status().as_u16(),
        challenge,
        resp.text().await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_never_reach_the_handler_and_typed_claims_do() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let auth = static_auth::<Plan>();
    let addr: SocketAddr = serve!(move || {
        let seen = seen.clone();
        App::new()
            .route(
                "/me",
                web::get().to(move |c: Claims<Plan>| {
                    let seen = seen.clone();
                    async move {
                        seen.fetch_add(1, Ordering::SeqCst);
                        format!("{} {}", c.subject().unwrap_or("?"), c.claims().tier)
                    }
                }),
            )
            .route(
                "/scopes",
                web::get().to(|s: Scopes| async move { s.iter().collect::<Vec<_>>().join(",") }),
            )
            .wrap(Auth::new(auth.clone()).realm("api"))
    });
    for t in [
        None,
        Some("a.b.c".to_owned()),
        Some(token(json!({"exp": now() - 3600}))),
    ] {
        let (status, challenge, _) = get(addr, "/me", t.as_deref()).await;
        assert!(status == 401 || status == 400, "{status}");
        assert!(challenge.unwrap().starts_with("Bearer realm=\"api\""));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        get(addr, "/me", Some(&token(json!({})))).await.2,
        "user-1 gold"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (status, _, body) = get(addr, "/scopes", Some(&token(json!({"scope": "a b"})))).await;
    assert_eq!((status, body.as_str()), (200, "a,b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_claims_work_under_a_middleware_built_with_the_plain_builder() {
    let auth = static_auth::<tollgate_core::NoClaims>();
    let addr: SocketAddr = serve!(move || {
        App::new()
            .route(
                "/typed",
                web::get().to(|c: Claims<Plan>| async move { c.claims().tier.clone() }),
            )
            .route(
                "/plain",
                web::get().to(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
            )
            .wrap(Auth::new(auth.clone()))
    });
    let (status, _, body) = get(addr, "/typed", Some(&token(json!({})))).await;
    assert_eq!((status, body.as_str()), (200, "gold"));
    let mut without_tier = good_claims(ISS);
    without_tier.as_object_mut().unwrap().remove("tier");
    let lacking = Signer::hs256(SECRET).sign(Some("k1"), &without_tier);
    let (status, challenge, body) = get(addr, "/typed", Some(&lacking)).await;
    assert_eq!(status, 401);
    assert!(body.contains("\"code\":\"invalid_claim\""), "{body}");
    assert!(body.contains("`tier`"), "{body}");
    assert!(challenge.unwrap().contains("invalid_token"));
    let (status, _, _) = get(addr, "/plain", Some(&lacking)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_mode_and_a_missing_middleware() {
    let auth = static_auth::<tollgate_core::NoClaims>();
    let addr: SocketAddr = serve!(move || {
        App::new()
            .route(
                "/maybe",
                web::get().to(|c: Option<Claims>| async move {
                    c.map_or("anonymous".to_owned(), |c| {
                        c.subject().unwrap_or("?").to_owned()
                    })
                }),
            )
            .route(
                "/must",
                web::get().to(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
            )
            .wrap(Auth::new(auth.clone()).optional())
    });
    assert_eq!(get(addr, "/maybe", None).await.2, "anonymous");
    assert_eq!(
        get(addr, "/maybe", Some(&token(json!({})))).await.2,
        "user-1"
    );
    assert_eq!(
        get(addr, "/maybe", Some(&token(json!({"exp": now() - 3600}))))
            .await
            .0,
        401
    );
    let (status, challenge, _) = get(addr, "/must", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));

    let bare = serve!(|| {
        App::new().route(
            "/must",
            web::get().to(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
    });
    let (status, challenge, body) = get(bare, "/must", Some(&token(json!({})))).await;
    assert_eq!((status, challenge), (500, None));
    assert!(body.contains("invalid_configuration"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_and_error_hook() {
    let auth = static_auth::<tollgate_core::NoClaims>();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    let addr =
        serve!(move || {
            let ran = ran2.clone();
            App::new()
                .route("/x", web::get().to(|| async { "ok" }))
                .route(
                    "/x",
                    web::method(actix_web::http::Method::OPTIONS).to(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        async { HttpResponse::Ok().body("preflight") }
                    }),
                )
                .wrap(Auth::new(auth.clone()).allow_preflight().on_error(
                    |err: &Error, mut resp| {
                        *resp.body_mut() = format!("{{\"custom\":\"{}\"}}", err.code());
                        resp
                    },
                ))
        });
    let client = reqwest::Client::new();
    let pre = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/x"))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.text().await.unwrap(), "");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "no handler runs for a preflight"
    );
    let plain = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(
        get(addr, "/x", None).await.2,
        "{\"custom\":\"missing_token\"}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_share_one_jwks_fetch() {
    let signer = Signer::es256();
    let jwks = support::JwksServer::start(vec![signer.jwk("r1")]).await;
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(jwks.base())
                .audience("api")
                .jwks_url(jwks.jwks_url()),
        )
        .build()
        .unwrap();
    let addr: SocketAddr = serve!(move || {
        App::new()
            .route(
                "/me",
                web::get().to(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
            )
            .wrap(Auth::new(auth.clone()))
    });
    let token = signer.sign(Some("r1"), &good_claims(&jwks.base()));
    let answers: Vec<_> = (0..20)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move { get(addr, "/me", Some(&token)).await })
        })
        .collect();
    for a in answers {
        let (status, _, body) = a.await.unwrap();
        assert_eq!((status, body.as_str()), (200, "user-1"));
    }
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_requirements_on_a_resource_and_a_scope() {
    use tollgate_actix::RequireScope;
    let auth = static_auth::<tollgate_core::NoClaims>();
    let addr = serve!(move || {
        App::new()
            .service(
                web::resource("/either")
                    .wrap(RequireScope::any(["reports:read", "admin"]).realm("api"))
                    .route(web::get().to(|| async { "either" })),
            )
            .service(
                web::scope("/both")
                    .wrap(RequireScope::all(["reports:read", "reports:write"]).realm("api"))
                    .route("", web::get().to(|| async { "both" })),
            )
            .wrap(Auth::new(auth.clone()).realm("api"))
    });
    let read = token(json!({"scope": "reports:read"}));
    let admin = token(json!({"scope": ["admin"]}));
    let both = token(json!({"scope": "reports:write reports:read"}));
    assert_eq!(get(addr, "/either", Some(&read)).await.0, 200);
    assert_eq!(get(addr, "/either", Some(&admin)).await.0, 200);
    assert_eq!(get(addr, "/both", Some(&both)).await.0, 200);
    let (status, challenge, _) = get(addr, "/both", Some(&read)).await;
    assert_eq!(status, 403);
    assert!(
        challenge
            .unwrap()
            .ends_with("scope=\"reports:read reports:write\"")
    );
    let (status, challenge, _) = get(addr, "/either", Some(&token(json!({"scope": "x"})))).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().ends_with("scope=\"reports:read admin\""));
}

/// `RequireClaims` on a resource and on a scope: 200 when the predicate
/// holds, 403 `access_denied` when not, 401 first without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_checks_on_a_resource_and_a_scope() {
    use tollgate_actix::RequireClaims;
    use tollgate_core::Verified;
    let auth = static_auth::<Plan>();
    let addr = serve!(move || {
        let gold = |t: &Verified| t.claims::<Plan>().is_ok_and(|c| c.tier == "gold");
        App::new()
            .service(
                web::resource("/gold")
                    .wrap(RequireClaims::new(gold).realm("api"))
                    .route(web::get().to(|| async { "gold" })),
            )
            .service(
                web::scope("/admin")
                    .wrap(
                        RequireClaims::new(|t: &Verified| t.subject() == Some("admin"))
                            .realm("api"),
                    )
                    .route("", web::get().to(|| async { "admin" })),
            )
            .wrap(Auth::new(auth.clone()).realm("api"))
    });
    let denied = "Bearer realm=\"api\", error=\"insufficient_scope\", \
                  error_description=\"the token does not grant access to this resource\"";
    assert_eq!(get(addr, "/gold", Some(&token(json!({})))).await.0, 200);
    assert_eq!(
        get(addr, "/admin", Some(&token(json!({"sub": "admin"}))))
            .await
            .0,
        200
    );
    for (path, tok) in [
        ("/gold", token(json!({"tier": "silver"}))),
        ("/admin", token(json!({}))),
    ] {
        let (status, challenge, body) = get(addr, path, Some(&tok)).await;
        assert_eq!(
            (status, challenge.as_deref()),
            (403, Some(denied)),
            "{path}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "access_denied");
    }
    for path in ["/gold", "/admin"] {
        let (status, challenge, _) = get(addr, path, None).await;
        assert_eq!(
            (status, challenge.as_deref()),
            (401, Some("Bearer realm=\"api\""))
        );
    }
}

/// The WebSocket subprotocol source and a custom source, over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_and_custom_token_sources() {
    use tollgate_core::BearerExtractor;
    let auth = static_auth::<Plan>();
    let addr = serve!(move || {
        async fn me(c: Claims<Plan>) -> String {
            format!("{} {}", c.subject().unwrap_or("?"), c.claims().tier)
        }
        App::new()
            .service(
                web::scope("/ws")
                    .wrap(
                        Auth::new(auth.clone())
                            .realm("api")
                            .extractor(BearerExtractor::new().websocket_protocol()),
                    )
                    .route("", web::get().to(me)),
            )
            .service(
                web::scope("/custom")
                    .wrap(
                        Auth::new(auth.clone()).realm("api").extractor(
                            BearerExtractor::new()
                                .custom(|req| req.header("x-api-token").map(str::to_owned)),
                        ),
                    )
                    .route("", web::get().to(me)),
            )
    });
    let send = |path: &'static str, name: &'static str, value: Option<String>| async move {
        let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
        if let Some(v) = value {
            req = req.header(name, v);
        }
        let resp = req.send().await.unwrap();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            resp.status().as_u16(),
            challenge,
            resp.text().await.unwrap(),
        )
    };
    let good = token(json!({}));
    let (status, _, body) = send(
        "/ws",
        "sec-websocket-protocol",
        Some(format!("bearer, {good}")),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "user-1 gold"));
    let (status, _, body) = send("/custom", "x-api-token", Some(good.clone())).await;
    assert_eq!((status, body.as_str()), (200, "user-1 gold"));
    for path in ["/ws", "/custom"] {
        let (status, challenge, _) = send(path, "x-other", Some(good.clone())).await;
        assert_eq!(
            (status, challenge.as_deref()),
            (401, Some("Bearer realm=\"api\""))
        );
    }
    let expired = token(json!({"exp": now() - 3600}));
    let (status, _, body) = send(
        "/ws",
        "sec-websocket-protocol",
        Some(format!("bearer, {expired}")),
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("token_expired"), "{body}");
    let (status, _, body) = send("/custom", "x-api-token", Some("a b".into())).await;
    assert_eq!(status, 400);
    assert!(body.contains("malformed_authorization"), "{body}");
}
