//! `POST /connect/introspect` (RFC 7662): whether a token is a valid,
//! unrevoked token of this issuer, its claims, and the credits left.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use tollgate_core::TokenInfo;
use tollgate_core::policy::token_ref;

use crate::client_auth::Authenticated;
use crate::error::{OAuthError, no_store};
use crate::server::TokenServer;

/// The introspection request's parameters (`token_type_hint` is ignored:
/// this server knows one token type).
#[derive(Debug, Deserialize)]
struct IntrospectParams {
    token: Option<String>,
}

/// Client authentication, then `token`; anything that is not a valid,
/// unrevoked token of this issuer, issued to the caller (or to anyone, for
/// a client with `introspect_any`), is `{"active": false}`: a client learns
/// nothing about another client's tokens, not even that they exist.
pub(crate) async fn introspect(
    State(server): State<Arc<TokenServer>>,
    Authenticated { client, body: form }: Authenticated,
) -> Result<impl IntoResponse, OAuthError> {
    let params: IntrospectParams = form.params()?;
    let token = params
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = || (no_store(), axum::Json(json!({"active": false})));
    if token.starts_with(crate::refresh::PREFIX) {
        return Ok(match refresh_token(&server, &client, &token).await? {
            Some(body) => (no_store(), axum::Json(body)),
            None => inactive(),
        });
    }
    let Ok(v) = server.verify(&token) else {
        return Ok(inactive());
    };
    if !client.introspect_any && v.client_id() != Some(client.id.as_str()) {
        return Ok(inactive());
    }
    let info: &dyn TokenInfo = &*v;
    let revoked = server
        .store
        .is_revoked(token_ref(info))
        .await
        .map_err(|_| OAuthError::store_unavailable())?;
    if revoked {
        return Ok(inactive());
    }
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "iss": v.issuer(),
        "sub": v.subject(),
        "aud": v.audiences(),
        "client_id": v.client_id(),
        "exp": v.expires_at(),
        "iat": v.issued_at(),
        "nbf": v.not_before(),
        "jti": v.token_id(),
    });
    let scope = v.scopes().collect::<Vec<_>>().join(" ");
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    // Counted under the family for a token of a refresh family.
    if let (Some(allowance), Some(id)) = (v.credits(), token_ref(info).token_id) {
        let spent = server
            .store
            .spent(v.issuer(), id)
            .await
            .map_err(|_| OAuthError::store_unavailable())?;
        body["credits"] = json!(allowance);
        body["credits_remaining"] = json!(allowance.saturating_sub(spent.unwrap_or(0)));
    }
    Ok((no_store(), axum::Json(body)))
}

/// A refresh token's answer: live (not spent, family not revoked or ended)
/// and the caller's (or any, with `introspect_any`), else `None`.
async fn refresh_token(
    server: &TokenServer,
    client: &crate::clients::Client,
    token: &str,
) -> Result<Option<serde_json::Value>, OAuthError> {
    let Some((grant, stored, spent)) = server.refresh_family(client, token).await? else {
        return Ok(None);
    };
    if spent {
        return Ok(None);
    }
    let sub = stored.subject();
    let family = stored.token_ref(&server.settings.issuer, &grant, &sub);
    let store_down = |_| OAuthError::store_unavailable();
    if server.store.is_revoked(family).await.map_err(store_down)? {
        return Ok(None);
    }
    let spent = server
        .store
        .spent(&server.settings.issuer, &grant.family)
        .await
        .map_err(store_down)?;
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "iss": server.settings.issuer,
        "client_id": stored.client_id,
        "sub": sub,
        "aud": [stored.audience],
        "scope": stored.scopes.join(" "),
        "exp": grant.expires_at,
        "sid": grant.family,
        "credits": stored.credits,
        "credits_remaining": stored.credits.saturating_sub(spent.unwrap_or(0)),
    })))
}
