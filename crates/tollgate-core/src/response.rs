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

/// How a request expects to be refused: an HTTP status with a problem body,
/// or, for a gRPC call (`content-type: application/grpc...`), a gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP: status, challenge, RFC 9457 problem body.
    #[default]
    Http,
    /// gRPC over HTTP/2 (`application/grpc`, `application/grpc+proto`, ...).
    Grpc,
    /// gRPC-Web (`application/grpc-web...`).
    GrpcWeb,
}

impl Protocol {
    /// The protocol a request's `Content-Type` value names.
    ///
    /// ```
    /// use tollgate_core::Protocol;
    ///
    /// assert_eq!(Protocol::of_content_type(Some(b"application/grpc+proto")), Protocol::Grpc);
    /// assert_eq!(Protocol::of_content_type(Some(b"application/grpc-web-text")), Protocol::GrpcWeb);
    /// assert_eq!(Protocol::of_content_type(Some(b"application/json")), Protocol::Http);
    /// ```
    pub fn of_content_type(value: Option<&[u8]>) -> Protocol {
        const GRPC: &[u8] = b"application/grpc";
        let Some(value) = value else {
            return Protocol::Http;
        };
        if value.len() < GRPC.len() || !value[..GRPC.len()].eq_ignore_ascii_case(GRPC) {
            return Protocol::Http;
        }
        let rest = &value[GRPC.len()..];
        if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"-web") {
            Protocol::GrpcWeb
        } else if rest.is_empty() || matches!(rest[0], b'+' | b';') {
            Protocol::Grpc
        } else {
            Protocol::Http
        }
    }
}

/// The gRPC status code of an error (gRPC's `statuscodes.md`):
/// `UNAUTHENTICATED` (16) for what HTTP answers 401 and for a malformed
/// credential (400), `PERMISSION_DENIED` (7) for 403, `RESOURCE_EXHAUSTED`
/// (8) for spent credits (402), `INVALID_ARGUMENT` (3) for a malformed
/// forwarding header, `UNAVAILABLE` (14) for 503, `INTERNAL` (13) for a
/// server mistake.
pub const fn grpc_status(err: &Error) -> u8 {
    match err.status().as_u16() {
        401 => 16,
        403 => 7,
        402 => 8,
        503 => 14,
        400 if matches!(err, Error::MalformedForwarded) => 3,
        400 => 16,
        _ => 13,
    }
}

/// gRPC's `grpc-message` encoding: percent-encoding of every byte outside
/// printable ASCII, and of `%`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The answer for a rejected request in the request's [`Protocol`]:
/// [`error_response`] for HTTP; for gRPC a trailers-only response (HTTP
/// 200, no body) whose headers carry `grpc-status` ([`grpc_status`]),
/// `grpc-message` (the error's text), `tollgate-error` (its
/// [`code`](Error::code)), the challenge and the credit headers.
///
/// ```
/// use tollgate_core::{Error, Protocol, render};
///
/// let resp = render(&Error::Expired, None, Protocol::Grpc);
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.headers()["grpc-status"], "16");
/// assert_eq!(resp.headers()["tollgate-error"], "token_expired");
/// ```
pub fn render(err: &Error, realm: Option<&str>, protocol: Protocol) -> Response<String> {
    let content_type = match protocol {
        Protocol::Http => return error_response(err, realm),
        Protocol::Grpc => "application/grpc",
        Protocol::GrpcWeb => "application/grpc-web",
    };
    let mut resp = Response::new(String::new());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_status(err))),
    );
    if let Ok(message) = HeaderValue::from_str(&grpc_message(&err.to_string())) {
        h.insert("grpc-message", message);
    }
    h.insert("tollgate-error", HeaderValue::from_static(err.code()));
    if let Some(challenge) = www_authenticate(err, realm) {
        h.insert(WWW_AUTHENTICATE, challenge);
    }
    if let Error::CreditsExhausted { limit, remaining } = err {
        h.insert(CREDITS_LIMIT, HeaderValue::from(*limit));
        h.insert(CREDITS_REMAINING, HeaderValue::from(*remaining));
    }
    resp
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

    #[test]
    fn grpc_answers() {
        let cases = [
            (Error::MissingToken, "16"),
            (Error::MultipleTokens, "16"),
            (Error::Expired, "16"),
            (Error::AccessDenied, "7"),
            (
                Error::InsufficientScope {
                    required: "a".into(),
                },
                "7",
            ),
            (
                Error::CreditsExhausted {
                    limit: 3,
                    remaining: 0,
                },
                "8",
            ),
            (Error::MalformedForwarded, "3"),
            (Error::StoreUnavailable, "14"),
            (Error::Config("x".into()), "13"),
        ];
        for (err, status) in cases {
            let r = render(&err, Some("api"), Protocol::Grpc);
            assert_eq!(r.status(), 200, "{err:?}");
            assert_eq!(r.headers()["grpc-status"], status, "{err:?}");
            assert_eq!(r.headers()["content-type"], "application/grpc");
            assert_eq!(r.headers()["tollgate-error"], err.code());
            assert!(r.body().is_empty());
        }
        let r = render(&Error::MissingClaim("100%".into()), None, Protocol::GrpcWeb);
        assert_eq!(r.headers()["content-type"], "application/grpc-web");
        assert_eq!(
            r.headers()["grpc-message"],
            "the token lacks the required claim `100%25`"
        );
        assert_eq!(
            Protocol::of_content_type(Some(b"application/grpc")),
            Protocol::Grpc
        );
        assert_eq!(
            Protocol::of_content_type(Some(b"Application/GRPC; charset=x")),
            Protocol::Grpc
        );
        assert_eq!(
            Protocol::of_content_type(Some(b"application/grpcx")),
            Protocol::Http
        );
        assert_eq!(Protocol::of_content_type(None), Protocol::Http);
    }
}
