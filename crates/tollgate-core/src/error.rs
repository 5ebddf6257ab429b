//! The one error type of tollgate-core, with a stable machine code per cause
//! and its mapping to HTTP (RFC 6750 challenge, RFC 9457 problem body).
//!
//! No variant carries the token or a secret; what a variant holds is either
//! a static string or a name from the configuration (a claim name, an URL).

use http::StatusCode;

/// Everything that can go wrong while extracting, verifying or loading keys.
///
/// Each variant has a stable [`code`](Error::code); match on the variant or
/// on the code, never on the message.
///
/// # Examples
///
/// Tollgate's own answer for an error is [`error_response`](crate::error_response);
/// an application that reports errors its own way matches on them:
///
/// ```
/// use tollgate_core::{Error, error_response};
///
/// fn advice(err: &Error) -> &'static str {
///     match err {
///         Error::MissingToken => "send Authorization: Bearer <token>",
///         Error::Expired => "get a new token",
///         Error::CreditsExhausted { .. } => "this token's credits are spent",
///         e if e.is_temporary() => "try again shortly",
///         _ => "the token was refused",
///     }
/// }
///
/// let err = Error::CreditsExhausted { limit: 10, remaining: 0 };
/// assert_eq!(advice(&err), "this token's credits are spent");
/// assert_eq!((err.status().as_u16(), err.code()), (402, "credits_exhausted"));
///
/// let resp = error_response(&err, Some("api"));
/// assert_eq!(resp.status(), 402);
/// assert_eq!(resp.headers()["credits-remaining"], "0");
/// assert!(resp.body().contains(r#""code":"credits_exhausted""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token in the request.
    #[error("no bearer token in the request")]
    MissingToken,
    /// The `Authorization` header is not `Bearer <token68>`.
    #[error("the Authorization header is not a valid Bearer credential")]
    MalformedAuthorization,
    /// More than one credential was sent (two headers, or header and query).
    #[error("more than one bearer token in the request")]
    MultipleTokens,
    /// The token is larger than the configured bound.
    #[error("the bearer token exceeds {limit} bytes")]
    TokenTooLarge {
        /// The configured bound in bytes.
        limit: usize,
    },
    /// Not a compact JWS, bad base64url, bad JSON, or a bad header.
    #[error("the token is malformed: {0}")]
    MalformedToken(&'static str),
    /// The `alg` header names an algorithm Tollgate does not verify (`none` included).
    #[error("the token's algorithm is not supported")]
    UnsupportedAlgorithm,
    /// The key found for the token does not allow the token's algorithm.
    #[error("the token's algorithm is not allowed for its key")]
    AlgorithmNotAllowed,
    /// The `crit` header lists extensions Tollgate does not understand.
    #[error("the token has critical header parameters that are not understood")]
    UnsupportedCriticalHeader,
    /// The `typ` header is not the required one.
    #[error("the token's type header is not accepted")]
    InvalidType,
    /// The `iss` claim is missing, not a string, or not a configured issuer.
    #[error("the token's issuer is not accepted")]
    InvalidIssuer,
    /// No key in the issuer's key set matches the token's `kid`.
    #[error("no key matches the token's key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// `exp` is in the past (beyond leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `aud` does not contain a configured audience.
    #[error("the token's audience is not accepted")]
    InvalidAudience,
    /// A required claim is absent.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// The token carries a restriction claim (an allowance, client
    /// addresses) that this API does not enforce: accepting it would drop
    /// the restriction.
    #[error("the token carries the restriction claim `{0}`, which this API does not enforce")]
    UnenforcedClaim(String),
    /// A claim has the wrong JSON type or an impossible value.
    #[error("the token's claim `{0}` has an invalid value")]
    InvalidClaim(String),
    /// The token is valid but lacks a scope the resource requires.
    #[error("the token lacks a required scope")]
    InsufficientScope {
        /// The scopes the resource requires, space-delimited (sent in the
        /// challenge's `scope` attribute, RFC 6750 §3).
        required: String,
    },
    /// The token is valid but a route's check of its claims refused it
    /// (`RequireClaimsLayer`, actix's `RequireClaims`): 403, code
    /// `access_denied`. The challenge says `insufficient_scope`, RFC 6750's
    /// one code for "the request requires higher privileges than provided
    /// by the access token", without a `scope` attribute, since no scope
    /// would do.
    #[error("the token does not grant access to this resource")]
    AccessDenied,
    /// The token was revoked (by its `jti`, or by a watermark on its
    /// subject or client).
    #[error("the token has been revoked")]
    Revoked,
    /// The token is bound to client addresses and the request came from
    /// another one.
    #[error("the token is not valid from this client address")]
    AddressMismatch,
    /// The token's credits do not cover this request.
    #[error("the token has no credits left for this request")]
    CreditsExhausted {
        /// The token's allowance.
        limit: u64,
        /// Credits left (less than the request's cost).
        remaining: u64,
    },
    /// A forwarding header (`Forwarded`, `X-Forwarded-For`) sent by a
    /// trusted proxy cannot be read.
    #[error("the forwarding header is malformed")]
    MalformedForwarded,
    /// The credit or revocation store cannot answer right now.
    #[error("the credit or revocation store is unavailable")]
    StoreUnavailable,
    /// The issuer's keys cannot be had right now (JWKS unreachable, stale beyond bound).
    #[error("the signing keys are temporarily unavailable")]
    KeysUnavailable,
    /// A JWKS or discovery document could not be fetched or used: what
    /// went wrong (never with the URL's query), and the HTTP client's or
    /// parser's error when there is one.
    #[error("key set fetch failed: {0}")]
    KeyFetch(String, #[source] Option<Cause>),
    /// A server mistake found while answering a request (no
    /// authentication layer in front of a handler, no peer address under
    /// address binding): 500, never the client's fault. Mistakes found when
    /// building are [`ConfigError`]s.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Why a configuration was refused: building an
/// [`Authenticator`](crate::Authenticator), loading a key or a key set. These
/// happen at start-up, never in answer to a request; request-time failures
/// are [`Error`]s.
///
/// ```
/// use tollgate_core::{Algorithm, ConfigError, VerifyingKey};
///
/// // HS256 needs at least 32 bytes of secret.
/// let err = VerifyingKey::hmac(b"short", Algorithm::HS256).unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidKey(_)));
/// assert_eq!(err.code(), "invalid_key");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The settings are inconsistent (no issuer, no audience, no keys, an
    /// issuer twice, ...).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A key or key set could not be loaded.
    #[error("key rejected: {0}")]
    InvalidKey(String),
    /// The HTTP client for remote keys could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] Cause),
}

impl ConfigError {
    /// A stable machine code, as [`Error::code`] gives.
    pub const fn code(&self) -> &'static str {
        match self {
            ConfigError::Invalid(_) => "invalid_configuration",
            ConfigError::InvalidKey(_) => "invalid_key",
            ConfigError::HttpClient(_) => "http_client",
        }
    }
}

/// The error a failure came from, kept as a value for
/// [`source()`](std::error::Error::source): shared (cheap to clone) and
/// compared by its message.
#[derive(Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `error` as a cause.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(std::sync::Arc::new(error))
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// The RFC 6750 §3.1 error code an [`Error`] maps to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// `invalid_request` (400).
    InvalidRequest,
    /// `invalid_token` (401).
    InvalidToken,
    /// `insufficient_scope` (403).
    InsufficientScope,
}

impl BearerError {
    /// The code as written in the `WWW-Authenticate` challenge.
    pub const fn as_str(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

impl Error {
    /// A stable machine code, one per cause (`token_expired`, `unknown_key`, …).
    ///
    /// ```
    /// use tollgate_core::Error;
    ///
    /// assert_eq!(Error::Expired.code(), "token_expired");
    /// assert_eq!(Error::Revoked.code(), "token_revoked");
    /// assert_eq!(Error::AddressMismatch.code(), "client_address_mismatch");
    /// ```
    pub const fn code(&self) -> &'static str {
        match self {
            Error::MissingToken => "missing_token",
            Error::MalformedAuthorization => "malformed_authorization",
            Error::MultipleTokens => "multiple_tokens",
            Error::TokenTooLarge { .. } => "token_too_large",
            Error::MalformedToken(_) => "malformed_token",
            Error::UnsupportedAlgorithm => "unsupported_algorithm",
            Error::AlgorithmNotAllowed => "algorithm_not_allowed",
            Error::UnsupportedCriticalHeader => "unsupported_critical_header",
            Error::InvalidType => "invalid_type",
            Error::InvalidIssuer => "invalid_issuer",
            Error::UnknownKey => "unknown_key",
            Error::InvalidSignature => "invalid_signature",
            Error::Expired => "token_expired",
            Error::NotYetValid => "token_not_yet_valid",
            Error::IssuedInFuture => "token_issued_in_future",
            Error::InvalidAudience => "invalid_audience",
            Error::MissingClaim(_) => "missing_claim",
            Error::InvalidClaim(_) => "invalid_claim",
            Error::UnenforcedClaim(_) => "unenforced_claim",
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::AccessDenied => "access_denied",
            Error::Revoked => "token_revoked",
            Error::AddressMismatch => "client_address_mismatch",
            Error::CreditsExhausted { .. } => "credits_exhausted",
            Error::MalformedForwarded => "malformed_forwarded",
            Error::StoreUnavailable => "store_unavailable",
            Error::KeysUnavailable => "keys_unavailable",
            Error::KeyFetch(..) => "key_fetch_failed",
            Error::Config(_) => "invalid_configuration",
        }
    }

    /// The HTTP status a request rejected with this error gets.
    ///
    /// ```
    /// use tollgate_core::Error;
    ///
    /// assert_eq!(Error::MissingToken.status(), 401);
    /// assert_eq!(Error::MultipleTokens.status(), 400);
    /// assert_eq!(Error::InsufficientScope { required: "reports:read".into() }.status(), 403);
    /// assert_eq!(Error::StoreUnavailable.status(), 503);
    /// ```
    pub const fn status(&self) -> StatusCode {
        match self.bearer_error() {
            Some(BearerError::InvalidRequest) => StatusCode::BAD_REQUEST,
            Some(BearerError::InvalidToken) => StatusCode::UNAUTHORIZED,
            Some(BearerError::InsufficientScope) => StatusCode::FORBIDDEN,
            None => match self {
                Error::MissingToken => StatusCode::UNAUTHORIZED,
                Error::CreditsExhausted { .. } => StatusCode::PAYMENT_REQUIRED,
                Error::MalformedForwarded => StatusCode::BAD_REQUEST,
                Error::KeysUnavailable | Error::KeyFetch(..) | Error::StoreUnavailable => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The RFC 6750 error code, or `None` when the challenge carries none
    /// (no token sent: a bare `Bearer` challenge, RFC 6750 §3.1) or the
    /// failure is not the client's (keys unavailable, configuration).
    pub const fn bearer_error(&self) -> Option<BearerError> {
        match self {
            Error::MissingToken
            | Error::KeysUnavailable
            | Error::KeyFetch(..)
            | Error::Config(_)
            | Error::CreditsExhausted { .. }
            | Error::MalformedForwarded
            | Error::StoreUnavailable => None,
            Error::MalformedAuthorization | Error::MultipleTokens | Error::TokenTooLarge { .. } => {
                Some(BearerError::InvalidRequest)
            }
            Error::InsufficientScope { .. } | Error::AccessDenied => {
                Some(BearerError::InsufficientScope)
            }
            _ => Some(BearerError::InvalidToken),
        }
    }

    /// True when the failure is on the server's side and the client may retry
    /// later (a `Retry-After` is then sent).
    pub const fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::KeysUnavailable | Error::KeyFetch(..) | Error::StoreUnavailable
        )
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, for a log line or a person: `e`, then each
/// `source()` that adds to the text (a wrapper often repeats its inner
/// error's), joined by `: `.
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let e = tollgate_core::Error::KeyFetch("GET https://keys.example/jwks".into(), Some(tollgate_core::Cause::new(io)));
/// assert!(tollgate_core::with_causes(&e).ends_with(": connection refused"));
/// ```
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(Error::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Error::MissingToken.bearer_error(), None);
        assert_eq!(Error::MultipleTokens.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Error::Expired.code(), "token_expired");
        assert_eq!(Error::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            Error::KeysUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(Error::KeysUnavailable.is_temporary());
        let scope = Error::InsufficientScope {
            required: "a b".into(),
        };
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert_eq!(scope.code(), "insufficient_scope");
        assert_eq!(Error::AccessDenied.status(), StatusCode::FORBIDDEN);
        assert_eq!(Error::AccessDenied.code(), "access_denied");
        assert_eq!(
            Error::AccessDenied.bearer_error(),
            Some(BearerError::InsufficientScope)
        );
    }
}
