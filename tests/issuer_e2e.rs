//! The token server end to end over real HTTP on 127.0.0.1: client
//! credentials (Basic and form) -> tokens -> an axum API and an actix-web
//! API that take their keys from the issuer's JWKS URL -> credits spent ->
//! revoked through `/connect/revocation` -> refused by both; introspection
//! before and after; key rotation without a failed request; every RFC 6749
//! §5.2 error with status, headers and body.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tollgate::core::policy::{Credits, IpBinding, MemoryStore, Policies, Store};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer};
use tollgate::issuer::{Client, KeyRing, Settings, TokenServer};

use support::issuer::{Reply, basic, raw_basic, start_actix, start_axum};

const AUD: &str = "https://api.example";

struct Setup {
    issuer: String,
    server: Arc<TokenServer>,
    secret: String,
    other_secret: String,
    axum: SocketAddr,
    actix: SocketAddr,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (mut client, secret) = Client::generate(
        "reports-app",
        vec![AUD.into(), "https://other.example".into()],
        vec!["reports:read".into(), "reports:write".into()],
    );
    client.max_credits = 100;
    let (other, other_secret) = Client::generate("other-app", vec![AUD.into()], vec![]);
    let server = TokenServer::new(
        Settings::new(issuer.clone()),
        KeyRing::ephemeral(Algorithm::ES256).unwrap(),
        vec![client, other],
        store.clone(),
    )
    .unwrap();
    let app = server.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let auth = || {
        Authenticator::builder()
            .issuer(
                TrustedIssuer::new(issuer.clone())
                    .audience(AUD)
                    .jwks_url(format!("{issuer}/.well-known/jwks.json")),
            )
            .policies(
                Policies::new(store.clone())
                    .credits(Credits::new())
                    .ip_binding(IpBinding::new()),
            )
            .build()
            .unwrap()
    };
    let axum = start_axum(auth()).await;
    let actix = start_actix(auth());
    Setup {
        issuer,
        server,
        secret,
        other_secret,
        axum,
        actix,
        http: reqwest::Client::new(),
    }
}

async fn post(s: &Setup, path: &str, auth: Option<&str>, form: &[(&str, &str)]) -> Reply {
    support::issuer::post(&s.http, &s.issuer, path, auth, form).await
}

async fn api(s: &Setup, addr: SocketAddr, token: &str) -> (u16, Option<String>, Option<String>) {
    support::issuer::api(&s.http, addr, token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_to_apis_to_revocation() {
    let s = setup().await;
    // Basic, with the id and secret form-urlencoded before base64.
    let r = post(
        &s,
        "/connect/token",
        Some(&basic("reports-app", &s.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "reports:read"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    assert_eq!(r.body["scope"], "reports:read");
    let basic_token = r.body["access_token"].as_str().unwrap().to_owned();
    // Form authentication.
    let r = post(
        &s,
        "/connect/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "reports-app"),
            ("client_secret", &s.secret),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["scope"], "reports:read reports:write");
    let form_token = r.body["access_token"].as_str().unwrap().to_owned();

    // RFC 9068 header and claims.
    let parts: Vec<&str> = basic_token.split('.').collect();
    let decode = |p: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    let header = decode(parts[0]);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = decode(parts[1]);
    for c in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "iat",
        "nbf",
        "exp",
        "jti",
    ] {
        assert!(!claims[c].is_null(), "claim {c} missing: {claims}");
    }
    assert_eq!(claims["iss"], s.issuer.as_str());
    assert_eq!(claims["aud"], AUD);

    for addr in [s.axum, s.actix] {
        assert_eq!(api(&s, addr, &basic_token).await.0, 200);
        assert_eq!(api(&s, addr, &form_token).await.0, 200);
    }

    // A restricted token worth 3 credits, spent across both APIs.
    let r = post(
        &s,
        "/connect/jwt",
        Some(&basic("reports-app", &s.secret)),
        &[
            ("credits", "3"),
            ("lifetime", "600"),
            ("sub", "end-user-42"),
            ("ip", "127.0.0.1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["credits_remaining"], 3);
    assert_eq!(r.body["expires_in"], 600);
    let restricted = r.body["token"].as_str().unwrap().to_owned();
    let introspect = |token: String| {
        let s = &s;
        async move {
            post(
                s,
                "/connect/introspect",
                Some(&basic("reports-app", &s.secret)),
                &[("token", &token)],
            )
            .await
        }
    };
    let i = introspect(restricted.clone()).await;
    assert_eq!(i.body["active"], true, "{:?}", i.body);
    assert_eq!(i.body["credits_remaining"], 3);
    assert_eq!(i.body["sub"], "reports-app:end-user-42");
    assert_eq!(
        api(&s, s.axum, &restricted).await,
        (200, Some("2".into()), None)
    );
    assert_eq!(
        api(&s, s.actix, &restricted).await,
        (200, Some("1".into()), None)
    );
    let i = introspect(restricted.clone()).await;
    assert_eq!(i.body["credits_remaining"], 1);

    // Revocation: another client may not revoke it; its owner may.
    let r = post(
        &s,
        "/connect/revocation",
        Some(&basic("other-app", &s.other_secret)),
        &[("token", &restricted)],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "unauthorized_client");
    let r = post(
        &s,
        "/connect/revocation",
        Some(&basic("reports-app", &s.secret)),
        &[("token", &restricted), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(r.status, 200);
    for addr in [s.axum, s.actix] {
        assert_eq!(
            api(&s, addr, &restricted).await,
            (401, None, Some("token_revoked".into()))
        );
    }
    assert_eq!(
        introspect(restricted.clone()).await.body,
        json!({"active": false})
    );
    // Unknown tokens: 200 at revocation, inactive at introspection.
    let r = post(
        &s,
        "/connect/revocation",
        Some(&basic("reports-app", &s.secret)),
        &[("token", "not.a.token")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect("not.a.token".into()).await.body,
        json!({"active": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_fails_no_request() {
    let s = setup().await;
    let get = |s: &Setup| {
        let http = s.http.clone();
        let url = format!("{}/connect/token", s.issuer);
        let auth = basic("reports-app", &s.secret);
        async move {
            let r = http
                .post(url)
                .header("authorization", auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .unwrap();
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        }
    };
    let old = get(&s).await;
    let published_before: Vec<String> = s.server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    for addr in [s.axum, s.actix] {
        assert_eq!(api(&s, addr, &old).await.0, 200);
    }
    // Rotate twice while requests with the old token keep coming.
    let mut failures = 0;
    for round in 0..2 {
        s.server.rotate_keys().unwrap();
        let new = get(&s).await;
        let kid = |t: &str| -> String {
            let h: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            h["kid"].as_str().unwrap().to_owned()
        };
        if round == 0 {
            // The key that signs after the first rotation was published before it.
            assert!(published_before.contains(&kid(&new)));
        }
        for _ in 0..20 {
            for addr in [s.axum, s.actix] {
                for t in [&old, &new] {
                    if api(&s, addr, t).await.0 != 200 {
                        failures += 1;
                    }
                }
            }
        }
    }
    assert_eq!(failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6749_errors() {
    let s = setup().await;
    let good = basic("reports-app", &s.secret);
    let cc = ("grant_type", "client_credentials");
    struct Case<'a> {
        name: &'a str,
        auth: Option<String>,
        form: Vec<(&'a str, &'a str)>,
        status: u16,
        error: &'a str,
    }
    let secret = s.secret.clone();
    let cases = vec![
        Case {
            name: "no grant_type",
            auth: Some(good.clone()),
            form: vec![],
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "repeated parameter",
            auth: Some(good.clone()),
            form: vec![cc, cc],
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "Basic and body secret",
            auth: Some(good.clone()),
            form: vec![cc, ("client_id", "reports-app"), ("client_secret", &secret)],
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "no client authentication",
            auth: None,
            form: vec![cc],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "wrong secret (Basic)",
            auth: Some(basic("reports-app", "nope")),
            form: vec![cc],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "unknown client (Basic)",
            auth: Some(basic("nobody", "nope")),
            form: vec![cc],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "wrong secret (form)",
            auth: None,
            form: vec![cc, ("client_id", "reports-app"), ("client_secret", "nope")],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "unknown client (form)",
            auth: None,
            form: vec![cc, ("client_id", "nobody"), ("client_secret", "nope")],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "client_id without a secret",
            auth: None,
            form: vec![cc, ("client_id", "reports-app")],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "Basic without a colon",
            auth: Some(format!("Basic {}", STANDARD.encode("reports-app"))),
            form: vec![cc],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "not Basic",
            auth: Some("Bearer abc".into()),
            form: vec![cc],
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "password grant",
            auth: Some(good.clone()),
            form: vec![("grant_type", "password")],
            status: 400,
            error: "unsupported_grant_type",
        },
        Case {
            name: "refresh grant without a refresh token",
            auth: Some(good.clone()),
            form: vec![("grant_type", "refresh_token")],
            status: 400,
            error: "invalid_request",
        },
        Case {
            name: "refresh grant with an unknown refresh token",
            auth: Some(good.clone()),
            form: vec![("grant_type", "refresh_token"), ("refresh_token", "tgr_x")],
            status: 400,
            error: "invalid_grant",
        },
        Case {
            name: "password grant",
            auth: Some(good.clone()),
            form: vec![("grant_type", "password")],
            status: 400,
            error: "unsupported_grant_type",
        },
        Case {
            name: "scope not allowed",
            auth: Some(good.clone()),
            form: vec![cc, ("scope", "admin")],
            status: 400,
            error: "invalid_scope",
        },
        Case {
            name: "audience not allowed",
            auth: Some(good.clone()),
            form: vec![cc, ("audience", "https://evil.example")],
            status: 400,
            error: "invalid_target",
        },
    ];
    let check = |path: &str, name: &str, r: &Reply, status: u16, error: &str| {
        assert_eq!(r.status.as_u16(), status, "{path} {name}: {:?}", r.body);
        // The body is exactly `error` and `error_description`.
        let obj = r.body.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{path} {name}: {:?}", r.body);
        assert_eq!(r.body["error"], error, "{path} {name}");
        assert!(r.body["error_description"].is_string(), "{path} {name}");
        assert_eq!(r.headers["cache-control"], "no-store", "{path} {name}");
        assert_eq!(r.headers["pragma"], "no-cache", "{path} {name}");
        assert_eq!(
            r.headers["content-type"], "application/json",
            "{path} {name}"
        );
        // Every 401 carries a challenge (RFC 9110 §15.5.2), advertising
        // Basic whether or not the client tried it (RFC 6749 §5.2).
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            (status == 401).then_some("Basic realm=\"tollgate\", charset=\"UTF-8\""),
            "{path} {name}"
        );
        assert!(
            !r.body.to_string().contains(&s.secret),
            "{path} {name}: secret echoed"
        );
    };
    for c in &cases {
        let r = post(&s, "/connect/token", c.auth.as_deref(), &c.form).await;
        check("/connect/token", c.name, &r, c.status, c.error);
    }
    // The other client-authenticated endpoints answer failed client
    // authentication the same way.
    for path in ["/connect/jwt", "/connect/introspect", "/connect/revocation"] {
        for c in cases.iter().filter(|c| c.error == "invalid_client") {
            let mut form: Vec<(&str, &str)> = c
                .form
                .iter()
                .copied()
                .filter(|(k, _)| *k != "grant_type")
                .collect();
            form.push(("token", "not.a.token"));
            let r = post(&s, path, c.auth.as_deref(), &form).await;
            check(path, c.name, &r, 401, "invalid_client");
        }
    }
    // Wrong content type.
    let r = s
        .http
        .post(format!("{}/connect/token", s.issuer))
        .header("authorization", &good)
        .header("content-type", "application/json")
        .body(json!({"grant_type": "client_credentials"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Restricted tokens never exceed the caller's limits.
    for (form, error) in [
        (vec![("credits", "101")], "invalid_request"),
        (vec![("lifetime", "999999")], "invalid_request"),
        (vec![("scope", "admin")], "invalid_scope"),
        (vec![("ip", "300.1.1.1")], "invalid_request"),
        (vec![("credits", "-1")], "invalid_request"),
    ] {
        let r = post(&s, "/connect/jwt", Some(&good), &form).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"].as_str()),
            (400, Some(error)),
            "{form:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_and_discovery() {
    let s = setup().await;
    let jwks: Value = s
        .http
        .get(format!("{}/.well-known/jwks.json", s.issuer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "active and next");
    for k in keys {
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "ES256");
        assert!(k["kid"].is_string());
        assert!(k.get("d").is_none(), "private part published");
    }
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/openid-configuration", s.issuer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(meta["issuer"], s.issuer.as_str());
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/connect/token", s.issuer)
    );
    assert_eq!(
        meta["jwks_uri"],
        format!("{}/.well-known/jwks.json", s.issuer)
    );
    // No authorization endpoint, so no response type (not the implicit
    // flow's `token`).
    assert_eq!(meta["response_types_supported"], json!([]));
    // Two ES256 keys, one algorithm.
    assert_eq!(
        meta["access_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    // The restricted-token endpoint and every parameter it takes.
    assert_eq!(
        meta["tollgate_restricted_token_endpoint"],
        format!("{}/connect/jwt", s.issuer)
    );
    assert_eq!(
        meta["tollgate_restricted_token_parameters_supported"],
        json!([
            "ip", "scope", "audience", "lifetime", "sub", "credits", "refresh"
        ])
    );
    // A Tollgate API configured by discovery alone works.
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(s.issuer.clone())
                .audience(AUD)
                .discovery_url(format!("{}/.well-known/openid-configuration", s.issuer)),
        )
        .build()
        .unwrap();
    auth.ready().await.unwrap();
}

/// RFC 6749 §2.3.1: with Basic, the id and the secret are form-urlencoded
/// before base64, so `%`, `+`, spaces and non-ASCII survive, and `:` in a
/// secret (a client id holds none); the raw pair is not the same
/// credentials and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_form_urlencodes_id_and_secret() {
    let s = setup().await;
    let pairs = [
        ("tenant/7 café", "p%40ss+word: ü/€"),
        ("plus+percent%", "s+%20x y"),
    ];
    for (id, secret) in pairs {
        let client = Client {
            id: id.into(),
            secret_hash: tollgate::issuer::hash_secret(secret),
            scopes: vec![],
            audiences: vec![AUD.into()],
            token_lifetime: 3600,
            max_restricted_lifetime: 3600,
            max_credits: 10,
            introspect_any: false,
            refresh_lifetime: 0,
        };
        s.server.put_client(client).unwrap();
        let cc = [("grant_type", "client_credentials")];
        let r = post(&s, "/connect/token", Some(&basic(id, secret)), &cc).await;
        assert_eq!(r.status, 200, "{id}: {:?}", r.body);
        let token = r.body["access_token"].as_str().unwrap().to_owned();
        // The token names the client by its real id.
        let i = post(
            &s,
            "/connect/introspect",
            Some(&basic(id, secret)),
            &[("token", &token)],
        )
        .await;
        assert_eq!(i.body["client_id"], id);
        // Spaces may be sent as `%20` as well as `+`.
        let enc = |v: &str| {
            form_urlencoded::byte_serialize(v.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        };
        let r = post(
            &s,
            "/connect/token",
            Some(&raw_basic(&enc(id), &enc(secret))),
            &cc,
        )
        .await;
        assert_eq!(r.status, 200, "{id} (%20): {:?}", r.body);
        // The same pair without the encoding step is refused.
        let r = post(&s, "/connect/token", Some(&raw_basic(id, secret)), &cc).await;
        assert_eq!(r.status, 401, "{id} raw: {:?}", r.body);
        assert_eq!(r.body["error"], "invalid_client");
        assert!(r.headers.contains_key("www-authenticate"));
        // Form authentication takes the values as they are.
        let r = post(
            &s,
            "/connect/token",
            None,
            &[cc[0], ("client_id", id), ("client_secret", secret)],
        )
        .await;
        assert_eq!(r.status, 200, "{id} form: {:?}", r.body);
    }
}

/// `/connect/jwt` never hands out more than the caller holds: without
/// `credits` the token carries the client's limit (it is metered by the
/// APIs), and `sub` may not name another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_tokens_stay_within_the_client() {
    let s = setup().await;
    let auth = basic("reports-app", &s.secret);
    let r = post(&s, "/connect/jwt", Some(&auth), &[("lifetime", "60")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["credits_remaining"], 100, "the client's max_credits");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["credits"], 100);
    // The APIs meter it.
    assert_eq!(
        api(&s, s.axum, &token).await,
        (200, Some("99".into()), None)
    );
    assert_eq!(
        api(&s, s.actix, &token).await,
        (200, Some("98".into()), None)
    );
    // JSON bodies too.
    let r = s
        .http
        .post(format!("{}/connect/jwt", s.issuer))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(json!({"sub": "end-user-1"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["credits_remaining"], 100);
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// An end user's subject names its client: two clients minting for a user
/// called `alice` get two subjects, neither can take the other's (or
/// another client's) name, and a subject watermark for one client's
/// `alice` leaves the other's tokens working in both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_subjects_are_unambiguous_per_client() {
    let s = setup().await;
    let reports = basic("reports-app", &s.secret);
    let other = basic("other-app", &s.other_secret);
    let mint = |auth: String, sub: &'static str| {
        let s = &s;
        async move {
            let r = post(
                s,
                "/connect/jwt",
                Some(&auth),
                &[("sub", sub), ("credits", "5")],
            )
            .await;
            assert_eq!(r.status, 200, "{sub}: {:?}", r.body);
            r.body["token"].as_str().unwrap().to_owned()
        }
    };
    let a_alice = mint(reports.clone(), "alice").await;
    let b_alice = mint(other.clone(), "alice").await;
    assert_eq!(claims_of(&a_alice)["sub"], "reports-app:alice");
    assert_eq!(claims_of(&b_alice)["sub"], "other-app:alice");
    // Naming the other client, or the other client's user, stays inside
    // the caller's own namespace.
    assert_eq!(
        claims_of(&mint(reports.clone(), "other-app").await)["sub"],
        "reports-app:other-app"
    );
    assert_eq!(
        claims_of(&mint(reports.clone(), "other-app:alice").await)["sub"],
        "reports-app:other-app:alice"
    );
    // The caller itself: the client's own subject.
    assert_eq!(
        claims_of(&mint(reports.clone(), "reports-app").await)["sub"],
        "reports-app"
    );

    // Introspection tells the two apart.
    let i = post(
        &s,
        "/connect/introspect",
        Some(&other),
        &[("token", b_alice.as_str())],
    )
    .await;
    assert_eq!(i.body["sub"], "other-app:alice", "{:?}", i.body);

    // The API revokes other-app's alice by subject watermark.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    s.server
        .store()
        .revoke_issued_until(
            &s.issuer,
            tollgate::core::policy::Principal::Subject("other-app:alice"),
            now,
            now + 3600,
        )
        .await
        .unwrap();
    for addr in [s.axum, s.actix] {
        assert_eq!(api(&s, addr, &b_alice).await.0, 401, "{addr}");
        assert_eq!(api(&s, addr, &a_alice).await.0, 200, "{addr}");
    }
}

/// RFC 7662 §4: a client learns nothing about another client's tokens,
/// unless it is granted introspection of any token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_answers_about_the_callers_own_tokens_only() {
    let s = setup().await;
    let cc = [("grant_type", "client_credentials")];
    let r = post(
        &s,
        "/connect/token",
        Some(&basic("reports-app", &s.secret)),
        &cc,
    )
    .await;
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let introspect = |who: &'static str, secret: String| {
        let (s, token) = (&s, token.clone());
        async move {
            post(
                s,
                "/connect/introspect",
                Some(&basic(who, &secret)),
                &[("token", &token)],
            )
            .await
        }
    };
    let own = introspect("reports-app", s.secret.clone()).await;
    assert_eq!(own.body["active"], true, "{:?}", own.body);
    let other = introspect("other-app", s.other_secret.clone()).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, json!({"active": false}), "nothing leaks");

    // A resource server granted introspection of any token.
    let (mut checker, secret) = Client::generate("checker", vec![AUD.into()], vec![]);
    checker.introspect_any = true;
    s.server.put_client(checker).unwrap();
    let granted = introspect("checker", secret).await;
    assert_eq!(granted.body["active"], true, "{:?}", granted.body);
    assert_eq!(granted.body["client_id"], "reports-app");
}

/// A token endpoint reads a few short parameters and one token: a large
/// body or many parameters are refused before the client is authenticated
/// or any parameter is kept, with or without a declared length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoints_bound_body_size_and_parameter_count() {
    let s = setup().await;
    let auth = basic("reports-app", &s.secret);
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(1_400_000)
    );
    let sized = s
        .http
        .post(format!("{}/connect/token", s.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &auth)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sized.status(), 400);
    let body: Value = serde_json::from_str(&sized.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("16 KiB")
    );
    // No Content-Length (chunked): the read itself stops at the bound.
    let status = chunked_post(&s.issuer, "/connect/introspect", &auth, big.as_bytes()).await;
    assert_eq!(status, 400);
    let many: Vec<(String, String)> = (0..17).map(|i| (format!("p{i}"), "x".into())).collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post(&s, "/connect/token", Some(&auth), &pairs).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_request");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("16 parameters")
    );
    // The ordinary request still works.
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(
        post(&s, "/connect/token", Some(&auth), &cc).await.status,
        200
    );
}

/// POSTs `body` in 64 KiB chunks (`Transfer-Encoding: chunked`, no
/// length) over a raw connection; returns the answer's status.
async fn chunked_post(base: &str, path: &str, auth: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\n\
         content-type: application/x-www-form-urlencoded\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let sent = async {
            conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            conn.write_all(chunk).await?;
            conn.write_all(b"\r\n").await
        };
        // The server may answer and close before the whole body is sent.
        if sent.await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `/connect/jwt` takes six parameters; a misspelt one is refused rather
/// than ignored (`subject=alice` used to mint a token for the client itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_tokens_refuse_unknown_parameters() {
    let s = setup().await;
    let auth = basic("reports-app", &s.secret);
    let r = post(
        &s,
        "/connect/jwt",
        Some(&auth),
        &[("subject", "alice"), ("credits", "1")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_request");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("`subject`"),
        "{:?}",
        r.body
    );
    let json = s
        .http
        .post(format!("{}/connect/jwt", s.issuer))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(r#"{"sub":"alice","credits":1,"ttl":60}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
    let body: Value = serde_json::from_str(&json.text().await.unwrap()).unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("`ttl`")
    );
    let ok = post(
        &s,
        "/connect/jwt",
        Some(&auth),
        &[("sub", "alice"), ("credits", "1")],
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
}
