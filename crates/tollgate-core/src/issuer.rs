//! A trusted issuer: its `iss` value, where its keys come from, and what
//! its tokens must satisfy. The rules themselves live in
//! [`validation`](crate::validation).
//!
//! ```
//! use tollgate_core::{Algorithm, TrustedIssuer, VerifyingKey};
//!
//! let issuer = TrustedIssuer::new("https://issuer.example")
//!     .audience("https://api.example")
//!     .require_type("at+jwt")
//!     .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap());
//! assert_eq!(issuer.name(), "https://issuer.example");
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::key::VerifyingKey;
use crate::keyset::KeySet;
use crate::remote::{Location, RemoteOptions};

/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// One trusted issuer: its `iss` value, where its keys come from, and what
/// its tokens must satisfy.
///
/// Defaults: leeway 60 s; the algorithms are those of the keys; no `typ`
/// requirement; no required claims beyond `iss`, `aud` and `exp`. At least
/// one audience and one key source are required.
#[derive(Debug, Clone)]
#[must_use]
pub struct TrustedIssuer {
    pub(crate) name: Arc<str>,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) leeway: Duration,
    pub(crate) required_type: Option<String>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) source: Source,
    pub(crate) remote: RemoteOptions,
}

#[derive(Debug, Clone)]
pub(crate) enum Source {
    None,
    Static(KeySet),
    Remote(Location),
}

impl TrustedIssuer {
    /// An issuer whose tokens carry exactly this `iss`.
    pub fn new(iss: impl Into<String>) -> Self {
        TrustedIssuer {
            name: Arc::from(iss.into()),
            audiences: Vec::new(),
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            required_type: None,
            required_claims: Vec::new(),
            source: Source::None,
            remote: RemoteOptions::default(),
        }
    }

    /// Accepts tokens whose `aud` contains `aud` (may be called several times).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Restricts the accepted algorithms further than the keys do.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat`. Default 60 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the `typ` header, compared case-insensitively and with an
    /// optional `application/` prefix (RFC 7515 §4.1.9), e.g. `at+jwt`
    /// (RFC 9068).
    pub fn require_type(mut self, typ: impl Into<String>) -> Self {
        self.required_type = Some(typ.into());
        self
    }

    /// Requires a claim to be present (any value).
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required_claims.push(claim.into());
        self
    }

    /// Adds a static key.
    pub fn key(mut self, key: VerifyingKey) -> Self {
        self.source = match self.source {
            Source::Static(ks) => Source::Static(ks.with(key)),
            _ => Source::Static(KeySet::new().with(key)),
        };
        self
    }

    /// Uses a static key set.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.source = Source::Static(keys);
        self
    }

    /// Fetches keys from a JWKS URL: `https`, or plain `http` from a
    /// loopback host (127.0.0.0/8, `::1`, `localhost`) unless
    /// [`RemoteOptions::allow_insecure_http`]; checked by
    /// [`build`](crate::AuthenticatorBuilder::build). Redirects are
    /// followed only within the URL's origin.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Remote(Location::Jwks(url.into()));
        self
    }

    /// Finds the JWKS through an OpenID Connect or RFC 8414 metadata URL
    /// (e.g. `https://issuer.example/.well-known/openid-configuration`).
    /// The document's `issuer` must equal this issuer. The URL follows the
    /// rules of [`jwks_url`](Self::jwks_url); the `jwks_uri` the document
    /// names does too, and is `https` when on another origin.
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Remote(Location::Discovery(url.into()));
        self
    }

    /// Fetch and cache settings for remote keys.
    pub fn remote_options(mut self, opts: RemoteOptions) -> Self {
        self.remote = opts;
        self
    }

    /// The `iss` value.
    pub fn name(&self) -> &str {
        &self.name
    }
}
