//! `POST /connect/revocation` (RFC 7009): a client revokes its own tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::client_auth::Authenticated;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::server::TokenServer;

/// The revocation request's parameters (`token_type_hint` is ignored:
/// this server knows one token type).
#[derive(Debug, Deserialize)]
struct RevocationParams {
    token: Option<String>,
}

/// Client authentication, then `token`; invalid or unknown tokens are
/// answered 200 too (RFC 7009 §2.2), another client's token is
/// `unauthorized_client`.
pub(crate) async fn revocation(
    State(server): State<Arc<TokenServer>>,
    Authenticated { client, body: form }: Authenticated,
) -> Result<impl IntoResponse, OAuthError> {
    let params: RevocationParams = form.params()?;
    let token = params
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let ok = (no_store(), StatusCode::OK);
    let Ok(v) = server.verify(&token) else {
        return Ok(ok);
    };
    if v.client_id() != Some(client.id.as_str()) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "a client may revoke only its own tokens",
        ));
    }
    let Some(jti) = v.token_id() else {
        return Ok(ok);
    };
    server
        .store
        .revoke(v.issuer(), jti, v.expires_at())
        .await
        .map_err(|_| OAuthError::store_unavailable())?;
    Ok(ok)
}
