//! `POST /connect/revocation` (RFC 7009): a client revokes its own tokens.
//! A refresh token revokes its whole family; so does any access token of a
//! family (RFC 7009 §2.1). A public client may revoke its refresh tokens
//! with `client_id` alone (a browser logging out).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::client_auth::Caller;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::server::TokenServer;

/// The revocation request's parameters (`token_type_hint` is not needed:
/// a refresh token is told from an access token by its form).
#[derive(Debug, Deserialize)]
struct RevocationParams {
    token: Option<String>,
}

/// Client authentication, then `token`; invalid or unknown tokens are
/// answered 200 too (RFC 7009 §2.2), another client's token is
/// `unauthorized_client`.
pub(crate) async fn revocation(
    State(server): State<Arc<TokenServer>>,
    Caller {
        client,
        public,
        body: form,
        ..
    }: Caller,
) -> Result<impl IntoResponse, OAuthError> {
    let params: RevocationParams = form.params()?;
    let token = params
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let ok = (no_store(), StatusCode::OK);
    if token.starts_with(crate::refresh::PREFIX) {
        if let Some((grant, stored, _)) = server.refresh_family(&client, &token).await?
            && stored.client_id == client.id
        {
            server.revoke_family(&grant).await?;
        }
        return Ok(ok);
    }
    if public {
        return Err(OAuthError::invalid_client(
            "client authentication is required to revoke an access token",
        ));
    }
    let Ok(v) = server.verify(&token) else {
        return Ok(ok);
    };
    if v.client_id() != Some(client.id.as_str()) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "a client may revoke only its own tokens",
        ));
    }
    // By `jti`, or by its family (`sid`) for a token of a refresh family.
    let info: &dyn tollgate_core::TokenInfo = &*v;
    let tref = tollgate_core::policy::token_ref(info);
    let Some(id) = tref.token_id else {
        return Ok(ok);
    };
    server
        .store
        .revoke(tref.issuer, id, tref.expires_at)
        .await
        .map_err(|_| OAuthError::store_unavailable())?;
    Ok(ok)
}
