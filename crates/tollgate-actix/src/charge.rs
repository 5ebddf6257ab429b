//! [`Charge`]: what a request to a scope or resource costs.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use tollgate_core::gate::{Rejection, RequestView};
use tollgate_core::policy::Meter;

use crate::convert::{View, respond};
use crate::middleware::LocalBoxFuture;

/// Sets what a request to a scope or resource costs (`Scope::wrap`,
/// `Resource::wrap`), replacing the default cost of the
/// [`Auth`](crate::Auth) middleware's credit policy: the difference is
/// charged (402 `credits_exhausted` when it cannot be paid, and the earlier
/// charge is refunded) or refunded. Requests with unmetered tokens pass
/// untouched.
///
/// ```
/// use actix_web::{App, web};
/// use tollgate_actix::Charge;
///
/// let app = App::new().service(
///     web::resource("/report").wrap(Charge::cost(5)).to(|| async { "report" }),
/// );
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Charge {
    cost: u64,
}

impl Charge {
    /// Requests cost `cost` credits (0 allowed).
    pub fn cost(cost: u64) -> Self {
        Charge { cost }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Charge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = ChargeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ChargeMiddleware {
            service: Rc::new(service),
            cost: self.cost,
        }))
    }
}

/// The service made by [`Charge`].
pub struct ChargeMiddleware<S> {
    service: Rc<S>,
    cost: u64,
}

impl<S, B> Service<ServiceRequest> for ChargeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let meter = req.extensions().get::<Arc<Meter>>().cloned();
        let service = self.service.clone();
        let cost = self.cost;
        Box::pin(async move {
            if let Some(meter) = meter
                && let Err(err) = meter.set_cost(cost).wait().await
            {
                let resp = respond(Rejection::inner(err, None, View(&req).protocol()));
                return Ok(req.into_response(resp).map_into_right_body());
            }
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}
