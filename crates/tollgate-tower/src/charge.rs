//! [`ChargeLayer`]: a route-level credit cost.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tollgate_core::Error;
use tollgate_core::policy::{Meter, MeterStep};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::ResponseFuture;

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

impl<S, ReqB, ResB> Service<Request<ReqB>> for Charge<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(meter) = req.extensions().get::<Arc<Meter>>().cloned() else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        match meter.set_cost(self.cost) {
            MeterStep::Ready(Ok(())) => ResponseFuture::inner(self.inner.call(req)),
            MeterStep::Ready(Err(e)) => ResponseFuture::ready(reject(e)),
            MeterStep::Pending(step) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting_on(Box::pin(async move {
                    match step.await {
                        Ok(()) => inner.call(req).await,
                        Err(e) => Ok(reject(e)),
                    }
                }))
            }
        }
    }
}

fn reject<B: From<String>>(err: Error) -> Response<B> {
    tracing::debug!(reason = err.code(), "request rejected");
    let mut resp = tollgate_core::error_response(&err, None).map(B::from);
    resp.extensions_mut().insert(err);
    resp
}
