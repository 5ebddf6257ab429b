//! The authenticator: trusted issuers and their keys, the verification
//! pipeline, and the verified-token cache.
//!
//! ```
//! use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
//!
//! let auth = Authenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://issuer.example")
//!             .audience("https://api.example")
//!             .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()),
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = auth;
//! ```

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::cache::TokenCache;
use crate::claims::Verified;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::issuer::TrustedIssuer;
use crate::jws::{self, HeaderInfo, KnownHeaders};
use crate::key::VerifyingKey;
use crate::keyset::{KeySet, Selected};
use crate::payload::Payload;
use crate::policy::Policies;
use crate::remote::{FetchReason, Lookup, RemoteKeys};
use crate::validation;

mod builder;

pub use builder::AuthenticatorBuilder;
use builder::{CacheConfig, ClaimsCheck};

pub(super) enum Keys {
    Static(KeySet),
    Remote(Arc<RemoteKeys>),
}

pub(super) struct IssuerState {
    pub(super) cfg: TrustedIssuer,
    pub(super) keys: Keys,
}

impl IssuerState {
    /// True while the keys may be used; for remote keys, also restarts
    /// their background refresh if its runtime was dropped (this is the
    /// verified-token cache's path, which looks no key up).
    fn usable(&self, now_ms: i64) -> bool {
        match &self.keys {
            Keys::Static(_) => true,
            Keys::Remote(r) => {
                let usable = r.usable(now_ms);
                if usable {
                    r.keep_refreshing();
                }
                usable
            }
        }
    }
}

#[derive(Clone)]
pub(super) struct CacheEntry {
    verified: Arc<Verified>,
    key: Weak<VerifyingKey>,
    issuer: usize,
}

pub(super) struct Inner {
    pub(super) issuers: Vec<IssuerState>,
    pub(super) headers: KnownHeaders,
    /// Some issuer requires claims by name, or some must be absent: member
    /// names must be kept.
    pub(super) required_claims: bool,
    /// Restriction claims no policy enforces here: a token carrying one is
    /// refused.
    pub(super) unenforced: Vec<String>,
    pub(super) cache: Option<TokenCache<CacheEntry>>,
    pub(super) policies: Option<Arc<Policies>>,
    pub(super) claims_checks: Vec<ClaimsCheck>,
    pub(super) clock: Arc<dyn Clock>,
}

/// Verifies bearer tokens against one or more trusted issuers.
///
/// Cloning is cheap and clones share keys and cache. Verification of a token
/// whose key is loaded never waits on the network.
///
/// **Verified-token cache** (on by default: 10,000 entries, 5 minutes): a
/// token verified before skips the signature check. `exp` and `nbf` are still
/// checked on every hit, and an entry stops counting once its key leaves the
/// key set or the issuer's keys become unusable. Turn it off with
/// [`AuthenticatorBuilder::without_cache`].
///
/// # Examples
///
/// One issuer with an HS256 secret (use at least 32 random bytes from your
/// configuration, never a constant); `hs256` stands for the issuer that
/// signs the tokens:
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
/// let auth = Authenticator::builder()
///     .issuer(
///         TrustedIssuer::new("https://issuer.example")
///             .audience("api")
///             .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?),
///     )
///     .build()?;
///
/// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","sub":"alice","exp":4102444800}"#);
/// let verified = auth.verify_now(&token)?;
/// assert_eq!(verified.subject(), Some("alice"));
///
/// // Every check has its own error: here the audience is another API's.
/// let other = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"billing","exp":4102444800}"#);
/// assert_eq!(auth.verify_now(&other).unwrap_err(), Error::InvalidAudience);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Authenticator {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| &*i.cfg.name)
                    .collect::<Vec<_>>(),
            )
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

/// The result of a verification that may not wait: the answer, or the
/// note that keys must be fetched first.
pub(crate) type Step = std::result::Result<Result<Arc<Verified>>, Attempt>;

impl Authenticator {
    /// A builder with no issuer yet, the verified-token cache on, no
    /// policies, and the system clock.
    ///
    /// ```
    /// use tollgate_core::{Authenticator, TrustedIssuer};
    ///
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://login.example.com")
    ///         .audience("https://api.example.com")
    ///         .discovery_url("https://login.example.com/.well-known/openid-configuration"))
    ///     .build()?; // no network access yet
    /// assert!(!auth.is_ready()); // keys are fetched by `ready()` or the first request
    /// # Ok::<(), tollgate_core::ConfigError>(())
    /// ```
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            issuers: Vec::new(),
            policies: None,
            cache: Some(CacheConfig {
                capacity: 10_000,
                ttl: Duration::from_secs(300),
            }),
            claims_checks: Vec::new(),
            clock: Arc::new(SystemClock),
            unenforced_accepted: Vec::new(),
        }
    }

    /// Waits until every issuer's keys are loaded (static keys are). Call it
    /// before accepting traffic; wrap it in a timeout of your choice.
    ///
    /// # Errors
    ///
    /// The first fetch error, e.g. an unreachable JWKS or a discovery
    /// document naming another issuer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tollgate_core::{Authenticator, TrustedIssuer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://login.example.com")
    ///         .audience("https://api.example.com")
    ///         .jwks_url("https://login.example.com/.well-known/jwks.json"))
    ///     .build()?;
    /// // Refuse to start without keys rather than answer 503 to the first requests.
    /// tokio::time::timeout(Duration::from_secs(10), auth.ready()).await??;
    /// assert!(auth.is_ready());
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<()> {
        for state in &self.inner.issuers {
            if let Keys::Remote(r) = &state.keys {
                r.ensure_loaded().await?;
            }
        }
        Ok(())
    }

    /// The policies applied after verification, if any.
    pub fn policies(&self) -> Option<&Arc<Policies>> {
        self.inner.policies.as_ref()
    }

    /// The clock time rules are checked against.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// True when every issuer's keys are loaded and usable right now.
    pub fn is_ready(&self) -> bool {
        let now = crate::clock::unix_now_ms();
        self.inner.issuers.iter().all(|s| s.usable(now))
    }

    /// Verifies a compact JWS bearer token and returns its claims.
    ///
    /// Checks, in order: shape and header (`alg` known, no `crit`), issuer
    /// by exact `iss`, algorithm allow-list, `typ` when required, key by
    /// `kid` and algorithm, signature, `exp` (required), `nbf`, `iat`,
    /// `aud`, required claims, and the claims types of
    /// [`check_claims`](AuthenticatorBuilder::check_claims).
    ///
    /// # Errors
    ///
    /// The [`Error`] of the first check that fails.
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = [7u8; 32];
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .build()?;
    /// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":4102444800,"scope":"reports:read"}"#);
    /// let verified = auth.verify(&token).await?;
    /// assert!(verified.has_scope("reports:read"));
    ///
    /// match auth.verify("not-a-token").await {
    ///     Err(e @ Error::MalformedToken(_)) => assert_eq!(e.status(), 401),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>> {
        let fetch = match self.verify_step(token) {
            Ok(done) => return done,
            Err(fetch) => fetch,
        };
        let Attempt::Fetch {
            issuer,
            seen,
            reason,
        } = fetch
        else {
            return Err(Error::KeysUnavailable);
        };
        let Keys::Remote(remote) = &self.inner.issuers[issuer].keys else {
            return Err(Error::KeysUnavailable);
        };
        // Boxed: the rare fetch path must not bloat every verify future.
        Box::pin(remote.refresh(seen, &reason)).await?;
        match self.verify_uncached(token, self.now_ms(), true) {
            Attempt::Done(r) => self.remember(token, r?),
            Attempt::Fetch { .. } => Err(Error::KeysUnavailable),
        }
    }

    /// Verifies without waiting: as [`verify`](Self::verify) for static
    /// keys and for remote keys already loaded; when remote keys must be
    /// fetched first, [`Error::KeysUnavailable`].
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
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
    /// let secret = [7u8; 32];
    /// let auth = Authenticator::builder()
    ///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
    ///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
    ///     .build()?;
    /// let expired = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","exp":1000000000}"#);
    /// assert_eq!(auth.verify_now(&expired).unwrap_err(), Error::Expired);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_now(&self, token: &str) -> Result<Arc<Verified>> {
        self.verify_step(token)
            .unwrap_or(Err(Error::KeysUnavailable))
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Verifies without ever waiting: `Err(Attempt::Fetch)` when the
    /// issuer's keys must be fetched first (then call
    /// [`verify`](Self::verify)). The request gate uses it to skip boxing a
    /// future on the common path.
    pub(crate) fn verify_step(&self, token: &str) -> Step {
        let now = self.now_ms();
        if let Some(answer) = self.cached_at(token, now) {
            return Ok(answer);
        }
        match self.verify_uncached(token, now, false) {
            Attempt::Done(r) => Ok(r.and_then(|done| self.remember(token, done))),
            fetch => Err(fetch),
        }
    }

    /// The answer the verified-token cache holds for `token`, if any:
    /// `Some(Ok)` for a token verified before and still within `exp`/`nbf`,
    /// `Some(Err)` for one that has expired since, `None` on a miss. A hit
    /// implies the exact same bytes passed every check before.
    pub(crate) fn cached(&self, token: &str) -> Option<Result<Arc<Verified>>> {
        self.cached_at(token, self.now_ms())
    }

    fn cached_at(&self, token: &str, now: i64) -> Option<Result<Arc<Verified>>> {
        let cache = self.inner.cache.as_ref()?;
        let hit = cache.with(token, now, |hit| {
            let issuer = &self.inner.issuers[hit.issuer];
            (hit.key.strong_count() > 0 && issuer.usable(now)).then(|| {
                validation::check_times(&hit.verified.reg, &issuer.cfg, now.div_euclid(1000))
                    .map(|()| hit.verified.clone())
            })
        })?;
        if hit.is_none() {
            // Its key left the set, or the keys went stale: verify anew.
            cache.remove(token);
        }
        hit
    }

    fn remember(
        &self,
        token: &str,
        (verified, key, issuer): (Arc<Verified>, Arc<VerifyingKey>, usize),
    ) -> Result<Arc<Verified>> {
        for check in &self.inner.claims_checks {
            check(&verified)?;
        }
        if let Some(cache) = &self.inner.cache {
            let entry = CacheEntry {
                verified: verified.clone(),
                key: Arc::downgrade(&key),
                issuer,
            };
            cache.insert(token, entry, self.now_ms());
        }
        Ok(verified)
    }

    /// Everything but waiting: returns [`Attempt::Fetch`] when remote keys
    /// must be loaded first (never when `after_fetch`).
    fn verify_uncached(&self, token: &str, now_ms: i64, after_fetch: bool) -> Attempt {
        match self.verify_inner(token, now_ms, after_fetch) {
            Ok(Ok(v)) => Attempt::Done(Ok(v)),
            Ok(Err(fetch)) => fetch,
            Err(e) => Attempt::Done(Err(e)),
        }
    }

    fn verify_inner(
        &self,
        token: &str,
        now_ms: i64,
        after_fetch: bool,
    ) -> Result<std::result::Result<Done, Attempt>> {
        let compact = jws::split(token)?;
        let known = self.inner.headers.get(compact.header);
        let header = match &known {
            Some(h) => h.clone(),
            None => HeaderInfo::decode(compact.header)?,
        };
        let alg = header.alg;
        let mut stack = [0u8; 640];
        let mut heap = Vec::new();
        let payload_bytes = jws::decode_part_buf(
            compact.payload,
            &mut stack,
            &mut heap,
            "payload is not base64url",
        )?;
        // Raw members are kept only when a policy claim must be read.
        let policies = self.inner.policies.as_deref();
        let credits_claim = policies.and_then(Policies::credits_claim);
        let ip_claim = policies.and_then(Policies::ip_claim);
        let keep_raw = credits_claim.is_some() || ip_claim.is_some();
        let payload = Payload::parse(payload_bytes, keep_raw, self.inner.required_claims)?;

        let iss = match &payload.iss {
            None => return Err(Error::MissingClaim("iss".into())),
            Some(Err(())) => return Err(Error::InvalidIssuer),
            Some(Ok(iss)) => iss,
        };
        let (index, state) = self
            .inner
            .issuers
            .iter()
            .enumerate()
            .find(|(_, s)| *s.cfg.name == **iss)
            .ok_or(Error::InvalidIssuer)?;
        let cfg = &state.cfg;
        if cfg.algorithms.as_ref().is_some_and(|a| !a.contains(&alg)) {
            return Err(Error::AlgorithmNotAllowed);
        }
        validation::check_type(header.typ.as_deref(), cfg)?;
        let kid = header.kid.as_deref();
        let key = match &state.keys {
            Keys::Static(ks) => match ks.select(kid, alg) {
                Selected::Key(k) => k.clone(),
                Selected::WrongAlgorithm => return Err(Error::AlgorithmNotAllowed),
                Selected::NotFound => return Err(Error::UnknownKey),
            },
            Keys::Remote(remote) => match remote.lookup(kid, alg, now_ms) {
                Lookup::Key(k) => k,
                Lookup::Fail(e) => return Err(e),
                Lookup::NeedFetch(_) if after_fetch => {
                    if !remote.usable(now_ms) {
                        return Err(Error::KeysUnavailable);
                    }
                    remote.remember_missing(kid);
                    return Err(Error::UnknownKey);
                }
                Lookup::NeedFetch(seen) => {
                    return Ok(Err(Attempt::Fetch {
                        issuer: index,
                        seen,
                        reason: if remote.usable(now_ms) {
                            FetchReason::UnknownKid(kid.map(str::to_owned))
                        } else {
                            FetchReason::Stale
                        },
                    }));
                }
            },
        };
        jws::check_signature(&key, &compact)?;
        if known.is_none() {
            self.inner.headers.insert(compact.header, &header);
        }

        validation::check_claims(&payload, cfg, now_ms.div_euclid(1000))?;
        if let Some(name) = self.inner.unenforced.iter().find(|n| payload.has(n)) {
            return Err(Error::UnenforcedClaim(name.clone()));
        }
        let credits = match credits_claim.and_then(|name| Some((name, payload.raw(name)?))) {
            Some((name, raw)) => Some(
                crate::claims::u64_or_string(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(|_| Error::InvalidClaim(name.to_owned()))?,
            ),
            None => None,
        };
        let addresses = match ip_claim.and_then(|name| Some((name, payload.raw(name)?))) {
            Some((name, raw)) => Some(crate::net::parse_claim(raw.get(), name)?),
            None => None,
        };
        let text = std::str::from_utf8(payload_bytes)
            .map_err(|_| Error::MalformedToken("payload is not UTF-8"))?;
        let verified = Arc::new(Verified {
            issuer: cfg.name.clone(),
            alg,
            kid: header.kid.clone(),
            reg: payload.reg,
            credits,
            addresses,
            payload: text.into(),
            typed: RwLock::default(),
        });
        Ok(Ok((verified, key, index)))
    }
}

/// A token that verified, the key that verified it, and its issuer's index.
type Done = (Arc<Verified>, Arc<VerifyingKey>, usize);

/// Outcome of a verification attempt that never waits.
pub(crate) enum Attempt {
    Done(Result<Done>),
    /// Remote keys of issuer `issuer` must be (re)loaded first.
    Fetch {
        issuer: usize,
        seen: u64,
        reason: FetchReason,
    },
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::algorithm::Algorithm;
    use crate::clock::ManualClock;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hs256(claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
        let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn expiry_follows_the_injected_clock_on_misses_and_cache_hits() {
        let t0 = 1_700_000_000;
        let clock = Arc::new(ManualClock::at_secs(t0));
        let auth = Authenticator::builder()
            .issuer(
                TrustedIssuer::new("i")
                    .audience("a")
                    .key(VerifyingKey::hmac(SECRET, Algorithm::HS256).unwrap()),
            )
            .clock(clock.clone())
            .build()
            .unwrap();
        let token = hs256(&serde_json::json!({"iss": "i", "aud": "a", "exp": t0 + 100}));
        assert!(auth.verify_now(&token).is_ok());
        // Inside the 60 s leeway past `exp`: still accepted, from the cache.
        clock.advance(Duration::from_secs(159));
        assert!(auth.cached(&token).is_some_and(|r| r.is_ok()));
        clock.advance(Duration::from_secs(1));
        assert_eq!(auth.verify_now(&token).unwrap_err(), Error::Expired);
        // A token issued in the clock's future is refused beyond the leeway.
        let ahead = hs256(&serde_json::json!({"iss": "i", "aud": "a",
            "exp": t0 + 10_000, "iat": t0 + 300}));
        assert_eq!(auth.verify_now(&ahead).unwrap_err(), Error::IssuedInFuture);
    }

    #[test]
    fn configuration_errors() {
        let key = || VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap();
        assert!(Authenticator::builder().build().is_err());
        assert!(
            Authenticator::builder()
                .issuer(TrustedIssuer::new("i").key(key()))
                .build()
                .is_err()
        );
        assert!(
            Authenticator::builder()
                .issuer(TrustedIssuer::new("i").audience("a"))
                .build()
                .is_err()
        );
        assert!(
            Authenticator::builder()
                .issuer(TrustedIssuer::new("i").audience("a").key(key()))
                .issuer(TrustedIssuer::new("i").audience("b").key(key()))
                .build()
                .is_err()
        );
    }
}
