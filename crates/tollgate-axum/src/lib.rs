//! axum integration for Tollgate.
//!
//! Add [`AuthLayer`] to a router, take [`Claims<C>`] in handlers with your
//! own claims type, require scopes per route with [`RequireScopeLayer`]:
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::Deserialize;
//! use tollgate_axum::{AuthLayer, Claims, RequireScopeLayer};
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//!
//! #[derive(Deserialize)]
//! struct Plan {
//!     tier: String,
//! }
//!
//! async fn me(claims: Claims<Plan>) -> String {
//!     format!("hello {} ({})", claims.subject().unwrap_or("?"), claims.claims().tier)
//! }
//!
//! let auth = Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
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
//! A token whose claims do not fit `Plan` gets 401 `invalid_claim` naming
//! the claim. A handler that asks for `Claims` with no `AuthLayer` in front
//! of it answers 500 `invalid_configuration`: a server mistake, never a
//! silent 401.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;
use tollgate_core::gate::{self, Authentication};

pub use tollgate_tower::{
    Auth, AuthLayer, Charge, ChargeLayer, Gate, RequireClaims, RequireClaimsLayer, RequireScope,
    RequireScopeLayer, verified,
};

tollgate_core::__extractor_types! {
/// The verified token of the request with the application's claims `C`
/// (default: none), read on first use and kept with the token. Derefs to
/// [`gate::Claims`], which derefs to the [`Verified`](tollgate_core::Verified)
/// token (`subject()`, `scopes()`, ...).
///
/// Rejections ([`Rejection`]): 401 when the request went on anonymously
/// ([`AuthLayer::optional`]); 401 `invalid_claim` when the token does not
/// fit `C`; 500 when no `AuthLayer` ran. Take `Option<Claims<C>>` in routes
/// where a token is optional.
///
/// # Examples
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use tollgate_axum::{AuthLayer, Claims};
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
/// use tower::ServiceExt as _;
///
/// #[derive(serde::Deserialize)]
/// struct Plan {
///     tier: String,
/// }
///
/// async fn plan(claims: Claims<Plan>) -> String {
///     format!("{} is on {}", claims.subject().unwrap_or("?"), claims.claims().tier)
/// }
///
/// async fn welcome(claims: Option<Claims>) -> String {
///     match claims {
///         Some(c) => format!("welcome back, {}", c.subject().unwrap_or("?")),
///         None => "welcome, stranger".to_owned(),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
///     .build()?;
/// let app = Router::new()
///     .route("/plan", get(plan))
///     .layer(AuthLayer::new(auth.clone()))
///     .merge(Router::new().route("/", get(welcome)).layer(AuthLayer::new(auth).optional()));
///
/// let res = app.clone().oneshot(http::Request::get("/plan").body(Body::empty())?).await?;
/// assert_eq!(res.status(), 401);
/// let res = app.oneshot(http::Request::get("/").body(Body::empty())?).await?;
/// assert_eq!(res.status(), 200); // anonymous, the handler got `None`
/// # Ok(()) }
/// ```
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let err = self.0.error();
        let mut resp = self.0.response().map(axum_core::body::Body::from);
        resp.extensions_mut().insert(err);
        resp
    }
}

fn found(parts: &Parts) -> Option<&Authentication> {
    parts.extensions.get::<Authentication>()
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        gate::Claims::from_authentication(found(parts))
            .map(Claims)
            .map_err(Rejection)
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Rejection> {
        gate::Claims::optional(found(parts))
            .map(|c| c.map(Claims))
            .map_err(Rejection)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scopes {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        gate::Scopes::from_authentication(found(parts))
            .map(Scopes)
            .map_err(Rejection)
    }
}
