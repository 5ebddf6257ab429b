//! [`Auth`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tollgate_core::Verified;
use tollgate_core::gate::{Authentication, Decision, HttpRequest};
use tower_service::Service;

use super::{AuthLayer, ResponseFuture, admit, respond};

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    pub(crate) inner: S,
    pub(crate) layer: AuthLayer,
}

impl<S: fmt::Debug> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

crate::macros::define_inner_service_accessors!(Auth);

impl<S, ReqB, ResB> Service<Request<ReqB>> for Auth<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let peer = (self.layer.peer)(req.extensions());
        match self.layer.gate.decide(&HttpRequest::new(&req, peer)) {
            Decision::Preflight(answer) => ResponseFuture::ready(answer.map(ResB::from)),
            Decision::Anonymous => {
                req.extensions_mut().insert(Authentication::Anonymous);
                ResponseFuture::inner(self.inner.call(req))
            }
            Decision::Accepted(admitted) => {
                let meter = admit(&mut req, admitted);
                ResponseFuture::called(self.inner.call(req), meter)
            }
            Decision::Rejected(rejection) => ResponseFuture::ready(respond(rejection)),
            Decision::Pending(verdict) => {
                // Wait, then call the service `poll_ready` readied; a fresh
                // clone stays here for the next request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(verdict, inner, req)
            }
        }
    }
}

/// The verified token an [`AuthLayer`] put into a request's extensions;
/// `None` for an anonymous request or one no layer saw.
pub fn verified(extensions: &http::Extensions) -> Option<Arc<Verified>> {
    match extensions.get::<Authentication>()? {
        Authentication::Token(token) => Some(token.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tollgate_conformance::jwt::{Signer, good_claims, now};
    use tollgate_core::{Authenticator, Error, TrustedIssuer};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::AuthLayer;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(exp_offset: i64) -> String {
        token_with(exp_offset, serde_json::json!({}))
    }

    fn token_with(exp_offset: i64, extra: serde_json::Value) -> String {
        let mut claims = good_claims("https://issuer.example");
        claims["client_id"] = "c-9".into();
        claims["exp"] = (now() + exp_offset).into();
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        Signer::hs256(SECRET).sign(Some("k1"), &claims)
    }

    fn issuer() -> TrustedIssuer {
        TrustedIssuer::new("https://issuer.example")
            .audience("api")
            .key(Signer::hs256(SECRET).verifying_key().with_kid("k1"))
    }

    fn layer() -> AuthLayer {
        AuthLayer::new(Authenticator::builder().issuer(issuer()).build().unwrap())
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
                    let sub =
                        verified(req.extensions()).and_then(|v| v.subject().map(str::to_owned));
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
            .issuer(issuer())
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
