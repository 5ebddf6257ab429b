//! [`ChargeLayer`]: a route-level credit cost.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tollgate_core::gate::Rejection;
use tollgate_core::policy::{Meter, MeterFuture, MeterStep};
use tower_layer::Layer;
use tower_service::Service;

/// Sets what a request to these routes costs, replacing the default cost of
/// the [`AuthLayer`](crate::AuthLayer)'s credit policy. Place it inside the
/// `AuthLayer` (in axum: `route_layer`).
///
/// The `AuthLayer` charges the default cost together with the revocation
/// check (one store call); this layer then charges the difference, or
/// refunds it. When the difference cannot be paid the answer is 402
/// `credits_exhausted` and the earlier charge is refunded. Set the default
/// cost to 0 when most routes set their own, so each request takes one
/// charge. Requests with unmetered tokens pass untouched.
///
/// ```
/// use tollgate_tower::ChargeLayer;
///
/// let report = ChargeLayer::cost(5);
/// # let _ = report;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct ChargeLayer {
    cost: u64,
}

impl ChargeLayer {
    /// Requests cost `cost` credits (0 allowed).
    pub fn cost(cost: u64) -> Self {
        ChargeLayer { cost }
    }
}

impl<S> Layer<S> for ChargeLayer {
    type Service = Charge<S>;

    fn layer(&self, inner: S) -> Charge<S> {
        Charge {
            inner,
            cost: self.cost,
        }
    }
}

/// The service made by [`ChargeLayer`].
#[derive(Debug, Clone)]
pub struct Charge<S> {
    inner: S,
    cost: u64,
}

crate::macros::define_inner_service_accessors!(Charge);

impl<S, ReqB, ResB> Service<Request<ReqB>> for Charge<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ChargeFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let state = match req
            .extensions()
            .get::<Arc<Meter>>()
            .map(|m| m.set_cost(self.cost))
        {
            None | Some(MeterStep::Ready(Ok(()))) => State::Called {
                fut: self.inner.call(req),
            },
            Some(MeterStep::Ready(Err(e))) => State::Refused {
                res: Some(crate::auth::respond(Rejection::inner(
                    e,
                    None,
                    crate::auth::protocol(&req),
                ))),
            },
            Some(MeterStep::Pending(step)) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Charging {
                    step,
                    inner: Some(inner),
                    req: Some(req),
                }
            }
        };
        ChargeFuture { state }
    }
}

pin_project! {
    /// Response future of [`Charge`].
    pub struct ChargeFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Charging { step: MeterFuture, inner: Option<S>, req: Option<Request<ReqB>> },
        Called { #[pin] fut: S::Future },
        Refused { res: Option<S::Response> },
    }
}

const DONE: &str = "ChargeFuture polled after completion";

impl<S, ReqB, ResB> Future for ChargeFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Charging { step, inner, req } => {
                    let charged = ready!(step.as_mut().poll(cx));
                    let (Some(mut inner), Some(req)) = (inner.take(), req.take()) else {
                        panic!("{DONE}");
                    };
                    match charged {
                        Ok(()) => state.set(State::Called {
                            fut: inner.call(req),
                        }),
                        Err(e) => state.set(State::Refused {
                            res: Some(crate::auth::respond(Rejection::inner(
                                e,
                                None,
                                crate::auth::protocol(&req),
                            ))),
                        }),
                    }
                }
                StateProj::Called { fut } => return fut.poll(cx),
                StateProj::Refused { res } => return Poll::Ready(Ok(res.take().expect(DONE))),
            }
        }
    }
}
