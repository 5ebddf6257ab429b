//! One test per validation rule, over a static HS256 key (and an ES256 key
//! for algorithm confusion). Where jsonwebtoken 11 on its own lets a token
//! through, the test shows that too, then shows Tollgate refusing it.

#![allow(clippy::unwrap_used)]

use tollgate_conformance::jwt as support;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use support::{Signer, good_claims, now};
use tollgate_core::{Algorithm, Authenticator, Error, TrustedIssuer, Verified, error_response};

const ISS: &str = "https://issuer.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn signer() -> Signer {
    Signer::hs256(SECRET)
}

fn issuer() -> TrustedIssuer {
    TrustedIssuer::new(ISS)
        .audience("api")
        .key(signer().verifying_key().with_kid("k"))
}

fn auth_with(issuer: TrustedIssuer) -> Authenticator {
    Authenticator::builder()
        .issuer(issuer)
        .without_cache()
        .build()
        .unwrap()
}

fn verify_with(issuer: TrustedIssuer, token: &str) -> Result<Arc<Verified>, Error> {
    block_on(auth_with(issuer).verify(token))
}

fn verify(token: &str) -> Result<Arc<Verified>, Error> {
    verify_with(issuer(), token)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn claims_with(changes: Value) -> Value {
    let mut c = good_claims(ISS);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn token(changes: Value) -> String {
    signer().sign(Some("k"), &claims_with(changes))
}

/// What jsonwebtoken 11 says with a careful configuration: algorithm fixed,
/// issuer and audience set.
fn jsonwebtoken_accepts(token: &str) -> bool {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&[ISS]);
    v.set_audience(&["api"]);
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_secret(SECRET), &v)
        .is_ok()
}

#[test]
fn a_good_token_passes_with_its_registered_claims() {
    let t = token(
        json!({"jti": "j1", "client_id": "c1", "scope": "read write", "scp": ["admin"], "nbf": now() - 5}),
    );
    let v = verify(&t).unwrap();
    assert_eq!(v.issuer(), ISS);
    assert_eq!(v.subject(), Some("user-1"));
    assert_eq!(v.audiences(), ["api"]);
    assert_eq!(v.token_id(), Some("j1"));
    assert_eq!(v.client_id(), Some("c1"));
    assert_eq!(v.scopes().collect::<Vec<_>>(), ["read", "write", "admin"]);
    assert!(v.has_scope("write") && !v.has_scope("delete"));
    assert_eq!(v.algorithm(), Algorithm::HS256);
    assert_eq!(v.key_id(), Some("k"));
}

#[test]
fn a_token_is_stored_as_its_grant_only_with_sid_and_sid_exp() {
    use tollgate_core::policy::token_ref;
    let exp = now() + 600;
    let key = |changes: Value| {
        let v = verify(&token(changes)).unwrap();
        let info: &dyn tollgate_core::TokenInfo = &*v;
        let r = token_ref(info);
        (r.token_id.map(str::to_owned), r.expires_at)
    };
    // Tollgate's refresh families: the family, kept until it ends.
    assert_eq!(
        key(json!({"jti": "j", "sid": "fam", "sid_exp": exp + 5000, "exp": exp})),
        (Some("fam".into()), exp + 5000)
    );
    // Another issuer's session id alone: the token keeps its own `jti`.
    assert_eq!(
        key(json!({"jti": "j", "sid": "session", "exp": exp})),
        (Some("j".into()), exp)
    );
}

#[test]
fn end_user_is_the_subject_under_its_client() {
    let user = |sub: &str, client: Option<&str>| {
        let mut c = json!({"sub": sub});
        if let Some(client) = client {
            c["client_id"] = json!(client);
        }
        verify(&token(c)).unwrap().end_user().map(str::to_owned)
    };
    assert_eq!(user("app:alice", Some("app")).as_deref(), Some("alice"));
    assert_eq!(user("app:b:c", Some("app")).as_deref(), Some("b:c"));
    assert_eq!(user("app", Some("app")), None, "the client itself");
    assert_eq!(user("other:alice", Some("app")), None);
    assert_eq!(user("appx:alice", Some("app")), None);
    assert_eq!(user("app:alice", None), None, "no client_id");
}

#[test]
fn alg_none_is_refused() {
    let header = json!({"alg": "none"}).to_string();
    let t = signer().sign_raw(&header, &good_claims(ISS).to_string());
    let unsigned = format!("{}.", t.rsplit_once('.').unwrap().0);
    assert_eq!(verify(&unsigned).unwrap_err(), Error::UnsupportedAlgorithm);
    assert_eq!(verify(&t).unwrap_err(), Error::UnsupportedAlgorithm);
}

#[test]
fn an_hmac_token_never_verifies_against_a_public_key() {
    // The classic confusion: HS256 signed with the public key's bytes.
    let es = Signer::es256();
    let Signer::Es256(kp) = &es else {
        unreachable!()
    };
    let public = aws_lc_rs::signature::KeyPair::public_key(kp)
        .as_ref()
        .to_vec();
    let forged = Signer::hs256(&public).sign(Some("k"), &good_claims(ISS));
    let iss = TrustedIssuer::new(ISS)
        .audience("api")
        .key(es.verifying_key().with_kid("k"));
    assert_eq!(
        verify_with(iss, &forged).unwrap_err(),
        Error::AlgorithmNotAllowed
    );
    // Without kid too.
    let forged = Signer::hs256(&public).sign(None, &good_claims(ISS));
    let iss = TrustedIssuer::new(ISS)
        .audience("api")
        .key(es.verifying_key());
    assert_eq!(
        verify_with(iss, &forged).unwrap_err(),
        Error::AlgorithmNotAllowed
    );
    // And an HMAC secret cannot be built for an asymmetric algorithm.
    assert!(tollgate_core::VerifyingKey::hmac(SECRET, Algorithm::RS256).is_err());
}

#[test]
fn the_issuer_allow_list_restricts_algorithms() {
    let t = token(json!({}));
    let iss = issuer().algorithms([Algorithm::ES256]);
    assert_eq!(
        verify_with(iss, &t).unwrap_err(),
        Error::AlgorithmNotAllowed
    );
    assert!(verify_with(issuer().algorithms([Algorithm::HS256]), &t).is_ok());
}

#[test]
fn exp_is_required() {
    let t = token(json!({"exp": null}));
    assert_eq!(verify(&t).unwrap_err(), Error::MissingClaim("exp".into()));
}

#[test]
fn exp_in_the_past_beyond_leeway_is_refused() {
    assert_eq!(
        verify(&token(json!({"exp": now() - 61}))).unwrap_err(),
        Error::Expired
    );
    assert!(
        verify(&token(json!({"exp": now() - 30}))).is_ok(),
        "within 60 s leeway"
    );
    let strict = issuer().leeway(Duration::ZERO);
    assert_eq!(
        verify_with(strict, &token(json!({"exp": now() - 1}))).unwrap_err(),
        Error::Expired
    );
}

#[test]
fn a_string_exp_is_an_error_not_a_skipped_check() {
    let t = token(json!({"exp": (now() + 600).to_string()}));
    assert_eq!(verify(&t).unwrap_err(), Error::InvalidClaim("exp".into()));
}

#[test]
fn nbf_is_checked_by_default() {
    let t = token(json!({"nbf": now() + 3600}));
    // jsonwebtoken leaves `nbf` unchecked unless asked (validate_nbf = false).
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::NotYetValid);
    assert!(
        verify(&token(json!({"nbf": now() + 30}))).is_ok(),
        "within leeway"
    );
    assert_eq!(
        verify(&token(json!({"nbf": "soon"}))).unwrap_err(),
        Error::InvalidClaim("nbf".into())
    );
}

#[test]
fn iat_in_the_future_is_refused() {
    let t = token(json!({"iat": now() + 3600}));
    assert_eq!(verify(&t).unwrap_err(), Error::IssuedInFuture);
    assert_eq!(
        verify(&token(json!({"iat": "yesterday"}))).unwrap_err(),
        Error::InvalidClaim("iat".into())
    );
}

#[test]
fn an_array_iss_is_refused() {
    let t = token(json!({"iss": [ISS, "https://evil.example"]}));
    // jsonwebtoken reads an array `iss` as "any of these".
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::InvalidIssuer);
}

#[test]
fn a_wrongly_typed_iss_is_refused() {
    let t = token(json!({"iss": 42}));
    // jsonwebtoken skips the issuer check when `iss` does not parse.
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::InvalidIssuer);
}

#[test]
fn iss_must_match_exactly() {
    for other in [
        "https://issuer.example/",
        "https://ISSUER.example",
        "https://other.example",
    ] {
        assert_eq!(
            verify(&token(json!({"iss": other}))).unwrap_err(),
            Error::InvalidIssuer
        );
    }
    assert_eq!(
        verify(&token(json!({"iss": null}))).unwrap_err(),
        Error::MissingClaim("iss".into())
    );
}

#[test]
fn aud_is_required_and_must_contain_a_configured_audience() {
    assert_eq!(
        verify(&token(json!({"aud": null}))).unwrap_err(),
        Error::MissingClaim("aud".into())
    );
    assert_eq!(
        verify(&token(json!({"aud": "other"}))).unwrap_err(),
        Error::InvalidAudience
    );
    assert_eq!(
        verify(&token(json!({"aud": []}))).unwrap_err(),
        Error::InvalidAudience
    );
    assert!(verify(&token(json!({"aud": ["other", "api"]}))).is_ok());
}

#[test]
fn a_wrongly_typed_aud_is_refused() {
    let t = token(json!({"aud": 7}));
    // jsonwebtoken skips the audience check when `aud` does not parse.
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::InvalidClaim("aud".into()));
    let t = token(json!({"aud": {"api": true}}));
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::InvalidClaim("aud".into()));
}

#[test]
fn crit_headers_are_refused() {
    let header = json!({"alg": "HS256", "kid": "k", "crit": ["exp"], "exp": 1}).to_string();
    let t = signer().sign_raw(&header, &good_claims(ISS).to_string());
    // jsonwebtoken parses `crit` but never acts on it.
    assert!(jsonwebtoken_accepts(&t));
    assert_eq!(verify(&t).unwrap_err(), Error::UnsupportedCriticalHeader);
}

#[test]
fn a_header_must_be_an_object_with_registered_members_of_their_types() {
    let payload = good_claims(ISS).to_string();
    let malformed = |header: &str| {
        let t = signer().sign_raw(header, &payload);
        match verify(&t) {
            Err(Error::MalformedToken(_)) => {}
            other => panic!("{header}: {other:?}"),
        }
    };
    // `null` is a value of the wrong type, not an absent member: with a
    // single key, a `kid: null` token would otherwise pick it.
    malformed(r#"{"alg":"HS256","kid":null}"#);
    malformed(r#"{"alg":"HS256","kid":"k","typ":null}"#);
    malformed(r#"{"alg":"HS256","kid":"k","crit":null}"#);
    malformed(r#"{"alg":"HS256","kid":"k","crit":"exp"}"#);
    malformed(r#"{"alg":"HS256","kid":5}"#);
    malformed(r#"["HS256","k"]"#);
    malformed(r#"{"alg":"HS256","kid":"k","kid":"k"}"#);
    // The same header with proper members verifies.
    let t = signer().sign_raw(r#"{"alg":"HS256","kid":"k","typ":"JWT"}"#, &payload);
    assert!(verify(&t).is_ok());
}

#[test]
fn a_kid_longer_than_256_bytes_is_malformed() {
    let payload = good_claims(ISS).to_string();
    let long = "k".repeat(257);
    let t = signer().sign_raw(&json!({"alg": "HS256", "kid": long}).to_string(), &payload);
    assert_eq!(
        verify(&t).unwrap_err(),
        Error::MalformedToken("kid is too long")
    );
}

#[test]
fn typ_is_checked_when_required() {
    let at = issuer().require_type("at+jwt");
    let with_typ = |typ: Value| {
        let header = json!({"alg": "HS256", "kid": "k", "typ": typ}).to_string();
        signer().sign_raw(&header, &good_claims(ISS).to_string())
    };
    assert!(verify_with(at.clone(), &with_typ(json!("at+jwt"))).is_ok());
    assert!(verify_with(at.clone(), &with_typ(json!("application/at+JWT"))).is_ok());
    assert_eq!(
        verify_with(at.clone(), &with_typ(json!("JWT"))).unwrap_err(),
        Error::InvalidType
    );
    let plain = signer().sign_raw(
        r#"{"alg":"HS256","kid":"k"}"#,
        &good_claims(ISS).to_string(),
    );
    assert_eq!(verify_with(at, &plain).unwrap_err(), Error::InvalidType);
    assert!(
        verify(&with_typ(json!("JWT"))).is_ok(),
        "not checked unless asked"
    );
}

#[test]
fn required_claims_are_enforced() {
    let iss = issuer().require_claim("jti");
    assert_eq!(
        verify_with(iss.clone(), &token(json!({}))).unwrap_err(),
        Error::MissingClaim("jti".into())
    );
    assert!(verify_with(iss, &token(json!({"jti": "x"}))).is_ok());
}

#[test]
fn signature_and_key_failures() {
    let t = token(json!({}));
    let (rest, sig) = t.rsplit_once('.').unwrap();
    let flipped = format!(
        "{rest}.{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    assert_eq!(verify(&flipped).unwrap_err(), Error::InvalidSignature);
    let other = Signer::hs256(&[5; 32]).sign(Some("k"), &good_claims(ISS));
    assert_eq!(verify(&other).unwrap_err(), Error::InvalidSignature);
    let unknown = signer().sign(Some("nope"), &good_claims(ISS));
    assert_eq!(verify(&unknown).unwrap_err(), Error::UnknownKey);
    let tampered_payload = {
        let parts: Vec<&str> = t.split('.').collect();
        let evil = support::b64(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
        format!("{}.{}.{}", parts[0], evil, parts[2])
    };
    assert_eq!(
        verify(&tampered_payload).unwrap_err(),
        Error::InvalidSignature
    );
}

#[test]
fn malformed_tokens_get_typed_errors() {
    let good = token(json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "not-a-jwt".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("%%%.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", support::b64(b"[]"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], support::b64(b"\"str\""), parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            support::b64(b"{\"exp\":1,\"exp\":2}"),
            parts[2]
        ),
    ];
    for c in cases {
        let err = verify(&c).unwrap_err();
        assert!(matches!(err, Error::MalformedToken(_)), "{c}: {err:?}");
        assert_eq!(err.status(), 401);
    }
}

#[derive(Debug, Deserialize)]
struct Plan {
    tier: String,
    #[serde(deserialize_with = "tollgate_core::claims::u64_or_string")]
    credits: u64,
}

#[test]
fn typed_application_claims_from_the_same_payload() {
    let auth = Authenticator::builder()
        .check_claims::<Plan>()
        // `credits` here is the application's own claim, read as `Plan`.
        .accept_unenforced_claim("credits")
        .issuer(issuer())
        .build()
        .unwrap();
    let t = token(json!({"tier": "gold", "credits": "10"}));
    let v = block_on(auth.verify(&t)).unwrap();
    assert_eq!(v.claims::<Plan>().unwrap().tier, "gold");
    assert_eq!(v.claims::<Plan>().unwrap().credits, 10);
    let t = token(json!({"tier": "gold", "credits": 12}));
    assert_eq!(
        block_on(auth.verify(&t))
            .unwrap()
            .claims::<Plan>()
            .unwrap()
            .credits,
        12
    );
    let t = token(json!({"tier": 5, "credits": 1}));
    assert!(matches!(
        block_on(auth.verify(&t)).unwrap_err(),
        Error::InvalidClaim(_)
    ));
    let t = token(json!({"credits": 1}));
    assert_eq!(
        block_on(auth.verify(&t)).unwrap_err(),
        Error::InvalidClaim("tier".into())
    );
}

#[test]
fn the_verified_cache_still_checks_exp_on_every_hit() {
    let auth = Authenticator::builder()
        .issuer(issuer().leeway(Duration::ZERO))
        .build()
        .unwrap();
    let exp = now() + 1;
    let t = token(json!({"exp": exp}));
    block_on(async {
        let first = auth.verify(&t).await.unwrap();
        assert!(Arc::ptr_eq(&first, &auth.verify(&t).await.unwrap()));
        // Wait for the clock to pass `exp`; the entry is still cached.
        while now() <= exp {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(auth.verify(&t).await.unwrap_err(), Error::Expired);
    });
}

#[test]
fn error_answers_never_contain_the_token() {
    let tokens = [
        token(json!({"exp": now() - 3600})),
        token(json!({"iss": "https://other.example"})),
        token(json!({"aud": "other"})),
        Signer::hs256(&[5; 32]).sign(Some("k"), &good_claims(ISS)),
        signer().sign(Some("a-very-distinct-kid-value"), &good_claims(ISS)),
        token(json!({"exp": "a-distinct-string-exp"})),
    ];
    for t in tokens {
        let err = verify(&t).unwrap_err();
        let resp = error_response(&err, Some("api"));
        let text = format!("{:?} {} {err} {err:?}", resp.headers(), resp.body());
        for part in t.split('.') {
            assert!(!text.contains(part), "{} leaks a token part", err.code());
        }
        assert!(
            !text.contains("a-very-distinct-kid-value") && !text.contains("a-distinct-string-exp")
        );
        assert_eq!(resp.status(), 401);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
}

#[test]
fn mangled_tokens_never_panic_and_never_pass() {
    // A small xorshift generator: deterministic, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let auth = auth_with(issuer());
    let good = token(json!({}));
    let alphabet = b"ABCxyz019-_.=+/ {}\"\\\x00\xff";
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rejected = 0;
        for _ in 0..20_000 {
            let mut bytes = good.clone().into_bytes();
            for _ in 0..1 + next() % 4 {
                let i = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[i] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, alphabet[(next() % alphabet.len() as u64) as usize]),
                }
            }
            let mangled = String::from_utf8_lossy(&bytes).into_owned();
            if mangled == good {
                continue;
            }
            assert!(
                auth.verify(&mangled).await.is_err(),
                "a mangled token passed: {mangled}"
            );
            rejected += 1;
        }
        assert!(rejected > 19_000);
    });
}
