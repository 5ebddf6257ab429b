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
        // One entry per algorithm, however many keys use it.
        let mut algs: Vec<&str> = Vec::new();
        for k in read(&self.ring).keys() {
            let alg = k.algorithm().as_str();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
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
            // Tollgate's own endpoint for restricted tokens (RFC 8414 §2
            // allows further metadata): where, and what it takes.
            "tollgate_restricted_token_endpoint": format!("{base}/connect/jwt"),
            "tollgate_restricted_token_parameters_supported": crate::endpoint::restricted::PARAMS,
        })
    }
}

/// The metadata document.
pub(crate) async fn discovery(State(server): State<Arc<TokenServer>>) -> impl IntoResponse {
    axum::Json(server.metadata())
}
