//! `GET /.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server`: the RFC 8414 metadata.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::server::{TokenServer, read};

impl TokenServer {
    /// The RFC 8414 metadata document.
    pub fn metadata(&self) -> Value {
        let base = &self.settings.issuer;
        let algs: Vec<&str> = read(&self.ring)
            .keys()
            .iter()
            .map(|k| k.algorithm().as_str())
            .collect();
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/connect/token"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{base}/connect/introspect"),
            "revocation_endpoint": format!("{base}/connect/revocation"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            // RFC 8414 makes this field required; this server has no
            // authorization endpoint, so it supports no response type.
            "response_types_supported": [],
            "access_token_signing_alg_values_supported": algs,
        })
    }
}

/// The metadata document.
pub(crate) async fn discovery(State(server): State<Arc<TokenServer>>) -> impl IntoResponse {
    axum::Json(server.metadata())
}
