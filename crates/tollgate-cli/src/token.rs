//! `tollgate token inspect`: decode; verify against a JWKS or the data
//! directory's keys; ask the token server about revocation and credits.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tollgate_core::policy::{DEFAULT_CREDITS_CLAIM, DEFAULT_IP_CLAIM};
use tollgate_core::{Authenticator, DEFAULT_LEEWAY, KeySet, TrustedIssuer};
use tollgate_issuer::KeyRing;

use crate::Failure;
use crate::output::{date, outln};
use crate::runtime;

/// Exit status of a token that was not judged: its keys, or the server,
/// could not be reached.
const UNAVAILABLE: u8 = 3;

/// How long a key fetch or an introspection may take.
const NETWORK_BOUND: Duration = Duration::from_secs(10);

/// What inspection can check; revocation and credits only at the server.
const ALL_CHECKS: [&str; 8] = [
    "signature",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "revocation",
    "credits",
];

/// Where the verification keys come from.
pub(crate) enum KeySource {
    /// A JWKS URL or file.
    Jwks(String),
    /// The data directory's key ring.
    Local(KeyRing),
}

/// The token server to introspect at.
pub(crate) struct Introspect {
    pub(crate) url: String,
    pub(crate) client: String,
}

pub(crate) fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The token as given: an argument, or `-` for standard input; surrounding
/// white space and a `Bearer ` prefix (as pasted from a header) removed.
fn read_token(arg: &str) -> Result<String, Failure> {
    let raw = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| {
                Failure::Usage(format!("cannot read the token from standard input: {e}"))
            })?;
        text
    } else {
        arg.to_owned()
    };
    let t = raw.trim();
    let t = match t.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => t,
    };
    Ok(t.to_owned())
}

pub(crate) fn inspect(
    token_arg: &str,
    source: Option<KeySource>,
    server: Option<Introspect>,
    iss: Option<String>,
    aud: Option<String>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let token = read_token(token_arg)?;
    let parts: Vec<&str> = token.split('.').collect();
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
    let mut out = json!({"header": header, "claims": payload});
    if source.is_none() && server.is_none() {
        // Decoding alone says nothing about validity: shown, but a usage
        // error, not a verdict.
        out["valid"] = Value::Null;
        out["verified"] = json!(false);
        out["detail"] =
            json!("decoded, not verified: give --jwks URL|FILE, --local or --introspect URL");
        report(as_json, &out);
        return Err(Failure::Usage(
            "the token was decoded but not verified: give --jwks URL|FILE (the issuer's JWKS), \
             --local (the data directory's keys) or --introspect URL (the token server)"
                .into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(runtime)?;
    let mut checked: Vec<&str> = Vec::new();
    let mut code = 0u8;
    if let Some(source) = source {
        let auth = authenticator(source, &payload, iss, aud)?;
        let verdict = rt.block_on(async {
            tokio::time::timeout(NETWORK_BOUND, async {
                // Fetching the keys first keeps the fetch's own error
                // (the URL and why), which a verify would only call
                // "keys unavailable".
                auth.ready().await?;
                auth.verify(&token).await
            })
            .await
        });
        checked.extend(["signature", "exp", "nbf", "iat", "iss", "aud"]);
        match verdict {
            Ok(Ok(v)) => {
                out["valid"] = json!(true);
                let late =
                    tollgate_core::Clock::now_secs(&tollgate_core::SystemClock) - v.expires_at();
                if late > 0 {
                    out["detail"] = json!(format!(
                        "expired {late} s ago, accepted within the {} s clock leeway",
                        DEFAULT_LEEWAY.as_secs()
                    ));
                }
            }
            Ok(Err(e)) if e.is_temporary() => {
                out["valid"] = Value::Null;
                out["error"] = json!(e.code());
                out["detail"] = json!(format!(
                    "keys unavailable: {}",
                    tollgate_core::with_causes(&e)
                ));
                code = UNAVAILABLE;
            }
            Ok(Err(e)) => {
                out["valid"] = json!(false);
                out["error"] = json!(e.code());
                out["detail"] = json!(e.to_string());
                code = 1;
            }
            Err(_) => {
                out["valid"] = Value::Null;
                out["error"] = json!("keys_unavailable");
                out["detail"] = json!(format!(
                    "keys unavailable: no answer within {} s",
                    NETWORK_BOUND.as_secs()
                ));
                code = UNAVAILABLE;
            }
        }
    }
    if let Some(server) = server
        && code != 1
    {
        checked.extend(["revocation", "credits"]);
        match rt.block_on(introspect(&server, &token)) {
            Ok(answer) => {
                // The server verified the token as well: every check ran.
                checked = ALL_CHECKS.to_vec();
                let active = answer["active"].as_bool() == Some(true);
                let remaining = answer["credits_remaining"].as_u64();
                out["server"] = answer;
                if !active {
                    out["valid"] = json!(false);
                    out["error"] = json!("inactive");
                    out["detail"] = json!(
                        "the server says inactive: revoked, expired, not its token, \
                         or not a token of this client"
                    );
                    code = 1;
                } else if remaining == Some(0) {
                    out["valid"] = json!(false);
                    out["error"] = json!("credits_exhausted");
                    out["detail"] = json!("every credit is spent");
                    code = 1;
                } else if code == 0 {
                    out["valid"] = json!(true);
                }
            }
            Err(Failure::Usage(e)) => return Err(Failure::Usage(e)),
            Err(Failure::Runtime(e)) => {
                out["valid"] = Value::Null;
                out["error"] = json!("server_unavailable");
                out["detail"] = json!(format!("server unavailable: {e}"));
                code = UNAVAILABLE;
            }
        }
    }
    out["verified"] = json!(checked.contains(&"signature"));
    out["checked"] = json!(checked);
    out["not_checked"] = json!(
        ALL_CHECKS
            .iter()
            .filter(|c| !checked.contains(c))
            .collect::<Vec<_>>()
    );
    report(as_json, &out);
    Ok(ExitCode::from(code))
}

fn authenticator(
    source: KeySource,
    payload: &Value,
    iss: Option<String>,
    aud: Option<String>,
) -> Result<Authenticator, Failure> {
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
    match source {
        KeySource::Jwks(jwks) if jwks.starts_with("http://") || jwks.starts_with("https://") => {
            issuer = issuer.jwks_url(jwks);
        }
        KeySource::Jwks(file) => {
            let bytes = std::fs::read(Path::new(&file))
                .map_err(|e| Failure::Usage(format!("{file}: {e}")))?;
            let (set, _) =
                KeySet::from_jwks(&bytes).map_err(|e| Failure::Usage(format!("{file}: {e}")))?;
            issuer = issuer.keys(set);
        }
        KeySource::Local(ring) => {
            issuer = issuer.keys(ring.key_set().map_err(|e| Failure::Usage(e.to_string()))?);
        }
    }
    // Inspection checks the signature and claims; it enforces no
    // restriction, so a restricted token is shown, not refused.
    Authenticator::builder()
        .issuer(issuer)
        .accept_unenforced_claim(DEFAULT_CREDITS_CLAIM)
        .accept_unenforced_claim(DEFAULT_IP_CLAIM)
        .without_cache()
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// RFC 7662 introspection as `server.client`, its secret from
/// `TOLLGATE_CLIENT_SECRET`. A usage failure for bad credentials, a runtime
/// one when the server cannot answer.
async fn introspect(server: &Introspect, token: &str) -> Result<Value, Failure> {
    let secret = std::env::var("TOLLGATE_CLIENT_SECRET").map_err(|_| {
        Failure::Usage("--introspect needs the client's secret in TOLLGATE_CLIENT_SECRET".into())
    })?;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", enc(&server.client), enc(&secret)));
    let url = format!("{}/connect/introspect", server.url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(NETWORK_BOUND)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Runtime(tollgate_core::with_causes(&e)))?;
    let resp = http
        .post(&url)
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", enc(token)))
        .send()
        .await
        .map_err(|e| Failure::Runtime(format!("{url}: {}", tollgate_core::with_causes(&e))))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Failure::Usage(format!(
            "{url}: client `{}` was refused (check --client and TOLLGATE_CLIENT_SECRET)",
            server.client
        )));
    }
    if !status.is_success() {
        return Err(Failure::Runtime(format!("{url}: answered {status}")));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| Failure::Runtime(format!("{url}: {}", tollgate_core::with_causes(&e))))?;
    serde_json::from_slice(&body).map_err(|e| Failure::Runtime(format!("{url}: not JSON: {e}")))
}

pub(crate) fn report(as_json: bool, v: &Value) {
    if as_json {
        outln!("{v}");
        return;
    }
    let detail = v["detail"].as_str();
    match v["valid"].as_bool() {
        Some(true) => match detail {
            Some(d) => outln!("valid ({d})"),
            None => outln!("valid"),
        },
        Some(false) => outln!(
            "INVALID: {} ({})",
            detail.unwrap_or("?"),
            v["error"].as_str().unwrap_or("?")
        ),
        None => outln!("NOT JUDGED: {}", detail.unwrap_or("")),
    }
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if !list("checked").is_empty() {
        outln!("checked: {}", list("checked"));
    }
    if !list("not_checked").is_empty() {
        let hint = if list("checked").contains("revocation") {
            ""
        } else {
            " (ask the server: --introspect URL --client ID)"
        };
        outln!("not checked: {}{hint}", list("not_checked"));
    }
    if let Some(server) = v["server"].as_object() {
        let credits = server
            .get("credits_remaining")
            .and_then(Value::as_u64)
            .map(|c| format!(", {c} credits left"))
            .unwrap_or_default();
        let active = server.get("active").and_then(Value::as_bool) == Some(true);
        outln!(
            "server: {}{credits}",
            if active { "active" } else { "inactive" }
        );
    }
    if !v["header"].is_null() {
        outln!("header: {}", v["header"]);
    }
    if let Some(claims) = v["claims"].as_object() {
        outln!("claims:");
        for (k, val) in claims {
            let human = match (k.as_str(), val.as_i64()) {
                ("exp" | "iat" | "nbf", Some(t)) => format!("{val}  ({}, {})", date(t), ago(t)),
                _ => val.to_string(),
            };
            outln!("  {k}: {human}");
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
