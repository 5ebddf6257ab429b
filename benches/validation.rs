//! Full token validation per algorithm, next to the bare signature check it
//! contains, and on a verified-token cache hit.
//!
//! `cargo bench --bench validation`. Groups: `<alg>/signature` (the
//! primitive alone, key parsed, signature decoded), `<alg>/full` (extract
//! nothing, verify everything, cache off), `<alg>/cache_hit`, and
//! `HS256/jsonwebtoken_decode` for reference.

#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

const ISS: &str = "https://issuer.example";

/// Polls a future that completes without waiting (static keys never wait).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("verification waited"),
    }
}

type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

struct Case {
    alg: Algorithm,
    /// HMAC secret or public key DER.
    material: Vec<u8>,
    sign: SignFn,
}

impl Case {
    fn key(&self) -> VerifyingKey {
        if self.alg.is_symmetric() {
            VerifyingKey::hmac(&self.material, self.alg).unwrap()
        } else {
            VerifyingKey::from_der(&self.material, self.alg).unwrap()
        }
    }
}

fn cases() -> Vec<Case> {
    let rng = SystemRandom::new();
    let mut out = Vec::new();

    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    out.push(Case {
        alg: Algorithm::HS256,
        material: secret,
        sign: Box::new(move |m| aws_lc_rs::hmac::sign(&hkey, m).as_ref().to_vec()),
    });

    for (alg, padding) in [
        (
            Algorithm::RS256,
            &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding,
        ),
        (Algorithm::PS256, &sig::RSA_PSS_SHA256),
    ] {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let material = kp.public_key().as_ref().to_vec();
        let rng = rng.clone();
        out.push(Case {
            alg,
            material,
            sign: Box::new(move |m| {
                let mut s = vec![0; kp.public_modulus_len()];
                kp.sign(padding, &rng, m, &mut s).unwrap();
                s
            }),
        });
    }

    for (alg, signing) in [
        (Algorithm::ES256, &sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        (Algorithm::ES384, &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
    ] {
        let kp = sig::EcdsaKeyPair::generate(signing).unwrap();
        let material = kp.public_key().as_ref().to_vec();
        let rng = rng.clone();
        out.push(Case {
            alg,
            material,
            sign: Box::new(move |m| kp.sign(&rng, m).unwrap().as_ref().to_vec()),
        });
    }

    let kp = sig::Ed25519KeyPair::generate().unwrap();
    out.push(Case {
        alg: Algorithm::EdDSA,
        material: kp.public_key().as_ref().to_vec(),
        sign: Box::new(move |m| kp.sign(m).as_ref().to_vec()),
    });
    out
}

fn token(case: &Case) -> (String, Vec<u8>, Vec<u8>) {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let header = json!({"alg": case.alg.as_str(), "typ": "JWT", "kid": "k1"}).to_string();
    let claims = json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": exp,
                        "iat": exp - 86_400, "jti": "c6b0f1e2", "scope": "read write"})
    .to_string();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let s = (case.sign)(input.as_bytes());
    (
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(&s)),
        input.into_bytes(),
        s,
    )
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        let (token, input, signature) = token(&case);
        let name = case.alg.as_str();
        let mut g = c.benchmark_group(name);
        g.measurement_time(Duration::from_secs(3));
        g.warm_up_time(Duration::from_secs(1));

        let key = case.key();
        g.bench_function("signature", |b| {
            b.iter(|| assert!(key.verify(black_box(&input), black_box(&signature))))
        });

        let issuer = || {
            TrustedIssuer::new(ISS)
                .audience("api")
                .key(case.key().with_kid("k1"))
        };
        let cold = Authenticator::builder()
            .issuer(issuer())
            .without_cache()
            .build()
            .unwrap();
        g.bench_function("full", |b| {
            b.iter(|| ready(cold.verify(black_box(&token))).unwrap())
        });

        let cached = Authenticator::builder().issuer(issuer()).build().unwrap();
        ready(cached.verify(&token)).unwrap();
        g.bench_function("cache_hit", |b| {
            b.iter(|| ready(cached.verify(black_box(&token))).unwrap())
        });

        if case.alg == Algorithm::HS256 {
            let secret = &case.material;
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            v.set_issuer(&[ISS]);
            v.set_audience(&["api"]);
            let dk = jsonwebtoken::DecodingKey::from_secret(secret);
            g.bench_function("jsonwebtoken_decode", |b| {
                b.iter(|| {
                    jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &dk, &v).unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
