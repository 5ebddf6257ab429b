//! `tollgate token inspect`: decode, and verify against a JWKS.

use std::process::ExitCode;

use crate::Failure;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tollgate_core::policy::{DEFAULT_CREDITS_CLAIM, DEFAULT_IP_CLAIM};
use tollgate_core::{Authenticator, KeySet, TrustedIssuer};

use crate::runtime;

pub(crate) fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn inspect(
    token: &str,
    jwks: Option<&str>,
    iss: Option<String>,
    aud: Option<String>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let (header, payload) = match parts.as_slice() {
        [h, p, _] => (decode_part(h), decode_part(p)),
        _ => (None, None),
    };
    let (Some(header), Some(payload)) = (header, payload) else {
        report(
            as_json,
            &json!({"valid": false, "error": "malformed_token",
            "detail": "not a compact JWS with JSON header and payload"}),
        );
        return Ok(ExitCode::from(1));
    };
    let Some(jwks) = jwks else {
        // Decoding alone says nothing about validity: shown, but a usage
        // error, not a verdict.
        report(
            as_json,
            &json!({"valid": null, "verified": false, "header": header, "claims": payload,
                "detail": "not verified: give --jwks URL|FILE"}),
        );
        return Err(Failure::Usage(
            "the token was decoded but not verified: give --jwks URL|FILE \
             (the issuer's JWKS) to verify it"
                .into(),
        ));
    };
    let iss = iss
        .or_else(|| payload["iss"].as_str().map(str::to_owned))
        .ok_or_else(|| Failure::Usage("the token has no `iss`; give --iss".into()))?;
    let aud = aud
        .or_else(|| match &payload["aud"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        })
        .ok_or_else(|| Failure::Usage("the token has no `aud`; give --aud".into()))?;
    let mut issuer = TrustedIssuer::new(iss).audience(aud);
    if jwks.starts_with("http://") || jwks.starts_with("https://") {
        issuer = issuer.jwks_url(jwks);
    } else {
        let bytes =
            std::fs::read(Path::new(jwks)).map_err(|e| Failure::Usage(format!("{jwks}: {e}")))?;
        let (set, _) =
            KeySet::from_jwks(&bytes).map_err(|e| Failure::Usage(format!("{jwks}: {e}")))?;
        issuer = issuer.keys(set);
    }
    // Inspection checks the signature and claims; it enforces no
    // restriction, so a restricted token is shown, not refused.
    let auth: Authenticator = Authenticator::builder()
        .issuer(issuer)
        .accept_unenforced_claim(DEFAULT_CREDITS_CLAIM)
        .accept_unenforced_claim(DEFAULT_IP_CLAIM)
        .without_cache()
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(runtime)?;
    let verdict = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            auth.verify(token.trim()),
        )
        .await
    });
    let (valid, error) = match verdict {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e)),
        Err(_) => (false, Some(tollgate_core::Error::KeysUnavailable)),
    };
    let mut out = json!({"valid": valid, "verified": true, "header": header, "claims": payload});
    if let Some(e) = &error {
        out["error"] = json!(e.code());
        out["detail"] = json!(e.to_string());
    }
    report(as_json, &out);
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn report(as_json: bool, v: &Value) {
    if as_json {
        println!("{v}");
        return;
    }
    match v["valid"].as_bool() {
        Some(true) => println!("valid"),
        Some(false) => println!(
            "INVALID: {} ({})",
            v["detail"].as_str().unwrap_or("?"),
            v["error"].as_str().unwrap_or("?")
        ),
        None => println!("{}", v["detail"].as_str().unwrap_or("")),
    }
    if !v["header"].is_null() {
        println!("header: {}", v["header"]);
    }
    if let Some(claims) = v["claims"].as_object() {
        println!("claims:");
        for (k, val) in claims {
            let human = match (k.as_str(), val.as_i64()) {
                ("exp" | "iat" | "nbf", Some(t)) => format!("{val}  ({})", ago(t)),
                _ => val.to_string(),
            };
            println!("  {k}: {human}");
        }
    }
}

pub(crate) fn ago(t: i64) -> String {
    let now = tollgate_core::Clock::now_secs(&tollgate_core::SystemClock);
    let d = t - now;
    if d >= 0 {
        format!("in {d} s")
    } else {
        format!("{} s ago", -d)
    }
}
