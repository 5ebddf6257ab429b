//! actix-web integration for Tollgate: the [`Auth`] middleware, the
//! [`Claims`] extractor, and [`RequireScope`] for scope requirements.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use tollgate_actix::{Auth, Claims, RequireScope};
//! use tollgate_core::{Algorithm, Authenticator, Issuer, VerifyingKey};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("hello {}", claims.subject().unwrap_or("?"))
//! }
//!
//! # fn run() -> std::io::Result<()> {
//! let auth: Authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api")
//!         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
//!     .build()
//!     .unwrap();
//! actix_web::rt::System::new().block_on(
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(Auth::new(auth.clone()))
//!             .route("/me", web::get().to(me))
//!             .service(
//!                 web::scope("/reports")
//!                     .wrap(RequireScope::all(["reports:read"]))
//!                     .route("", web::get().to(me)),
//!             )
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run(),
//! )
//! # }
//! ```
//!
//! Answers are rendered by `tollgate_core::error_response`, byte for byte
//! the same as the tower/axum layer's.

#![forbid(unsafe_code)]

use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use tollgate_core::policy::{Admission, Meter, RequestInfo};
use tollgate_core::{
    Authenticator, BearerExtractor, CREDITS_LIMIT, CREDITS_REMAINING, Error, NoClaims,
    ScopeRequirement, TokenInfo, Verified,
};

/// Marks a request that went on without a token under [`Auth::optional`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anonymous;

type ErrorHook =
    Arc<dyn Fn(&Error, http::Response<String>) -> http::Response<String> + Send + Sync>;
type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Renders an error as core does, into an actix response, with the
/// [`Error`] in the response extensions.
pub fn render(err: &Error, realm: Option<&str>) -> HttpResponse {
    convert(err, tollgate_core::error_response(err, realm))
}

fn convert(err: &Error, resp: http::Response<String>) -> HttpResponse {
    let status =
        StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in resp.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append_header((n, v));
        }
    }
    let mut out = out.body(resp.into_body());
    out.extensions_mut().insert(err.clone());
    out
}

struct Config<C> {
    auth: Authenticator<C>,
    extractor: BearerExtractor,
    optional: bool,
    preflight: bool,
    realm: Option<String>,
    on_error: Option<ErrorHook>,
}

impl<C> Clone for Config<C> {
    fn clone(&self) -> Self {
        Config {
            auth: self.auth.clone(),
            extractor: self.extractor.clone(),
            optional: self.optional,
            preflight: self.preflight,
            realm: self.realm.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

impl<C> Config<C> {
    fn reject(&self, err: &Error) -> HttpResponse {
        let mut resp = tollgate_core::error_response(err, self.realm.as_deref());
        if let Some(hook) = &self.on_error {
            resp = hook(err, resp);
        }
        convert(err, resp)
    }
}

/// Middleware that authenticates every request (`App::wrap`, `Scope::wrap`,
/// `Resource::wrap`). Same modes and answers as the tower `AuthLayer`: a
/// token is required by default, only the `Authorization` header is read,
/// and preflights are authenticated unless [`allow_preflight`](Self::allow_preflight).
pub struct Auth<C = NoClaims> {
    config: Arc<Config<C>>,
}

impl<C> Clone for Auth<C> {
    fn clone(&self) -> Self {
        Auth {
            config: self.config.clone(),
        }
    }
}

impl<C> Auth<C> {
    /// Requires a valid token on every request.
    pub fn new(auth: Authenticator<C>) -> Self {
        Auth {
            config: Arc::new(Config {
                auth,
                extractor: BearerExtractor::default(),
                optional: false,
                preflight: false,
                realm: None,
                on_error: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config<C> {
        Arc::make_mut(&mut self.config)
    }

    /// Where tokens are read from (default: the `Authorization` header).
    pub fn extractor(mut self, extractor: BearerExtractor) -> Self {
        self.config_mut().extractor = extractor;
        self
    }

    /// Lets requests without any token through as [`Anonymous`]; a bad
    /// token is still rejected.
    pub fn optional(mut self) -> Self {
        self.config_mut().optional = true;
        self
    }

    /// Passes CORS preflights through unauthenticated.
    pub fn allow_preflight(mut self) -> Self {
        self.config_mut().preflight = true;
        self
    }

    /// The `realm` of the challenge.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.config_mut().realm = Some(realm.into());
        self
    }

    /// Replaces the error answer; the [`Error`] still goes into the
    /// response's extensions.
    pub fn on_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Error, http::Response<String>) -> http::Response<String> + Send + Sync + 'static,
    {
        self.config_mut().on_error = Some(Arc::new(hook));
        self
    }
}

impl<S, B, C> Transform<S, ServiceRequest> for Auth<C>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthMiddleware<S, C>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthMiddleware {
            service: Rc::new(service),
            config: self.config.clone(),
        }))
    }
}

/// The service made by [`Auth`].
pub struct AuthMiddleware<S, C> {
    service: Rc<S>,
    config: Arc<Config<C>>,
}

enum Outcome<C> {
    Anonymous,
    Verified(Arc<Verified<C>>),
    Rejected(Error),
    NeedsKeys(String),
}

fn outcome<C: DeserializeOwned + Send + Sync + 'static>(
    config: &Config<C>,
    req: &ServiceRequest,
) -> Outcome<C> {
    let token = match config.extractor.extract_from(
        req.headers()
            .get_all(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        req.headers()
            .get_all(actix_web::http::header::COOKIE)
            .map(|v| v.as_bytes()),
        req.uri().query(),
        false,
    ) {
        Ok(token) => token,
        Err(Error::MissingToken) if config.optional => return Outcome::Anonymous,
        Err(e) => return Outcome::Rejected(e),
    };
    let verdict = match config.auth.cached(&token) {
        Some(answer) => Some(answer),
        None => match config.extractor.check(&token) {
            Ok(()) => config.auth.try_verify(&token),
            Err(e) => Some(Err(e)),
        },
    };
    match verdict {
        Some(Ok(v)) => Outcome::Verified(v),
        Some(Err(e)) => Outcome::Rejected(e),
        None => Outcome::NeedsKeys(token.into_owned()),
    }
}

fn accepted<C: Send + Sync + 'static>(req: &ServiceRequest, token: Arc<Verified<C>>) {
    tracing::debug!(
        iss = token.issuer(),
        sub = token.subject(),
        client_id = token.client_id(),
        kid = token.key_id(),
        outcome = "accepted",
        "authenticated"
    );
    metrics::counter!("tollgate_authentications_total", "outcome" => "accepted").increment(1);
    let info: Arc<dyn TokenInfo> = token;
    req.extensions_mut().insert(info);
}

fn rejected(err: &Error) {
    if err.is_temporary() {
        tracing::warn!(reason = err.code(), "authentication unavailable");
    } else {
        tracing::debug!(
            reason = err.code(),
            outcome = "rejected",
            "request rejected"
        );
    }
    metrics::counter!("tollgate_authentications_total", "outcome" => "rejected", "reason" => err.code())
        .increment(1);
}

/// Runs the authenticator's policies for a verified token. The client
/// address is the connection's peer; forwarding headers count only when the
/// peer is a trusted proxy.
fn admit<C: Send + Sync + 'static>(
    config: &Config<C>,
    req: &ServiceRequest,
    token: &Arc<Verified<C>>,
) -> Admission {
    let Some(policies) = config.auth.policies() else {
        return Admission::Ready(Ok(None));
    };
    let info: Arc<dyn TokenInfo> = token.clone();
    let client = if policies.needs_client_address(&*info) {
        match req.peer_addr().map(|a| a.ip()) {
            Some(peer) if policies.trusts_proxy(peer) => {
                let mut headers = http::HeaderMap::new();
                for name in [http::header::FORWARDED.as_str(), "x-forwarded-for"] {
                    for v in req.headers().get_all(name) {
                        if let (Ok(n), Ok(v)) = (
                            http::HeaderName::from_bytes(name.as_bytes()),
                            http::HeaderValue::from_bytes(v.as_bytes()),
                        ) {
                            headers.append(n, v);
                        }
                    }
                }
                match policies.client_address(peer, &headers) {
                    Ok(ip) => Some(ip),
                    Err(e) => return Admission::Ready(Err(e)),
                }
            }
            Some(peer) => Some(peer.to_canonical()),
            None => None,
        }
    } else {
        None
    };
    let request = RequestInfo {
        method: req.method().as_str(),
        path: req.path(),
        query: req.uri().query(),
    };
    policies.admit(info, client, &request)
}

/// The rest of a request once its policies decided: call the service, then
/// refund a failed metered request and add the credit headers.
async fn finish<S, B, C>(
    config: Arc<Config<C>>,
    service: Rc<S>,
    req: ServiceRequest,
    token: Arc<Verified<C>>,
    decision: tollgate_core::Result<Option<Arc<Meter>>>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    C: Send + Sync + 'static,
{
    match decision {
        Ok(meter) => {
            accepted(&req, token);
            let Some(meter) = meter else {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            };
            req.extensions_mut().insert(meter.clone());
            let mut res = match service.call(req).await {
                Ok(res) => res,
                Err(e) => {
                    // An error from inside is refunded like the response it
                    // becomes (`error_response`, which an error may override
                    // alone). It goes on as it is, so outer middleware may
                    // still downcast it, and that response gets no credit
                    // headers.
                    if meter.should_refund(status_of(e.error_response().status()), false) {
                        let _ = meter.refund_all().wait().await;
                    }
                    return Err(e);
                }
            };
            let rejected = res.response().extensions().get::<Error>().is_some();
            if meter.should_refund(status_of(res.status()), rejected) {
                let _ = meter.refund_all().wait().await;
            }
            credit_headers(res.headers_mut(), &meter);
            Ok(res.map_into_left_body())
        }
        Err(err) => {
            rejected(&err);
            let resp = config.reject(&err);
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

/// actix-web's status (`http` 0.2) as core's (`http` 1).
fn status_of(status: actix_web::http::StatusCode) -> http::StatusCode {
    http::StatusCode::from_u16(status.as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

fn credit_headers(headers: &mut actix_web::http::header::HeaderMap, meter: &Meter) {
    headers.insert(
        HeaderName::from_static(CREDITS_LIMIT),
        HeaderValue::from(meter.limit()),
    );
    headers.insert(
        HeaderName::from_static(CREDITS_REMAINING),
        HeaderValue::from(meter.remaining()),
    );
}

impl<S, B, C> Service<ServiceRequest> for AuthMiddleware<S, C>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let config = &self.config;
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD);
        let outcome = if config.preflight && preflight {
            Outcome::Anonymous
        } else {
            outcome(config, &req)
        };
        match outcome {
            Outcome::Anonymous => {
                if !preflight {
                    metrics::counter!("tollgate_authentications_total", "outcome" => "anonymous")
                        .increment(1);
                    req.extensions_mut().insert(Anonymous);
                }
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Outcome::Verified(token) => match admit(config, &req, &token) {
                Admission::Ready(Ok(None)) => {
                    accepted(&req, token);
                    let fut = self.service.call(req);
                    Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
                }
                Admission::Ready(decision) => {
                    let service = self.service.clone();
                    let config = self.config.clone();
                    Box::pin(finish(config, service, req, token, decision))
                }
                Admission::Pending(decision) => {
                    let service = self.service.clone();
                    let config = self.config.clone();
                    Box::pin(async move {
                        let decision = decision.await;
                        finish(config, service, req, token, decision).await
                    })
                }
            },
            Outcome::Rejected(err) => {
                rejected(&err);
                let resp = config.reject(&err);
                Box::pin(ready(Ok(req.into_response(resp).map_into_right_body())))
            }
            Outcome::NeedsKeys(token) => {
                let service = self.service.clone();
                let config = self.config.clone();
                Box::pin(async move {
                    match config.auth.verify(&token).await {
                        Ok(verified) => {
                            let decision = match admit(&config, &req, &verified) {
                                Admission::Ready(d) => d,
                                Admission::Pending(d) => d.await,
                            };
                            finish(config, service, req, verified, decision).await
                        }
                        Err(err) => {
                            rejected(&err);
                            let resp = config.reject(&err);
                            Ok(req.into_response(resp).map_into_right_body())
                        }
                    }
                })
            }
        }
    }
}

/// The verified token of the request, with application claims `C`.
/// Derefs to [`Verified<C>`].
///
/// Rejections: 401 for an anonymous request ([`Auth::optional`]); 500 when
/// no [`Auth`] with this claims type ran. `Option<Claims<C>>` gives `None`
/// for both (actix's own `Option` extractor swallows the error), so the
/// missing-middleware case is also logged at error level.
#[derive(Debug)]
pub struct Claims<C = NoClaims>(pub Arc<Verified<C>>);

impl<C> Clone for Claims<C> {
    fn clone(&self) -> Self {
        Claims(self.0.clone())
    }
}

impl<C> Deref for Claims<C> {
    type Target = Verified<C>;
    fn deref(&self) -> &Verified<C> {
        &self.0
    }
}

/// Why [`Claims`] or [`Scopes`] could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request went on without a token (optional authentication).
    Unauthenticated,
    /// No `Auth` middleware with this claims type ran: a server misconfiguration.
    MissingMiddleware,
}

impl ClaimsRejection {
    /// The core error this rejection answers with.
    pub fn error(&self) -> Error {
        match self {
            ClaimsRejection::Unauthenticated => Error::MissingToken,
            ClaimsRejection::MissingMiddleware => Error::Config(
                "no authentication layer with this claims type in front of this handler".into(),
            ),
        }
    }
}

impl std::fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error().fmt(f)
    }
}

impl ResponseError for ClaimsRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error().status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        render(&self.error(), None)
    }
}

fn missing(req: &HttpRequest) -> ClaimsRejection {
    if req.extensions().get::<Anonymous>().is_some() {
        ClaimsRejection::Unauthenticated
    } else {
        tracing::error!(
            "Claims extractor without the Auth middleware (or with another claims type)"
        );
        ClaimsRejection::MissingMiddleware
    }
}

fn token_info(req: &HttpRequest) -> Option<Arc<dyn TokenInfo>> {
    req.extensions().get::<Arc<dyn TokenInfo>>().cloned()
}

impl<C: Send + Sync + 'static> FromRequest for Claims<C> {
    type Error = ClaimsRejection;
    type Future = Ready<Result<Self, ClaimsRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let typed = token_info(req).and_then(|t| t.into_any().downcast::<Verified<C>>().ok());
        ready(typed.map(Claims).ok_or_else(|| missing(req)))
    }
}

/// The scopes of the request's token, whatever its claims type.
#[derive(Clone)]
pub struct Scopes(Arc<dyn TokenInfo>);

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Scopes {
    /// Each scope.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.scope().split(' ').filter(|s| !s.is_empty())
    }

    /// True when the token carries `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.has_scope(scope)
    }
}

impl FromRequest for Scopes {
    type Error = ClaimsRejection;
    type Future = Ready<Result<Self, ClaimsRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(token_info(req).map(Scopes).ok_or_else(|| missing(req)))
    }
}

/// Scope requirements for a scope or resource; wrap it inside [`Auth`].
/// A token without the scopes gets 403 `insufficient_scope` with the `scope`
/// attribute; an anonymous request 401; a request no `Auth` saw 500.
#[derive(Clone, Debug)]
pub struct RequireScope {
    require: ScopeRequirement,
    realm: Option<Arc<str>>,
}

impl RequireScope {
    /// Every one of `scopes` is required.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(ScopeRequirement::all(scopes))
    }

    /// At least one of `scopes` is required.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(ScopeRequirement::any(scopes))
    }

    /// Middleware for a requirement built elsewhere.
    pub fn new(require: ScopeRequirement) -> Self {
        RequireScope {
            require,
            realm: None,
        }
    }

    /// The `realm` of the challenge.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(Arc::from(realm.into()));
        self
    }
}

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
        let token = req.extensions().get::<Arc<dyn TokenInfo>>().cloned();
        let err = match token {
            Some(t) => match self.require.require.check(t.as_ref()) {
                Ok(()) => {
                    let fut = self.service.call(req);
                    return Box::pin(
                        async move { fut.await.map(ServiceResponse::map_into_left_body) },
                    );
                }
                Err(e) => e,
            },
            None if req.extensions().get::<Anonymous>().is_some() => Error::MissingToken,
            None => {
                tracing::error!("RequireScope without the Auth middleware in front of it");
                Error::Config("no authentication layer in front of this route".into())
            }
        };
        tracing::debug!(reason = err.code(), "request rejected");
        let resp = render(&err, self.require.realm.as_deref());
        Box::pin(ready(Ok(req.into_response(resp).map_into_right_body())))
    }
}

/// Sets what a request to a scope or resource costs (`Scope::wrap`,
/// `Resource::wrap`), replacing the default cost of the [`Auth`]
/// middleware's credit policy: the difference is charged (402
/// `credits_exhausted` when it cannot be paid, and the earlier charge is
/// refunded) or refunded. Requests with unmetered tokens pass untouched.
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
                tracing::debug!(reason = err.code(), "request rejected");
                let resp = render(&err, None);
                return Ok(req.into_response(resp).map_into_right_body());
            }
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}
