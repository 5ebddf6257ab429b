//! [`RequireScopeLayer`]: route-level scope requirements.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use tollgate_core::ScopeRequirement;

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
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopeLayer {
    check: ScopeRequirement,
    realm: Option<Arc<str>>,
}

tollgate_core::__scope_settings!(RequireScopeLayer);

crate::macros::define_token_check!(
    RequireScopeLayer,
    RequireScope,
    "The service made by [`RequireScopeLayer`]."
);

pin_project! {
    /// Response future of [`RequireScope`] and
    /// [`RequireClaims`](crate::RequireClaims).
    pub struct ScopeFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] fut: F },
        Refused { res: Option<Response<B>> },
    }
}

impl<F, B> ScopeFuture<F, B> {
    /// The inner service was called.
    pub(crate) fn inner(fut: F) -> Self {
        ScopeFuture {
            kind: Kind::Inner { fut },
        }
    }

    /// The request was refused with `res`.
    pub(crate) fn refused(res: Response<B>) -> Self {
        ScopeFuture {
            kind: Kind::Refused { res: Some(res) },
        }
    }
}

impl<F, B, E> Future for ScopeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Refused { res } => {
                Poll::Ready(Ok(res.take().expect("ScopeFuture polled after completion")))
            }
        }
    }
}
