//! The axum layer over real HTTP on 127.0.0.1: for each case the exact
//! status, challenge and problem body; the handler provably not called on
//! rejection; typed claims reaching the handler.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use support::{Signer, now};
use tollgate_axum::{AuthLayer, Claims, RequireScopeLayer, Scopes};
use tollgate_core::{Authenticator, Error, TrustedIssuer};

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Debug, Deserialize)]
struct App {
    tier: String,
}

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn me(State(calls): State<Calls>, claims: Claims<App>) -> axum::Json<Value> {
    calls.0.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"sub": claims.subject(), "tier": claims.claims().tier}))
}

async fn reports(State(calls): State<Calls>, scopes: Scopes) -> String {
    calls.0.fetch_add(1, Ordering::SeqCst);
    scopes.iter().collect::<Vec<_>>().join(",")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An API with a static HS256 issuer and a remote issuer whose JWKS is down.
async fn api(calls: Calls) -> (SocketAddr, String) {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down_iss = format!("http://{dead}");
    let auth = Authenticator::builder()
        .check_claims::<App>()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .issuer(
            TrustedIssuer::new(down_iss.clone())
                .audience("api")
                .jwks_url(format!("{down_iss}/keys")),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/reports", get(reports))
        .route_layer(RequireScopeLayer::all(["reports:read"]).realm("api"))
        .route("/me", get(me))
        .layer(AuthLayer::new(auth).realm("api"))
        .with_state(calls);
    (serve(app).await, down_iss)
}

fn claims(changes: Value) -> Value {
    let mut c = json!({"iss": ISS, "aud": "api", "sub": "user-1", "exp": now() + 600,
                       "iat": now(), "tier": "gold", "scope": "reports:read"});
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn token(changes: Value) -> String {
    Signer::hs256(SECRET).sign(Some("k1"), &claims(changes))
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn get_with(addr: SocketAddr, path: &str, headers: HeaderMap) -> Answer {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let challenge = header("www-authenticate");
    let retry_after = header("retry-after");
    let ctype = header("content-type").unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = if ctype.contains("json") {
        serde_json::from_str(&text).unwrap()
    } else {
        Value::String(text)
    };
    Answer {
        status,
        challenge,
        retry_after,
        body,
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

fn invalid_token(description: &str) -> String {
    format!("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{description}\"")
}

fn invalid_request(description: &str) -> String {
    format!("Bearer realm=\"api\", error=\"invalid_request\", error_description=\"{description}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_its_exact_answer_and_never_reaches_the_handler() {
    let calls = Calls::default();
    let (addr, down_iss) = api(calls.clone()).await;

    let mut two = bearer(&token(json!({})));
    two.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", token(json!({})))).unwrap(),
    );
    let none_header = json!({"alg": "none", "kid": "k1"}).to_string();
    let unsigned = {
        let t = Signer::hs256(SECRET).sign_raw(&none_header, &claims(json!({})).to_string());
        format!("{}.", t.rsplit_once('.').unwrap().0)
    };
    let bad_sig = Signer::hs256(&[9; 32]).sign(Some("k1"), &claims(json!({})));
    let unknown_kid = Signer::hs256(SECRET).sign(Some("k9"), &claims(json!({})));
    let down = Signer::es256().sign(Some("r1"), &claims(json!({"iss": down_iss})));
    let oversized = "a".repeat(9000);

    let cases: Vec<(&str, HeaderMap, u16, Option<String>, &str)> = vec![
        (
            "no token",
            HeaderMap::new(),
            401,
            Some("Bearer realm=\"api\"".into()),
            "missing_token",
        ),
        (
            "malformed header",
            {
                let mut h = HeaderMap::new();
                h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
                h
            },
            400,
            Some(invalid_request(
                "the Authorization header is not a valid Bearer credential",
            )),
            "malformed_authorization",
        ),
        (
            "two Authorization headers",
            two,
            400,
            Some(invalid_request("more than one bearer token in the request")),
            "multiple_tokens",
        ),
        (
            "oversized token",
            bearer(&oversized),
            400,
            Some(invalid_request("the bearer token exceeds 8192 bytes")),
            "token_too_large",
        ),
        (
            "bad signature",
            bearer(&bad_sig),
            401,
            Some(invalid_token("the token's signature is invalid")),
            "invalid_signature",
        ),
        (
            "alg none",
            bearer(&unsigned),
            401,
            Some(invalid_token("the token's algorithm is not supported")),
            "unsupported_algorithm",
        ),
        (
            "expired",
            bearer(&token(json!({"exp": now() - 3600}))),
            401,
            Some(invalid_token("the token has expired")),
            "token_expired",
        ),
        (
            "not yet valid",
            bearer(&token(json!({"nbf": now() + 3600}))),
            401,
            Some(invalid_token("the token is not valid yet")),
            "token_not_yet_valid",
        ),
        (
            "wrong iss",
            bearer(&token(json!({"iss": "https://evil.example"}))),
            401,
            Some(invalid_token("the token's issuer is not accepted")),
            "invalid_issuer",
        ),
        (
            "wrong aud",
            bearer(&token(json!({"aud": "other-api"}))),
            401,
            Some(invalid_token("the token's audience is not accepted")),
            "invalid_audience",
        ),
        (
            "unknown kid",
            bearer(&unknown_kid),
            401,
            Some(invalid_token("no key matches the token's key id")),
            "unknown_key",
        ),
        (
            "JWKS down, no usable key",
            bearer(&down),
            503,
            None,
            "keys_unavailable",
        ),
    ];
    for (name, headers, status, challenge, code) in cases {
        let a = get_with(addr, "/me", headers).await;
        assert_eq!(a.status, status, "{name}");
        assert_eq!(a.challenge, challenge, "{name}");
        assert_eq!(a.body["code"], code, "{name}");
        assert_eq!(a.body["status"], status, "{name}");
        assert_eq!(
            a.body["type"],
            format!("https://tollgate.rs/problems/{code}"),
            "{name}"
        );
        if status == 503 {
            assert_eq!(a.retry_after.as_deref(), Some("5"), "{name}");
        }
    }

    let a = get_with(
        addr,
        "/reports",
        bearer(&token(json!({"scope": "profile"}))),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"reports:read\""
        )
    );
    assert_eq!(a.body["code"], "insufficient_scope");

    assert_eq!(calls.get(), 0, "no rejected request reached a handler");

    let a = get_with(addr, "/me", bearer(&token(json!({})))).await;
    assert_eq!((a.status, a.challenge), (200, None));
    assert_eq!(a.body, json!({"sub": "user-1", "tier": "gold"}));
    let a = get_with(
        addr,
        "/reports",
        bearer(&token(json!({"scope": "x reports:read"}))),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!("x,reports:read"));
    assert_eq!(calls.get(), 2);
}

async fn maybe(claims: Option<Claims>) -> String {
    match claims {
        Some(c) => format!("user {}", c.subject().unwrap_or("?")),
        None => "anonymous".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_authentication_lets_anonymous_through_but_not_bad_tokens() {
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/maybe", get(maybe))
        .route(
            "/must",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .layer(AuthLayer::new(auth).optional());
    let addr = serve(app).await;
    let a = get_with(addr, "/maybe", HeaderMap::new()).await;
    assert_eq!((a.status, a.body), (200, json!("anonymous")));
    let a = get_with(addr, "/maybe", bearer(&token(json!({})))).await;
    assert_eq!((a.status, a.body), (200, json!("user user-1")));
    let a = get_with(addr, "/maybe", bearer(&token(json!({"exp": now() - 3600})))).await;
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (401, json!("token_expired"))
    );
    // A handler that requires claims answers 401 to an anonymous request.
    let a = get_with(addr, "/must", HeaderMap::new()).await;
    assert_eq!((a.status, a.challenge.as_deref()), (401, Some("Bearer")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_layer_is_a_server_error_not_a_silent_401() {
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .route("/typed", get(|_c: Claims<App>| async { "typed" }));
    let addr = serve(app).await;
    let a = get_with(addr, "/me", bearer(&token(json!({})))).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.body["code"], "invalid_configuration");
    assert_eq!(a.challenge, None);
}

#[tokio::test]
async fn typed_claims_work_under_a_layer_built_with_the_plain_builder() {
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/typed",
            get(|c: Claims<App>| async move { c.claims().tier.clone() }),
        )
        .route(
            "/plain",
            get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
        )
        .layer(AuthLayer::new(auth));
    let addr = serve(app).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/typed"))
        .headers(bearer(&token(json!({"tier": "gold"}))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "gold");
    let mut without_tier = claims(json!({}));
    without_tier.as_object_mut().unwrap().remove("tier");
    let lacking = Signer::hs256(SECRET).sign(Some("k1"), &without_tier);
    let a = get_with(addr, "/typed", bearer(&lacking)).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["code"], "invalid_claim");
    assert!(
        a.body["detail"].as_str().unwrap().contains("`tier`"),
        "{}",
        a.body
    );
    let a = get_with(addr, "/plain", bearer(&lacking)).await;
    assert_eq!(a.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_answered_without_running_a_handler_and_error_hook_keeps_the_code() {
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let ran = Calls::default();
    let (ran_options, ran_any) = (ran.clone(), ran.clone());
    let app = Router::new()
        .route(
            "/x",
            get(|| async { "ok" }).options(move || {
                ran_options.0.fetch_add(1, Ordering::SeqCst);
                async { "preflight" }
            }),
        )
        // A route that answers every method, OPTIONS included.
        .route(
            "/any",
            axum::routing::any(move || {
                ran_any.0.fetch_add(1, Ordering::SeqCst);
                async { "deleted everything" }
            }),
        )
        .layer(
            AuthLayer::new(auth)
                .allow_preflight()
                .on_error(|err: &Error, mut resp| {
                    *resp.body_mut() = format!("{{\"custom\":true,\"code\":\"{}\"}}", err.code());
                    resp.headers_mut()
                        .insert("x-tollgate-code", err.code().parse().unwrap());
                    resp
                }),
        )
        .layer(axum::middleware::map_response(
            move |resp: axum::response::Response| {
                let seen = seen2.clone();
                async move {
                    if let Some(e) = resp.extensions().get::<Error>() {
                        seen.lock().unwrap().push(e.code().to_owned());
                    }
                    resp
                }
            },
        ));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let pre = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/x"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.text().await.unwrap(), "");
    let pre = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/any"))
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        ran.0.load(Ordering::SeqCst),
        0,
        "no handler runs for a preflight"
    );
    // A plain OPTIONS is not a preflight: it is authenticated.
    let plain = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);

    let a = get_with(addr, "/x", HeaderMap::new()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, json!({"custom": true, "code": "missing_token"}));
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["missing_token", "missing_token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_requests_wait_for_remote_keys_then_reach_the_handler() {
    let signer = Signer::es256();
    let jwks = support::JwksServer::start(vec![signer.jwk("r1")]).await;
    // No `ready()`: the first requests find no keys and wait for one fetch.
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(jwks.base())
                .audience("api")
                .jwks_url(jwks.jwks_url()),
        )
        .build()
        .unwrap();
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/me",
            get(|State(calls): State<Calls>, c: Claims| async move {
                calls.0.fetch_add(1, Ordering::SeqCst);
                c.subject().unwrap_or("?").to_owned()
            }),
        )
        .layer(AuthLayer::new(auth))
        .with_state(calls.clone());
    let addr = serve(app).await;
    let token = signer.sign(Some("r1"), &claims(json!({"iss": jwks.base()})));
    let answers: Vec<_> = (0..20)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move { get_with(addr, "/me", bearer(&token)).await })
        })
        .collect();
    for a in answers {
        let a = a.await.unwrap();
        assert_eq!((a.status, a.body), (200, json!("user-1")));
    }
    assert_eq!(calls.get(), 20);
    assert_eq!(jwks.hits(), 1, "one fetch for all waiting requests");
}

/// `AuthLayer` around the whole router (one service, before routing; the
/// cheaper wiring): the same answers, route-level scopes still work, and
/// the peer address reaches IP-bound tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_around_the_router() {
    use std::sync::Arc as StdArc;
    use tollgate_core::policy::{IpBinding, MemoryStore, Policies};
    let auth = Authenticator::builder()
        .check_claims::<App>()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .policies(Policies::new(StdArc::new(MemoryStore::new())).ip_binding(IpBinding::new()))
        .build()
        .unwrap();
    let calls = Calls::default();
    let router = Router::new()
        .route("/reports", get(reports))
        .route_layer(RequireScopeLayer::all(["reports:write"]))
        .route("/me", get(me))
        .with_state(calls.clone());
    let svc = tower::Layer::layer(&AuthLayer::new(auth).realm("api"), router);
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(svc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });

    let a = get_with(addr, "/me", bearer(&token(json!({})))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["tier"], "gold");
    let a = get_with(addr, "/me", HeaderMap::new()).await;
    assert_eq!(
        (a.status, a.challenge.as_deref()),
        (401, Some("Bearer realm=\"api\""))
    );
    let a = get_with(addr, "/reports", bearer(&token(json!({})))).await;
    assert_eq!(a.status, 403);
    let a = get_with(addr, "/me", bearer(&token(json!({"ip": "127.0.0.1"})))).await;
    assert_eq!(a.status, 200);
    let a = get_with(addr, "/me", bearer(&token(json!({"ip": "192.0.2.1"})))).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("client_address_mismatch"))
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn restriction_claims_no_policy_enforces_are_refused_unless_accepted_by_name() {
    use tollgate_core::policy::{Credits, MemoryStore, Policies};
    let issuer = || {
        TrustedIssuer::new(ISS)
            .audience("api")
            .key(Signer::hs256(SECRET).verifying_key().with_kid("k1"))
    };
    let app = |auth: Authenticator| {
        Router::new()
            .route(
                "/me",
                get(|c: Claims| async move { c.subject().unwrap_or("?").to_owned() }),
            )
            .layer(AuthLayer::new(auth))
    };
    let plain = serve(app(Authenticator::builder()
        .issuer(issuer())
        .build()
        .unwrap()))
    .await;
    let credits_only = serve(app(Authenticator::builder()
        .issuer(issuer())
        .policies(Policies::new(Arc::new(MemoryStore::new())).credits(Credits::new()))
        .build()
        .unwrap()))
    .await;
    let opted_out = serve(app(Authenticator::builder()
        .issuer(issuer())
        .accept_unenforced_claim("credits")
        .build()
        .unwrap()))
    .await;
    let metered = token(json!({"credits": 0, "jti": "t-credits"}));
    let bound = token(json!({"credits": 5, "jti": "t-bound", "ip": "10.9.9.9"}));

    // Worth 0 credits at an API without a credit policy: refused, not free.
    let a = get_with(plain, "/me", bearer(&metered)).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("unenforced_claim"))
    );
    assert!(a.challenge.unwrap().contains("invalid_token"));
    // Bound to 10.9.9.9 at an API that meters but does not bind: refused.
    let a = get_with(credits_only, "/me", bearer(&bound)).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (401, Some("unenforced_claim"))
    );
    assert!(a.body["detail"].as_str().unwrap().contains("`ip`"));
    // Opting out names the claim; the other restriction still counts.
    assert_eq!(
        get_with(opted_out, "/me", bearer(&metered)).await.status,
        200
    );
    assert_eq!(get_with(opted_out, "/me", bearer(&bound)).await.status, 401);
    // A token without restriction claims is untouched.
    assert_eq!(
        get_with(plain, "/me", bearer(&token(json!({}))))
            .await
            .status,
        200
    );
}

/// A WebSocket handshake with the token in `Sec-WebSocket-Protocol`, as a
/// browser sends it: a valid token upgrades (101, the `bearer` subprotocol
/// selected, a message goes both ways); a missing or bad one gets 401
/// before any upgrade, and the handler never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_carries_the_token_in_its_subprotocol() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite;
    use tollgate_core::{BearerExtractor, WEBSOCKET_BEARER_PROTOCOL};
    use tungstenite::client::IntoClientRequest;

    let calls = Calls::default();
    let seen = calls.clone();
    let ws = move |upgrade: WebSocketUpgrade, claims: Claims| {
        seen.0.fetch_add(1, Ordering::SeqCst);
        let sub = claims.subject().unwrap_or("?").to_owned();
        async move {
            upgrade.protocols([WEBSOCKET_BEARER_PROTOCOL]).on_upgrade(
                move |mut socket| async move {
                    while let Some(Ok(Message::Text(text))) = socket.recv().await {
                        let reply = format!("{sub}: {}", text.as_str());
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                },
            )
        }
    };
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let app = Router::new().route("/ws", get(ws)).layer(
        AuthLayer::new(auth)
            .realm("api")
            .extractor(BearerExtractor::new().websocket_protocol()),
    );
    let addr = serve(app).await;
    let handshake = |protocols: Option<String>| {
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(p) = protocols {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };

    let (mut socket, resp) = handshake(Some(format!("bearer, {}", token(json!({})))))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["sec-websocket-protocol"], "bearer");
    socket
        .send(tungstenite::Message::text("ping"))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "user-1: ping");
    socket.close(None).await.unwrap();
    assert_eq!(calls.get(), 1);

    let expired = token(json!({"exp": now() - 3600}));
    for (protocols, challenge) in [
        (None, "Bearer realm=\"api\"".to_owned()),
        (Some("chat".to_owned()), "Bearer realm=\"api\"".to_owned()),
        (
            Some(format!("bearer, {expired}")),
            invalid_token("the token has expired"),
        ),
        (
            Some(format!(
                "bearer, {}",
                Signer::hs256(&[9; 32]).sign(Some("k1"), &claims(json!({})))
            )),
            invalid_token("the token's signature is invalid"),
        ),
    ] {
        let label = format!("{protocols:?}");
        match handshake(protocols).await {
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{label}");
                assert_eq!(
                    resp.headers()["www-authenticate"].to_str().unwrap(),
                    challenge,
                    "{label}"
                );
                assert!(resp.headers().get("upgrade").is_none(), "{label}");
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["status"], 401, "{label}");
            }
            other => panic!(
                "{label}: expected 401, got {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    }
    assert_eq!(calls.get(), 1, "no handler ran for a refused handshake");
}

/// A source of the application's own: a function of the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_token_source_reads_the_request() {
    use tollgate_core::BearerExtractor;
    let calls = Calls::default();
    let auth = Authenticator::builder()
        .check_claims::<App>()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let extractor =
        BearerExtractor::new().custom(|req| req.header("x-api-token").map(str::to_owned));
    let app = Router::new()
        .route("/me", get(me))
        .layer(AuthLayer::new(auth).realm("api").extractor(extractor))
        .with_state(calls.clone());
    let addr = serve(app).await;
    let header = |value: &str| {
        let mut h = HeaderMap::new();
        h.insert("x-api-token", HeaderValue::from_str(value).unwrap());
        h
    };
    let a = get_with(addr, "/me", header(&token(json!({})))).await;
    assert_eq!((a.status, &a.body["sub"]), (200, &json!("user-1")));
    let a = get_with(addr, "/me", HeaderMap::new()).await;
    assert_eq!(
        (a.status, a.challenge.as_deref()),
        (401, Some("Bearer realm=\"api\""))
    );
    let a = get_with(addr, "/me", header("a b")).await;
    assert_eq!(
        (a.status, a.challenge),
        (
            400,
            Some(invalid_request(
                "the Authorization header is not a valid Bearer credential"
            ))
        )
    );
    let mut both = header(&token(json!({})));
    both.extend(bearer(&token(json!({}))));
    let a = get_with(addr, "/me", both).await;
    assert_eq!(
        (a.status, &a.body["code"]),
        (400, &json!("multiple_tokens"))
    );
    assert_eq!(calls.get(), 1);
}

/// `RequireClaimsLayer` on a route and on a whole router: 200 when the
/// predicate holds, 403 `access_denied` when not, 401 first without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_checks_on_a_route_and_on_a_router() {
    use tollgate_axum::RequireClaimsLayer;
    use tollgate_core::Verified;
    let calls = Calls::default();
    let auth = Authenticator::builder()
        .check_claims::<App>()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .build()
        .unwrap();
    let gold = |t: &Verified| t.claims::<App>().is_ok_and(|c| c.tier == "gold");
    let admin = |t: &Verified| t.subject() == Some("admin");
    let admin_area = Router::new()
        .route("/admin", get(me))
        .layer(RequireClaimsLayer::new(admin).realm("api"));
    let app = Router::new()
        .route("/gold", get(me))
        .route_layer(RequireClaimsLayer::new(gold).realm("api"))
        .merge(admin_area)
        .route("/me", get(me))
        .layer(AuthLayer::new(auth).realm("api"))
        .with_state(calls.clone());
    let addr = serve(app).await;
    let denied = "Bearer realm=\"api\", error=\"insufficient_scope\", \
                  error_description=\"the token does not grant access to this resource\"";

    let silver = token(json!({"tier": "silver"}));
    let root = token(json!({"sub": "admin"}));
    for (path, tok, status) in [
        ("/gold", token(json!({})), 200),
        ("/gold", silver.clone(), 403),
        ("/admin", root.clone(), 200),
        ("/admin", token(json!({})), 403),
        ("/me", silver, 200),
    ] {
        let a = get_with(addr, path, bearer(&tok)).await;
        assert_eq!(a.status, status, "{path}");
        if status == 403 {
            assert_eq!(a.challenge.as_deref(), Some(denied), "{path}");
            assert_eq!(a.body["code"], "access_denied");
            assert_eq!(a.body["status"], 403);
            assert_eq!(a.body["type"], "https://tollgate.rs/problems/access_denied");
        }
    }
    for path in ["/gold", "/admin"] {
        let a = get_with(addr, path, HeaderMap::new()).await;
        assert_eq!(
            (a.status, a.challenge.as_deref()),
            (401, Some("Bearer realm=\"api\"")),
            "{path}"
        );
    }
    assert_eq!(calls.get(), 3);
}

/// Address binding on, served without connection info: every request,
/// bound token or not, gets 500 naming the call to make; with connection
/// info the same router works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_binding_without_connect_info_names_the_fix_on_the_first_request() {
    use tollgate_core::policy::{IpBinding, MemoryStore, Policies};
    let router = || {
        let auth = Authenticator::builder()
            .check_claims::<App>()
            .issuer(
                TrustedIssuer::new(ISS)
                    .audience("api")
                    .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
            )
            .policies(Policies::new(Arc::new(MemoryStore::new())).ip_binding(IpBinding::new()))
            .build()
            .unwrap();
        Router::new()
            .route("/me", get(me))
            .layer(AuthLayer::new(auth).realm("api"))
            .with_state(Calls::default())
    };
    let without = serve(router()).await;
    for headers in [
        HeaderMap::new(),
        bearer(&token(json!({}))),
        bearer(&token(json!({"ip": "127.0.0.1"}))),
    ] {
        let a = get_with(without, "/me", headers).await;
        assert_eq!(a.status, 500);
        assert_eq!(a.challenge, None);
        assert_eq!(a.body["code"], "invalid_configuration");
        let detail = a.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("into_make_service_with_connect_info::<SocketAddr>()"),
            "{detail}"
        );
        assert!(detail.contains("address binding"), "{detail}");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let with = listener.local_addr().unwrap();
    let app = router().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let a = get_with(with, "/me", bearer(&token(json!({"ip": "127.0.0.1"})))).await;
    assert_eq!(a.status, 200);
    let a = get_with(with, "/me", bearer(&token(json!({"ip": "192.0.2.1"})))).await;
    assert_eq!(
        (a.status, &a.body["code"]),
        (401, &json!("client_address_mismatch"))
    );
    let a = get_with(with, "/me", HeaderMap::new()).await;
    assert_eq!(a.status, 401);
}
