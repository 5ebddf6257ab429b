//! actix-web integration for Tollgate: the [`Auth`] middleware, the
//! [`Claims`] extractor, [`RequireScope`] for scope requirements,
//! [`RequireClaims`] for checks of the token's claims and [`Charge`] for
//! route costs.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use serde::Deserialize;
//! use tollgate_actix::{Auth, Claims, RequireScope};
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//!
//! #[derive(Deserialize)]
//! struct Plan {
//!     tier: String,
//! }
//!
//! async fn me(claims: Claims<Plan>) -> String {
//!     format!("hello {} ({})", claims.subject().unwrap_or("?"), claims.claims().tier)
//! }
//!
//! # fn run() -> std::io::Result<()> {
//! let auth = Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
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
//! Every decision is the core [`Gate`](tollgate_core::gate::Gate)'s and
//! every answer is rendered by `tollgate_core::error_response`, byte for
//! byte the same as the tower/axum layer's; this crate converts requests
//! and responses.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod charge;
mod claims;
mod convert;
mod extract;
mod middleware;
mod scope;

pub use charge::{Charge, ChargeMiddleware};
pub use claims::{RequireClaims, RequireClaimsMiddleware};
pub use convert::render;
pub use extract::{Claims, Rejection, Scopes};
pub use middleware::{Auth, AuthMiddleware};
pub use scope::{RequireScope, RequireScopeMiddleware};
pub use tollgate_core::gate::{Authentication, Gate};
