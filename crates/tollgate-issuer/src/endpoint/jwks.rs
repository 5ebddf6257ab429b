//! `GET /.well-known/jwks.json`: the public keys, cacheable for 5 minutes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde_json::Value;

use crate::server::{TokenServer, read};

impl TokenServer {
    /// The public JWKS.
    pub fn jwks(&self) -> Value {
        read(&self.ring).jwks()
    }
}

/// The JWKS with `Cache-Control: public, max-age=300`.
pub(crate) async fn jwks(State(server): State<Arc<TokenServer>>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(server.jwks()),
    )
}
