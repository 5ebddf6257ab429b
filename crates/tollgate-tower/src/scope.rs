//! [`RequireScopeLayer`]: route-level scope requirements.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tollgate_core::{Error, ScopeRequirement, TokenInfo};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{Anonymous, ResponseFuture};

/// Requires scopes of the token an [`AuthLayer`](crate::AuthLayer) put in
/// the request. Place it inside the `AuthLayer` (in axum: `route_layer` on
/// the routes, `layer(AuthLayer)` on the router).
///
/// A token without the scopes gets 403 `insufficient_scope` with the
/// `scope` attribute in the challenge (RFC 6750 §3.1). An anonymous request
/// gets 401. A request that no `AuthLayer` saw gets 500: that is a server
/// misconfiguration, not the client's fault.
///
/// ```
/// use tollgate_tower::RequireScopeLayer;
///
/// let write = RequireScopeLayer::all(["reports:read", "reports:write"]);
/// let either = RequireScopeLayer::any(["admin", "reports:read"]);
/// # let _ = (write, either);
/// ```
#[derive(Clone)]
pub struct RequireScopeLayer {
    require: ScopeRequirement,
    realm: Option<Arc<str>>,
}

impl fmt::Debug for RequireScopeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("require", &self.require)
            .finish()
    }
}

impl RequireScopeLayer {
    /// Every one of `scopes` is required.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(ScopeRequirement::all(scopes))
    }

    /// At least one of `scopes` is required.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::new(ScopeRequirement::any(scopes))
    }

    /// A layer for a requirement built elsewhere.
    pub fn new(require: ScopeRequirement) -> Self {
        RequireScopeLayer {
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

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> RequireScope<S> {
        RequireScope {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequireScopeLayer`].
#[derive(Clone, Debug)]
pub struct RequireScope<S> {
    inner: S,
    layer: RequireScopeLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequireScope<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let err = match req.extensions().get::<Arc<dyn TokenInfo>>() {
            Some(token) => match self.layer.require.check(token.as_ref()) {
                Ok(()) => return ResponseFuture::inner(self.inner.call(req)),
                Err(e) => e,
            },
            None if req.extensions().get::<Anonymous>().is_some() => Error::MissingToken,
            None => {
                tracing::error!("RequireScopeLayer without an AuthLayer in front of it");
                Error::Config("no authentication layer in front of this route".into())
            }
        };
        tracing::debug!(reason = err.code(), "request rejected");
        let mut resp =
            tollgate_core::error_response(&err, self.layer.realm.as_deref()).map(ResB::from);
        resp.extensions_mut().insert(err);
        ResponseFuture::ready(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Token(&'static str);

    impl TokenInfo for Token {
        fn issuer(&self) -> &str {
            "i"
        }
        fn subject(&self) -> Option<&str> {
            None
        }
        fn client_id(&self) -> Option<&str> {
            None
        }
        fn token_id(&self) -> Option<&str> {
            None
        }
        fn key_id(&self) -> Option<&str> {
            None
        }
        fn expires_at(&self) -> i64 {
            0
        }
        fn issued_at(&self) -> Option<i64> {
            None
        }
        fn credits(&self) -> Option<u64> {
            None
        }
        fn bound_addresses(&self) -> Option<&[tollgate_core::policy::IpNet]> {
            None
        }
        fn scope(&self) -> &str {
            self.0
        }
        fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
            self
        }
    }

    #[test]
    fn all_and_any() {
        let all = ScopeRequirement::all(["a", "b"]);
        let any = ScopeRequirement::any(["a", "b"]);
        assert!(all.check(&Token("b a c")).is_ok());
        assert_eq!(
            all.check(&Token("a c")),
            Err(Error::InsufficientScope {
                required: "a b".into()
            })
        );
        assert!(any.check(&Token("c b")).is_ok());
        assert!(any.check(&Token("c ab")).is_err());
        assert!(any.check(&Token("")).is_err());
    }
}
