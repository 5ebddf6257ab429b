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
///
/// # Examples
///
/// An OAuth2 server's RFC 9068 access tokens, keys from its JWKS:
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer};
///
/// let issuer = TrustedIssuer::new("https://login.example.com")
///     .audience("https://api.example.com")
///     .audience("https://api.example.com/v2") // any one of them
///     .algorithms([Algorithm::ES256, Algorithm::RS256])
///     .require_type("at+jwt")
///     .require_claim("client_id")
///     .leeway(Duration::from_secs(30))
///     .jwks_url("https://login.example.com/.well-known/jwks.json");
/// let auth = Authenticator::builder().issuer(issuer).build()?;
/// # let _ = auth;
/// # Ok::<(), tollgate_core::ConfigError>(())
/// ```
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
    ///
    /// ```
    /// use tollgate_core::{Algorithm, TrustedIssuer};
    ///
    /// // A JWKS may hold RSA keys too; accept only EdDSA-signed tokens.
    /// let issuer = TrustedIssuer::new("https://issuer.example").audience("api")
    ///     .jwks_url("https://issuer.example/jwks.json")
    ///     .algorithms([Algorithm::EdDSA]);
    /// # let _ = issuer;
    /// ```
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
    ///
    /// ```
    /// use tollgate_core::TrustedIssuer;
    ///
    /// // Only access tokens: an ID token of the same issuer (`typ: JWT`) is refused.
    /// let issuer = TrustedIssuer::new("https://login.example.com").audience("api")
    ///     .discovery_url("https://login.example.com/.well-known/openid-configuration")
    ///     .require_type("at+jwt");
    /// # let _ = issuer;
    /// ```
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
    ///
    /// ```
    /// use tollgate_core::{Algorithm, TrustedIssuer, VerifyingKey};
    ///
    /// // During a rotation: the old and the new secret, told apart by `kid`.
    /// let issuer = TrustedIssuer::new("https://issuer.example").audience("api")
    ///     .key(VerifyingKey::hmac(&[1; 32], Algorithm::HS256)?.with_kid("2026-10"))
    ///     .key(VerifyingKey::hmac(&[2; 32], Algorithm::HS256)?.with_kid("2026-11"));
    /// # let _ = issuer;
    /// # Ok::<(), tollgate_core::ConfigError>(())
    /// ```
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
    ///
    /// ```
    /// use tollgate_core::{Authenticator, RemoteOptions, TrustedIssuer};
    ///
    /// // A token server on this machine (plain http is fine on loopback).
    /// let local = TrustedIssuer::new("http://127.0.0.1:8080").audience("tollgate-demo")
    ///     .jwks_url("http://127.0.0.1:8080/.well-known/jwks.json");
    /// assert!(Authenticator::builder().issuer(local).build().is_ok());
    ///
    /// // A token server on another host of a private network, opted in.
    /// let internal = TrustedIssuer::new("http://auth.internal").audience("api")
    ///     .jwks_url("http://auth.internal/.well-known/jwks.json")
    ///     .remote_options(RemoteOptions::new().allow_insecure_http());
    /// assert!(Authenticator::builder().issuer(internal).build().is_ok());
    /// ```
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Remote(Location::Jwks(url.into()));
        self
    }

    /// Finds the JWKS through an OpenID Connect or RFC 8414 metadata URL
    /// (e.g. `https://issuer.example/.well-known/openid-configuration`).
    /// The document's `issuer` must equal this issuer. The URL follows the
    /// rules of [`jwks_url`](Self::jwks_url); the `jwks_uri` the document
    /// names does too, and is `https` when on another origin.
    ///
    /// ```
    /// use tollgate_core::TrustedIssuer;
    ///
    /// let issuer = TrustedIssuer::new("https://login.example.com/realms/main")
    ///     .audience("https://api.example.com")
    ///     .discovery_url("https://login.example.com/realms/main/.well-known/openid-configuration");
    /// assert_eq!(issuer.name(), "https://login.example.com/realms/main");
    /// ```
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
