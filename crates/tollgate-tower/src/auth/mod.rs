//! Authenticate every request: [`AuthLayer`], its service [`Auth`], and
//! their [`ResponseFuture`].
//!
//! The decision is the core [`Gate`](tollgate_core::gate::Gate)'s; this
//! module only converts an `http` request into its view and the gate's
//! answers into responses.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//! use tollgate_tower::AuthLayer;
//! use tower::{ServiceBuilder, service_fn};
//!
//! let auth = Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
//!         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(auth).realm("api"))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//! # let _ = svc;
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::{AuthLayer, default_peer_address};
pub use service::{Auth, verified};

use http::Response;
use tollgate_core::gate::{Admitted, Authentication, Rejection};

/// How a request expects to be refused (gRPC or HTTP), by the gate's rule.
pub(crate) fn protocol<B>(req: &http::Request<B>) -> tollgate_core::Protocol {
    tollgate_core::gate::RequestView::protocol(&tollgate_core::gate::HttpRequest::new(req, None))
}

/// A rejection as a response of the inner service's body type, with the
/// [`Error`](tollgate_core::Error) in its extensions.
pub(crate) fn respond<B: From<String>>(rejection: Rejection) -> Response<B> {
    let mut res = rejection.response.map(B::from);
    res.extensions_mut().insert(rejection.error);
    res
}

/// Puts what the gate admitted into the request; returns the meter.
pub(crate) fn admit<B>(
    req: &mut http::Request<B>,
    admitted: Admitted,
) -> Option<std::sync::Arc<tollgate_core::policy::Meter>> {
    let ext = req.extensions_mut();
    ext.insert(Authentication::Token(admitted.token));
    if let Some(meter) = &admitted.meter {
        ext.insert(meter.clone());
    }
    admitted.meter
}

/// Writes `Credits-Limit` and `Credits-Remaining`.
pub(crate) fn credit_headers<B>(res: &mut Response<B>, meter: &tollgate_core::policy::Meter) {
    for (name, value) in meter.credit_headers() {
        res.headers_mut()
            .insert(name, http::HeaderValue::from(value));
    }
}
