//! axum integration for Tollgate.
//!
//! Add [`AuthLayer`] to a router, take [`Claims<C>`] in handlers, require
//! scopes per route with [`RequireScopeLayer`]:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tollgate_axum::{AuthLayer, Claims, RequireScopeLayer};
//! use tollgate_core::{Algorithm, Authenticator, Issuer, VerifyingKey};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("hello {}", claims.subject().unwrap_or("anonymous"))
//! }
//!
//! let auth: Authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api")
//!         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/reports", get(me))
//!     .route_layer(RequireScopeLayer::all(["reports:read"]))
//!     .route("/me", get(me))
//!     .layer(AuthLayer::new(auth));
//! # let _ = app;
//! ```
//!
//! If a handler asks for `Claims` and no `AuthLayer` (with the same claims
//! type) ran, the answer is 500 with code `invalid_configuration`: a server
//! mistake, never a silent 401.

#![forbid(unsafe_code)]

use std::ops::Deref;
use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use tollgate_core::{Error, NoClaims, TokenInfo, Verified};

pub use tollgate_tower::{
    Anonymous, Auth, AuthLayer, Charge, ChargeLayer, RequireScope, RequireScopeLayer, verified,
};

/// The verified token of the request, with application claims `C`.
///
/// Derefs to [`Verified<C>`]. Rejections: 401 when the request went on
/// anonymously ([`AuthLayer::optional`]); 500 when no `AuthLayer<C>` ran.
/// Take `Option<Claims<C>>` in routes where a token is optional.
#[derive(Debug)]
pub struct Claims<C = NoClaims>(pub Arc<Verified<C>>);

impl<C> Clone for Claims<C> {
    fn clone(&self) -> Self {
        Claims(self.0.clone())
    }
}

impl<C> Deref for Claims<C> {
    type Target = Verified<C>;
    fn deref(&self) -> &Verified<C> {
        &self.0
    }
}

/// Why [`Claims`] or [`Scopes`] could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request went on without a token (optional authentication).
    Unauthenticated,
    /// No `AuthLayer` with this claims type ran: a server misconfiguration.
    MissingAuthLayer,
}

impl ClaimsRejection {
    /// The core error this rejection answers with.
    pub fn error(&self) -> Error {
        match self {
            ClaimsRejection::Unauthenticated => Error::MissingToken,
            ClaimsRejection::MissingAuthLayer => Error::Config(
                "no authentication layer with this claims type in front of this handler".into(),
            ),
        }
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        let err = self.error();
        let mut resp = tollgate_core::error_response(&err, None).map(axum_core::body::Body::from);
        resp.extensions_mut().insert(err);
        resp
    }
}

fn missing(parts: &Parts) -> ClaimsRejection {
    if parts.extensions.get::<Anonymous>().is_some() {
        ClaimsRejection::Unauthenticated
    } else {
        ClaimsRejection::MissingAuthLayer
    }
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match tollgate_tower::verified::<C>(&parts.extensions) {
            Some(v) => Ok(Claims(v)),
            None => Err(missing(parts)),
        }
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match tollgate_tower::verified::<C>(&parts.extensions) {
            Some(v) => Ok(Some(Claims(v))),
            None => match missing(parts) {
                ClaimsRejection::Unauthenticated => Ok(None),
                other => Err(other),
            },
        }
    }
}

/// The scopes of the request's token, whatever its claims type.
#[derive(Clone)]
pub struct Scopes(Arc<dyn TokenInfo>);

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Scopes {
    /// Each scope.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.scope().split(' ').filter(|s| !s.is_empty())
    }

    /// True when the token carries `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.has_scope(scope)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scopes {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Arc<dyn TokenInfo>>() {
            Some(t) => Ok(Scopes(t.clone())),
            None => Err(missing(parts)),
        }
    }
}
