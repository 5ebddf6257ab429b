//! The claims of a verified token: the registered claims, read strictly at
//! verification, and the application's own claims type, read on demand.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Plan {
//!     tier: String,
//! }
//!
//! # fn handler(token: &tollgate_core::Verified) -> Result<(), tollgate_core::Error> {
//! if token.has_scope("reports:read") && token.claims::<Plan>()?.tier == "gold" {
//!     // ...
//! }
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};

use crate::algorithm::Algorithm;
use crate::error::Result;
use crate::net::IpNet;
use crate::payload::{Payload, Registered};

/// The claims type used when the application reads none of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct NoClaims {}

/// Application claims already read from one token, one entry per type.
type TypedClaims = RwLock<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>;

/// A token that passed every check: its registered claims, and its payload
/// for the application's claims types ([`claims`](Self::claims)).
///
/// Handlers get it from the framework layers (`Claims<C>` derefs to it);
/// [`Authenticator::verify`](crate::Authenticator::verify) returns it.
///
/// # Examples
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
/// let secret = [7u8; 32];
/// let auth = Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
///     .build()?;
/// let token = auth.verify_now(&hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api",
///     "sub":"reports:alice","client_id":"reports","scope":"reports:read reports:export",
///     "jti":"t-1","iat":1700000000,"exp":4102444800}"#))?;
///
/// assert_eq!(token.issuer(), "https://issuer.example");
/// assert_eq!(token.client_id(), Some("reports"));
/// assert_eq!(token.end_user(), Some("alice"));
/// assert_eq!(token.audiences(), ["api"]);
/// assert_eq!(token.scopes().collect::<Vec<_>>(), ["reports:read", "reports:export"]);
/// assert!(token.has_scope("reports:export"));
/// assert_eq!((token.token_id(), token.issued_at()), (Some("t-1"), Some(1_700_000_000)));
/// assert_eq!(token.algorithm(), Algorithm::HS256);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Verified {
    pub(crate) issuer: Arc<str>,
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) reg: Registered,
    pub(crate) credits: Option<u64>,
    pub(crate) addresses: Option<Box<[IpNet]>>,
    /// The decoded payload: application claims are read from it on demand.
    pub(crate) payload: Box<str>,
    pub(crate) typed: TypedClaims,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("iss", &self.issuer)
            .field("sub", &self.reg.sub)
            .field("client_id", &self.reg.client_id)
            .field("jti", &self.reg.jti)
            .field("exp", &self.reg.exp)
            .finish_non_exhaustive()
    }
}

impl Verified {
    /// `iss`: the issuer, exactly as configured.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `sub`, if present.
    pub fn subject(&self) -> Option<&str> {
        self.reg.sub.as_deref()
    }
    /// The end user a client's token speaks for: the part of `sub` after
    /// `client_id:`, as Tollgate's token server writes a restricted token
    /// for a user (`sub` = `client_id:user`). `None` when `sub` is the
    /// client itself or does not start with the token's `client_id`.
    ///
    /// ```
    /// # fn f(token: &tollgate_core::Verified) {
    /// match token.end_user() {
    ///     Some(user) => println!("{} for its user {user}", token.client_id().unwrap_or("?")),
    ///     None => println!("the client itself"),
    /// }
    /// # }
    /// ```
    pub fn end_user(&self) -> Option<&str> {
        let client = self.client_id()?;
        self.subject()?.strip_prefix(client)?.strip_prefix(':')
    }
    /// `aud`, as a list (a single string becomes one element).
    pub fn audiences(&self) -> &[String] {
        self.reg.audiences()
    }
    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.reg.exp
    }
    /// `nbf`, if present.
    pub fn not_before(&self) -> Option<i64> {
        self.reg.nbf
    }
    /// `iat`, if present.
    pub fn issued_at(&self) -> Option<i64> {
        self.reg.iat
    }
    /// `jti`, if present.
    pub fn token_id(&self) -> Option<&str> {
        self.reg.jti.as_deref()
    }
    /// `client_id` (RFC 9068), if present.
    pub fn client_id(&self) -> Option<&str> {
        self.reg.client_id.as_deref()
    }
    /// `sid`: the grant the token belongs to, if any. Tollgate's token
    /// server puts every access token of one refresh-token family under
    /// one `sid`; stores then count credits and revocations per grant, not
    /// per token (see [`token_ref`](crate::policy::token_ref)).
    pub fn grant_id(&self) -> Option<&str> {
        self.reg.sid.as_deref()
    }
    /// `sid_exp`: when the grant ends (its last token expires by then).
    pub fn grant_expires_at(&self) -> Option<i64> {
        self.reg.sid_exp
    }
    /// Scopes from `scope` (space-delimited string or array) and `scp`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.reg.scopes.split(' ').filter(|s| !s.is_empty())
    }
    /// True when the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
    /// The allowance of a metered token (the policies' credits claim).
    pub fn credits(&self) -> Option<u64> {
        self.credits
    }
    /// The client addresses the token is bound to (the policies' address claim).
    pub fn bound_addresses(&self) -> Option<&[IpNet]> {
        self.addresses.as_deref()
    }
    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    /// The `kid` header, if present.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The application's claims `C`, read from the payload the first time a
    /// type is asked for and kept with the token after that: a token served
    /// from the verified-token cache is read once per type, not once per
    /// request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidClaim`](crate::Error::InvalidClaim) naming the claim
    /// when the payload does not fit `C` (a required field missing, a value
    /// of the wrong type). The message never holds a claim's value.
    ///
    /// # Examples
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
    /// #[derive(serde::Deserialize)]
    /// struct Plan {
    ///     tier: String,
    ///     #[serde(default)]
    ///     seats: u32,
    /// }
    ///
    /// let secret = [7u8; 32];
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .build()?;
    /// let token = auth.verify_now(&hs256(&secret,
    ///     r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800,"tier":"gold","seats":5}"#))?;
    /// let plan = token.claims::<Plan>()?;
    /// assert_eq!((plan.tier.as_str(), plan.seats), ("gold", 5));
    ///
    /// let odd = auth.verify_now(&hs256(&secret,
    ///     r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800,"tier":7}"#))?;
    /// assert!(matches!(odd.claims::<Plan>(), Err(Error::InvalidClaim(name)) if name == "tier"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claims<C>(&self) -> Result<Arc<C>>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        let id = TypeId::of::<C>();
        let found = {
            let typed = self.typed.read().unwrap_or_else(|p| p.into_inner());
            typed.iter().find(|(t, _)| *t == id).map(|(_, c)| c.clone())
        };
        if let Some(c) = found.and_then(|c| c.downcast::<C>().ok()) {
            return Ok(c);
        }
        let claims =
            Arc::new(Payload::parse_serde(self.payload.as_bytes(), true, true)?.claims::<C>()?);
        let mut typed = self.typed.write().unwrap_or_else(|p| p.into_inner());
        if !typed.iter().any(|(t, _)| *t == id) {
            typed.push((id, claims.clone()));
        }
        Ok(claims)
    }
}

/// The registered claims of a verified token, as the policies and scope
/// checks read them. Implemented by [`Verified`]; tests of a store or a
/// policy may implement it for a token of their own.
pub trait TokenInfo: Send + Sync + 'static {
    /// `iss`.
    fn issuer(&self) -> &str;
    /// `sub`, if present.
    fn subject(&self) -> Option<&str>;
    /// `client_id`, if present.
    fn client_id(&self) -> Option<&str>;
    /// `jti`, if present.
    fn token_id(&self) -> Option<&str>;
    /// `kid` header, if present.
    fn key_id(&self) -> Option<&str>;
    /// `exp`.
    fn expires_at(&self) -> i64;
    /// `iat`, if present.
    fn issued_at(&self) -> Option<i64>;
    /// The allowance of a metered token, if the policies meter credits.
    fn credits(&self) -> Option<u64>;
    /// The client addresses the token is bound to, if the policies bind.
    fn bound_addresses(&self) -> Option<&[IpNet]>;
    /// All scopes, space-delimited.
    fn scope(&self) -> &str;
    /// `sid`: the grant (refresh-token family) the token belongs to.
    fn grant_id(&self) -> Option<&str> {
        None
    }
    /// `sid_exp`: when the grant ends.
    fn grant_expires_at(&self) -> Option<i64> {
        None
    }
    /// True when the token carries `scope`.
    fn has_scope(&self, scope: &str) -> bool {
        self.scope().split(' ').any(|s| s == scope)
    }
}

impl TokenInfo for Verified {
    fn issuer(&self) -> &str {
        &self.issuer
    }
    fn subject(&self) -> Option<&str> {
        self.reg.sub.as_deref()
    }
    fn client_id(&self) -> Option<&str> {
        self.reg.client_id.as_deref()
    }
    fn token_id(&self) -> Option<&str> {
        self.reg.jti.as_deref()
    }
    fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    fn expires_at(&self) -> i64 {
        self.reg.exp
    }
    fn issued_at(&self) -> Option<i64> {
        self.reg.iat
    }
    fn credits(&self) -> Option<u64> {
        self.credits
    }
    fn bound_addresses(&self) -> Option<&[IpNet]> {
        self.addresses.as_deref()
    }
    fn scope(&self) -> &str {
        &self.reg.scopes
    }
    fn grant_id(&self) -> Option<&str> {
        self.reg.sid.as_deref()
    }
    fn grant_expires_at(&self) -> Option<i64> {
        self.reg.sid_exp
    }
}

/// Reads an unsigned integer claim given as a JSON number or a numeric
/// string (`10` or `"10"`), for `#[serde(deserialize_with = ...)]`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Allowance {
///     #[serde(deserialize_with = "tollgate_core::claims::u64_or_string")]
///     credits: u64,
/// }
/// let a: Allowance = serde_json::from_str(r#"{"credits":"10"}"#).unwrap();
/// assert_eq!(a.credits, 10);
/// let a: Allowance = serde_json::from_str(r#"{"credits":10}"#).unwrap();
/// assert_eq!(a.credits, 10);
/// assert!(serde_json::from_str::<Allowance>(r#"{"credits":"ten"}"#).is_err());
/// ```
pub fn u64_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N<'a> {
        Num(u64),
        Str(Cow<'a, str>),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Str(s) => s
            .parse::<u64>()
            .map_err(|_| de::Error::custom("expected a non-negative integer or a numeric string")),
    }
}
