//! The [`Claims`] and [`Scopes`] extractors.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use tollgate_core::NoClaims;
use tollgate_core::gate::{self, Authentication};

use crate::convert::render;

/// The verified token of the request with the application's claims `C`
/// (default: none), read on first use and kept with the token. Derefs to
/// [`gate::Claims`], which derefs to the [`Verified`](tollgate_core::Verified)
/// token.
///
/// Rejections ([`Rejection`]): 401 for an anonymous request
/// ([`Auth::optional`](crate::Auth::optional)); 401 `invalid_claim` when the
/// token does not fit `C`; 500 when no [`Auth`](crate::Auth) ran (logged at
/// error level: actix's own `Option<T>` extractor turns any error into
/// `None`).
#[derive(Debug, Clone)]
pub struct Claims<C = NoClaims>(pub gate::Claims<C>);

impl<C> Deref for Claims<C> {
    type Target = gate::Claims<C>;
    fn deref(&self) -> &gate::Claims<C> {
        &self.0
    }
}

/// Why [`Claims`] or [`Scopes`] could not be extracted: the core
/// [`ClaimsRejection`](gate::ClaimsRejection), as an actix-web error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub gate::ClaimsRejection);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        render(&self.0.error(), None)
    }
}

impl<C: DeserializeOwned + Send + Sync + 'static> FromRequest for Claims<C> {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ext = req.extensions();
        ready(
            gate::Claims::from_authentication(ext.get::<Authentication>())
                .map(Claims)
                .map_err(Rejection),
        )
    }
}

/// The scopes of the request's token. Derefs to [`gate::Scopes`].
#[derive(Debug, Clone)]
pub struct Scopes(pub gate::Scopes);

impl Deref for Scopes {
    type Target = gate::Scopes;
    fn deref(&self) -> &gate::Scopes {
        &self.0
    }
}

impl FromRequest for Scopes {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ext = req.extensions();
        ready(
            gate::Scopes::from_authentication(ext.get::<Authentication>())
                .map(Scopes)
                .map_err(Rejection),
        )
    }
}
