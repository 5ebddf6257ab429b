//! `POST /connect/token`: the client credentials grant (RFC 6749 §4.4) and
//! the refresh token grant (RFC 6749 §6), which a public client (a browser
//! holding a restricted token's refresh token) may use with `client_id`
//! alone.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::client_auth::Caller;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::mint::MintRequest;
use crate::server::TokenServer;

/// The token request's parameters (empty ones omitted).
#[derive(Debug, Deserialize)]
struct TokenParams {
    grant_type: Option<String>,
    /// Space-delimited.
    scope: Option<String>,
    audience: Option<String>,
    /// RFC 8707's name for the audience.
    resource: Option<String>,
    refresh_token: Option<String>,
}

impl TokenParams {
    fn scopes(&self) -> Option<Vec<String>> {
        self.scope.as_deref().map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// `audience` or `resource`, not both.
    fn audience(self) -> Result<Option<String>, OAuthError> {
        match (self.audience, self.resource) {
            (Some(_), Some(_)) => Err(OAuthError::invalid_request(
                "give `audience` or `resource`, not both",
            )),
            (a, r) => Ok(a.or(r)),
        }
    }
}

/// Client authentication, then `grant_type`, then the token.
pub(crate) async fn token(
    State(server): State<Arc<TokenServer>>,
    Caller {
        client,
        public,
        peer,
        body: form,
    }: Caller,
) -> Result<impl IntoResponse, OAuthError> {
    let params: TokenParams = form.params()?;
    match params.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") if public => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
            ));
        }
        Some("client_credentials") => {}
        Some("refresh_token") => {
            let token = params
                .refresh_token
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            let scopes = params.scopes();
            let r = server
                .refresh_token_grant(&client, token, scopes, peer)
                .await?;
            // The rotation is done: a store that cannot say what is left
            // must not lose the new tokens, so the field is left out.
            let remaining = server.credits_left(&r).await.ok();
            let mut body = json!({
                "access_token": r.minted.token,
                "token_type": "Bearer",
                "expires_in": r.minted.expires_in,
                "refresh_token": r.refresh_token,
                "refresh_expires_at": r.family_expires_at,
            });
            if let Some(left) = remaining {
                body["credits_remaining"] = json!(left);
            }
            if !r.minted.scope.is_empty() {
                body["scope"] = json!(r.minted.scope);
            }
            return Ok((no_store(), axum::Json(body)));
        }
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "the grant types are client_credentials and refresh_token",
            ));
        }
    }
    let req = MintRequest {
        scopes: params.scopes(),
        audience: params.audience()?,
        ..MintRequest::default()
    };
    let m = server.mint(&client, &req)?;
    let mut body = json!({
        "access_token": m.token,
        "token_type": "Bearer",
        "expires_in": m.expires_in,
    });
    if !m.scope.is_empty() {
        body["scope"] = json!(m.scope);
    }
    Ok((no_store(), axum::Json(body)))
}
