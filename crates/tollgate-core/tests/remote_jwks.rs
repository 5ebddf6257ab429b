//! Remote keys over a real loopback JWKS server that counts its hits:
//! single-flight fetches, unknown-kid cool-down, rotation, outage, discovery,
//! several issuers.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{JwksServer, Signer, good_claims};
use tollgate_core::{
    Authenticator, ConfigError, Error, RemoteOptions, TrustedIssuer, error_response,
};

fn remote_issuer(server: &JwksServer) -> TrustedIssuer {
    TrustedIssuer::new(server.base())
        .audience("api")
        .jwks_url(server.jwks_url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_validations_of_a_new_kid_cause_one_fetch() {
    let old = Signer::es256();
    let new = Signer::es256();
    let server = JwksServer::start(vec![old.jwk("old")]).await;
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .without_cache()
        .build()
        .unwrap();
    assert!(!auth.is_ready());
    auth.ready().await.unwrap();
    assert!(auth.is_ready());
    assert_eq!(server.hits(), 1);

    server.set_keys(vec![old.jwk("old"), new.jwk("new")]);
    let token: Arc<str> = new.sign(Some("new"), &good_claims(&server.base())).into();
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (auth, token, barrier) = (auth.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                auth.verify(&token)
                    .await
                    .map(|v| v.subject().map(str::to_owned))
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().as_deref(), Some("user-1"));
    }
    assert_eq!(
        server.hits(),
        2,
        "one load, then exactly one fetch for the new kid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_unknown_kids_cost_at_most_one_fetch_per_cooldown() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k1")]).await;
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let claims = good_claims(&server.base());
    let known = signer.sign(Some("k1"), &claims);

    let tokens: Vec<String> = (0..10_000u32)
        .map(|i| {
            let kid = format!("rnd-{:08x}", i.wrapping_mul(2_654_435_761));
            signer.sign(Some(&kid), &claims)
        })
        .collect();
    let chunks: Vec<Vec<String>> = tokens.chunks(2_500).map(<[String]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let auth = auth.clone();
            tokio::spawn(async move {
                for t in chunk {
                    assert_eq!(auth.verify(&t).await.unwrap_err(), Error::UnknownKey);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(server.hits() <= 2, "hits: {}", server.hits());
    // Known kids keep working throughout.
    assert!(auth.verify(&known).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_picked_up_and_drops_cached_tokens_of_the_old_key() {
    let a = Signer::es256();
    let b = Signer::es256();
    let server = JwksServer::start(vec![a.jwk("a")]).await;
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .build()
        .unwrap();
    let claims = good_claims(&server.base());
    let token_a = a.sign(Some("a"), &claims);
    let first = auth.verify(&token_a).await.unwrap();
    // A hit returns the same verified token.
    assert!(Arc::ptr_eq(&first, &auth.verify(&token_a).await.unwrap()));

    server.set_keys(vec![b.jwk("b")]);
    let token_b = b.sign(Some("b"), &claims);
    assert!(auth.verify(&token_b).await.is_ok());
    assert_eq!(server.hits(), 2);
    // Key `a` left the set: its cached token no longer passes.
    assert_eq!(auth.verify(&token_a).await.unwrap_err(), Error::UnknownKey);
    assert_eq!(server.hits(), 2, "the cool-down holds back a second fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_known_keys_then_answers_503_after_the_stale_bound() {
    let signer = Signer::es256();
    let mut server = JwksServer::start(vec![signer.jwk("k")]).await;
    server.state.lock().unwrap().cache_control = Some("max-age=1".into());
    let opts = RemoteOptions::new()
        .min_refresh(Duration::from_secs(1))
        .max_refresh(Duration::from_secs(1))
        .max_stale(Duration::from_secs(1))
        .error_backoff(Duration::from_millis(200))
        .timeout(Duration::from_secs(1));
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server).remote_options(opts))
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let token = signer.sign(Some("k"), &good_claims(&server.base()));
    assert!(auth.verify(&token).await.is_ok());

    server.stop().await;
    // Known keys keep working: no request waits on the dead endpoint.
    assert!(auth.verify(&token).await.is_ok());

    // Poll until the stale bound passes (lifetime 1 s + stale 1 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let err = loop {
        match auth.verify(&token).await {
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "keys never went stale"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::KeysUnavailable);
    let resp = error_response(&err, None);
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(!auth.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_without_usable_keys_keeps_the_last_good_set() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .without_cache()
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let token = signer.sign(Some("k"), &good_claims(&server.base()));
    assert!(auth.verify(&token).await.is_ok());

    // The key server faults: an empty set. An unknown kid makes it fetch.
    server.set_keys(vec![]);
    let stranger = Signer::es256().sign(Some("z"), &good_claims(&server.base()));
    assert_eq!(
        auth.verify(&stranger).await.unwrap_err(),
        Error::KeysUnavailable,
        "a fetch that yields no key is a failed fetch, not an answer"
    );
    assert_eq!(server.hits(), 2);
    assert!(
        auth.verify(&token).await.is_ok(),
        "the last good keys stay in use"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_follows_max_age() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    server.state.lock().unwrap().cache_control = Some("public, max-age=1".into());
    let opts = RemoteOptions::new().min_refresh(Duration::from_secs(1));
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server).remote_options(opts))
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while server.hits() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(auth.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_jwks_and_checks_the_issuer() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    let discovery = format!("{}/.well-known/openid-configuration", server.base());
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(server.base())
                .audience("api")
                .discovery_url(discovery.clone()),
        )
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let token = signer.sign(Some("k"), &good_claims(&server.base()));
    assert!(auth.verify(&token).await.is_ok());
    assert_eq!(server.hits(), 1);

    server.state.lock().unwrap().discovery_issuer = Some("https://impostor.example".into());
    let wrong = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(server.base())
                .audience("api")
                .discovery_url(discovery),
        )
        .build()
        .unwrap();
    let err = wrong.ready().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyFetch(m, _) if m.contains("impostor")),
        "{err}"
    );
    assert_eq!(
        wrong.verify(&token).await.unwrap_err(),
        Error::KeysUnavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_side_by_side() {
    let remote_signer = Signer::es256();
    let server = JwksServer::start(vec![remote_signer.jwk("r")]).await;
    let local = Signer::hs256(&[9; 32]);
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .issuer(
            TrustedIssuer::new("https://local.example")
                .audience("api")
                .key(local.verifying_key().with_kid("l")),
        )
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let r = auth
        .verify(&remote_signer.sign(Some("r"), &good_claims(&server.base())))
        .await
        .unwrap();
    assert_eq!(r.issuer(), server.base());
    let l = auth
        .verify(&local.sign(Some("l"), &good_claims("https://local.example")))
        .await
        .unwrap();
    assert_eq!(l.issuer(), "https://local.example");
    // One issuer's key never vouches for the other's tokens.
    let crossed = local.sign(Some("l"), &good_claims(&server.base()));
    assert!(auth.verify(&crossed).await.is_err());
    let crossed = remote_signer.sign(Some("r"), &good_claims("https://local.example"));
    assert_eq!(auth.verify(&crossed).await.unwrap_err(), Error::UnknownKey);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_set_rules_oct_keys_key_urls_and_size_bound() {
    let signer = Signer::es256();
    let attacker = Signer::es256();
    let server = JwksServer::start(vec![
        signer.jwk("k"),
        json!({"kty":"oct","kid":"sym","alg":"HS256","k": support::b64(&[1; 32])}),
    ])
    .await;
    let auth = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .build()
        .unwrap();
    auth.ready().await.unwrap();
    let claims = good_claims(&server.base());
    // A symmetric key published in a JWKS is never used.
    let hs = Signer::hs256(&[1; 32]).sign(Some("sym"), &claims);
    assert_eq!(auth.verify(&hs).await.unwrap_err(), Error::UnknownKey);
    // Key-carrying headers are never followed nor trusted.
    for h in [
        json!({"alg":"ES256","kid":"k","jku": format!("{}/evil", server.base())}),
        json!({"alg":"ES256","kid":"k","x5u": format!("{}/evil", server.base())}),
        json!({"alg":"ES256","kid":"k","jwk": attacker.jwk("k")}),
    ] {
        let t = attacker.sign_raw(&h.to_string(), &claims.to_string());
        assert_eq!(auth.verify(&t).await.unwrap_err(), Error::InvalidSignature);
    }
    assert_eq!(
        server.other_hits.load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    server.state.lock().unwrap().oversized = true;
    let big = Authenticator::builder()
        .issuer(remote_issuer(&server))
        .build()
        .unwrap();
    let err = big.ready().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyFetch(m, _) if m.contains("bytes")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_temporary_not_invalid() {
    // A port nobody listens on: bind, note the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let iss = format!("http://{addr}");
    let auth = Authenticator::builder()
        .issuer(
            TrustedIssuer::new(iss.clone())
                .audience("api")
                .jwks_url(format!("{iss}/keys")),
        )
        .build()
        .unwrap();
    let err = auth.ready().await.unwrap_err();
    assert!(matches!(err, Error::KeyFetch(..)), "{err:?}");
    // The HTTP client's error is kept as the cause, for `source()` chains.
    let cause = std::error::Error::source(&err).expect("a cause");
    assert!(!cause.to_string().is_empty());
    let token = Signer::es256().sign(Some("k"), &good_claims(&iss));
    let err = auth.verify(&token).await.unwrap_err();
    assert_eq!(err, Error::KeysUnavailable);
    assert_eq!(err.status(), 503);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_at_build() {
    let build = |issuer: TrustedIssuer| Authenticator::builder().issuer(issuer).build();
    let iss = || TrustedIssuer::new("https://issuer.example").audience("api");
    for url in [
        "http://issuer.example/.well-known/jwks.json",
        "http://192.0.2.10:8080/keys",
        "http://[2001:db8::1]/keys",
        "ftp://issuer.example/keys",
        "not a url",
    ] {
        for issuer in [iss().jwks_url(url), iss().discovery_url(url)] {
            let Err(err) = build(issuer) else {
                panic!("{url} accepted")
            };
            assert!(matches!(err, ConfigError::Invalid(_)), "{url}: {err:?}");
            assert!(err.to_string().contains(url), "{err}");
        }
    }
    // https anywhere, plain http on loopback hosts, or anywhere when asked.
    for url in [
        "https://issuer.example/.well-known/jwks.json",
        "http://127.0.0.1:1/keys",
        "http://localhost:1/keys",
        "http://[::1]:1/keys",
    ] {
        assert!(build(iss().jwks_url(url)).is_ok(), "{url}");
    }
    let opted_in = iss()
        .jwks_url("http://issuer.example/.well-known/jwks.json")
        .remote_options(RemoteOptions::new().allow_insecure_http());
    assert!(build(opted_in).is_ok());
    let still_ftp = iss()
        .jwks_url("ftp://issuer.example/keys")
        .remote_options(RemoteOptions::new().allow_insecure_http());
    assert!(build(still_ftp).is_err());
}

fn refused_as_other_origin(err: &Error) -> bool {
    matches!(err, Error::KeyFetch(m, _) if m.contains("another origin"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_origin_are_refused() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    // Another port is another origin, though the same host.
    let other = JwksServer::start(vec![Signer::es256().jwk("k")]).await;
    let via_redirect = |opts: RemoteOptions| {
        Authenticator::builder()
            .issuer(
                TrustedIssuer::new(server.base())
                    .audience("api")
                    .jwks_url(server.redirect_url())
                    .remote_options(opts),
            )
            .build()
            .unwrap()
    };
    let token = signer.sign(Some("k"), &good_claims(&server.base()));

    for target in [
        other.jwks_url(),
        // Same host and port, other scheme.
        format!("https://{}/keys", server.addr),
    ] {
        server.state.lock().unwrap().redirect_to = Some(target.clone());
        let auth = via_redirect(RemoteOptions::new());
        let err = auth.ready().await.unwrap_err();
        assert!(refused_as_other_origin(&err), "{target}: {err:?}");
        assert_eq!(
            auth.verify(&token).await.unwrap_err(),
            Error::KeysUnavailable
        );
    }
    assert_eq!(other.hits(), 0, "no request reached the other origin");
    assert_eq!(other.other_hits(), 0);

    // A caller's client that follows any redirect: the answer of the
    // other origin is not taken.
    server.state.lock().unwrap().redirect_to = Some(other.jwks_url());
    let follows_all = reqwest::Client::builder().no_proxy().build().unwrap();
    let auth = via_redirect(RemoteOptions::new().client(follows_all));
    let err = auth.ready().await.unwrap_err();
    assert!(refused_as_other_origin(&err), "{err:?}");
    assert_eq!(
        auth.verify(&token).await.unwrap_err(),
        Error::KeysUnavailable
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_within_the_origin_are_followed() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    let token = signer.sign(Some("k"), &good_claims(&server.base()));
    for target in [server.jwks_url(), "/keys".to_owned()] {
        server.state.lock().unwrap().redirect_to = Some(target);
        let auth = Authenticator::builder()
            .issuer(
                TrustedIssuer::new(server.base())
                    .audience("api")
                    .jwks_url(server.redirect_url()),
            )
            .build()
            .unwrap();
        auth.ready().await.unwrap();
        assert!(auth.verify(&token).await.is_ok());
    }
    assert_eq!(server.hits(), 2);
    assert_eq!(server.other_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_jwks_uri_leaves_the_origin_only_over_https() {
    let signer = Signer::es256();
    let server = JwksServer::start(vec![signer.jwk("k")]).await;
    let other = JwksServer::start(vec![signer.jwk("k")]).await;
    let discovery = format!("{}/.well-known/openid-configuration", server.base());
    for jwks_uri in [other.jwks_url(), "http://keys.example/jwks.json".to_owned()] {
        server.state.lock().unwrap().discovery_jwks_uri = Some(jwks_uri.clone());
        let auth = Authenticator::builder()
            .issuer(
                TrustedIssuer::new(server.base())
                    .audience("api")
                    .discovery_url(discovery.clone()),
            )
            .build()
            .unwrap();
        let err = auth.ready().await.unwrap_err();
        assert!(
            matches!(&err, Error::KeyFetch(m, _) if m.contains("jwks_uri")),
            "{jwks_uri}: {err:?}"
        );
    }
    assert_eq!(other.hits(), 0);
    assert_eq!(server.hits(), 0);
}

/// How the second runtime meets the keys again.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Ready,
    /// A token the verified-token cache holds since the first runtime.
    CachedVerify,
    UncachedVerify,
}

#[test]
fn background_refresh_restarts_after_its_runtime_is_dropped() {
    // The JWKS server runs on a runtime of its own that outlives the others.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let signer = Signer::es256();
    let server = server_rt.block_on(JwksServer::start(vec![signer.jwk("k")]));
    server.state.lock().unwrap().cache_control = Some("public, max-age=1".into());
    let token = signer.sign(Some("k"), &good_claims(&server.base()));
    for trigger in [
        Trigger::Ready,
        Trigger::CachedVerify,
        Trigger::UncachedVerify,
    ] {
        let builder = Authenticator::builder().issuer(
            remote_issuer(&server)
                .remote_options(RemoteOptions::new().min_refresh(Duration::from_secs(1))),
        );
        let auth = match trigger {
            Trigger::UncachedVerify => builder.without_cache(),
            _ => builder,
        }
        .build()
        .unwrap();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        first.block_on(async {
            auth.ready().await.unwrap();
            auth.verify(&token).await.unwrap();
        });
        // The background refresh started on `first` ends with it.
        drop(first);
        let before = server.hits();
        let second = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            // None of these fetches: the keys are loaded and usable.
            match trigger {
                Trigger::Ready => auth.ready().await.unwrap(),
                Trigger::CachedVerify | Trigger::UncachedVerify => {
                    auth.verify(&token).await.unwrap();
                }
            }
            // Only a background refresh fetches now: every 0.75 s.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while server.hits() < before + 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{trigger:?}: no background refresh after the first runtime was dropped"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(auth.is_ready());
        });
    }
}
