//! [`Auth`]: the middleware that runs the gate for every request.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use tollgate_core::Error;
use tollgate_core::gate::{Authentication, Decision, Gate, Rejection, Verdict};
use tollgate_core::policy::Meter;

use crate::convert::{View, admit, convert, credit_headers, respond, status_of};

pub(crate) type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Middleware that authenticates every request (`App::wrap`, `Scope::wrap`,
/// `Resource::wrap`) with a [`Gate`]. Same modes and answers as the tower
/// `AuthLayer`: a token is required by default, only the `Authorization`
/// header is read, and preflights are authenticated unless
/// [`allow_preflight`](Self::allow_preflight).
///
/// # Examples
///
/// ```
/// use actix_web::{App, http::Method, test, web};
/// use tollgate_actix::{Auth, Claims};
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
///
/// async fn me(claims: Claims) -> String {
///     claims.subject().unwrap_or("?").to_owned()
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
///     .build()?;
/// actix_web::rt::System::new().block_on(async {
///     let app = test::init_service(
///         App::new()
///             .wrap(Auth::new(auth).realm("api").allow_preflight())
///             .route("/me", web::get().to(me)),
///     )
///     .await;
///
///     let res = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
///     assert_eq!(res.status(), 401);
///     let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or_default());
///     assert_eq!(challenge, Some("Bearer realm=\"api\""));
///
///     // A browser's CORS preflight: answered without a token, no handler runs.
///     let preflight = test::TestRequest::default()
///         .method(Method::OPTIONS)
///         .uri("/me")
///         .insert_header(("origin", "https://app.example"))
///         .insert_header(("access-control-request-method", "GET"))
///         .to_request();
///     assert_eq!(test::call_service(&app, preflight).await.status(), 204);
/// });
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Auth {
    gate: Gate,
}

tollgate_core::__gate_settings!(Auth);

impl Auth {
    /// Requires a valid token on every request.
    pub fn new(gate: impl Into<Gate>) -> Self {
        Auth { gate: gate.into() }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Auth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthMiddleware {
            service: Rc::new(service),
            gate: self.gate.clone(),
        }))
    }
}

/// The service made by [`Auth`].
pub struct AuthMiddleware<S> {
    service: Rc<S>,
    gate: Gate,
}

type Answer<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for AuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Answer<B>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        match self.gate.decide(&View(&req)) {
            Decision::Preflight(answer) => {
                let answer = convert(answer);
                Box::pin(ready(Ok(req.into_response(answer).map_into_right_body())))
            }
            Decision::Anonymous => {
                req.extensions_mut().insert(Authentication::Anonymous);
                Box::pin(pass(service, req))
            }
            Decision::Accepted(admitted) => {
                let meter = admit(&req, admitted);
                Box::pin(call_metered(service, req, meter))
            }
            Decision::Rejected(rejection) => Box::pin(ready(refuse(req, rejection))),
            Decision::Pending(verdict) => Box::pin(async move {
                match verdict.await {
                    Verdict::Accepted(admitted) => {
                        let meter = admit(&req, admitted);
                        call_metered(service, req, meter).await
                    }
                    Verdict::Rejected(rejection) => refuse(req, rejection),
                }
            }),
        }
    }
}

async fn pass<S, B>(service: Rc<S>, req: ServiceRequest) -> Answer<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    service
        .call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn refuse<B>(req: ServiceRequest, rejection: Rejection) -> Answer<B> {
    Ok(req.into_response(respond(rejection)).map_into_right_body())
}

/// Calls the service, then settles a metered request: refund when it
/// failed, then the credit headers.
async fn call_metered<S, B>(
    service: Rc<S>,
    req: ServiceRequest,
    meter: Option<Arc<Meter>>,
) -> Answer<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let Some(meter) = meter else {
        return pass(service, req).await;
    };
    let mut res = match service.call(req).await {
        Ok(res) => res,
        Err(e) => {
            // An error from inside is refunded like the response it becomes
            // (`error_response`, which an error may override alone). It goes
            // on as it is, so outer middleware may still downcast it, and
            // that response gets no credit headers.
            let status = status_of(e.error_response().status());
            let _ = meter.settle(status, false).wait().await;
            return Err(e);
        }
    };
    let rejected = res.response().extensions().get::<Error>().is_some();
    let _ = meter.settle(status_of(res.status()), rejected).wait().await;
    credit_headers(res.headers_mut(), &meter);
    Ok(res.map_into_left_body())
}
