//! OAuth2 error answers (RFC 6749 §5.2): the codes, their statuses, and the
//! JSON body with its headers.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An OAuth2 `error` code (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: a parameter is missing, repeated, malformed or
    /// out of the client's limits.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (401).
    InvalidClient,
    /// `invalid_grant`: the grant is invalid (the client credentials grant
    /// carries none, so this server never sends it).
    InvalidGrant,
    /// `unauthorized_client`: the client may not do this.
    UnauthorizedClient,
    /// `unsupported_grant_type`: a grant type other than
    /// `client_credentials`.
    UnsupportedGrantType,
    /// `invalid_scope`: a scope the client may not ask for.
    InvalidScope,
    /// `invalid_target`: an audience the client may not ask for (RFC 8707).
    InvalidTarget,
    /// `unsupported_token_type`: revocation of a token type the server does
    /// not revoke (RFC 7009).
    UnsupportedTokenType,
    /// `server_error`: the server failed (500).
    ServerError,
    /// `temporarily_unavailable`: the store is unavailable (503).
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it is written in the `error` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 500 for `server_error`,
    /// 503 for `temporarily_unavailable`, else 400.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth2 error answer (RFC 6749 §5.2), with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// `error`.
    pub code: ErrorCode,
    /// `error_description` (never holds a secret or a token).
    pub description: String,
}

impl OAuthError {
    /// An error with this code and description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request` with this description.
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` with this description.
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::InvalidClient, description)
    }

    /// `temporarily_unavailable`: the store did not answer.
    pub(crate) fn store_unavailable() -> Self {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the store is unavailable",
        )
    }

    /// The HTTP status (see [`ErrorCode::status`]).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

/// The challenge every `invalid_client` answer carries: a 401 needs a
/// `WWW-Authenticate` header (RFC 9110 §15.5.2), and Basic is the scheme a
/// client may retry with (RFC 6749 §5.2).
pub const CLIENT_CHALLENGE: &str = "Basic realm=\"tollgate\", charset=\"UTF-8\"";

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code.as_str(), "error_description": self.description});
        let mut resp = (self.status(), no_store(), axum::Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CLIENT_CHALLENGE),
            );
        }
        resp
    }
}

/// The headers of every answer that carries a token or an error
/// (RFC 6749 §5.1).
pub(crate) fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// Printable, bounded echo of a client-supplied value, for descriptions.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_client_answer_carries_the_challenge() {
        let resp = OAuthError::new(ErrorCode::InvalidClient, "x").into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], CLIENT_CHALLENGE);
        let resp = OAuthError::new(ErrorCode::InvalidRequest, "x").into_response();
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
