//! [`ResponseFuture`]: the response side of [`Auth`](super::Auth).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tollgate_core::Error;
use tollgate_core::gate::{PendingVerdict, Verdict};
use tollgate_core::policy::{Meter, MeterFuture, MeterStep};
use tower_service::Service;

use super::{admit, credit_headers, respond};

pin_project! {
    /// Response future of [`Auth`](super::Auth).
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
    }
}

type Body<S, ReqB> = <S as Service<Request<ReqB>>>::Response;

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        /// Waiting for keys or the store; the service and the request wait too.
        Deciding { verdict: PendingVerdict, inner: Option<S>, req: Option<Request<ReqB>> },
        /// The inner service answers; `meter` is settled with its answer.
        Called { #[pin] fut: S::Future, meter: Option<Arc<Meter>> },
        /// A refund runs before the answer goes out with its credit headers.
        Settling { step: MeterFuture, res: Option<Body<S, ReqB>>, meter: Arc<Meter> },
        /// A refund runs before the inner service's error goes out.
        SettlingError { step: MeterFuture, err: Option<S::Error> },
        /// Tollgate's own answer.
        Ready { res: Option<Body<S, ReqB>> },
    }
}

impl<S: Service<Request<ReqB>>, ReqB> ResponseFuture<S, ReqB> {
    pub(crate) fn inner(fut: S::Future) -> Self {
        Self::called(fut, None)
    }
    pub(crate) fn called(fut: S::Future, meter: Option<Arc<Meter>>) -> Self {
        ResponseFuture {
            state: State::Called { fut, meter },
        }
    }
    pub(crate) fn ready(res: Body<S, ReqB>) -> Self {
        ResponseFuture {
            state: State::Ready { res: Some(res) },
        }
    }
    pub(crate) fn deciding(verdict: PendingVerdict, inner: S, req: Request<ReqB>) -> Self {
        ResponseFuture {
            state: State::Deciding {
                verdict,
                inner: Some(inner),
                req: Some(req),
            },
        }
    }
}

const DONE: &str = "ResponseFuture polled after completion";

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Deciding {
                    verdict,
                    inner,
                    req,
                } => {
                    let verdict = ready!(verdict.as_mut().poll(cx));
                    let (Some(mut inner), Some(mut req)) = (inner.take(), req.take()) else {
                        panic!("{DONE}");
                    };
                    match verdict {
                        Verdict::Accepted(admitted) => {
                            let meter = admit(&mut req, admitted);
                            let fut = inner.call(req);
                            state.set(State::Called { fut, meter });
                        }
                        Verdict::Rejected(rejection) => {
                            state.set(State::Ready {
                                res: Some(respond(rejection)),
                            });
                        }
                    }
                }
                StateProj::Called { fut, meter } => {
                    let result = ready!(fut.poll(cx));
                    let Some(meter) = meter.take() else {
                        return Poll::Ready(result);
                    };
                    match result {
                        Ok(mut res) => {
                            let rejected = res.extensions().get::<Error>().is_some();
                            match meter.settle(res.status(), rejected) {
                                MeterStep::Ready(_) => {
                                    credit_headers(&mut res, &meter);
                                    return Poll::Ready(Ok(res));
                                }
                                MeterStep::Pending(step) => state.set(State::Settling {
                                    step,
                                    res: Some(res),
                                    meter,
                                }),
                            }
                        }
                        // A service that fails without a response: a server
                        // error, refunded as one in charge-on-success mode.
                        Err(err) => match meter.settle(StatusCode::INTERNAL_SERVER_ERROR, false) {
                            MeterStep::Ready(_) => return Poll::Ready(Err(err)),
                            MeterStep::Pending(step) => state.set(State::SettlingError {
                                step,
                                err: Some(err),
                            }),
                        },
                    }
                }
                StateProj::Settling { step, res, meter } => {
                    // A failed refund is logged by the meter; the answer goes out.
                    let _ = ready!(step.as_mut().poll(cx));
                    let mut res = res.take().expect(DONE);
                    credit_headers(&mut res, meter);
                    return Poll::Ready(Ok(res));
                }
                StateProj::SettlingError { step, err } => {
                    let _ = ready!(step.as_mut().poll(cx));
                    return Poll::Ready(Err(err.take().expect(DONE)));
                }
                StateProj::Ready { res } => return Poll::Ready(Ok(res.take().expect(DONE))),
            }
        }
    }
}
