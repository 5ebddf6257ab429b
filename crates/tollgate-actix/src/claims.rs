//! [`RequireClaims`]: a check of the token's claims for a scope or resource.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use tollgate_core::ClaimsCheck;
use tollgate_core::gate::{Authentication, Rejection, RequestView};

use crate::convert::{View, respond};
use crate::middleware::LocalBoxFuture;

/// Requires a predicate over the token for a scope or resource
/// (`Scope::wrap`, `Resource::wrap`), inside [`Auth`](crate::Auth). A
/// token for which it is false gets 403 `access_denied` (challenge
/// `error="insufficient_scope"` without a `scope` attribute); an anonymous
/// request 401; a request no `Auth` saw 500. Same answers as the tower
/// `RequireClaimsLayer`.
///
/// ```
/// use tollgate_actix::RequireClaims;
/// use tollgate_core::Verified;
///
/// let staff = RequireClaims::new(|token: &Verified| token.client_id() == Some("backoffice"));
/// # let _ = staff;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RequireClaims {
    check: ClaimsCheck,
    realm: Option<Arc<str>>,
}

impl fmt::Debug for RequireClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaims")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

tollgate_core::__claims_check_settings!(RequireClaims);

impl<S, B> Transform<S, ServiceRequest> for RequireClaims
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireClaimsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireClaimsMiddleware {
            service,
            require: self.clone(),
        }))
    }
}

/// The service made by [`RequireClaims`].
pub struct RequireClaimsMiddleware<S> {
    service: S,
    require: RequireClaims,
}

impl<S, B> Service<ServiceRequest> for RequireClaimsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let checked = {
            let ext = req.extensions();
            self.require
                .check
                .check_request(ext.get::<Authentication>())
        };
        match checked {
            Ok(()) => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Err(err) => {
                let protocol = View(&req).protocol();
                let resp = respond(Rejection::inner(
                    err,
                    self.require.realm.as_deref(),
                    protocol,
                ));
                Box::pin(ready(Ok(req.into_response(resp).map_into_right_body())))
            }
        }
    }
}
