//! [`AuthLayer`], [`Auth`] and their [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tollgate_core::policy::{Admission, Meter, MeterFuture, MeterStep, RequestInfo};
use tollgate_core::{
    Authenticator, BearerExtractor, CREDITS_LIMIT, CREDITS_REMAINING, Error, NoClaims, TokenInfo,
    Verified,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

/// Marks a request that went on without a token under
/// [`AuthLayer::optional`]. Extractors use it to tell "anonymous" from "no
/// layer configured".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anonymous;

/// Replaces the error answer. Gets the error and Tollgate's answer.
type ErrorHook = Arc<dyn Fn(&Error, Response<String>) -> Response<String> + Send + Sync>;

/// Finds the peer address of a request in its extensions.
type PeerFn = fn(&http::Extensions) -> Option<IpAddr>;

/// The peer address as servers record it: axum's `ConnectInfo<SocketAddr>`
/// (with the `axum` feature), or a `SocketAddr` / `IpAddr` extension.
pub fn default_peer_address(ext: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    ext.get::<SocketAddr>()
        .map(SocketAddr::ip)
        .or_else(|| ext.get::<IpAddr>().copied())
}

struct Config<C> {
    auth: Authenticator<C>,
    extractor: BearerExtractor,
    optional: bool,
    preflight: bool,
    realm: Option<String>,
    on_error: Option<ErrorHook>,
    peer: PeerFn,
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
            peer: self.peer,
        }
    }
}

impl<C> Config<C> {
    fn reject<B: From<String>>(&self, err: Error) -> Response<B> {
        let mut resp = tollgate_core::error_response(&err, self.realm.as_deref());
        if let Some(hook) = &self.on_error {
            resp = hook(&err, resp);
        }
        let mut resp = resp.map(B::from);
        // The machine code survives any replacement of the answer.
        resp.extensions_mut().insert(err);
        resp
    }
}

/// Authenticates every request with an [`Authenticator`].
///
/// On success the verified token goes into the request's extensions as
/// `Arc<dyn TokenInfo>` (read it typed with [`verified`]), and the inner
/// service is called. On failure the RFC 6750 / RFC 9457 answer is returned and the
/// inner service is never called. By default a token is required, only the
/// `Authorization` header is read, and CORS preflights are authenticated
/// like any request.
///
/// ```
/// use tollgate_core::{Algorithm, Authenticator, Issuer, VerifyingKey};
/// use tollgate_tower::AuthLayer;
///
/// let auth: Authenticator = Authenticator::builder()
///     .issuer(Issuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
///     .build()
///     .unwrap();
/// let layer = AuthLayer::new(auth).realm("api");
/// # let _ = layer;
/// ```
pub struct AuthLayer<C = NoClaims> {
    config: Arc<Config<C>>,
}

impl<C> Clone for AuthLayer<C> {
    fn clone(&self) -> Self {
        AuthLayer {
            config: self.config.clone(),
        }
    }
}

impl<C> fmt::Debug for AuthLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("auth", &self.config.auth)
            .field("optional", &self.config.optional)
            .field("preflight", &self.config.preflight)
            .finish_non_exhaustive()
    }
}

impl<C> AuthLayer<C> {
    /// A layer that requires a valid token on every request.
    pub fn new(auth: Authenticator<C>) -> Self {
        AuthLayer {
            config: Arc::new(Config {
                auth,
                extractor: BearerExtractor::default(),
                optional: false,
                preflight: false,
                realm: None,
                on_error: None,
                peer: default_peer_address,
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

    /// Lets requests without any token through as anonymous (an
    /// [`Anonymous`] marker goes into the extensions). A token that is sent
    /// and bad is still rejected.
    pub fn optional(mut self) -> Self {
        self.config_mut().optional = true;
        self
    }

    /// Passes CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
    /// to the inner service unauthenticated, so a CORS layer inside can answer.
    pub fn allow_preflight(mut self) -> Self {
        self.config_mut().preflight = true;
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenge.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.config_mut().realm = Some(realm.into());
        self
    }

    /// How the peer address is found in a request's extensions, for tokens
    /// bound to client addresses (default: [`default_peer_address`]). With
    /// axum, serve with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn peer_address(mut self, find: fn(&http::Extensions) -> Option<IpAddr>) -> Self {
        self.config_mut().peer = find;
        self
    }

    /// Replaces the error answer (status, headers, body). The hook receives
    /// the error and Tollgate's answer; the [`Error`] is still put into the
    /// final response's extensions.
    pub fn on_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Error, Response<String>) -> Response<String> + Send + Sync + 'static,
    {
        self.config_mut().on_error = Some(Arc::new(hook));
        self
    }
}

impl<S, C> Layer<S> for AuthLayer<C> {
    type Service = Auth<S, C>;

    fn layer(&self, inner: S) -> Auth<S, C> {
        Auth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
pub struct Auth<S, C = NoClaims> {
    inner: S,
    config: Arc<Config<C>>,
}

impl<S: Clone, C> Clone for Auth<S, C> {
    fn clone(&self) -> Self {
        Auth {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Auth<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn accepted<C: Send + Sync + 'static, B>(
    span: &tracing::Span,
    req: &mut Request<B>,
    token: Arc<Verified<C>>,
) {
    if !span.is_disabled() {
        span.record("iss", token.issuer());
        span.record("sub", token.subject());
        span.record("client_id", token.client_id());
        span.record("kid", token.key_id());
        span.record("outcome", "accepted");
    }
    metrics::counter!("tollgate_authentications_total", "outcome" => "accepted").increment(1);
    // One extension, type-erased; `verified::<C>` recovers the typed token.
    let info: Arc<dyn TokenInfo> = token;
    req.extensions_mut().insert(info);
}

/// Runs the authenticator's policies (address binding, revocation, credits)
/// for a verified token.
fn admit<C: Send + Sync + 'static, B>(
    config: &Config<C>,
    req: &Request<B>,
    token: &Arc<Verified<C>>,
) -> Admission {
    let Some(policies) = config.auth.policies() else {
        return Admission::Ready(Ok(None));
    };
    let info: Arc<dyn TokenInfo> = token.clone();
    let client = if policies.needs_client_address(&*info) {
        match (config.peer)(req.extensions()) {
            Some(peer) => match policies.client_address(peer, req.headers()) {
                Ok(ip) => Some(ip),
                Err(e) => return Admission::Ready(Err(e)),
            },
            None => None,
        }
    } else {
        None
    };
    let request = RequestInfo {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
    };
    policies.admit(info, client, &request)
}

/// The response side of a metered request: refund when it failed, then
/// the credit headers. Returns a future when the refund must wait.
fn settle<B>(res: &mut Response<B>, meter: &Arc<Meter>) -> Option<MeterFuture> {
    let rejected = res.extensions().get::<Error>().is_some();
    if meter.should_refund(res.status(), rejected) {
        match meter.refund_all() {
            MeterStep::Ready(_) => {}
            MeterStep::Pending(f) => return Some(f),
        }
    }
    credit_headers(res, meter);
    None
}

/// An inner service that failed without a response: a server error, so
/// charge-on-success gives the charge back. Returns a future when the
/// refund must wait.
fn settle_error(meter: &Arc<Meter>) -> Option<MeterFuture> {
    if meter.should_refund(http::StatusCode::INTERNAL_SERVER_ERROR, false)
        && let MeterStep::Pending(f) = meter.refund_all()
    {
        return Some(f);
    }
    None
}

pub(crate) fn credit_headers<B>(res: &mut Response<B>, meter: &Meter) {
    let h = res.headers_mut();
    h.insert(CREDITS_LIMIT, HeaderValue::from(meter.limit()));
    h.insert(CREDITS_REMAINING, HeaderValue::from(meter.remaining()));
}

/// The verified token an [`AuthLayer<C>`] put into a request's extensions;
/// `None` when no layer with claims type `C` authenticated the request.
pub fn verified<C: Send + Sync + 'static>(
    extensions: &http::Extensions,
) -> Option<Arc<Verified<C>>> {
    let info = extensions.get::<Arc<dyn TokenInfo>>()?.clone();
    info.into_any().downcast::<Verified<C>>().ok()
}

fn rejected(err: &Error) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("outcome", "rejected");
        span.record("reason", err.code());
    }
    if err.is_temporary() {
        tracing::warn!(reason = err.code(), "authentication unavailable");
    } else {
        tracing::debug!(reason = err.code(), "request rejected");
    }
    metrics::counter!("tollgate_authentications_total", "outcome" => "rejected", "reason" => err.code())
        .increment(1);
}

fn auth_span() -> tracing::Span {
    tracing::debug_span!(
        "tollgate.auth",
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
        iss = tracing::field::Empty,
        sub = tracing::field::Empty,
        client_id = tracing::field::Empty,
        kid = tracing::field::Empty,
    )
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for Auth<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: From<String> + Send + 'static,
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        if config.preflight && is_preflight(req.method(), req.headers()) {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let span = auth_span();
        let outcome = span.in_scope(|| {
            let token = match config.extractor.extract_unchecked(req.headers(), req.uri()) {
                Ok(token) => token,
                Err(Error::MissingToken) if config.optional => {
                    tracing::Span::current().record("outcome", "anonymous");
                    metrics::counter!("tollgate_authentications_total", "outcome" => "anonymous")
                        .increment(1);
                    return Outcome::Anonymous;
                }
                Err(e) => {
                    rejected(&e);
                    return Outcome::Rejected(e);
                }
            };
            // A cached token passed every check before, the character scan
            // included; only a miss pays for the scan.
            let verdict = match config.auth.cached(&token) {
                Some(answer) => Some(answer),
                None => match config.extractor.check(&token) {
                    Ok(()) => config.auth.try_verify(&token),
                    Err(e) => Some(Err(e)),
                },
            };
            match verdict {
                Some(Ok(verified)) => Outcome::Verified(verified),
                Some(Err(e)) => {
                    rejected(&e);
                    Outcome::Rejected(e)
                }
                None => Outcome::NeedsKeys(token.into_owned()),
            }
        });
        match outcome {
            Outcome::Anonymous => {
                req.extensions_mut().insert(Anonymous);
                ResponseFuture::inner(self.inner.call(req))
            }
            Outcome::Rejected(e) => ResponseFuture::ready(config.reject(e)),
            Outcome::Verified(verified) => match admit(config, &req, &verified) {
                Admission::Ready(Ok(meter)) => {
                    accepted(&span, &mut req, verified);
                    match meter {
                        None => ResponseFuture::inner(self.inner.call(req)),
                        Some(meter) => {
                            req.extensions_mut().insert(meter.clone());
                            ResponseFuture::metered(self.inner.call(req), meter)
                        }
                    }
                }
                Admission::Ready(Err(e)) => {
                    span.in_scope(|| rejected(&e));
                    ResponseFuture::ready(config.reject(e))
                }
                Admission::Pending(decision) => {
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    let config = self.config.clone();
                    ResponseFuture::waiting(Box::pin(async move {
                        let decision = decision.instrument(span.clone()).await;
                        finish(config, span, inner, req, verified, decision).await
                    }))
                }
            },
            Outcome::NeedsKeys(token) => {
                // Keys must be fetched: wait, then call the inner service
                // that `poll_ready` readied (a fresh clone stays with us).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let config = self.config.clone();
                let fut = async move {
                    let result = config.auth.verify(&token).instrument(span.clone()).await;
                    match result {
                        Ok(verified) => {
                            let decision = match admit(&config, &req, &verified) {
                                Admission::Ready(d) => d,
                                Admission::Pending(d) => d.instrument(span.clone()).await,
                            };
                            finish(config, span, inner, req, verified, decision).await
                        }
                        Err(e) => {
                            span.in_scope(|| rejected(&e));
                            Ok(config.reject(e))
                        }
                    }
                };
                ResponseFuture::waiting(Box::pin(fut))
            }
        }
    }
}

/// The rest of a request whose policies were awaited.
async fn finish<S, C, ReqB, ResB>(
    config: Arc<Config<C>>,
    span: tracing::Span,
    mut inner: S,
    mut req: Request<ReqB>,
    verified: Arc<Verified<C>>,
    decision: tollgate_core::Result<Option<Arc<Meter>>>,
) -> Result<Response<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
    C: Send + Sync + 'static,
{
    match decision {
        Ok(meter) => {
            accepted(&span, &mut req, verified);
            match meter {
                None => inner.call(req).await,
                Some(meter) => {
                    req.extensions_mut().insert(meter.clone());
                    let mut res = match inner.call(req).await {
                        Ok(res) => res,
                        Err(e) => {
                            if let Some(refund) = settle_error(&meter) {
                                let _ = refund.await;
                            }
                            return Err(e);
                        }
                    };
                    if let Some(refund) = settle(&mut res, &meter) {
                        let _ = refund.await;
                        credit_headers(&mut res, &meter);
                    }
                    Ok(res)
                }
            }
        }
        Err(e) => {
            span.in_scope(|| rejected(&e));
            Ok(config.reject(e))
        }
    }
}

enum Outcome<C> {
    Anonymous,
    Verified(Arc<Verified<C>>),
    Rejected(Error),
    NeedsKeys(String),
}

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// Response future of [`Auth`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] fut: F },
        Metered { #[pin] fut: F, meter: Arc<Meter> },
        Refunding { fut: MeterFuture, res: Option<Response<B>>, meter: Arc<Meter> },
        RefundingError { fut: MeterFuture, err: Option<E> },
        Ready { res: Option<Response<B>> },
        Waiting { fut: BoxedResponse<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn waiting_on(fut: BoxedResponse<B, E>) -> Self {
        Self::waiting(fut)
    }
    pub(crate) fn inner(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { fut },
        }
    }
    pub(crate) fn metered(fut: F, meter: Arc<Meter>) -> Self {
        ResponseFuture {
            kind: Kind::Metered { fut, meter },
        }
    }
    pub(crate) fn ready(res: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Ready { res: Some(res) },
        }
    }
    fn waiting(fut: BoxedResponse<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Waiting { fut },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.as_mut().project().kind.project() {
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Metered { fut, meter } => {
                let mut res = match std::task::ready!(fut.poll(cx)) {
                    Ok(res) => res,
                    Err(e) => match settle_error(meter) {
                        None => return Poll::Ready(Err(e)),
                        Some(refund) => {
                            self.as_mut().project().kind.set(Kind::RefundingError {
                                fut: refund,
                                err: Some(e),
                            });
                            return self.poll(cx);
                        }
                    },
                };
                match settle(&mut res, meter) {
                    None => Poll::Ready(Ok(res)),
                    Some(refund) => {
                        let meter = meter.clone();
                        self.as_mut().project().kind.set(Kind::Refunding {
                            fut: refund,
                            res: Some(res),
                            meter,
                        });
                        self.poll(cx)
                    }
                }
            }
            KindProj::Refunding { fut, res, meter } => {
                let _ = std::task::ready!(fut.as_mut().poll(cx));
                match res.take() {
                    Some(mut res) => {
                        credit_headers(&mut res, meter);
                        Poll::Ready(Ok(res))
                    }
                    None => panic!("ResponseFuture polled after completion"),
                }
            }
            KindProj::RefundingError { fut, err } => {
                let _ = std::task::ready!(fut.as_mut().poll(cx));
                match err.take() {
                    Some(e) => Poll::Ready(Err(e)),
                    None => panic!("ResponseFuture polled after completion"),
                }
            }
            KindProj::Ready { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Waiting { fut } => fut.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tollgate_core::{Algorithm, Issuer, VerifyingKey};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(exp_offset: i64) -> String {
        token_with(exp_offset, serde_json::json!({}))
    }

    fn token_with(exp_offset: i64, extra: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = r#"{"alg":"HS256","kid":"k1"}"#;
        let mut claims = serde_json::json!({"iss": "https://issuer.example", "aud": "api",
            "sub": "user-1", "client_id": "c-9", "exp": now + exp_offset});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
        let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn layer() -> AuthLayer {
        AuthLayer::new(
            Authenticator::builder()
                .issuer(
                    Issuer::new("https://issuer.example").audience("api").key(
                        VerifyingKey::hmac(SECRET, Algorithm::HS256)
                            .unwrap()
                            .with_kid("k1"),
                    ),
                )
                .build()
                .unwrap(),
        )
    }

    fn request(token: Option<&str>) -> Request<String> {
        let mut b = Request::get("/");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(String::new()).unwrap()
    }

    #[tokio::test]
    async fn rejections_never_call_inner_and_accepted_requests_carry_the_token() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let svc = ServiceBuilder::new().layer(layer()).service(service_fn(
            move |req: Request<String>| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let sub = verified::<NoClaims>(req.extensions())
                        .and_then(|v| v.subject().map(str::to_owned));
                    Ok::<_, Infallible>(Response::new(sub.unwrap_or_default()))
                }
            },
        ));
        for (req, status) in [
            (request(None), 401),
            (request(Some("x.y.z")), 401),
            (request(Some(&token(-3600))), 401),
        ] {
            let resp = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), status);
            assert!(resp.extensions().get::<Error>().is_some());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let resp = svc
            .clone()
            .oneshot(request(Some(&token(600))))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body(), "user-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_inner_error_is_refunded_in_charge_on_success_mode() {
        use tollgate_core::policy::{CreditStore, Credits, MemoryStore, Policies};
        let store = Arc::new(MemoryStore::new());
        let auth = Authenticator::builder()
            .issuer(
                Issuer::new("https://issuer.example").audience("api").key(
                    VerifyingKey::hmac(SECRET, Algorithm::HS256)
                        .unwrap()
                        .with_kid("k1"),
                ),
            )
            .policies(Policies::new(store.clone()).credits(Credits::new().charge_on_success()))
            .build()
            .unwrap();
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(auth))
            .service(service_fn(|_req: Request<String>| async {
                Err::<Response<String>, _>("inner service down")
            }));
        let t = token_with(600, serde_json::json!({"credits": 3, "jti": "t-err"}));
        let err = svc.clone().oneshot(request(Some(&t))).await.unwrap_err();
        assert_eq!(err, "inner service down");
        assert_eq!(
            store
                .spent("https://issuer.example", "t-err")
                .await
                .unwrap(),
            Some(0),
            "the failed request's credit came back"
        );
    }
}
