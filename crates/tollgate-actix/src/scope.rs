//! [`RequireScope`]: scope requirements for a scope or resource.

use std::sync::Arc;

use tollgate_core::ScopeRequirement;

/// Scope requirements for a scope or resource; wrap it inside
/// [`Auth`](crate::Auth). A token without the scopes gets 403
/// `insufficient_scope` with the `scope` attribute; an anonymous request
/// 401; a request no `Auth` saw 500.
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScope {
    check: ScopeRequirement,
    realm: Option<Arc<str>>,
}

tollgate_core::__scope_settings!(RequireScope);

token_check!(
    RequireScope,
    RequireScopeMiddleware,
    "The service made by [`RequireScope`]."
);

/// The `Transform` impl, the middleware and its `Service` impl of a check
/// on the token [`Auth`](crate::Auth) admitted (scopes, a claims
/// predicate): the type holds `check` (with `check_request`) and `realm`;
/// a refusal is answered in the request's protocol, the inner service
/// never called.
macro_rules! token_check {
    ($check:ident, $middleware:ident, $doc:literal) => {
        impl<S, B> actix_web::dev::Transform<S, actix_web::dev::ServiceRequest> for $check
        where
            S: actix_web::dev::Service<
                    actix_web::dev::ServiceRequest,
                    Response = actix_web::dev::ServiceResponse<B>,
                    Error = actix_web::Error,
                > + 'static,
            B: 'static,
        {
            type Response = actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>;
            type Error = actix_web::Error;
            type Transform = $middleware<S>;
            type InitError = ();
            type Future = std::future::Ready<Result<Self::Transform, ()>>;

            fn new_transform(&self, service: S) -> Self::Future {
                std::future::ready(Ok($middleware {
                    service,
                    check: self.clone(),
                }))
            }
        }

        #[doc = $doc]
        pub struct $middleware<S> {
            service: S,
            check: $check,
        }

        impl<S, B> actix_web::dev::Service<actix_web::dev::ServiceRequest> for $middleware<S>
        where
            S: actix_web::dev::Service<
                    actix_web::dev::ServiceRequest,
                    Response = actix_web::dev::ServiceResponse<B>,
                    Error = actix_web::Error,
                > + 'static,
            B: 'static,
        {
            type Response = actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>;
            type Error = actix_web::Error;
            type Future = crate::middleware::LocalBoxFuture<Result<Self::Response, Self::Error>>;

            actix_web::dev::forward_ready!(service);

            fn call(&self, req: actix_web::dev::ServiceRequest) -> Self::Future {
                use actix_web::HttpMessage as _;
                use tollgate_core::gate::RequestView as _;
                let checked = {
                    let ext = req.extensions();
                    self.check
                        .check
                        .check_request(ext.get::<tollgate_core::gate::Authentication>())
                };
                match checked {
                    Ok(()) => {
                        let fut = self.service.call(req);
                        Box::pin(async move {
                            fut.await
                                .map(actix_web::dev::ServiceResponse::map_into_left_body)
                        })
                    }
                    Err(err) => {
                        let protocol = crate::convert::View(&req).protocol();
                        let resp = crate::convert::respond(tollgate_core::gate::Rejection::inner(
                            err,
                            self.check.realm.as_deref(),
                            protocol,
                        ));
                        Box::pin(std::future::ready(Ok(req
                            .into_response(resp)
                            .map_into_right_body())))
                    }
                }
            }
        }
    };
}

pub(crate) use token_check;
