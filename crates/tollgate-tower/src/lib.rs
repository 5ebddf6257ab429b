//! Tower middleware for Tollgate: authenticate bearer tokens, put the
//! verified token into the request, answer rejections per RFC 6750 with an
//! RFC 9457 body.
//!
//! Works for any tower HTTP service whose response body can be built from a
//! `String` (axum's `Body`, `http_body_util::Full<Bytes>`, `String`): the
//! inner service's response passes through untouched, without boxing.
//! Every decision is the core [`Gate`](tollgate_core::gate::Gate)'s; this
//! crate converts requests and responses.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//! use tollgate_tower::{AuthLayer, RequireScopeLayer};
//! use tower::{ServiceBuilder, service_fn};
//!
//! let auth = Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
//!         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(auth))
//!     .layer(RequireScopeLayer::all(["reports:read"]))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("report")))
//!     }));
//! # let _ = svc;
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod charge;
mod claims;
mod macros;
mod scope;

pub use auth::{Auth, AuthLayer, ResponseFuture, default_peer_address, verified};
pub use charge::{Charge, ChargeFuture, ChargeLayer};
pub use claims::{RequireClaims, RequireClaimsLayer};
pub use scope::{RequireScope, RequireScopeLayer, ScopeFuture};
pub use tollgate_core::gate::{Authentication, Gate};
