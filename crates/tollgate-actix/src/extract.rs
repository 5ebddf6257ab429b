//! The [`Claims`] and [`Scopes`] extractors.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use tollgate_core::gate::{self, Authentication};

use crate::convert::render;

tollgate_core::__extractor_types! {
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
