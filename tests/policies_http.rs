//! Credits, revocation and client address binding end to end, over real
//! HTTP on 127.0.0.1, against an axum server and an actix-web server built
//! the same way. Every case runs against both.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use support::{Signer, good_claims, now};
use tollgate::core::policy::{
    CreditStore, Credits, ForwardedHeader, IpBinding, MemoryStore, Policies, Principal,
    RevocationStore,
};
use tollgate::core::{Authenticator, TrustedIssuer};

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Clone, Copy, Debug)]
enum Framework {
    Axum,
    Actix,
}

const BOTH: [Framework; 2] = [Framework::Axum, Framework::Actix];

/// A server and the store behind it.
struct Server {
    addr: SocketAddr,
    store: Arc<MemoryStore>,
}

fn authenticator(store: Arc<MemoryStore>, credits: Credits, binding: IpBinding) -> Authenticator {
    let policies = Policies::new(store).credits(credits).ip_binding(binding);
    Authenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(Signer::hs256(SECRET).verifying_key().with_kid("k1")),
        )
        .policies(policies)
        .build()
        .unwrap()
}

/// Routes: `/api` (default cost), `/report` (costs 5), `/fail` (answers 500).
async fn start(fw: Framework, credits: Credits, trusted: &[&str]) -> Server {
    start_bound(
        fw,
        credits,
        IpBinding::new().trusted_proxies(trusted).unwrap(),
    )
    .await
}

async fn start_bound(fw: Framework, credits: Credits, binding: IpBinding) -> Server {
    let store = Arc::new(MemoryStore::new());
    let auth = authenticator(store.clone(), credits, binding);
    let addr = match fw {
        Framework::Axum => start_axum(auth).await,
        Framework::Actix => start_actix(auth),
    };
    Server { addr, store }
}

async fn start_axum(auth: Authenticator) -> SocketAddr {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tollgate::axum::{AuthLayer, ChargeLayer, Claims};
    let me = |c: Claims| async move { c.subject().unwrap_or("?").to_owned() };
    let app = Router::new()
        .route("/report", get(me))
        .route_layer(ChargeLayer::cost(5))
        .route("/api", get(me))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(AuthLayer::new(auth).realm("api"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

fn start_actix(auth: Authenticator) -> SocketAddr {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use tollgate::actix::{Auth, Charge, Claims};
    async fn me(c: Claims) -> String {
        c.subject().unwrap_or("?").to_owned()
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .service(web::resource("/report").wrap(Charge::cost(5)).to(me))
                    .service(
                        web::scope("/bulk")
                            .wrap(Charge::cost(3))
                            .route("/import", web::get().to(me)),
                    )
                    // A middleware inside that fails with an error, not a
                    // response (only actix has such errors).
                    .service(
                        web::resource("/inner-error")
                            .wrap_fn(|_req, _srv| async {
                                Err::<actix_web::dev::ServiceResponse, _>(
                                    actix_web::error::ErrorInternalServerError("down"),
                                )
                            })
                            .to(me),
                    )
                    .route("/api", web::get().to(me))
                    .route(
                        "/fail",
                        web::get()
                            .to(|| async { HttpResponse::InternalServerError().body("boom") }),
                    )
                    .wrap(Auth::new(auth.clone()).realm("api"))
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

#[derive(Debug)]
struct Answer {
    status: u16,
    limit: Option<u64>,
    remaining: Option<u64>,
    code: Option<String>,
}

async fn call(addr: SocketAddr, path: &str, token: &str, extra: &[(&str, &str)]) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    for (n, v) in extra {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .headers(headers)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let num = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    let (status, limit, remaining) = (
        resp.status().as_u16(),
        num("credits-limit"),
        num("credits-remaining"),
    );
    let body = resp.text().await.unwrap();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned));
    Answer {
        status,
        limit,
        remaining,
        code,
    }
}

fn token(changes: Value) -> String {
    let mut c = good_claims(ISS);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    Signer::hs256(SECRET).sign(Some("k1"), &c)
}

fn jti() -> String {
    tollgate_conformance::unique("jti")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_credits_three_successes_then_402() {
    for fw in BOTH {
        let s = start(fw, Credits::new(), &[]).await;
        let t = token(json!({"credits": 3, "jti": jti()}));
        for left in [2, 1, 0] {
            let a = call(s.addr, "/api", &t, &[]).await;
            assert_eq!(
                (a.status, a.limit, a.remaining),
                (200, Some(3), Some(left)),
                "{fw:?}"
            );
        }
        for _ in 0..2 {
            let a = call(s.addr, "/api", &t, &[]).await;
            assert_eq!((a.status, a.limit, a.remaining), (402, Some(3), Some(0)));
            assert_eq!(a.code.as_deref(), Some("credits_exhausted"), "{fw:?}");
        }
        // A numeric string allowance works the same.
        let t = token(json!({"credits": "1", "jti": jti()}));
        assert_eq!(call(s.addr, "/api", &t, &[]).await.status, 200);
        assert_eq!(call(s.addr, "/api", &t, &[]).await.status, 402);
        // Unmetered tokens carry no credit headers.
        let a = call(s.addr, "/api", &token(json!({})), &[]).await;
        assert_eq!((a.status, a.limit), (200, None), "{fw:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overspend() {
    for fw in BOTH {
        let s = start(fw, Credits::new(), &[]).await;
        let id = jti();
        let t = token(json!({"credits": 20, "jti": id}));
        let calls = (0..60).map(|_| {
            let t = t.clone();
            let addr = s.addr;
            tokio::spawn(async move { call(addr, "/api", &t, &[]).await.status })
        });
        let mut ok = 0;
        let mut exhausted = 0;
        for c in calls.collect::<Vec<_>>() {
            match c.await.unwrap() {
                200 => ok += 1,
                402 => exhausted += 1,
                other => panic!("{fw:?}: unexpected status {other}"),
            }
        }
        assert_eq!((ok, exhausted), (20, 40), "{fw:?}");
        assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_route_costs() {
    for fw in BOTH {
        let s = start(fw, Credits::new(), &[]).await;
        let id = jti();
        let t = token(json!({"credits": 10, "jti": id}));
        let a = call(s.addr, "/report", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (200, Some(5)), "{fw:?}");
        let a = call(s.addr, "/api", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (200, Some(4)), "{fw:?}");
        // 4 left, the report costs 5: refused, and nothing is taken.
        let a = call(s.addr, "/report", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (402, Some(4)), "{fw:?}");
        assert_eq!(a.code.as_deref(), Some("credits_exhausted"));
        assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(6), "{fw:?}");
        for left in [3, 2, 1, 0] {
            let a = call(s.addr, "/api", &t, &[]).await;
            assert_eq!((a.status, a.remaining), (200, Some(left)), "{fw:?}");
        }
    }
    // actix: a cost on a whole scope (`Scope::wrap`).
    let s = start(Framework::Actix, Credits::new(), &[]).await;
    let id = jti();
    let t = token(json!({"credits": 7, "jti": id}));
    for left in [4, 1] {
        let a = call(s.addr, "/bulk/import", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (200, Some(left)));
    }
    let a = call(s.addr, "/bulk/import", &t, &[]).await;
    assert_eq!((a.status, a.remaining), (402, Some(1)));
    assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_on_success_refunds_a_500() {
    for fw in BOTH {
        let s = start(fw, Credits::new().charge_on_success(), &[]).await;
        let id = jti();
        let t = token(json!({"credits": 2, "jti": id}));
        let a = call(s.addr, "/fail", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (500, Some(2)), "{fw:?}");
        assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(0));
        if let Framework::Actix = fw {
            // Refunded; the error goes on untouched, without credit headers.
            let a = call(s.addr, "/inner-error", &t, &[]).await;
            assert_eq!(a.status, 500);
            assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(0));
        }
        for left in [1, 0] {
            let a = call(s.addr, "/api", &t, &[]).await;
            assert_eq!((a.status, a.remaining), (200, Some(left)), "{fw:?}");
        }
        assert_eq!(call(s.addr, "/fail", &t, &[]).await.status, 402);
        assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(2));

        // Charged on request (the default), a 500 keeps the charge.
        let s = start(fw, Credits::new(), &[]).await;
        let t = token(json!({"credits": 2, "jti": jti()}));
        let a = call(s.addr, "/fail", &t, &[]).await;
        assert_eq!((a.status, a.remaining), (500, Some(1)), "{fw:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_refused_at_once() {
    for fw in BOTH {
        let s = start(fw, Credits::new(), &[]).await;
        let id = jti();
        let t = token(json!({"credits": 5, "jti": id}));
        assert_eq!(call(s.addr, "/api", &t, &[]).await.status, 200);
        // The token is now in the verified-token cache; revocation still wins.
        s.store.revoke(ISS, &id, now() + 600).await.unwrap();
        let a = call(s.addr, "/api", &t, &[]).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("token_revoked")),
            "{fw:?}"
        );
        // A revoked token spends nothing.
        assert_eq!(s.store.spent(ISS, &id).await.unwrap(), Some(1));

        // Everything a subject was issued before now.
        let other = token(json!({"sub": "user-7", "jti": jti(), "iat": now() - 5}));
        assert_eq!(call(s.addr, "/api", &other, &[]).await.status, 200);
        s.store
            .revoke_issued_until(ISS, Principal::Subject("user-7"), now(), now() + 600)
            .await
            .unwrap();
        let a = call(s.addr, "/api", &other, &[]).await;
        assert_eq!((a.status, a.code.as_deref()), (401, Some("token_revoked")));
        let fresh = token(json!({"sub": "user-7", "jti": jti(), "iat": now() + 1}));
        assert_eq!(call(s.addr, "/api", &fresh, &[]).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metered_tokens_need_a_jti() {
    for fw in BOTH {
        let s = start(fw, Credits::new(), &[]).await;
        let a = call(s.addr, "/api", &token(json!({"credits": 5})), &[]).await;
        assert_eq!((a.status, a.code.as_deref()), (401, Some("missing_claim")));
        let a = call(
            s.addr,
            "/api",
            &token(json!({"credits": -1, "jti": jti()})),
            &[],
        )
        .await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("invalid_claim")),
            "{fw:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_bound_tokens() {
    for fw in BOTH {
        // No trusted proxy: the client is the peer, 127.0.0.1.
        let s = start(fw, Credits::new(), &["10.0.0.0/8"]).await;
        let here = token(json!({"ip": "127.0.0.1"}));
        let a = call(s.addr, "/api", &here, &[]).await;
        assert_eq!(a.status, 200, "{fw:?}");
        let ranges = token(json!({"ip": ["192.0.2.0/24", "127.0.0.0/8", "::1"]}));
        assert_eq!(call(s.addr, "/api", &ranges, &[]).await.status, 200);
        let elsewhere = token(json!({"ip": "203.0.113.7"}));
        let a = call(s.addr, "/api", &elsewhere, &[]).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("client_address_mismatch")),
            "{fw:?}"
        );
        // The peer is not a trusted proxy: its forwarding headers are ignored.
        let spoof = [("x-forwarded-for", "203.0.113.7")];
        let a = call(s.addr, "/api", &elsewhere, &spoof).await;
        assert_eq!(a.status, 401, "{fw:?}");
        assert_eq!(call(s.addr, "/api", &here, &spoof).await.status, 200);
        let bad = token(json!({"ip": "127.0.0.1/99"}));
        let a = call(s.addr, "/api", &bad, &[]).await;
        assert_eq!((a.status, a.code.as_deref()), (401, Some("invalid_claim")));

        // 127.0.0.1 is a trusted proxy: the client is the right-most
        // untrusted hop of its headers.
        let s = start(fw, Credits::new(), &["127.0.0.1"]).await;
        let via = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
        assert_eq!(call(s.addr, "/api", &elsewhere, &via).await.status, 200);
        // Either header alone counts (the default reads both)...
        let fwd = [("forwarded", "for=203.0.113.7;proto=https")];
        assert_eq!(call(s.addr, "/api", &elsewhere, &fwd).await.status, 200);
        // ...but a header the client sent through the proxy, disagreeing
        // with the one the proxy wrote, names nobody.
        let both = [
            ("forwarded", "for=127.0.0.1"),
            ("x-forwarded-for", "203.0.113.7"),
        ];
        for t in [&here, &elsewhere] {
            let a = call(s.addr, "/api", t, &both).await;
            assert_eq!(
                (a.status, a.code.as_deref()),
                (401, Some("client_address_mismatch")),
                "{fw:?}"
            );
        }
        let agree = [
            ("forwarded", "for=203.0.113.7"),
            ("x-forwarded-for", "203.0.113.7"),
        ];
        assert_eq!(call(s.addr, "/api", &elsewhere, &agree).await.status, 200);
        let hidden = [("x-forwarded-for", "203.0.113.7, unknown")];
        let a = call(s.addr, "/api", &elsewhere, &hidden).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("client_address_mismatch")),
            "{fw:?}: an undisclosed client matches no address"
        );
        let a = call(s.addr, "/api", &elsewhere, &[]).await;
        assert_eq!(a.status, 401, "{fw:?}: no header, the proxy is the client");
        let a = call(s.addr, "/api", &here, &via).await;
        assert_eq!(a.status, 401, "{fw:?}: forwarded for another client");
        let garbage = [("x-forwarded-for", "not-an-address")];
        let a = call(s.addr, "/api", &elsewhere, &garbage).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (400, Some("malformed_forwarded")),
            "{fw:?}"
        );

        // A proxy that writes `X-Forwarded-For`, named: only that header
        // counts, a passed-through `Forwarded` is not read.
        let binding = IpBinding::new()
            .trusted_proxies(["127.0.0.1"])
            .unwrap()
            .forwarded_header(ForwardedHeader::XForwardedFor);
        let s = start_bound(fw, Credits::new(), binding).await;
        assert_eq!(call(s.addr, "/api", &elsewhere, &fwd).await.status, 401);
        assert_eq!(call(s.addr, "/api", &here, &both).await.status, 401);
        assert_eq!(call(s.addr, "/api", &elsewhere, &both).await.status, 200);

        // A proxy that writes `Forwarded`: only that header counts.
        let binding = IpBinding::new()
            .trusted_proxies(["127.0.0.1"])
            .unwrap()
            .forwarded_header(ForwardedHeader::Forwarded);
        let s = start_bound(fw, Credits::new(), binding).await;
        assert_eq!(call(s.addr, "/api", &elsewhere, &fwd).await.status, 200);
        assert_eq!(call(s.addr, "/api", &here, &both).await.status, 200);
        assert_eq!(call(s.addr, "/api", &elsewhere, &both).await.status, 401);
        for undisclosed in ["for=unknown", "for=_hidden", "proto=https"] {
            let h = [("forwarded", undisclosed)];
            let a = call(s.addr, "/api", &elsewhere, &h).await;
            assert_eq!(
                (a.status, a.code.as_deref()),
                (401, Some("client_address_mismatch")),
                "{fw:?}: {undisclosed}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_header_quoted_strings() {
    for fw in BOTH {
        // The test client is the trusted proxy at 127.0.0.1 and writes the
        // `Forwarded` header itself, as nginx, Envoy or HAProxy would.
        let binding = IpBinding::new()
            .trusted_proxies(["127.0.0.1"])
            .unwrap()
            .forwarded_header(ForwardedHeader::Forwarded);
        let s = start_bound(fw, Credits::new(), binding).await;
        let client = token(json!({"ip": "203.0.113.7"}));
        let v6 = token(json!({"ip": "2001:db8:cafe::/48"}));
        let chosen = token(json!({"ip": "10.0.0.1"}));
        for (header, t) in [
            ("for=203.0.113.7;proto=http;by=203.0.113.43", &client),
            ("for=\"203.0.113.7:47011\"", &client),
            ("for=192.0.2.43, for=203.0.113.7", &client),
            ("for=\"[2001:db8:cafe::17]:4711\"", &v6),
            // What a client put in a quoted value stays inside it.
            ("host=\"evil, for=10.0.0.1;x=\";for=203.0.113.7", &client),
        ] {
            let a = call(s.addr, "/api", t, &[("forwarded", header)]).await;
            assert_eq!(a.status, 200, "{fw:?}: {header}");
        }
        let a = call(
            s.addr,
            "/api",
            &chosen,
            &[(
                "forwarded",
                "host=\"evil, for=10.0.0.1;x=\";for=203.0.113.7",
            )],
        )
        .await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("client_address_mismatch")),
            "{fw:?}: the client chose its own address"
        );
        let a = call(s.addr, "/api", &chosen, &[("forwarded", "For=\"_gazonk\"")]).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (401, Some("client_address_mismatch")),
            "{fw:?}"
        );
        for header in [
            "for=\"1.2.3.4;for=10.0.0.1\"",
            "for=\"10.0.0.1, for=127.0.0.1\"",
            "for=203.0.113.7;for=10.0.0.1",
            "for=\"10.0.0.1",
        ] {
            let a = call(s.addr, "/api", &chosen, &[("forwarded", header)]).await;
            assert_eq!(
                (a.status, a.code.as_deref()),
                (400, Some("malformed_forwarded")),
                "{fw:?}: {header}"
            );
        }
    }
}
