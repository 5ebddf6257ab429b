//! Public test vectors: the RFC 7520 JOSE cookbook signatures and the
//! Wycheproof JWS and signature-primitive files.
//!
//! The vectors live beside the checkout (`../shared/vectors`) or where
//! `TOLLGATE_VECTORS` points; they are read, never copied in. When they are
//! absent the tests fail, unless `TOLLGATE_VECTORS_OPTIONAL=1` (then they
//! warn and pass).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tollgate_core::{Algorithm, Jwk, JwkTrust, VerifyingKey, jws};

fn vectors() -> Option<PathBuf> {
    let dir = std::env::var_os("TOLLGATE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vectors"
            ))
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("TOLLGATE_VECTORS_OPTIONAL").as_deref() == Ok("1") {
        eprintln!(
            "warning: test vectors not found at {}; skipped",
            dir.display()
        );
        return None;
    }
    panic!(
        "test vectors not found at {} (set TOLLGATE_VECTORS, or TOLLGATE_VECTORS_OPTIONAL=1 to skip)",
        dir.display()
    );
}

fn load(dir: &std::path::Path, rel: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rfc7520_cookbook_signatures_verify() {
    let Some(dir) = vectors() else { return };
    for file in [
        "jose-cookbook/jws/4_1.rsa_v15_signature.json",
        "jose-cookbook/jws/4_2.rsa-pss_signature.json",
        "jose-cookbook/jws/4_3.ecdsa_signature.json",
        "jose-cookbook/jws/4_4.hmac-sha2_integrity_protection.json",
    ] {
        let v = load(&dir, file);
        let mut jwk: Jwk = serde_json::from_value(v["input"]["key"].clone()).unwrap();
        // Keys are bound to an explicit algorithm, as configuration would.
        jwk.alg
            .get_or_insert_with(|| v["input"]["alg"].as_str().unwrap().to_owned());
        let key = VerifyingKey::from_jwk(&jwk, JwkTrust::Local).unwrap();
        let compact = v["output"]["compact"].as_str().unwrap();
        let payload = jws::verify_compact(compact, &key).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            payload,
            v["input"]["payload"].as_str().unwrap().as_bytes(),
            "{file}"
        );

        let (rest, sig) = compact.rsplit_once('.').unwrap();
        let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig_bytes[0] ^= 1;
        let tampered = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(&sig_bytes));
        assert!(
            jws::verify_compact(&tampered, &key).is_err(),
            "{file}: tampered signature verified"
        );
        if jwk.kty == "oct" {
            assert!(
                VerifyingKey::from_jwk(&jwk, JwkTrust::Remote).is_err(),
                "oct key from a remote set"
            );
        }
    }
}

#[test]
fn wycheproof_json_web_signatures() {
    let Some(dir) = vectors() else { return };
    let v = load(
        &dir,
        "wycheproof/testvectors_v1/json_web_signature_test.json",
    );
    let (mut valid, mut invalid, mut refused_key, mut skipped, mut stricter, mut conflicted) =
        (0, 0, 0, 0, 0, 0);
    // Tokens the file lists with both results.
    let mut results: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for group in v["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            if let (Some(t), Some(r)) = (test["jws"].as_str(), test["result"].as_str()) {
                results.entry(t).or_default().push(r);
            }
        }
    }
    let conflicting: std::collections::HashSet<&str> = results
        .iter()
        .filter(|(_, r)| r.contains(&"valid") && r.contains(&"invalid"))
        .map(|(t, _)| *t)
        .collect();
    for group in v["testGroups"].as_array().unwrap() {
        let jwk_value = group.get("public").unwrap_or(&group["private"]).clone();
        let key = serde_json::from_value::<Jwk>(jwk_value)
            .ok()
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk, JwkTrust::Local).ok());
        for test in group["tests"].as_array().unwrap() {
            let (Some(token), Some(result)) = (test["jws"].as_str(), test["result"].as_str())
            else {
                skipped += 1; // JSON serialization: Tollgate reads compact tokens only
                continue;
            };
            let id = test["tcId"].as_i64().unwrap();
            let Some(key) = &key else {
                // Keys Tollgate refuses (`use: enc`, `key_ops: encrypt`) must
                // never have had a valid signature to offer, except keys whose
                // JWK `alg` is no JOSE algorithm at all (`ES521`), which
                // Tollgate refuses rather than guess.
                let jwk_alg = group.get("public").and_then(|p| p["alg"].as_str());
                assert!(
                    result != "valid" || jwk_alg.is_some_and(|a| Algorithm::from_name(a).is_none()),
                    "tcId {id}: a valid case with a refused key"
                );
                refused_key += 1;
                continue;
            };
            if conflicting.contains(token) {
                // The file labels these exact bytes both valid and invalid
                // (its padding cases lost their `=`); no answer can match both.
                conflicted += 1;
                continue;
            }
            let outcome = jws::verify_compact(token, key);
            if result == "valid"
                && !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                // Wycheproof accepts decoders that skip stray characters;
                // Tollgate's base64url is strict and refuses the token.
                assert!(outcome.is_err(), "tcId {id}");
                stricter += 1;
                continue;
            }
            if result == "valid" && header_alg(token).is_some_and(|a| a != key.algorithm().as_str())
            {
                // The JWK names one algorithm and the token another (RFC 7520's
                // PS384 figure under a PS256 key). Wycheproof calls some of these
                // valid; Tollgate binds each key to its JWK `alg` and refuses.
                assert_eq!(
                    outcome,
                    Err(tollgate_core::Error::AlgorithmNotAllowed),
                    "tcId {id}"
                );
                stricter += 1;
                continue;
            }
            match result {
                "valid" => {
                    assert!(
                        outcome.is_ok(),
                        "tcId {id} ({}): {outcome:?}",
                        test["comment"]
                    );
                    valid += 1;
                }
                "invalid" => {
                    assert!(outcome.is_err(), "tcId {id} ({}) verified", test["comment"]);
                    invalid += 1;
                }
                _ => {}
            }
        }
    }
    eprintln!(
        "JWS vectors: {valid} valid, {invalid} invalid, {refused_key} with refused keys, \
         {stricter} refused where Tollgate is stricter, {conflicted} labelled both ways, \
         {skipped} JSON-serialized skipped"
    );
    assert!(
        valid >= 10 && invalid >= 100,
        "too few cases ran: {valid} valid, {invalid} invalid"
    );
}

/// The `alg` of a compact token's header, if readable.
fn header_alg(token: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    let v: Value = serde_json::from_slice(&header).ok()?;
    Some(v["alg"].as_str()?.to_owned())
}

/// Runs a Wycheproof signature file through `VerifyingKey::verify`.
fn primitive(
    file: &str,
    alg: Algorithm,
    key_of: impl Fn(&Value) -> Option<VerifyingKey>,
) -> (usize, usize) {
    let Some(dir) = vectors() else { return (0, 0) };
    let v = load(&dir, &format!("wycheproof/testvectors_v1/{file}"));
    let (mut ran, mut refused) = (0, 0);
    for group in v["testGroups"].as_array().unwrap() {
        let Some(key) = key_of(group) else {
            refused += 1;
            continue;
        };
        assert_eq!(key.algorithm(), alg);
        for test in group["tests"].as_array().unwrap() {
            let ok = key.verify(
                &hex(test["msg"].as_str().unwrap()),
                &hex(test["sig"].as_str().unwrap()),
            );
            let id = test["tcId"].as_i64().unwrap();
            match test["result"].as_str().unwrap() {
                "valid" => assert!(ok, "{file} tcId {id} ({}) rejected", test["comment"]),
                "invalid" => assert!(!ok, "{file} tcId {id} ({}) accepted", test["comment"]),
                _ => {}
            }
            ran += 1;
        }
    }
    eprintln!("{file}: {ran} cases, {refused} groups with keys Tollgate refuses");
    (ran, refused)
}

fn der_key(alg: Algorithm) -> impl Fn(&Value) -> Option<VerifyingKey> {
    move |g| VerifyingKey::from_der(&hex(g["publicKeyDer"].as_str()?), alg).ok()
}

#[test]
fn wycheproof_ecdsa_p1363() {
    for (file, alg) in [
        ("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::ES256),
        ("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::ES384),
        ("ecdsa_secp521r1_sha512_p1363_test.json", Algorithm::ES512),
    ] {
        let (ran, _) = primitive(file, alg, der_key(alg));
        assert!(vectors().is_none() || ran > 100, "{file}: {ran}");
    }
}

#[test]
fn wycheproof_ed25519() {
    let (ran, refused) = primitive(
        "ed25519_test.json",
        Algorithm::EdDSA,
        der_key(Algorithm::EdDSA),
    );
    assert!(
        vectors().is_none() || (ran > 100 && refused == 0),
        "{ran} {refused}"
    );
}

#[test]
fn wycheproof_rsa_pkcs1_and_pss() {
    let (ran, _) = primitive(
        "rsa_signature_2048_sha256_test.json",
        Algorithm::RS256,
        der_key(Algorithm::RS256),
    );
    assert!(vectors().is_none() || ran > 100, "{ran}");
    // JWS PS256 is PSS with MGF1-SHA256 and a 32-byte salt.
    let (ran, _) = primitive(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Algorithm::PS256,
        der_key(Algorithm::PS256),
    );
    assert!(vectors().is_none() || ran > 50, "{ran}");
}

#[test]
fn wycheproof_hmac_sha256_full_tags() {
    let Some(dir) = vectors() else { return };
    let v = load(&dir, "wycheproof/testvectors_v1/hmac_sha256_test.json");
    let (mut ran, mut short_keys) = (0, 0);
    for group in v["testGroups"].as_array().unwrap() {
        if group["tagSize"].as_u64() != Some(256) {
            continue; // JWS HS256 carries the full tag only
        }
        for test in group["tests"].as_array().unwrap() {
            let secret = hex(test["key"].as_str().unwrap());
            let Ok(key) = VerifyingKey::hmac(&secret, Algorithm::HS256) else {
                assert!(secret.len() < 32, "a 32-byte-or-longer secret was refused");
                short_keys += 1;
                continue;
            };
            let ok = key.verify(
                &hex(test["msg"].as_str().unwrap()),
                &hex(test["tag"].as_str().unwrap()),
            );
            let id = test["tcId"].as_i64().unwrap();
            match test["result"].as_str().unwrap() {
                "valid" => assert!(ok, "tcId {id} rejected"),
                "invalid" => assert!(!ok, "tcId {id} accepted"),
                _ => {}
            }
            ran += 1;
        }
    }
    eprintln!("hmac_sha256: {ran} cases, {short_keys} with secrets under 32 bytes refused");
    assert!(ran > 20, "{ran}");
}
