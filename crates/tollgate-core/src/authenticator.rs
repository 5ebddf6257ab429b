//! The authenticator: issuers, their keys and rules, and the verified-token cache.
//!
//! ```
//! use tollgate_core::{Algorithm, Authenticator, Issuer, VerifyingKey};
//!
//! let auth: Authenticator = Authenticator::builder()
//!     .issuer(
//!         Issuer::new("https://issuer.example")
//!             .audience("https://api.example")
//!             .key(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap()),
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = auth;
//! ```

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::algorithm::Algorithm;
use crate::cache::TokenCache;
use crate::claims::{NoClaims, Payload, Verified};
use crate::error::{Error, Result};
use crate::jws;
use crate::key::VerifyingKey;
use crate::keyset::{KeySet, Selected};
use crate::policy::Policies;
use crate::remote::{Location, Lookup, RemoteKeys, RemoteOptions, now_ms};

/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// One trusted issuer: its `iss` value, where its keys come from, and what
/// its tokens must satisfy.
///
/// Defaults: leeway 60 s; the algorithms are those of the keys; no `typ`
/// requirement; no required claims beyond `iss`, `aud` and `exp`. At least
/// one audience and one key source are required.
#[derive(Debug, Clone)]
pub struct Issuer {
    name: Arc<str>,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    required_type: Option<String>,
    required_claims: Vec<String>,
    source: Source,
    remote: RemoteOptions,
}

#[derive(Debug, Clone)]
enum Source {
    None,
    Static(KeySet),
    Remote(Location),
}

impl Issuer {
    /// An issuer whose tokens carry exactly this `iss`.
    pub fn new(iss: impl Into<String>) -> Self {
        Issuer {
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

    /// Fetches keys from a JWKS URL.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Remote(Location::Jwks(url.into()));
        self
    }

    /// Finds the JWKS through an OpenID Connect or RFC 8414 metadata URL
    /// (e.g. `https://issuer.example/.well-known/openid-configuration`).
    /// The document's `issuer` must equal this issuer.
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

enum Keys {
    Static(KeySet),
    Remote(Arc<RemoteKeys>),
}

struct IssuerState {
    cfg: Issuer,
    keys: Keys,
}

impl IssuerState {
    fn usable(&self, now_ms: i64) -> bool {
        match &self.keys {
            Keys::Static(_) => true,
            Keys::Remote(r) => r.usable(now_ms),
        }
    }
}

/// Verified-token cache settings.
#[derive(Debug, Clone, Copy)]
struct CacheConfig {
    capacity: u64,
    ttl: Duration,
}

/// Builds an [`Authenticator`].
pub struct AuthenticatorBuilder<C = NoClaims> {
    issuers: Vec<Issuer>,
    policies: Option<Policies>,
    cache: Option<CacheConfig>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> AuthenticatorBuilder<C> {
    /// Trusts an issuer. Several issuers may be added; a token is matched to
    /// one by its exact `iss`.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Applies [`Policies`] (revocation, credits, address binding) to every
    /// request, verified-token cache hits included. The framework layers run
    /// them; see [`policy`](crate::policy).
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
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

    /// Checks the configuration and builds the authenticator. No network
    /// access happens here; see [`Authenticator::ready`].
    pub fn build(self) -> Result<Authenticator<C>>
    where
        C: Send + Sync + 'static,
    {
        if self.issuers.is_empty() {
            return Err(Error::Config("no issuer configured".into()));
        }
        let mut states = Vec::with_capacity(self.issuers.len());
        for cfg in self.issuers {
            if states.iter().any(|s: &IssuerState| s.cfg.name == cfg.name) {
                return Err(Error::Config(format!(
                    "issuer `{}` configured twice",
                    cfg.name
                )));
            }
            if cfg.audiences.is_empty() {
                return Err(Error::Config(format!(
                    "issuer `{}` has no audience; `aud` is always checked",
                    cfg.name
                )));
            }
            let keys = match &cfg.source {
                Source::None => {
                    return Err(Error::Config(format!("issuer `{}` has no keys", cfg.name)));
                }
                Source::Static(ks) if ks.is_empty() => {
                    return Err(Error::Config(format!(
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
        let cache = self.cache.map(|c| TokenCache::new(c.capacity, c.ttl));
        Ok(Authenticator {
            inner: Arc::new(Inner {
                required_claims: states.iter().any(|s| !s.cfg.required_claims.is_empty()),
                headers: KnownHeaders::default(),
                issuers: states,
                cache,
                policies: self.policies.map(Arc::new),
            }),
        })
    }
}

struct CacheEntry<C> {
    verified: Arc<Verified<C>>,
    key: Weak<VerifyingKey>,
    issuer: usize,
}

impl<C> Clone for CacheEntry<C> {
    fn clone(&self) -> Self {
        CacheEntry {
            verified: self.verified.clone(),
            key: self.key.clone(),
            issuer: self.issuer,
        }
    }
}

struct Inner<C> {
    issuers: Vec<IssuerState>,
    headers: KnownHeaders,
    /// Some issuer requires claims by name: member names must be kept.
    required_claims: bool,
    cache: Option<TokenCache<CacheEntry<C>>>,
    policies: Option<Arc<Policies>>,
}

/// Verifies bearer tokens against one or more issuers.
///
/// Cloning is cheap and clones share keys and cache. Verification of a token
/// whose key is loaded never waits on the network.
///
/// **Verified-token cache** (on by default: 10,000 entries, 5 minutes): a
/// token verified before skips the signature check. `exp` and `nbf` are still
/// checked on every hit, and an entry stops counting once its key leaves the
/// key set or the issuer's keys become unusable. Turn it off with
/// [`AuthenticatorBuilder::without_cache`].
pub struct Authenticator<C = NoClaims> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Authenticator<C> {
    fn clone(&self) -> Self {
        Authenticator {
            inner: self.inner.clone(),
        }
    }
}

impl<C> std::fmt::Debug for Authenticator<C> {
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

impl Authenticator<NoClaims> {
    /// A builder for an authenticator whose tokens carry no application claims
    /// (use `Authenticator::<MyClaims>::builder_for()` for typed claims).
    pub fn builder() -> AuthenticatorBuilder<NoClaims> {
        Self::builder_for()
    }
}

impl<C> Authenticator<C> {
    /// A builder for an authenticator that decodes claims `C`.
    pub fn builder_for() -> AuthenticatorBuilder<C> {
        AuthenticatorBuilder {
            issuers: Vec::new(),
            policies: None,
            cache: Some(CacheConfig {
                capacity: 10_000,
                ttl: Duration::from_secs(300),
            }),
            _claims: PhantomData,
        }
    }

    /// Waits until every issuer's keys are loaded (static keys are). Call it
    /// before accepting traffic; wrap it in a timeout of your choice.
    ///
    /// Returns the first fetch error, e.g. an unreachable JWKS or a discovery
    /// document naming another issuer.
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

    /// True when every issuer's keys are loaded and usable right now.
    pub fn is_ready(&self) -> bool {
        let now = now_ms();
        self.inner.issuers.iter().all(|s| s.usable(now))
    }
}

impl<C: DeserializeOwned + Send + Sync + 'static> Authenticator<C> {
    /// Verifies a compact JWS bearer token and returns its claims.
    ///
    /// Checks, in order: shape and header (`alg` known, no `crit`), issuer
    /// by exact `iss`, algorithm allow-list, `typ` when required, key by
    /// `kid` and algorithm, signature, `exp` (required), `nbf`, `iat`,
    /// `aud`, required claims, and the application claims `C`.
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified<C>>> {
        let now = now_ms();
        let fetch = match self.verify_step(token, now) {
            Ok(done) => return done,
            Err(fetch) => fetch,
        };
        let Attempt::Fetch {
            issuer,
            seen,
            unknown_kid,
        } = fetch
        else {
            return Err(Error::KeysUnavailable);
        };
        let Keys::Remote(remote) = &self.inner.issuers[issuer].keys else {
            return Err(Error::KeysUnavailable);
        };
        // Boxed: the rare fetch path must not bloat every verify future.
        Box::pin(remote.refresh(seen, unknown_kid.as_ref().map(|k| k.as_deref()))).await?;
        match self.verify_uncached(token, now_ms(), true) {
            Attempt::Done(r) => self.remember(token, r?),
            Attempt::Fetch { .. } => Err(Error::KeysUnavailable),
        }
    }

    /// Verifies without ever waiting: `None` when the issuer's keys must be
    /// fetched first (call [`verify`](Self::verify) then). With static keys,
    /// or remote keys already loaded and a known `kid`, this always answers.
    /// Framework layers use it to skip boxing a future on the common path.
    pub fn try_verify(&self, token: &str) -> Option<Result<Arc<Verified<C>>>> {
        self.verify_step(token, now_ms()).ok()
    }

    /// The answer the verified-token cache holds for `token`, if any:
    /// `Some(Ok)` for a token verified before and still within `exp`/`nbf`,
    /// `Some(Err)` for one that has expired since, `None` on a miss (then
    /// call [`try_verify`](Self::try_verify) or [`verify`](Self::verify)).
    /// A hit implies the exact same bytes passed every check before.
    pub fn cached(&self, token: &str) -> Option<Result<Arc<Verified<C>>>> {
        self.cached_at(token, now_ms())
    }

    fn cached_at(&self, token: &str, now: i64) -> Option<Result<Arc<Verified<C>>>> {
        let cache = self.inner.cache.as_ref()?;
        let hit = cache.with(token, now, |hit| {
            let issuer = &self.inner.issuers[hit.issuer];
            (hit.key.strong_count() > 0 && issuer.usable(now)).then(|| {
                check_times(&hit.verified.reg, &issuer.cfg, now / 1000)
                    .map(|()| hit.verified.clone())
            })
        })?;
        if hit.is_none() {
            // Its key left the set, or the keys went stale: verify anew.
            cache.remove(token);
        }
        hit
    }

    fn verify_step(
        &self,
        token: &str,
        now: i64,
    ) -> std::result::Result<Result<Arc<Verified<C>>>, Attempt<C>> {
        if let Some(answer) = self.cached_at(token, now) {
            return Ok(answer);
        }
        match self.verify_uncached(token, now, false) {
            Attempt::Done(r) => Ok(r.and_then(|done| self.remember(token, done))),
            fetch => Err(fetch),
        }
    }

    fn remember(
        &self,
        token: &str,
        (verified, key, issuer): (Arc<Verified<C>>, Arc<VerifyingKey>, usize),
    ) -> Result<Arc<Verified<C>>> {
        if let Some(cache) = &self.inner.cache {
            let entry = CacheEntry {
                verified: verified.clone(),
                key: Arc::downgrade(&key),
                issuer,
            };
            cache.insert(token, entry, now_ms());
        }
        Ok(verified)
    }

    /// Everything but waiting: returns [`Attempt::Fetch`] when remote keys
    /// must be loaded first (never when `after_fetch`).
    fn verify_uncached(&self, token: &str, now_ms: i64, after_fetch: bool) -> Attempt<C> {
        match self.verify_inner(token, now_ms, after_fetch) {
            Ok(Ok(v)) => Attempt::Done(Ok(v)),
            Ok(Err(fetch)) => fetch,
            Err(e) => Attempt::Done(Err(e)),
        }
    }

    #[allow(clippy::type_complexity)]
    fn verify_inner(
        &self,
        token: &str,
        now_ms: i64,
        after_fetch: bool,
    ) -> Result<std::result::Result<(Arc<Verified<C>>, Arc<VerifyingKey>, usize), Attempt<C>>> {
        let compact = jws::split(token)?;
        let known = self.inner.headers.get(compact.header);
        let header = match &known {
            Some(h) => h.clone(),
            None => {
                let bytes = jws::decode_part(compact.header, "header is not base64url")?;
                let (h, alg) = jws::parse_header(&bytes)?;
                HeaderInfo {
                    alg,
                    kid: h.kid.as_deref().map(Arc::from),
                    typ: h.typ.as_deref().map(Arc::from),
                }
            }
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
        // Raw members are kept only when there are application claims to read.
        let policies = self.inner.policies.as_deref();
        let credits_claim = policies.and_then(Policies::credits_claim);
        let ip_claim = policies.and_then(Policies::ip_claim);
        let keep_raw = TypeId::of::<C>() != TypeId::of::<NoClaims>()
            || credits_claim.is_some()
            || ip_claim.is_some();
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
        if let Some(required) = &cfg.required_type
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| type_matches(t, required))
        {
            return Err(Error::InvalidType);
        }
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
                        unknown_kid: remote.usable(now_ms).then(|| kid.map(str::to_owned)),
                    }));
                }
            },
        };
        jws::check_signature(&key, &compact)?;
        if known.is_none() {
            self.inner.headers.insert(compact.header, &header);
        }

        let reg = &payload.reg;
        if !reg.has_exp {
            return Err(Error::MissingClaim("exp".into()));
        }
        check_times(reg, cfg, now_ms / 1000)?;
        if let Some(iat) = reg.iat
            && iat > (now_ms / 1000).saturating_add(cfg.leeway.as_secs() as i64)
        {
            return Err(Error::IssuedInFuture);
        }
        if reg.aud.is_none() {
            return Err(Error::MissingClaim("aud".into()));
        }
        if !reg.audiences().iter().any(|a| cfg.audiences.contains(a)) {
            return Err(Error::InvalidAudience);
        }
        for claim in &cfg.required_claims {
            if !payload.has(claim) {
                return Err(Error::MissingClaim(claim.clone()));
            }
        }
        let credits = match credits_claim.and_then(|name| Some((name, payload.raw(name)?))) {
            Some((name, raw)) => Some(
                crate::claims::u64_or_string(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(|_| Error::InvalidClaim(name.to_owned()))?,
            ),
            None => None,
        };
        let addresses = match ip_claim.and_then(|name| Some((name, payload.raw(name)?))) {
            Some((name, raw)) => Some(crate::policy::parse_ip_claim(raw.get(), name)?),
            None => None,
        };
        let claims = payload.claims::<C>()?;
        // Built in place behind the Arc: only a pointer moves from here on.
        let verified = Arc::new(Verified {
            issuer: cfg.name.clone(),
            alg,
            kid: header.kid.clone(),
            reg: payload.reg,
            credits,
            addresses,
            claims,
        });
        Ok(Ok((verified, key, index)))
    }
}

/// A JOSE header, decoded.
#[derive(Clone)]
struct HeaderInfo {
    alg: Algorithm,
    kid: Option<Arc<str>>,
    typ: Option<Arc<str>>,
}

/// Encoded headers of tokens that verified, decoded once. Tokens of one
/// issuer share a handful of headers (one per key), so this saves the header
/// decode on almost every request. Only headers of verified tokens enter;
/// the list is short, scanned by length then bytes, and starts over when full.
#[derive(Default)]
struct KnownHeaders(RwLock<Vec<(Box<str>, HeaderInfo)>>);

const KNOWN_HEADERS_MAX: usize = 16;

impl KnownHeaders {
    fn get(&self, encoded: &str) -> Option<HeaderInfo> {
        let list = self.0.read().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|(e, _)| e.len() == encoded.len() && **e == *encoded)
            .map(|(_, h)| h.clone())
    }

    fn insert(&self, encoded: &str, info: &HeaderInfo) {
        let mut list = self.0.write().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|(e, _)| **e == *encoded) {
            return;
        }
        if list.len() >= KNOWN_HEADERS_MAX {
            list.clear();
        }
        list.push((encoded.into(), info.clone()));
    }
}

/// Outcome of a verification attempt that never waits.
enum Attempt<C> {
    Done(Result<(Arc<Verified<C>>, Arc<VerifyingKey>, usize)>),
    /// Remote keys of issuer `issuer` must be (re)loaded first.
    Fetch {
        issuer: usize,
        seen: u64,
        /// `Some(kid)` when the keys are usable but lack this kid.
        unknown_kid: Option<Option<String>>,
    },
}

fn check_times(reg: &crate::claims::Registered, cfg: &Issuer, now: i64) -> Result<()> {
    let leeway = cfg.leeway.as_secs() as i64;
    if reg.exp.saturating_add(leeway) <= now {
        return Err(Error::Expired);
    }
    if let Some(nbf) = reg.nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(Error::NotYetValid);
    }
    Ok(())
}

fn type_matches(typ: &str, required: &str) -> bool {
    let strip = |s: &str| -> String {
        let lower = s.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(typ) == strip(required)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison() {
        assert!(type_matches("at+jwt", "at+jwt"));
        assert!(type_matches("application/AT+JWT", "at+jwt"));
        assert!(!type_matches("JWT", "at+jwt"));
    }

    #[test]
    fn configuration_errors() {
        let key = || VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap();
        assert!(Authenticator::builder().build().is_err());
        assert!(
            Authenticator::builder()
                .issuer(Issuer::new("i").key(key()))
                .build()
                .is_err()
        );
        assert!(
            Authenticator::builder()
                .issuer(Issuer::new("i").audience("a"))
                .build()
                .is_err()
        );
        assert!(
            Authenticator::builder()
                .issuer(Issuer::new("i").audience("a").key(key()))
                .issuer(Issuer::new("i").audience("b").key(key()))
                .build()
                .is_err()
        );
    }
}
