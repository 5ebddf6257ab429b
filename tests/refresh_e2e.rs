//! Refresh tokens end to end over HTTP on 127.0.0.1, with a token server
//! and two APIs (axum, actix-web) that are separate instances on one real
//! Redis: rotation, the allowance carried across refreshes and instances,
//! reuse detection revoking the family everywhere, a concurrent refresh
//! race, public clients, address binding, and narrowing scopes.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tollgate::core::policy::{Credits, IpBinding, Policies, Store};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer};
use tollgate::issuer::{Client, KeyRing, Settings, TokenServer};
use tollgate::redis::RedisStore;
use tollgate_conformance::redis_server::RedisServer;

use support::issuer::{Reply, api, basic, post, start_actix, start_axum};

const AUD: &str = "https://api.example";

struct Setup {
    issuer: String,
    server: Arc<TokenServer>,
    secret: String,
    plain_secret: String,
    axum: SocketAddr,
    actix: SocketAddr,
    http: reqwest::Client,
    _redis: RedisServer,
}

async fn redis_store(redis: &RedisServer) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&redis.url()).await.unwrap())
}

async fn setup() -> Setup {
    let redis = RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (mut app, secret) =
        Client::generate("app", vec![AUD.into()], vec!["read".into(), "write".into()]);
    app.max_credits = 100;
    app.refresh_lifetime = 3600;
    let (mut other, _) = Client::generate("other", vec![AUD.into()], vec![]);
    other.refresh_lifetime = 3600;
    let (plain, plain_secret) = Client::generate("plain", vec![AUD.into()], vec![]);
    let server = TokenServer::new(
        Settings::new(issuer.clone()),
        KeyRing::ephemeral(Algorithm::ES256).unwrap(),
        vec![app, other, plain],
        redis_store(&redis).await,
    )
    .unwrap();
    let router = server.clone().router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    // Each API is its own instance: its own connection to the one Redis.
    let mut apis = Vec::new();
    for _ in 0..2 {
        apis.push(
            Authenticator::builder()
                .issuer(
                    TrustedIssuer::new(issuer.clone())
                        .audience(AUD)
                        .jwks_url(format!("{issuer}/.well-known/jwks.json")),
                )
                .policies(
                    Policies::new(redis_store(&redis).await)
                        .credits(Credits::new())
                        .ip_binding(IpBinding::new()),
                )
                .build()
                .unwrap(),
        );
    }
    let actix = start_actix(apis.pop().unwrap());
    let axum = start_axum(apis.pop().unwrap()).await;
    Setup {
        issuer,
        server,
        secret,
        plain_secret,
        axum,
        actix,
        http: reqwest::Client::new(),
        _redis: redis,
    }
}

impl Setup {
    async fn post(&self, path: &str, auth: Option<&str>, form: &[(&str, &str)]) -> Reply {
        post(&self.http, &self.issuer, path, auth, form).await
    }

    /// A restricted token with a refresh token.
    async fn start(&self, form: &[(&str, &str)]) -> (String, String) {
        let mut all = vec![("refresh", "true")];
        all.extend_from_slice(form);
        let r = self
            .post("/connect/jwt", Some(&basic("app", &self.secret)), &all)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        (text(&r.body["token"]), text(&r.body["refresh_token"]))
    }

    /// `grant_type=refresh_token` as a public client (`client_id` alone).
    async fn refresh(&self, client: &str, token: &str, extra: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ];
        form.extend_from_slice(extra);
        self.post("/connect/token", None, &form).await
    }

    async fn spend(&self, addr: SocketAddr, token: &str) -> u16 {
        api(&self.http, addr, token).await.0
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_shares_one_allowance_and_dies_whole_on_reuse() {
    let s = setup().await;
    let (first, r0) = s.start(&[("credits", "10"), ("sub", "alice")]).await;
    let c = claims(&first);
    assert_eq!(c["credits"], 10);
    assert_eq!(c["sub"], "app:alice");
    let family = text(&c["sid"]);
    assert!(c["sid_exp"].as_i64().unwrap() >= c["exp"].as_i64().unwrap());
    assert!(r0.starts_with("tgr_"), "{r0}");
    // 3 credits on the axum instance.
    for _ in 0..3 {
        assert_eq!(s.spend(s.axum, &first).await, 200);
    }
    // Three refreshes: each rotates; credits never come back.
    let mut refresh = r0.clone();
    let mut tokens = vec![first.clone()];
    let mut spent_refresh = Vec::new();
    for (i, expected_left) in [7, 7, 5].into_iter().enumerate() {
        let r = s.refresh("app", &refresh, &[]).await;
        assert_eq!(r.status, 200, "refresh {i}: {:?}", r.body);
        assert_eq!(r.body["credits_remaining"], expected_left, "refresh {i}");
        assert_eq!(r.body["token_type"], "Bearer");
        let access = text(&r.body["access_token"]);
        let next = text(&r.body["refresh_token"]);
        assert_ne!(next, refresh);
        let c = claims(&access);
        assert_eq!(
            (c["sid"].as_str(), c["credits"].as_u64()),
            (Some(family.as_str()), Some(10))
        );
        assert_eq!(c["sub"], "app:alice");
        spent_refresh.push(std::mem::replace(&mut refresh, next));
        if i == 1 {
            // 2 credits on the actix instance with the newest token.
            assert_eq!(s.spend(s.actix, &access).await, 200);
            assert_eq!(s.spend(s.actix, &access).await, 200);
        }
        tokens.push(access);
    }
    // 5 left for the whole family, whichever token and instance spends
    // them: exactly 5 more, then 402.
    let mut paid = 0;
    for i in 0..12 {
        let token = &tokens[i % tokens.len()];
        let addr = if i % 2 == 0 { s.axum } else { s.actix };
        match s.spend(addr, token).await {
            200 => paid += 1,
            402 => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        paid, 5,
        "10 credits for the family, across refreshes and instances"
    );
    // Introspecting any access token of the family tells the family's
    // credits, not the token's own.
    let auth = basic("app", &s.secret);
    for t in [&tokens[0], tokens.last().unwrap()] {
        let i = s
            .post("/connect/introspect", Some(&auth), &[("token", t.as_str())])
            .await;
        assert_eq!(i.body["credits_remaining"], 0, "{:?}", i.body);
    }
    // Introspection knows the live refresh token and the family's credits.
    let i = s
        .post("/connect/introspect", Some(&auth), &[("token", &refresh)])
        .await;
    assert_eq!(i.body["active"], true, "{:?}", i.body);
    assert_eq!(i.body["token_type"], "refresh_token");
    assert_eq!(i.body["credits_remaining"], 0);
    let i = s
        .post(
            "/connect/introspect",
            Some(&auth),
            &[("token", &spent_refresh[0])],
        )
        .await;
    assert_eq!(i.body["active"], false, "a spent refresh token is inactive");

    // Reuse of a spent refresh token: refused, and the family is dead on
    // both instances, its newest refresh token included.
    let r = s.refresh("app", &spent_refresh[0], &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_grant");
    for addr in [s.axum, s.actix] {
        let (status, _, code) = api(&s.http, addr, tokens.last().unwrap()).await;
        assert_eq!(
            (status, code.as_deref()),
            (401, Some("token_revoked")),
            "{addr}"
        );
    }
    let r = s.refresh("app", &refresh, &[]).await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "invalid_grant".into())
    );
    let i = s
        .post("/connect/introspect", Some(&auth), &[("token", &refresh)])
        .await;
    assert_eq!(i.body["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_token_have_one_winner() {
    let s = Arc::new(setup().await);
    let (_, r0) = s.start(&[("credits", "5")]).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, r0) = (s.clone(), r0.clone());
        tasks.push(tokio::spawn(
            async move { s.refresh("app", &r0, &[]).await },
        ));
    }
    let mut won = Vec::new();
    let mut lost = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => won.push(text(&r.body["access_token"])),
            400 => {
                assert_eq!(r.body["error"], "invalid_grant");
                lost += 1;
            }
            other => panic!("{other}: {:?}", r.body),
        }
    }
    assert_eq!((won.len(), lost), (1, 15), "exactly one rotation wins");
    // The others were replays of a spent token: strict reuse detection
    // revoked the family, the winner's new token included.
    assert_eq!(s.spend(s.axum, &won[0]).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_bound_to_its_client_its_addresses_and_its_scopes() {
    let s = setup().await;
    // Only clients with a refresh lifetime get refresh tokens.
    let r = s
        .post(
            "/connect/jwt",
            Some(&basic("plain", &s.plain_secret)),
            &[("refresh", "true")],
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "unauthorized_client".into())
    );
    // Bound to 127.0.0.1: the public client refreshes from there.
    let (_, bound) = s
        .start(&[("ip", "127.0.0.1"), ("scope", "read write")])
        .await;
    // Another client cannot use it, and cannot spend it either.
    let r = s.refresh("other", &bound, &[]).await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "invalid_grant".into())
    );
    // Scopes narrow, never widen.
    let r = s.refresh("app", &bound, &[("scope", "read admin")]).await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "invalid_scope".into())
    );
    let r = s.refresh("app", &bound, &[("scope", "read")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["scope"], "read");
    let c = claims(&text(&r.body["access_token"]));
    assert_eq!(c["ip"], "127.0.0.1");
    // The next refresh still holds the whole grant.
    let r = s.refresh("app", &text(&r.body["refresh_token"]), &[]).await;
    assert_eq!(r.body["scope"], "read write", "{:?}", r.body);
    // Bound elsewhere: refused from 127.0.0.1, the token left unspent.
    let (_, elsewhere) = s.start(&[("ip", "10.9.9.9")]).await;
    let r = s.refresh("app", &elsewhere, &[]).await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "invalid_grant".into())
    );
    let auth = basic("app", &s.secret);
    let i = s
        .post("/connect/introspect", Some(&auth), &[("token", &elsewhere)])
        .await;
    assert_eq!(i.body["active"], true);
    // A public client gets no client credentials token.
    let r = s
        .post(
            "/connect/token",
            None,
            &[("grant_type", "client_credentials"), ("client_id", "app")],
        )
        .await;
    assert_eq!(r.status, 401);
    // Revocation of a refresh token (public client, logging out) revokes
    // the family.
    let (access, refresh) = s.start(&[("credits", "3")]).await;
    assert_eq!(s.spend(s.actix, &access).await, 200);
    let r = s
        .post(
            "/connect/revocation",
            None,
            &[("token", &refresh), ("client_id", "app")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.spend(s.actix, &access).await, 401);
    assert_eq!(s.refresh("app", &refresh, &[]).await.status, 400);
}

/// `clients revoke-tokens` (a client watermark) reaches its refresh
/// families: they stop rotating, their refresh tokens are inactive, and a
/// family started after the watermark works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_watermark_stops_its_families() {
    let s = setup().await;
    let (access, refresh) = s.start(&[("credits", "5")]).await;
    assert_eq!(s.spend(s.axum, &access).await, 200);
    s.server.revoke_client_tokens("app").await.unwrap();
    assert_eq!(s.spend(s.axum, &access).await, 401);
    let r = s.refresh("app", &refresh, &[]).await;
    assert_eq!(
        (r.status.as_u16(), text(&r.body["error"])),
        (400, "invalid_grant".into())
    );
    let auth = basic("app", &s.secret);
    let i = s
        .post("/connect/introspect", Some(&auth), &[("token", &refresh)])
        .await;
    assert_eq!(i.body["active"], false);
    // Watermarks count whole seconds: a family of a later second works.
    let start = std::time::Instant::now();
    loop {
        let (access, refresh) = s.start(&[("credits", "5")]).await;
        if s.spend(s.axum, &access).await == 200 {
            assert_eq!(s.refresh("app", &refresh, &[]).await.status, 200);
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        tokio::task::yield_now().await;
    }
}
