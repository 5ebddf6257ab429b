//! Client authentication (RFC 6749 §2.3.1) as an axum extractor: HTTP
//! Basic, or `client_id` and `client_secret` in the body; never both.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::clients::Client;
use crate::error::OAuthError;
use crate::form::Form;
use crate::server::TokenServer;

/// The largest body a token endpoint reads: parameters and one token
/// (bearer tokens are bounded at 8 KiB).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// A request body that may carry client credentials.
pub(crate) trait CredentialBody: Sized {
    /// Reads the body; runs before the client is authenticated, so a body
    /// that cannot be read is refused first.
    fn read(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError>;

    /// `client_id` and `client_secret` as given in the body, if at all.
    fn credentials(&self) -> (Option<&str>, Option<&str>);
}

/// A request from an authenticated client: the client and the body
/// (a [`Form`] unless the endpoint takes more).
///
/// Rejections, in this order: the body cannot be buffered (axum's own
/// answer), the body cannot be read (`invalid_request`), client
/// authentication fails (`invalid_request` or `invalid_client`).
#[derive(Debug)]
pub(crate) struct Authenticated<B = Form> {
    /// The client.
    pub(crate) client: Client,
    /// The body, read.
    pub(crate) body: B,
}

/// A request from a client that authenticated, or from a public client
/// (`client_id` alone: a browser holding a refresh token). Endpoints that
/// take one decide what a public client may do.
#[derive(Debug)]
pub(crate) struct Caller<B = Form> {
    /// The client.
    pub(crate) client: Client,
    /// No credentials were given, only `client_id`.
    pub(crate) public: bool,
    /// The connection's address, when the server runs with connect info.
    pub(crate) peer: Option<std::net::IpAddr>,
    /// The body, read.
    pub(crate) body: B,
}

impl<B: CredentialBody + Send> FromRequest<Arc<TokenServer>> for Authenticated<B> {
    type Rejection = Response;

    async fn from_request(req: Request, server: &Arc<TokenServer>) -> Result<Self, Response> {
        let (headers, body) = read_body::<B>(req).await?;
        let client = authenticate(server, &headers, body.credentials())
            .map_err(IntoResponse::into_response)?;
        Ok(Authenticated { client, body })
    }
}

impl<B: CredentialBody + Send> FromRequest<Arc<TokenServer>> for Caller<B> {
    type Rejection = Response;

    async fn from_request(req: Request, server: &Arc<TokenServer>) -> Result<Self, Response> {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let (headers, body) = read_body::<B>(req).await?;
        let (id, secret) = body.credentials();
        if secret.is_none()
            && headers.get(header::AUTHORIZATION).is_none()
            && let Some(id) = id
        {
            // Unknown ids are refused like a wrong secret.
            let client = server
                .client(id)
                .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
                .map_err(IntoResponse::into_response)?;
            return Ok(Caller {
                client,
                public: true,
                peer,
                body,
            });
        }
        let client =
            authenticate(server, &headers, (id, secret)).map_err(IntoResponse::into_response)?;
        Ok(Caller {
            client,
            public: false,
            peer,
            body,
        })
    }
}

/// The headers and the body, read within [`MAX_BODY`].
async fn read_body<B: CredentialBody>(req: Request) -> Result<(HeaderMap, B), Response> {
    let headers = req.headers().clone();
    let too_large = || {
        OAuthError::invalid_request(format!("the body exceeds {} KiB", MAX_BODY / 1024))
            .into_response()
    };
    // What the endpoints need is a few short parameters and at most one
    // token: refuse more before reading it, let alone parsing it.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    let body = B::read(&headers, &bytes).map_err(IntoResponse::into_response)?;
    Ok((headers, body))
}

/// Authenticates the client by the `Authorization` header or by the body's
/// `(client_id, client_secret)`.
fn authenticate(
    server: &TokenServer,
    headers: &HeaderMap,
    (body_id, body_secret): (Option<&str>, Option<&str>),
) -> Result<Client, OAuthError> {
    let auth = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .collect::<Vec<_>>();
    let (id, secret) = match auth.as_slice() {
        [] => match (body_id, body_secret) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required",
                ));
            }
        },
        [value] => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "client authenticated twice (Basic and body)",
                ));
            }
            let (id, secret) = basic_credentials(value)
                .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
            if let Some(body_id) = body_id
                && body_id != id
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, secret)
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
    };
    server
        .authenticate(&id, &secret)
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
}

/// The id and secret of a `Basic` header: base64 of `id:secret`, each
/// form-urlencoded first (RFC 6749 §2.3.1).
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, rest) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// One `application/x-www-form-urlencoded` value: `+` is a space, then
/// percent-decoding; bytes that are not UTF-8 become U+FFFD.
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn basic_values_are_form_decoded() {
        assert_eq!(form_decode("a+b%20c"), "a b c");
        assert_eq!(form_decode("p%2540ss%2Bword%3A"), "p%40ss+word:");
        assert_eq!(form_decode("caf%C3%A9%E2%82%AC"), "café€");
        assert_eq!(form_decode("s&t=u"), "s&t=u");
        assert_eq!(form_decode("%zz%"), "%zz%");
        let header =
            |s: &str| HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(s))).unwrap();
        assert_eq!(
            basic_credentials(&header("id%3A1:se+cret")),
            Some(("id:1".into(), "se cret".into()))
        );
        assert_eq!(basic_credentials(&header("no-colon")), None);
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
    }
}
