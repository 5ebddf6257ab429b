//! Turning an [`Error`] into an HTTP answer: RFC 6750 §3 `WWW-Authenticate`
//! challenge and RFC 9457 `application/problem+json` body.
//!
//! Framework crates call [`error_response`]; the rendering lives here once.
//!
//! ```
//! use tollgate_core::{Error, error_response};
//!
//! let resp = error_response(&Error::Expired, Some("api"));
//! assert_eq!(resp.status(), 401);
//! assert_eq!(
//!     resp.headers()["www-authenticate"],
//!     "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
//! );
//! ```

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::error::Error;

/// Response header with a metered token's allowance.
pub const CREDITS_LIMIT: &str = "credits-limit";
/// Response header with the credits a metered token has left after the request.
pub const CREDITS_REMAINING: &str = "credits-remaining";

/// Seconds a client is told to wait when keys are unavailable.
const RETRY_AFTER_SECS: &str = "5";

/// The `WWW-Authenticate` value for an error: a bare `Bearer` challenge
/// (with realm) when no token was sent, otherwise with `error` and
/// `error_description`. `None` for errors that are not the client's.
///
/// ```
/// use tollgate_core::{Error, www_authenticate};
///
/// let bare = www_authenticate(&Error::MissingToken, Some("api")).unwrap();
/// assert_eq!(bare, "Bearer realm=\"api\"");
/// assert!(www_authenticate(&Error::KeysUnavailable, None).is_none());
/// ```
pub fn www_authenticate(err: &Error, realm: Option<&str>) -> Option<HeaderValue> {
    let mut v = String::from("Bearer");
    let mut sep = " ";
    if let Some(realm) = realm {
        v.push_str(sep);
        push_param(&mut v, "realm", realm);
        sep = ", ";
    }
    match err.bearer_error() {
        Some(code) => {
            v.push_str(sep);
            push_param(&mut v, "error", code.as_str());
            v.push_str(", ");
            push_param(&mut v, "error_description", &err.to_string());
            if let Error::InsufficientScope { required } = err {
                v.push_str(", ");
                push_param(&mut v, "scope", required);
            }
        }
        None if matches!(err, Error::MissingToken) => {}
        None => return None,
    }
    HeaderValue::from_str(&v).ok()
}

/// RFC 6750 §3: values are quoted strings of printable ASCII without `"` or `\`.
fn push_param(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    out.extend(
        value
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .filter(|c| !matches!(c, '"' | '\\')),
    );
    out.push('"');
}

/// The RFC 9457 problem body: `type`, `title`, `status`, `detail`, `code`.
///
/// ```
/// let body: serde_json::Value = serde_json::from_str(&tollgate_core::problem_json(
///     &tollgate_core::Error::InvalidSignature,
/// ))?;
/// assert_eq!(body["status"], 401);
/// assert_eq!(body["code"], "invalid_signature");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn problem_json(err: &Error) -> String {
    let status = err.status();
    serde_json::json!({
        "type": format!("https://tollgate.rs/problems/{}", err.code()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": err.to_string(),
        "code": err.code(),
    })
    .to_string()
}

/// The whole answer for a rejected request: status, challenge,
/// `Retry-After` for temporary failures, `Cache-Control: no-store`, and the
/// problem body.
///
/// # Examples
///
/// An application that verifies tokens itself and answers as the
/// framework layers do:
///
/// ```
/// use tollgate_core::{Authenticator, BearerExtractor, error_response};
///
/// fn check(auth: &Authenticator, req: &http::Request<()>) -> Result<(), http::Response<String>> {
///     let token = BearerExtractor::new()
///         .extract(req.headers(), req.uri())
///         .map_err(|e| error_response(&e, Some("api")))?;
///     auth.verify_now(&token).map_err(|e| error_response(&e, Some("api")))?;
///     Ok(())
/// }
/// # let auth = Authenticator::builder().issuer(tollgate_core::TrustedIssuer::new("https://issuer.example")
/// #     .audience("api").key(tollgate_core::VerifyingKey::hmac(&[7; 32], tollgate_core::Algorithm::HS256).unwrap()))
/// #     .build().unwrap();
///
/// let denied = check(&auth, &http::Request::new(())).unwrap_err();
/// assert_eq!(denied.status(), 401);
/// assert_eq!(denied.headers()["www-authenticate"], "Bearer realm=\"api\"");
/// assert_eq!(denied.headers()["content-type"], "application/problem+json");
/// ```
pub fn error_response(err: &Error, realm: Option<&str>) -> Response<String> {
    let mut resp = Response::new(problem_json(err));
    *resp.status_mut() = err.status();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = www_authenticate(err, realm) {
        h.insert(WWW_AUTHENTICATE, challenge);
    }
    if err.is_temporary() {
        h.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    if let Error::CreditsExhausted { limit, remaining } = err {
        h.insert(CREDITS_LIMIT, HeaderValue::from(*limit));
        h.insert(CREDITS_REMAINING, HeaderValue::from(*remaining));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let scope = Error::InsufficientScope {
            required: "reports:read reports:write".into(),
        };
        assert_eq!(
            www_authenticate(&scope, None).unwrap(),
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"reports:read reports:write\""
        );
        let bare = www_authenticate(&Error::MissingToken, None).unwrap();
        assert_eq!(bare, "Bearer");
        let r = error_response(&Error::MultipleTokens, None);
        assert_eq!(r.status(), 400);
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\"")
        );
        let r = error_response(&Error::KeysUnavailable, None);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "5");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["code"], "keys_unavailable");
        assert_eq!(body["status"], 503);
        let r = error_response(&Error::InvalidClaim("a\"b\\c".into()), Some("x"));
        let h = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(h.contains("claim `abc`"), "{h}");
    }
}
