//! Framework-free core of Tollgate: bearer extraction, key sets (static and
//! remote JWKS), strict JWT validation, typed claims, and the one error type
//! with its HTTP mapping.
//!
//! ```no_run
//! use tollgate_core::{Authenticator, BearerExtractor, Issuer};
//!
//! # async fn run(req: http::Request<()>) -> Result<(), tollgate_core::Error> {
//! let auth: Authenticator = Authenticator::builder()
//!     .issuer(
//!         Issuer::new("https://issuer.example")
//!             .audience("https://api.example")
//!             .jwks_url("https://issuer.example/.well-known/jwks.json"),
//!     )
//!     .build()?;
//! auth.ready().await?; // keys loaded before traffic
//!
//! let token = BearerExtractor::default().extract(req.headers(), req.uri())?;
//! let verified = auth.verify(&token).await?;
//! println!("hello {:?}", verified.subject());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod algorithm;
mod authenticator;
mod cache;
pub mod claims;
mod error;
mod extract;
mod fastjson;
pub mod jws;
mod key;
mod keyset;
pub mod policy;
mod remote;
mod response;
mod scope;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use authenticator::{Authenticator, AuthenticatorBuilder, DEFAULT_LEEWAY, Issuer};
pub use claims::{NoClaims, TokenInfo, Verified};
pub use error::{BearerError, Error, Result};
pub use extract::{BearerExtractor, DEFAULT_MAX_TOKEN_LEN};
pub use key::{Jwk, JwkTrust, MIN_RSA_BITS, SkippedKey, VerifyingKey, parse_jwks};
pub use keyset::KeySet;
pub use remote::RemoteOptions;
pub use response::{
    CREDITS_LIMIT, CREDITS_REMAINING, error_response, problem_json, www_authenticate,
};
pub use scope::ScopeRequirement;
