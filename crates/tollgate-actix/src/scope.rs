//! [`RequireScope`]: scope requirements for a scope or resource.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use tollgate_core::ScopeRequirement;
use tollgate_core::gate::{Authentication, Rejection, RequestView};

use crate::convert::{View, respond};
use crate::middleware::LocalBoxFuture;

/// Scope requirements for a scope or resource; wrap it inside
/// [`Auth`](crate::Auth). A token without the scopes gets 403
/// `insufficient_scope` with the `scope` attribute; an anonymous request
/// 401; a request no `Auth` saw 500.
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScope {
    require: ScopeRequirement,
    realm: Option<Arc<str>>,
}

tollgate_core::__scope_settings!(RequireScope);

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeMiddleware {
            service,
            require: self.clone(),
        }))
    }
}

/// The service made by [`RequireScope`].
pub struct RequireScopeMiddleware<S> {
    service: S,
    require: RequireScope,
}

impl<S, B> Service<ServiceRequest> for RequireScopeMiddleware<S>
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
                .require
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
