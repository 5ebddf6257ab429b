//! Tower middleware for Tollgate: authenticate bearer tokens, put the
//! verified claims into the request, answer rejections per RFC 6750 with an
//! RFC 9457 body.
//!
//! Works for any tower HTTP service whose response body can be built from a
//! `String` (axum's `Body`, `http_body_util::Full<Bytes>`, `String`): the
//! inner service's response passes through untouched, without boxing.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tollgate_core::{Algorithm, Authenticator, Issuer, VerifyingKey};
//! use tollgate_tower::{AuthLayer, RequireScopeLayer};
//! use tower::{ServiceBuilder, service_fn};
//!
//! let auth: Authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api")
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

mod auth;
mod charge;
mod scope;

pub use auth::{Anonymous, Auth, AuthLayer, ResponseFuture, default_peer_address, verified};
pub use charge::{Charge, ChargeLayer};
pub use scope::{RequireScope, RequireScopeLayer};
