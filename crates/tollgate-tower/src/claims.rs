//! [`RequireClaimsLayer`]: a route's check of the token's claims.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tollgate_core::ClaimsCheck;
use tollgate_core::gate::{Authentication, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::scope::ScopeFuture;

/// Requires a predicate over the token an [`AuthLayer`](crate::AuthLayer)
/// put in the request, beside or instead of scopes. Place it inside the
/// `AuthLayer`: on a router (`Router::layer`, below the `AuthLayer`) or on
/// routes (`route_layer`).
///
/// A token for which the predicate is false gets 403 with code
/// `access_denied` and the challenge `error="insufficient_scope"` (RFC
/// 6750's code for a token without enough privileges) without a `scope`
/// attribute. An anonymous request gets 401; a request that no `AuthLayer`
/// saw gets 500. The predicate runs after the `AuthLayer` admitted the
/// token, so a missing or bad token is still 401 first, and the auth layer
/// refunds a metered token's charge for a refused request.
///
/// ```
/// use tollgate_core::Verified;
/// use tollgate_tower::RequireClaimsLayer;
///
/// let staff = RequireClaimsLayer::new(|token: &Verified| {
///     token.client_id() == Some("backoffice")
/// })
/// .realm("api");
/// # let _ = staff;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RequireClaimsLayer {
    check: ClaimsCheck,
    realm: Option<Arc<str>>,
}

impl fmt::Debug for RequireClaimsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaimsLayer")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

tollgate_core::__claims_check_settings!(RequireClaimsLayer);

impl<S> Layer<S> for RequireClaimsLayer {
    type Service = RequireClaims<S>;

    fn layer(&self, inner: S) -> RequireClaims<S> {
        RequireClaims {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequireClaimsLayer`].
#[derive(Clone, Debug)]
pub struct RequireClaims<S> {
    inner: S,
    layer: RequireClaimsLayer,
}

crate::macros::define_inner_service_accessors!(RequireClaims);

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequireClaims<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ScopeFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let found = req.extensions().get::<Authentication>();
        match self.layer.check.check_request(found) {
            Ok(()) => ScopeFuture::inner(self.inner.call(req)),
            Err(err) => ScopeFuture::refused(crate::auth::respond(Rejection::inner(
                err,
                self.layer.realm.as_deref(),
                crate::auth::protocol(&req),
            ))),
        }
    }
}
