//! [`AuthLayer`]: the configuration.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use tollgate_core::gate::Gate;
use tower_layer::Layer;

use super::Auth;

/// Finds the peer address of a request in its extensions.
pub(crate) type PeerFn = fn(&http::Extensions) -> Option<IpAddr>;

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

/// Authenticates every request with a [`Gate`] (built from an
/// [`Authenticator`](tollgate_core::Authenticator)).
///
/// On success the request's extensions get the
/// [`Authentication`](tollgate_core::gate::Authentication) (read it with
/// the `Claims` extractor, or [`verified`](crate::verified)) and, for a
/// metered token, its [`Meter`](tollgate_core::policy::Meter); the inner
/// service is called. On failure the RFC 6750 / RFC 9457 answer is returned
/// with the [`Error`](tollgate_core::Error) in its extensions, and the inner
/// service is never called. A gRPC call (`Content-Type:
/// application/grpc...`, e.g. to a tonic server built with
/// `Server::builder().layer(..)`) is refused with a gRPC status instead
/// (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`; see
/// [`render`](tollgate_core::render)). By default a token is required,
/// only the `Authorization` header is read, and CORS preflights are
/// authenticated like any request.
///
/// ```
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
/// use tollgate_tower::AuthLayer;
///
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
///     .build()
///     .unwrap();
/// let layer = AuthLayer::new(auth).realm("api");
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthLayer {
    pub(crate) gate: Gate,
    pub(crate) peer: PeerFn,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

tollgate_core::__gate_settings!(AuthLayer);

impl AuthLayer {
    /// A layer that requires a valid token on every request.
    pub fn new(gate: impl Into<Gate>) -> Self {
        AuthLayer {
            gate: gate.into(),
            peer: default_peer_address,
        }
    }

    /// How the peer address is found in a request's extensions, for tokens
    /// bound to client addresses (default: [`default_peer_address`]). With
    /// axum, serve with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn peer_address(mut self, find: fn(&http::Extensions) -> Option<IpAddr>) -> Self {
        self.peer = find;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}
