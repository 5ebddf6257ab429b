//! `POST /connect/token`: the client credentials grant (RFC 6749 §4.4).

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::client_auth::Authenticated;
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
    Authenticated { client, body: form }: Authenticated,
) -> Result<impl IntoResponse, OAuthError> {
    let params: TokenParams = form.params()?;
    match params.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "only client_credentials is supported",
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
