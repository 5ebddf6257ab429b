//! Keys fetched from a JWKS URL or found through OIDC / RFC 8414 discovery.
//!
//! Guarantees, all covered by tests over a loopback server:
//! - requests whose `kid` is known never wait on the network;
//! - an unknown `kid` triggers at most one fetch per cool-down
//!   ([`RemoteOptions::unknown_kid_cooldown`]), shared by every request that
//!   waits for it (single flight); kids found missing are remembered for the
//!   cool-down, so random kids cost one cache look-up;
//! - keys are refreshed in the background ahead of expiry (`Cache-Control:
//!   max-age` within [`RemoteOptions::min_refresh`] and
//!   [`RemoteOptions::max_refresh`]); when the runtime the refresh ran on
//!   is dropped, the next look-up on another runtime starts it again;
//! - when the endpoint fails, last-known-good keys keep working for
//!   [`RemoteOptions::max_stale`] past their expiry; after that the answer is
//!   [`Error::KeysUnavailable`] (503), never "invalid token";
//! - keys come over `https`, or plain `http` from a loopback host (or with
//!   [`RemoteOptions::allow_insecure_http`]); no redirect leaves the origin
//!   of the URL asked for, and a discovered `jwks_uri` on another origin
//!   must be `https`.

use std::net::IpAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use serde::Deserialize;

use crate::algorithm::Algorithm;
use crate::error::{Cause, ConfigError, Error, Result};
use crate::key::{JwkTrust, VerifyingKey, parse_jwks};
use crate::keyset::{KeySet, Selected};

mod options;

pub use options::RemoteOptions;

#[derive(Debug, Clone)]
pub(crate) enum Location {
    Jwks(String),
    Discovery(String),
}

struct Snapshot {
    generation: u64,
    keys: KeySet,
    refresh_at: Instant,
}

struct FetchState {
    /// The JWKS URL, once known (discovery finds it).
    jwks_url: Option<reqwest::Url>,
    last_unknown_fetch: Option<Instant>,
    last_error: Option<Instant>,
}

/// [`RemoteKeys::refresher`]: no keys loaded yet, so no refresh wanted.
const REFRESH_NOT_YET: u8 = 0;
/// A refresh task runs.
const REFRESH_RUNNING: u8 = 1;
/// Keys were loaded and no refresh task runs (none could be started, or
/// its runtime was dropped): the next look-up in a runtime starts one.
const REFRESH_STOPPED: u8 = 2;

/// Held by the refresh task: dropped with the task's future (the task
/// ended, or its runtime was dropped), it marks the refresh stopped.
struct RefresherAlive(Arc<AtomicU8>);

impl Drop for RefresherAlive {
    fn drop(&mut self) {
        self.0.store(REFRESH_STOPPED, Ordering::Release);
    }
}

/// Remote keys of one issuer.
pub(crate) struct RemoteKeys {
    issuer: Arc<str>,
    location: Location,
    /// The configured URL (JWKS or discovery), checked at build.
    url: reqwest::Url,
    opts: RemoteOptions,
    client: reqwest::Client,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Unix milliseconds until which the current keys may be used.
    usable_until_ms: AtomicI64,
    fetch: tokio::sync::Mutex<FetchState>,
    missing: moka::sync::Cache<String, ()>,
    /// Whether the background refresh runs: `REFRESH_*`.
    refresher: Arc<AtomicU8>,
}

/// Why keys must be fetched.
pub(crate) enum FetchReason {
    /// The keys are missing, or stale beyond their lifetime.
    Stale,
    /// The keys are usable but lack this kid (`None`: a token without one).
    UnknownKid(Option<String>),
}

/// Outcome of a look-up that never waits.
pub(crate) enum Lookup {
    Key(Arc<VerifyingKey>),
    /// The keys must be (re)loaded; carries the generation seen.
    NeedFetch(u64),
    Fail(Error),
}

pub(crate) use crate::clock::unix_now_ms as now_ms;

impl RemoteKeys {
    pub(crate) fn new(
        issuer: Arc<str>,
        location: Location,
        opts: RemoteOptions,
    ) -> std::result::Result<Self, ConfigError> {
        let (what, configured) = match &location {
            Location::Jwks(u) => ("JWKS URL", u),
            Location::Discovery(u) => ("discovery URL", u),
        };
        let url = key_url(configured, opts.allow_insecure_http).map_err(|why| {
            ConfigError::Invalid(format!("issuer `{issuer}`: {what} `{configured}` {why}"))
        })?;
        let client = match &opts.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::custom(same_origin_redirects))
                .build()
                .map_err(|e| ConfigError::HttpClient(Cause::new(e)))?,
        };
        // Bounded in bytes, not only in entries: kids come from unsigned
        // requests. With kids of at most 256 bytes (longer ones are
        // malformed tokens), 1 MiB holds at least 3,000 of them.
        let missing = moka::sync::Cache::builder()
            .weigher(|kid: &String, ()| u32::try_from(kid.len() + 64).unwrap_or(u32::MAX))
            .max_capacity(1 << 20)
            .time_to_live(opts.unknown_kid_cooldown.max(Duration::from_millis(1)))
            .build();
        Ok(RemoteKeys {
            issuer,
            location,
            url,
            client,
            snapshot: RwLock::new(Arc::new(Snapshot {
                generation: 0,
                keys: KeySet::new(),
                refresh_at: Instant::now(),
            })),
            usable_until_ms: AtomicI64::new(i64::MIN),
            fetch: tokio::sync::Mutex::new(FetchState {
                jwks_url: None,
                last_unknown_fetch: None,
                last_error: None,
            }),
            missing,
            refresher: Arc::new(AtomicU8::new(REFRESH_NOT_YET)),
            opts,
        })
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// True while the keys may be used (loaded and not stale beyond bound).
    pub(crate) fn usable(&self, now_ms: i64) -> bool {
        now_ms < self.usable_until_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn lookup(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
        now_ms: i64,
    ) -> Lookup {
        let snap = self.current();
        if !self.usable(now_ms) {
            return Lookup::NeedFetch(snap.generation);
        }
        self.keep_refreshing();
        match snap.keys.select(kid, alg) {
            Selected::Key(k) => Lookup::Key(k.clone()),
            Selected::WrongAlgorithm => Lookup::Fail(Error::AlgorithmNotAllowed),
            Selected::NotFound => {
                if self.missing.contains_key(kid.unwrap_or("")) {
                    Lookup::Fail(Error::UnknownKey)
                } else {
                    Lookup::NeedFetch(snap.generation)
                }
            }
        }
    }

    /// Remembers a kid the current keys lack, so it costs no further fetch
    /// until the cool-down ends.
    pub(crate) fn remember_missing(&self, kid: Option<&str>) {
        self.missing.insert(kid.unwrap_or("").to_owned(), ());
    }

    /// Loads keys when generation `seen` is still current, for `reason`: a
    /// kid the keys lack is subject to the cool-down.
    pub(crate) async fn refresh(self: &Arc<Self>, seen: u64, reason: &FetchReason) -> Result<()> {
        let mut st = self.fetch.lock().await;
        if self.current().generation != seen {
            return Ok(());
        }
        let now = Instant::now();
        if let FetchReason::UnknownKid(kid) = reason {
            let kid = kid.as_deref();
            if st
                .last_unknown_fetch
                .is_some_and(|t| now.duration_since(t) < self.opts.unknown_kid_cooldown)
            {
                self.remember_missing(kid);
                return Err(Error::UnknownKey);
            }
            st.last_unknown_fetch = Some(now);
        } else if st
            .last_error
            .is_some_and(|t| now.duration_since(t) < self.opts.error_backoff)
        {
            return Err(Error::KeysUnavailable);
        }
        match self.fetch_and_publish(&mut st).await {
            Ok(()) => {
                self.start_refresher();
                Ok(())
            }
            Err(e) => {
                // Whether the kid is real cannot be told without the endpoint:
                // temporarily unavailable, not invalid.
                tracing::warn!(issuer = %self.issuer, error = %crate::error::with_causes(&e), "fetching keys failed");
                Err(Error::KeysUnavailable)
            }
        }
    }

    /// Loads keys now unless they are loaded and usable; returns the fetch error.
    pub(crate) async fn ensure_loaded(self: &Arc<Self>) -> Result<()> {
        if self.usable(now_ms()) {
            self.keep_refreshing();
            return Ok(());
        }
        let mut st = self.fetch.lock().await;
        if self.usable(now_ms()) {
            self.keep_refreshing();
            return Ok(());
        }
        self.fetch_and_publish(&mut st).await?;
        self.start_refresher();
        Ok(())
    }

    async fn fetch_and_publish(&self, st: &mut FetchState) -> Result<()> {
        let result = self.fetch_keys(st).await;
        let (keys, ttl) = match result {
            Ok(v) => v,
            Err(e) => {
                st.last_error = Some(Instant::now());
                return Err(e);
            }
        };
        st.last_error = None;
        let old = self.current();
        // Keep the parsed key object when it did not change, so verified-token
        // cache entries tied to it stay valid across refreshes.
        let keys: Vec<Arc<VerifyingKey>> = keys
            .into_iter()
            .map(|k| {
                old.keys
                    .arcs()
                    .iter()
                    .find(|o| o.same_as(&k))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(k))
            })
            .collect();
        let now = Instant::now();
        let snap = Snapshot {
            generation: old.generation + 1,
            keys: KeySet::from_arcs(keys),
            // Ahead of expiry: at three quarters of the lifetime.
            refresh_at: now + ttl.mul_f32(0.75),
        };
        let usable_until = now_ms().saturating_add(
            (ttl + self.opts.max_stale)
                .as_millis()
                .min(i64::MAX as u128) as i64,
        );
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(snap),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snap),
        }
        self.usable_until_ms.store(usable_until, Ordering::Relaxed);
        self.missing.invalidate_all();
        Ok(())
    }

    /// After keys were loaded: from now on a background refresh is wanted;
    /// starts it when none runs and a runtime is at hand.
    fn start_refresher(self: &Arc<Self>) {
        let _ = self.refresher.compare_exchange(
            REFRESH_NOT_YET,
            REFRESH_STOPPED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.keep_refreshing();
    }

    /// Starts the background refresh again when keys were loaded and no
    /// refresh task runs (its runtime was dropped), on the current runtime
    /// if there is one. One atomic load when it runs.
    pub(crate) fn keep_refreshing(self: &Arc<Self>) {
        if self.refresher.load(Ordering::Acquire) == REFRESH_STOPPED
            && let Ok(handle) = tokio::runtime::Handle::try_current()
            && self
                .refresher
                .compare_exchange(
                    REFRESH_STOPPED,
                    REFRESH_RUNNING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // The guard moves into the task: a runtime that shuts down
            // before running it drops it, and the refresh is stopped again.
            let alive = RefresherAlive(self.refresher.clone());
            handle.spawn(refresher(Arc::downgrade(self), alive));
        }
    }

    async fn fetch_keys(&self, st: &mut FetchState) -> Result<(Vec<VerifyingKey>, Duration)> {
        let url = match (&st.jwks_url, &self.location) {
            (Some(u), _) => u.clone(),
            (None, Location::Jwks(_)) => self.url.clone(),
            (None, Location::Discovery(_)) => {
                let (body, _) = self.get(&self.url).await?;
                #[derive(Deserialize)]
                struct Metadata {
                    issuer: String,
                    jwks_uri: String,
                }
                let meta: Metadata = serde_json::from_slice(&body).map_err(|_| {
                    Error::KeyFetch(
                        "discovery document lacks `issuer` or `jwks_uri`".into(),
                        None,
                    )
                })?;
                if meta.issuer != *self.issuer {
                    return Err(Error::KeyFetch(
                        format!(
                            "discovery document names issuer `{}`, expected `{}`",
                            meta.issuer, self.issuer
                        ),
                        None,
                    ));
                }
                let jwks_url =
                    discovered_jwks_url(&self.url, &meta.jwks_uri, self.opts.allow_insecure_http)
                        .map_err(|why| {
                        Error::KeyFetch(
                            format!("discovery document: `jwks_uri` `{}` {why}", meta.jwks_uri),
                            None,
                        )
                    })?;
                st.jwks_url = Some(jwks_url.clone());
                jwks_url
            }
        };
        let (body, max_age) = self.get(&url).await?;
        let (keys, skipped) = parse_jwks(&body, JwkTrust::Remote)
            .map_err(|e| Error::KeyFetch(e.to_string(), Some(Cause::new(e))))?;
        for s in &skipped {
            tracing::warn!(issuer = %self.issuer, kid = ?s.kid, reason = %s.reason, "JWKS key skipped");
        }
        // A key server that answers with no usable key is at fault: keep the
        // last good keys, as after any failed fetch, rather than refuse every
        // token as `unknown_key`.
        if keys.is_empty() {
            return Err(Error::KeyFetch(
                format!("{url}: the JWKS holds no usable key"),
                None,
            ));
        }
        let ttl = max_age.unwrap_or(self.opts.max_refresh).clamp(
            self.opts.min_refresh,
            self.opts.max_refresh.max(self.opts.min_refresh),
        );
        Ok((keys, ttl))
    }

    /// GET with the time and size bounds; returns the body and `max-age`.
    /// A response from another origin than `url`'s (a caller's client that
    /// follows any redirect) is refused.
    async fn get(&self, url: &reqwest::Url) -> Result<(Vec<u8>, Option<Duration>)> {
        let fetch = async {
            let mut resp = self
                .client
                .get(url.clone())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| {
                    Error::KeyFetch(
                        format!("GET {url}: {}", describe(&e)),
                        Some(Cause::new(e.without_url())),
                    )
                })?;
            if resp.url().origin() != url.origin() {
                return Err(Error::KeyFetch(
                    format!(
                        "GET {url}: the answer came from another origin (a redirect), not used"
                    ),
                    None,
                ));
            }
            if !resp.status().is_success() {
                return Err(Error::KeyFetch(
                    format!("GET {url}: status {}", resp.status()),
                    None,
                ));
            }
            let max_age = resp
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_max_age);
            let limit = self.opts.max_body;
            if resp.content_length().is_some_and(|n| n > limit as u64) {
                return Err(Error::KeyFetch(
                    format!("GET {url}: body over {limit} bytes"),
                    None,
                ));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| {
                Error::KeyFetch(
                    format!("GET {url}: {}", without_url(&e)),
                    Some(Cause::new(e.without_url())),
                )
            })? {
                if body.len() + chunk.len() > limit {
                    return Err(Error::KeyFetch(
                        format!("GET {url}: body over {limit} bytes"),
                        None,
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, max_age))
        };
        tokio::time::timeout(self.opts.timeout, fetch)
            .await
            .map_err(|_| {
                Error::KeyFetch(
                    format!("GET {url}: timed out after {:?}", self.opts.timeout),
                    None,
                )
            })?
    }
}

/// reqwest's text without the URL (the message names it already); the
/// reason is in its sources, kept as the error's cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s
            .replace(&format!(" for url ({u})"), "")
            .replace(u.as_str(), "");
    }
    s
}

/// [`without_url`], or for a refused redirect the reason the redirect
/// policy gave (reqwest's own text does not say it).
fn describe(e: &reqwest::Error) -> String {
    match std::error::Error::source(e) {
        Some(why) if e.is_redirect() => why.to_string(),
        _ => without_url(e),
    }
}

/// Redirects followed at most, all within the origin first asked.
const MAX_REDIRECTS: usize = 10;

const OTHER_ORIGIN: &str = "redirected to another origin, not followed";

/// The redirect policy of the client Tollgate builds: follow only within
/// the origin (scheme, host, port) of the URL first asked, at most
/// [`MAX_REDIRECTS`] times.
fn same_origin_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let same = attempt
        .previous()
        .first()
        .is_some_and(|first| first.origin() == attempt.url().origin());
    if !same {
        attempt.error(OTHER_ORIGIN)
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error("too many redirects")
    } else {
        attempt.follow()
    }
}

/// A URL keys may be fetched from: `https`, or `http` when the host is a
/// loopback address (127.0.0.0/8, `::1`, `localhost`) or `allow_http`.
/// The error says why not, to follow the URL in a message.
fn key_url(url: &str, allow_http: bool) -> std::result::Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(
            "is plain http to a host that is not loopback: use https, or \
             RemoteOptions::allow_insecure_http to accept keys anyone on the \
             path can replace"
                .into(),
        ),
        other => Err(format!("has scheme `{other}`; keys come over https")),
    }
}

/// The JWKS URL a discovery document at `discovery` names: as
/// [`key_url`], and on another origin than the document's only over
/// `https` (plain http elsewhere would let the document send the keys'
/// fetch anywhere).
fn discovered_jwks_url(
    discovery: &reqwest::Url,
    jwks_uri: &str,
    allow_http: bool,
) -> std::result::Result<reqwest::Url, String> {
    let url = key_url(jwks_uri, allow_http)?;
    if url.scheme() != "https" && url.origin() != discovery.origin() {
        return Err("is plain http on another origin than the discovery document".into());
    }
    Ok(url)
}

/// True when the URL's host is a loopback address or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `max-age` from a `Cache-Control` value; `no-cache`/`no-store` mean 0.
fn parse_max_age(v: &str) -> Option<Duration> {
    let mut age = None;
    for d in v.split(',') {
        let d = d.trim();
        if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if let Some((k, val)) = d.split_once('=')
            && k.trim().eq_ignore_ascii_case("max-age")
        {
            age = val
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// Background refresh: sleeps until the keys are due, fetches, backs off on
/// failure. Ends when the keys are dropped; `_alive` marks the refresh
/// stopped when the task ends or its runtime drops it.
async fn refresher(weak: Weak<RemoteKeys>, _alive: RefresherAlive) {
    let mut failures: u32 = 0;
    loop {
        let delay = {
            let Some(this) = weak.upgrade() else { return };
            if failures > 0 {
                this.opts
                    .error_backoff
                    .saturating_mul(1 << failures.min(6))
                    .min(this.opts.min_refresh.max(this.opts.error_backoff))
            } else {
                this.current()
                    .refresh_at
                    .saturating_duration_since(Instant::now())
            }
        };
        tokio::time::sleep(delay.max(Duration::from_millis(100))).await;
        let Some(this) = weak.upgrade() else { return };
        let due = this.current().refresh_at <= Instant::now();
        if due || failures > 0 {
            let mut st = this.fetch.lock().await;
            match this.fetch_and_publish(&mut st).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(issuer = %this.issuer, error = %crate::error::with_causes(&e), "background key refresh failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_are_https_unless_loopback_or_allowed() {
        for ok in [
            "https://issuer.example/keys",
            "https://192.0.2.1:8443/keys",
            "http://127.0.0.1:8080/keys",
            "http://127.9.9.9/keys",
            "http://[::1]:8080/keys",
            "http://[::ffff:127.0.0.1]/keys",
            "http://localhost:1/keys",
            "http://LOCALHOST/keys",
        ] {
            assert!(key_url(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://issuer.example/keys",
            "http://192.0.2.1/keys",
            "http://[2001:db8::1]/keys",
            "http://localhost.example/keys",
            "http://0.0.0.0/keys",
            "ftp://issuer.example/keys",
            "file:///etc/keys.json",
            "issuer.example/keys",
        ] {
            assert!(key_url(refused, false).is_err(), "{refused}");
        }
        assert!(key_url("http://issuer.example/keys", true).is_ok());
        assert!(key_url("ftp://issuer.example/keys", true).is_err());
    }

    #[test]
    fn discovered_jwks_urls_leave_the_origin_only_over_https() {
        let https = reqwest::Url::parse("https://issuer.example/.well-known/x").unwrap();
        let http = reqwest::Url::parse("http://127.0.0.1:8080/.well-known/x").unwrap();
        for (discovery, jwks, ok) in [
            (&https, "https://issuer.example/keys", true),
            (&https, "https://keys.example/jwks.json", true),
            (&https, "http://keys.example/jwks.json", false),
            (&https, "http://127.0.0.1:8080/keys", false),
            (&http, "http://127.0.0.1:8080/keys", true),
            (&http, "http://127.0.0.1:8081/keys", false),
            (&http, "http://localhost:8080/keys", false),
            (&http, "https://keys.example/jwks.json", true),
        ] {
            assert_eq!(
                discovered_jwks_url(discovery, jwks, false).is_ok(),
                ok,
                "{discovery} -> {jwks}"
            );
        }
        // The opt-in lifts the loopback rule, not the origin rule.
        let plain = reqwest::Url::parse("http://issuer.example/.well-known/x").unwrap();
        assert!(discovered_jwks_url(&plain, "http://issuer.example/keys", true).is_ok());
        assert!(discovered_jwks_url(&plain, "http://keys.example/keys", true).is_err());
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
