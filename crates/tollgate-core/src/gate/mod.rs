//! The request gate: every decision about a request, written once, for any
//! framework.
//!
//! A [`Gate`] holds the [`Authenticator`] and what the request side adds to
//! it: where tokens are read from, optional mode, CORS preflights, the
//! challenge's realm and an error hook. [`Gate::decide`] runs extract ->
//! verified-token cache -> verify -> policies and answers a [`Decision`];
//! a gRPC call is refused with a gRPC status ([`crate::render`]); the
//! adapter then only converts: it puts the [`Authentication`] (and the
//! [`Meter`] of a metered token) into the request, calls the inner service,
//! and [settles](Meter::settle) the response. Spans, counters and logs are
//! the gate's ([`observe`]), the same in every framework.
//!
//! An adapter for a new framework needs a [`RequestView`] of its request
//! and the conversions:
//!
//! ```
//! use tollgate_core::gate::{Authentication, Decision, Gate, HttpRequest};
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let gate = Gate::new(Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
//!         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
//!     .build()?);
//! let mut req = http::Request::new(());
//! let decision = match gate.decide(&HttpRequest::new(&req, None)) {
//!     Decision::Pending(later) => later.await.into(),
//!     now => now,
//! };
//! match decision {
//!     Decision::Accepted(admitted) => {
//!         req.extensions_mut().insert(Authentication::Token(admitted.token));
//!         // call the handler, then settle `admitted.meter` with its status
//!     }
//!     Decision::Rejected(rejection) => assert_eq!(rejection.response.status(), 401),
//!     _ => {}
//! }
//! # Ok(()) }
//! ```

mod authentication;
mod macros;
pub mod observe;
mod request;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Response;
use tracing::{Instrument, Span};

pub use authentication::{Authentication, Claims, ClaimsRejection, Scopes};
pub use request::{HttpRequest, RequestView};

use crate::authenticator::Authenticator;
use crate::claims::Verified;
use crate::error::Error;
use crate::extract::BearerExtractor;
use crate::policy::{Admission, Meter, RequestInfo};
use crate::response::Protocol;
use request::{FORWARDED, RequestFacts, X_FORWARDED_FOR};

/// Replaces the error answer. Gets the error and Tollgate's answer.
type ErrorHook = Arc<dyn Fn(&Error, Response<String>) -> Response<String> + Send + Sync>;

#[derive(Clone)]
struct Config {
    auth: Authenticator,
    extractor: BearerExtractor,
    optional: bool,
    preflight: bool,
    realm: Option<Arc<str>>,
    on_error: Option<ErrorHook>,
    /// Set once the missing peer address has been logged at `error`.
    no_peer_logged: Arc<AtomicBool>,
}

/// The request gate: an [`Authenticator`] plus the request-side settings.
/// Framework layers (`AuthLayer`, actix's `Auth`) are built from one.
///
/// Defaults: a token is required, only the `Authorization` header is read,
/// CORS preflights are authenticated like any request, no realm, Tollgate's
/// own error answers. Cloning is cheap.
///
/// # Examples
///
/// ```
/// use tollgate_core::gate::{Decision, Gate, HttpRequest};
/// use tollgate_core::{Algorithm, Authenticator, BearerExtractor, TrustedIssuer, VerifyingKey};
///
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
///     .build()?;
/// let gate = Gate::new(auth)
///     .extractor(BearerExtractor::new().cookie("access_token"))
///     .allow_preflight()
///     .realm("api");
///
/// let no_token = http::Request::get("/reports").body(())?;
/// let Decision::Rejected(rejection) = gate.decide(&HttpRequest::new(&no_token, None)) else {
///     unreachable!()
/// };
/// assert_eq!(rejection.response.status(), 401);
/// assert_eq!(rejection.response.headers()["www-authenticate"], "Bearer realm=\"api\"");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Gate {
    config: Arc<Config>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("auth", &self.config.auth)
            .field("optional", &self.config.optional)
            .field("preflight", &self.config.preflight)
            .finish_non_exhaustive()
    }
}

impl From<Authenticator> for Gate {
    fn from(auth: Authenticator) -> Gate {
        Gate::new(auth)
    }
}

impl Gate {
    /// A gate that requires a valid token on every request.
    pub fn new(auth: Authenticator) -> Self {
        Gate {
            config: Arc::new(Config {
                auth,
                extractor: BearerExtractor::default(),
                optional: false,
                preflight: false,
                realm: None,
                on_error: None,
                no_peer_logged: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Where tokens are read from (default: the `Authorization` header).
    pub fn extractor(mut self, extractor: BearerExtractor) -> Self {
        self.config_mut().extractor = extractor;
        self
    }

    /// Lets requests without any token through as anonymous
    /// ([`Authentication::Anonymous`]). A token that is sent and bad is
    /// still rejected.
    pub fn optional(mut self) -> Self {
        self.config_mut().optional = true;
        self
    }

    /// Answers CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
    /// without a token: 204 No Content, and the inner service is never
    /// called, so no handler runs unauthenticated (a route answering every
    /// method would otherwise run for anyone). Put the CORS layer outside
    /// the gate: it answers preflights itself, or adds its headers to this
    /// answer. Without this setting a preflight needs a token like any
    /// request.
    ///
    /// Browsers send a preflight without credentials before a cross-origin
    /// request that carries `Authorization`; without this setting it gets a
    /// 401, and the browser never sends the real request.
    ///
    /// ```
    /// use tollgate_core::gate::{Decision, Gate, HttpRequest};
    /// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
    ///
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
    ///     .build()?;
    /// let preflight = http::Request::options("/reports")
    ///     .header("origin", "https://app.example")
    ///     .header("access-control-request-method", "GET")
    ///     .header("access-control-request-headers", "authorization")
    ///     .body(())?;
    ///
    /// let strict = Gate::new(auth.clone());
    /// assert!(matches!(strict.decide(&HttpRequest::new(&preflight, None)), Decision::Rejected(_)));
    ///
    /// let cors = Gate::new(auth).allow_preflight();
    /// let Decision::Preflight(answer) = cors.decide(&HttpRequest::new(&preflight, None)) else {
    ///     unreachable!()
    /// };
    /// assert_eq!(answer.status(), 204);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_preflight(mut self) -> Self {
        self.config_mut().preflight = true;
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenge.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.config_mut().realm = Some(Arc::from(realm.into()));
        self
    }

    /// Replaces the error answer (status, headers, body). The hook receives
    /// the error and Tollgate's answer (for a gRPC call, the gRPC status
    /// answer of [`render`](crate::render)); the [`Error`] still travels
    /// with the [`Rejection`].
    ///
    /// ```
    /// use tollgate_core::gate::{Decision, Gate, HttpRequest};
    /// use tollgate_core::{Algorithm, Authenticator, Error, TrustedIssuer, VerifyingKey};
    ///
    /// # let auth = Authenticator::builder()
    /// #     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    /// #         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
    /// #     .build()?;
    /// // The API's own error format, keeping status and headers.
    /// let gate = Gate::new(auth).on_error(|err: &Error, mut answer| {
    ///     *answer.body_mut() = format!(r#"{{"error":"{}"}}"#, err.code());
    ///     answer.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    ///     answer
    /// });
    /// let req = http::Request::get("/").body(())?;
    /// let Decision::Rejected(rejection) = gate.decide(&HttpRequest::new(&req, None)) else {
    ///     unreachable!()
    /// };
    /// assert_eq!(rejection.response.body(), r#"{"error":"missing_token"}"#);
    /// assert_eq!(rejection.error, Error::MissingToken);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Error, Response<String>) -> Response<String> + Send + Sync + 'static,
    {
        self.config_mut().on_error = Some(Arc::new(hook));
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.config.auth
    }

    /// Decides about a request: extract, verified-token cache, verify,
    /// policies. Answers at once unless keys must be fetched or the store
    /// must be awaited ([`Decision::Pending`]).
    ///
    /// With address binding on, a request whose peer address the server
    /// does not record is a server mistake, whatever it carries: 500
    /// `invalid_configuration` naming the fix ([`RequestView::peer_setup`]),
    /// logged once at `error`. So the first request after start-up shows
    /// it, not the first address-bound token in production.
    ///
    /// See the [module documentation](self) for a whole adapter.
    ///
    /// ```
    /// use tollgate_core::gate::{Decision, Gate, HttpRequest};
    /// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
    /// # fn hs256(secret: &[u8], claims: &str) -> String {
    /// #     use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    /// #     let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims));
    /// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    /// #     format!("{input}.{}", B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes())))
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = [7u8; 32];
    /// let gate = Gate::new(Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .build()?);
    /// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","sub":"alice","exp":4102444800}"#);
    /// let req = http::Request::get("/").header("authorization", format!("Bearer {token}")).body(())?;
    /// let decision = match gate.decide(&HttpRequest::new(&req, Some("127.0.0.1".parse()?))) {
    ///     Decision::Pending(later) => later.await.into(), // remote keys, network stores
    ///     now => now,
    /// };
    /// let Decision::Accepted(admitted) = decision else { unreachable!() };
    /// assert_eq!(admitted.token.subject(), Some("alice"));
    /// assert!(admitted.meter.is_none()); // not a metered token
    /// # Ok(()) }
    /// ```
    pub fn decide<R: RequestView>(&self, req: &R) -> Decision {
        let config = &*self.config;
        if config.preflight && req.is_preflight() {
            let mut answer = Response::new(String::new());
            *answer.status_mut() = http::StatusCode::NO_CONTENT;
            return Decision::Preflight(answer);
        }
        let span = observe::span();
        // The cheap flag first: the peer lookup only where binding is on.
        if config.auth.policies().is_some_and(|p| p.binds_addresses()) && req.peer().is_none() {
            let error = self.no_peer(req.peer_setup());
            return self.rejected(&span, error, req.protocol()).into();
        }
        let token = match config.extractor.extract_unchecked(req) {
            Ok(token) => token,
            Err(Error::MissingToken) if config.optional => {
                observe::anonymous(&span);
                return Decision::Anonymous;
            }
            Err(e) => return self.rejected(&span, e, req.protocol()).into(),
        };
        // A cached token passed every check before, the character scan
        // included; only a miss pays for the scan.
        let step = span.in_scope(|| match config.auth.cached(&token) {
            Some(answer) => Ok(answer),
            None => match config.extractor.check(&token) {
                Ok(()) => config.auth.verify_step(&token),
                Err(e) => Ok(Err(e)),
            },
        });
        match step {
            Ok(Ok(verified)) => self.admit(span, req, req.protocol(), verified).into(),
            Ok(Err(e)) => self.rejected(&span, e, req.protocol()).into(),
            Err(_fetch) => {
                // Keys must be fetched: wait, holding what the policies need.
                let facts = RequestFacts::of(req);
                let protocol = req.protocol();
                let token = token.into_owned();
                let gate = self.clone();
                let later = async move {
                    let result = gate
                        .config
                        .auth
                        .verify(&token)
                        .instrument(span.clone())
                        .await;
                    match result {
                        Ok(verified) => {
                            match gate.admit(span.clone(), &facts, protocol, verified) {
                                Admit::Now(verdict) => verdict,
                                Admit::Later(store) => store.await,
                            }
                        }
                        Err(e) => gate.rejected(&span, e, protocol),
                    }
                };
                Decision::Pending(Box::pin(later))
            }
        }
    }

    /// Runs the policies (address binding, revocation, credits) for a
    /// verified token.
    fn admit<R: RequestView>(
        &self,
        span: Span,
        req: &R,
        protocol: Protocol,
        token: Arc<Verified>,
    ) -> Admit {
        let Some(policies) = self.config.auth.policies() else {
            observe::accepted(&span, &token);
            return Admit::Now(Verdict::Accepted(Admitted { token, meter: None }));
        };
        let client = if policies.needs_client_address(&*token) {
            match req.peer() {
                Some(peer) => match policies.client_address_from(
                    peer,
                    req.header_values(FORWARDED),
                    req.header_values(X_FORWARDED_FOR),
                ) {
                    Ok(ip) => Some(ip),
                    Err(e) => return Admit::Now(self.rejected(&span, e, protocol)),
                },
                None => None,
            }
        } else {
            None
        };
        let request = RequestInfo {
            method: req.method(),
            path: req.path(),
            query: req.query(),
        };
        match policies.admit(token.clone(), client, &request) {
            Admission::Ready(decided) => Admit::Now(self.conclude(&span, token, decided, protocol)),
            Admission::Pending(store) => {
                let gate = self.clone();
                Admit::Later(Box::pin(async move {
                    let decided = store.instrument(span.clone()).await;
                    gate.conclude(&span, token, decided, protocol)
                }))
            }
        }
    }

    /// The error for a request without a peer address under address
    /// binding; logged at `error` the first time.
    fn no_peer(&self, setup: &str) -> Error {
        let message =
            format!("address binding is on but the server gives no peer address: {setup}");
        if !self.config.no_peer_logged.swap(true, Ordering::Relaxed) {
            tracing::error!("{message}");
        }
        Error::Config(message)
    }

    fn conclude(
        &self,
        span: &Span,
        token: Arc<Verified>,
        decided: crate::Result<Option<Arc<Meter>>>,
        protocol: Protocol,
    ) -> Verdict {
        match decided {
            Ok(meter) => {
                observe::accepted(span, &token);
                Verdict::Accepted(Admitted { token, meter })
            }
            Err(e) => self.rejected(span, e, protocol),
        }
    }

    fn rejected(&self, span: &Span, err: Error, protocol: Protocol) -> Verdict {
        observe::rejected(span, &err);
        Verdict::Rejected(self.reject_as(err, protocol))
    }

    /// The answer to a request this gate refuses: Tollgate's rendering with
    /// this gate's realm, then the error hook.
    pub fn reject(&self, error: Error) -> Rejection {
        self.reject_as(error, Protocol::Http)
    }

    /// [`reject`](Self::reject) in the request's [`Protocol`]: for a gRPC
    /// call, a gRPC status ([`render`](crate::render)) instead of an HTTP
    /// status; then the error hook.
    pub fn reject_as(&self, error: Error, protocol: Protocol) -> Rejection {
        let mut response = crate::render(&error, self.config.realm.as_deref(), protocol);
        if let Some(hook) = &self.config.on_error {
            response = hook(&error, response);
        }
        Rejection { error, response }
    }
}

/// What the gate decided about a request.
///
/// Every variant but [`Pending`](Decision::Pending) is final; a pending one
/// becomes final when awaited (`later.await.into()`, see
/// [`Gate::decide`]).
#[must_use]
pub enum Decision {
    /// A CORS preflight under [`Gate::allow_preflight`]: answer with this
    /// (204, no body) and never call the inner service.
    Preflight(Response<String>),
    /// No token under [`Gate::optional`]: put [`Authentication::Anonymous`]
    /// into the request and call the inner service.
    Anonymous,
    /// The token verified and its policies admitted it.
    Accepted(Admitted),
    /// Refused: answer with the rejection, never call the inner service.
    Rejected(Rejection),
    /// Keys must be fetched or the store must answer first.
    Pending(PendingVerdict),
}

/// A decision still waiting for keys or the store.
pub type PendingVerdict = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// The end of a pending decision.
#[derive(Debug)]
#[must_use]
pub enum Verdict {
    /// Admitted.
    Accepted(Admitted),
    /// Refused.
    Rejected(Rejection),
}

impl Verdict {
    fn into_decision(self) -> Decision {
        match self {
            Verdict::Accepted(a) => Decision::Accepted(a),
            Verdict::Rejected(r) => Decision::Rejected(r),
        }
    }
}

/// The policies' answer for a verified token: now, or once the store
/// replies. Only these two can follow a verification.
enum Admit {
    Now(Verdict),
    Later(PendingVerdict),
}

impl From<Admit> for Decision {
    fn from(a: Admit) -> Decision {
        match a {
            Admit::Now(v) => v.into_decision(),
            Admit::Later(f) => Decision::Pending(f),
        }
    }
}

impl From<Verdict> for Decision {
    fn from(v: Verdict) -> Decision {
        v.into_decision()
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Preflight(_) => f.write_str("Preflight"),
            Decision::Anonymous => f.write_str("Anonymous"),
            Decision::Accepted(a) => f.debug_tuple("Accepted").field(a).finish(),
            Decision::Rejected(r) => f.debug_tuple("Rejected").field(&r.error).finish(),
            Decision::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// An admitted request: its token, and the meter of a metered token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Admitted {
    /// The verified token.
    pub token: Arc<Verified>,
    /// The credits of this request, when the token is metered: settle it
    /// with the response's status ([`Meter::settle`]) and write its
    /// [`credit_headers`](Meter::credit_headers).
    pub meter: Option<Arc<Meter>>,
}

/// A refused request: the error and the answer to send.
#[derive(Debug)]
#[non_exhaustive]
pub struct Rejection {
    /// Why. Adapters put it into the response's extensions, so an outer
    /// layer keeps the machine code whatever the hook made of the answer.
    pub error: Error,
    /// Status, headers (challenge, `Retry-After`, credit headers) and the
    /// RFC 9457 body.
    pub response: Response<String>,
}

impl Rejection {
    /// Tollgate's answer to `error` with `realm`, not logged (for an
    /// extractor's rejection, which the framework reports).
    pub fn render(error: Error, realm: Option<&str>) -> Rejection {
        let response = crate::error_response(&error, realm);
        Rejection { error, response }
    }

    /// The answer of a Tollgate layer inside the gate (scopes, claims
    /// checks, route costs): Tollgate's rendering with `realm` in the
    /// request's [`Protocol`] ([`RequestView::protocol`]), logged like the
    /// gate's.
    pub fn inner(error: Error, realm: Option<&str>, protocol: Protocol) -> Rejection {
        observe::log_rejection(&error);
        let response = crate::render(&error, realm, protocol);
        Rejection { error, response }
    }
}
