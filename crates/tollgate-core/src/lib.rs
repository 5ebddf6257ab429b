//! Framework-free core of Tollgate: bearer extraction, key sets (static and
//! remote JWKS), strict JWT validation, typed claims, and the one error type
//! with its HTTP mapping.
//!
//! ```no_run
//! use tollgate_core::{Authenticator, BearerExtractor, TrustedIssuer};
//!
//! # async fn run(req: http::Request<()>) -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Authenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://issuer.example")
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
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod authenticator;
mod cache;
pub mod claims;
mod clock;
mod error;
mod extract;
pub mod gate;
mod issuer;
pub mod jws;
mod key;
mod keyset;
mod net;
mod payload;
pub mod policy;
mod remote;
mod response;
mod scope;
mod validation;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use authenticator::{Authenticator, AuthenticatorBuilder};
pub use claims::{NoClaims, TokenInfo, Verified};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BearerError, Cause, ConfigError, Error, Result, with_causes};
pub use extract::{
    BearerExtractor, DEFAULT_MAX_TOKEN_LEN, TokenRequest, WEBSOCKET_BEARER_PROTOCOL,
    WEBSOCKET_PROTOCOL,
};
pub use issuer::{DEFAULT_LEEWAY, TrustedIssuer};
pub use key::{Jwk, JwkTrust, MIN_RSA_BITS, SkippedKey, VerifyingKey, parse_jwks};
pub use keyset::KeySet;
pub use remote::RemoteOptions;
pub use response::{
    CREDITS_LIMIT, CREDITS_REMAINING, Protocol, error_response, grpc_status, problem_json, render,
    www_authenticate,
};
pub use scope::{ClaimsCheck, ScopeRequirement};

#[doc(hidden)]
pub use http as __http;

/// Entry points for the fuzz targets (`fuzz/`), built only with
/// `--cfg fuzzing`: the private readers, each with the answer it must give.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    /// The fast payload reader and the serde reader agree on `bytes`: when
    /// the fast one answers, the serde one gives the same registered claims
    /// and member names. Panics on a disagreement.
    pub fn payload(bytes: &[u8]) {
        crate::payload::fast::agrees_with_serde(bytes);
        // Application claims read from any payload never panic.
        if let Ok(p) = crate::payload::Payload::parse_serde(bytes, true, true) {
            let _ = p.claims::<std::collections::HashMap<String, serde_json::Value>>();
        }
    }

    /// The JOSE header reader on decoded header bytes.
    pub fn header(bytes: &[u8]) {
        let _ = crate::jws::parse_header(bytes);
    }

    /// The address claim reader on raw JSON.
    pub fn ip_claim(raw: &str) {
        let _ = crate::net::parse_claim(raw, "ip");
    }
}
