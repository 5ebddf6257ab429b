//! [`AuthenticatorBuilder`]: trusted issuers, policies, the cache and the
//! clock, checked at [`build`](AuthenticatorBuilder::build).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Authenticator, Inner, IssuerState, Keys};
use crate::cache::TokenCache;
use crate::claims::Verified;
use crate::clock::Clock;
use crate::error::{ConfigError, Result};
use crate::issuer::{Source, TrustedIssuer};
use crate::jws::KnownHeaders;
use crate::policy::Policies;
use crate::remote::RemoteKeys;

/// Verified-token cache settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct CacheConfig {
    pub(super) capacity: u64,
    pub(super) ttl: Duration,
}

/// A check of an application claims type, run at verification.
pub(super) type ClaimsCheck = fn(&Verified) -> Result<()>;

/// Builds an [`Authenticator`]. Every setting has a default; see each
/// method.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
///
/// #[derive(serde::Deserialize)]
/// struct Plan {
///     tier: String,
/// }
///
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()))
///     .check_claims::<Plan>()
///     .cache_ttl(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// # let _ = auth;
/// ```
#[must_use]
pub struct AuthenticatorBuilder {
    pub(super) issuers: Vec<TrustedIssuer>,
    pub(super) policies: Option<Policies>,
    pub(super) cache: Option<CacheConfig>,
    pub(super) claims_checks: Vec<ClaimsCheck>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) unenforced_accepted: Vec<String>,
}

impl std::fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("issuers", &self.issuers.len())
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthenticatorBuilder {
    /// Trusts an issuer. Several issuers may be added; a token is matched to
    /// one by its exact `iss`.
    ///
    /// ```
    /// use tollgate_core::{Authenticator, TrustedIssuer};
    ///
    /// // Tokens of the company's login and of a partner's, each with its own keys.
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://login.example.com")
    ///         .audience("https://api.example.com")
    ///         .jwks_url("https://login.example.com/.well-known/jwks.json"))
    ///     .issuer(TrustedIssuer::new("https://sso.partner.example")
    ///         .audience("https://api.example.com")
    ///         .discovery_url("https://sso.partner.example/.well-known/openid-configuration"))
    ///     .build()?;
    /// # let _ = auth;
    /// # Ok::<(), tollgate_core::ConfigError>(())
    /// ```
    pub fn issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Applies [`Policies`] (revocation, credits, address binding) to every
    /// request, verified-token cache hits included. The request gate runs
    /// them; see [`policy`](crate::policy).
    ///
    /// Revocations and spent credits live in the store: only services that
    /// share one store (the token server included) see each other's. A
    /// [`MemoryStore`](crate::policy::MemoryStore) is this process's alone.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate_core::policy::{Credits, IpBinding, MemoryStore, Policies};
    /// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
    ///
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?))
    ///     .policies(Policies::new(Arc::new(MemoryStore::new()))
    ///         .credits(Credits::new())
    ///         .ip_binding(IpBinding::new()))
    ///     .build()?;
    /// assert!(auth.policies().is_some());
    /// # Ok::<(), tollgate_core::ConfigError>(())
    /// ```
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Reads the application claims `C` at verification, so a token whose
    /// claims do not fit `C` is refused (401 `invalid_claim`) before any
    /// handler runs. Without it, `C` is read when a handler first asks for
    /// it ([`Verified::claims`]), with the same answer. May be called for
    /// several types.
    ///
    /// ```
    /// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
    /// # fn hs256(secret: &[u8], claims: &str) -> String {
    /// #     use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    /// #     let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims));
    /// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    /// #     format!("{input}.{}", B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes())))
    /// # }
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Plan {
    ///     tier: String,
    /// }
    ///
    /// let secret = [7u8; 32];
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .check_claims::<Plan>()
    ///     .build()?;
    ///
    /// let gold = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800,"tier":"gold"}"#);
    /// assert_eq!(auth.verify_now(&gold)?.claims::<Plan>()?.tier, "gold");
    ///
    /// let no_tier = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800}"#);
    /// assert_eq!(auth.verify_now(&no_tier).unwrap_err().code(), "invalid_claim");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_claims<C>(mut self) -> Self
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        self.claims_checks.push(|v| v.claims::<C>().map(drop));
        self
    }

    /// Accepts tokens that carry the restriction claim `name` (`credits` or
    /// `ip`, or the name a policy reads instead) although no policy
    /// enforces it here. By default such a token is refused with 401
    /// `unenforced_claim`: a token worth 10 credits or bound to one address
    /// must not become unlimited or usable anywhere at an API that forgot
    /// the policy. Use it only where the restriction truly does not apply.
    ///
    /// ```
    /// use tollgate_core::{Algorithm, Authenticator, Error, TrustedIssuer, VerifyingKey};
    /// # fn hs256(secret: &[u8], claims: &str) -> String {
    /// #     use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    /// #     let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims));
    /// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    /// #     format!("{input}.{}", B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes())))
    /// # }
    ///
    /// let secret = [7u8; 32];
    /// let issuer = TrustedIssuer::new("https://issuer.example").audience("api")
    ///     .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?);
    /// let bound = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800,"ip":"192.0.2.7"}"#);
    ///
    /// let strict = Authenticator::builder().issuer(issuer.clone()).build()?;
    /// assert_eq!(strict.verify_now(&bound).unwrap_err(), Error::UnenforcedClaim("ip".into()));
    ///
    /// // An internal tool that only reads tokens, enforcing nothing:
    /// let lenient = Authenticator::builder().issuer(issuer).accept_unenforced_claim("ip").build()?;
    /// assert!(lenient.verify_now(&bound).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_unenforced_claim(mut self, name: impl Into<String>) -> Self {
        self.unenforced_accepted.push(name.into());
        self
    }

    /// Verified-token cache size in entries. Default 10,000.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        if let Some(c) = &mut self.cache {
            c.capacity = entries;
        }
        self
    }

    /// Longest time a verified token is remembered (never past its `exp`).
    /// Default 5 minutes.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        if let Some(c) = &mut self.cache {
            c.ttl = ttl;
        }
        self
    }

    /// Turns the verified-token cache off: every request checks the signature.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The clock that `exp`, `nbf` and `iat` are checked against. Default:
    /// [`SystemClock`](crate::SystemClock). Tests of time rules pass a
    /// [`ManualClock`](crate::ManualClock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tollgate_core::{Algorithm, Authenticator, Error, ManualClock, TrustedIssuer, VerifyingKey};
    /// # fn hs256(secret: &[u8], claims: &str) -> String {
    /// #     use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    /// #     let input = format!("{}.{}", B64.encode(r#"{"alg":"HS256"}"#), B64.encode(claims));
    /// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    /// #     format!("{input}.{}", B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes())))
    /// # }
    ///
    /// let secret = [7u8; 32];
    /// let clock = Arc::new(ManualClock::at_secs(1_800_000_000));
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .leeway(Duration::ZERO)
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":1800000060}"#);
    /// assert!(auth.verify_now(&token).is_ok());
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(auth.verify_now(&token).unwrap_err(), Error::Expired); // cached or not
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the authenticator. No network
    /// access happens here; see [`Authenticator::ready`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when no issuer is configured, an issuer is
    /// configured twice, has no audience or no keys, or a remote key URL is
    /// not a URL or not `https` (plain `http` is for loopback hosts, or with
    /// [`RemoteOptions::allow_insecure_http`](crate::RemoteOptions::allow_insecure_http));
    /// [`ConfigError::HttpClient`] when the HTTP client cannot be built.
    ///
    /// # Examples
    ///
    /// ```
    /// use tollgate_core::{Authenticator, ConfigError, TrustedIssuer};
    ///
    /// // `aud` is always checked, so an issuer without an audience is a mistake.
    /// let err = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example")
    ///         .jwks_url("https://issuer.example/jwks.json"))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid(_)));
    ///
    /// // Keys over plain http from another host could be swapped on the way.
    /// let err = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .jwks_url("http://issuer.example/jwks.json"))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.code(), "invalid_configuration");
    /// ```
    pub fn build(self) -> std::result::Result<Authenticator, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::Invalid("no issuer configured".into()));
        }
        let mut states = Vec::with_capacity(self.issuers.len());
        for cfg in self.issuers {
            if states.iter().any(|s: &IssuerState| s.cfg.name == cfg.name) {
                return Err(ConfigError::Invalid(format!(
                    "issuer `{}` configured twice",
                    cfg.name
                )));
            }
            if cfg.audiences.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "issuer `{}` has no audience; `aud` is always checked",
                    cfg.name
                )));
            }
            let keys = match &cfg.source {
                Source::None => {
                    return Err(ConfigError::Invalid(format!(
                        "issuer `{}` has no keys",
                        cfg.name
                    )));
                }
                Source::Static(ks) if ks.is_empty() => {
                    return Err(ConfigError::Invalid(format!(
                        "issuer `{}` has an empty key set",
                        cfg.name
                    )));
                }
                Source::Static(ks) => Keys::Static(ks.clone()),
                Source::Remote(loc) => Keys::Remote(Arc::new(RemoteKeys::new(
                    cfg.name.clone(),
                    loc.clone(),
                    cfg.remote.clone(),
                )?)),
            };
            states.push(IssuerState { cfg, keys });
        }
        if let Some(policies) = &self.policies {
            let grace = policies.store().grace_secs();
            if let Some(cfg) = states
                .iter()
                .find(|s| i64::try_from(s.cfg.leeway.as_secs()).unwrap_or(i64::MAX) > grace)
            {
                return Err(ConfigError::Invalid(format!(
                    "the store keeps entries {grace} s past `exp`, less than the {} s leeway \
                     of issuer `{}`: a counter or revocation could go while its token is \
                     still accepted; raise the store's grace or lower the leeway",
                    cfg.cfg.leeway.as_secs(),
                    cfg.cfg.name
                )));
            }
        }
        let cache = self.cache.map(|c| TokenCache::new(c.capacity, c.ttl));
        // Restriction claims no policy reads here must be absent.
        let policies = self.policies.as_ref();
        let mut unenforced = Vec::new();
        if policies.and_then(Policies::credits_claim).is_none() {
            unenforced.push(crate::policy::DEFAULT_CREDITS_CLAIM.to_owned());
        }
        if policies.and_then(Policies::ip_claim).is_none() {
            unenforced.push(crate::policy::DEFAULT_IP_CLAIM.to_owned());
        }
        unenforced.retain(|name| !self.unenforced_accepted.contains(name));
        Ok(Authenticator {
            inner: Arc::new(Inner {
                required_claims: states.iter().any(|s| !s.cfg.required_claims.is_empty())
                    || !unenforced.is_empty(),
                unenforced,
                headers: KnownHeaders::default(),
                issuers: states,
                cache,
                policies: self.policies.map(Arc::new),
                claims_checks: self.claims_checks,
                clock: self.clock,
            }),
        })
    }
}
