//! In-process cost of the axum layer: one request through a bare router and
//! through the same router behind `AuthLayer` (HS256, token cache on/off).
//!
//! `cargo bench --bench middleware --features axum`

#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tollgate::axum::AuthLayer;
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
use tower::{Service, ServiceExt};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("request waited"),
    }
}

fn token() -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let claims = serde_json::json!({"iss": "https://issuer.example", "sub": "user-1", "aud": "api",
        "exp": exp, "iat": exp - 86_400, "jti": "c6b0f1e2", "scope": "read write"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn bench(c: &mut Criterion) {
    let token = token();
    let request = || {
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let handler = || Router::new().route("/", get(|| async { "ok" }));
    let layered = |cache: bool| {
        let mut b = Authenticator::builder().issuer(
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .key(
                    VerifyingKey::hmac(SECRET, Algorithm::HS256)
                        .unwrap()
                        .with_kid("k1"),
                ),
        );
        if !cache {
            b = b.without_cache();
        }
        handler().layer(AuthLayer::new(b.build().unwrap()))
    };
    let mut g = c.benchmark_group("axum_request");
    g.measurement_time(Duration::from_secs(3));
    for (name, router) in [
        ("bare", handler()),
        ("hs256_cache", layered(true)),
        ("hs256_no_cache", layered(false)),
    ] {
        let mut svc = router.into_service::<Body>();
        g.bench_function(name, |b| {
            b.iter(|| {
                let svc = ready(svc.ready()).unwrap();
                let resp = ready(svc.call(black_box(request()))).unwrap();
                assert_eq!(resp.status(), 200);
                resp
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
