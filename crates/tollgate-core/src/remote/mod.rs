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
//!   [`RemoteOptions::max_refresh`]);
//! - when the endpoint fails, last-known-good keys keep working for
//!   [`RemoteOptions::max_stale`] past their expiry; after that the answer is
//!   [`Error::KeysUnavailable`] (503), never "invalid token".

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicI64, Ordering};

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
    jwks_url: Option<String>,
    last_unknown_fetch: Option<Instant>,
    last_error: Option<Instant>,
    refresher_started: bool,
}

/// Remote keys of one issuer.
pub(crate) struct RemoteKeys {
    issuer: Arc<str>,
    location: Location,
    opts: RemoteOptions,
    client: reqwest::Client,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Unix milliseconds until which the current keys may be used.
    usable_until_ms: AtomicI64,
    fetch: tokio::sync::Mutex<FetchState>,
    missing: moka::sync::Cache<String, ()>,
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
        let client = match &opts.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .no_proxy()
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
                refresher_started: false,
            }),
            missing,
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

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm, now_ms: i64) -> Lookup {
        let snap = self.current();
        if !self.usable(now_ms) {
            return Lookup::NeedFetch(snap.generation);
        }
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
                self.start_refresher(&mut st);
                Ok(())
            }
            Err(e) => {
                // Whether the kid is real cannot be told without the endpoint:
                // temporarily unavailable, not invalid.
                tracing::warn!(issuer = %self.issuer, error = %e, "fetching keys failed");
                Err(Error::KeysUnavailable)
            }
        }
    }

    /// Loads keys now unless they are loaded and usable; returns the fetch error.
    pub(crate) async fn ensure_loaded(self: &Arc<Self>) -> Result<()> {
        if self.usable(now_ms()) {
            return Ok(());
        }
        let mut st = self.fetch.lock().await;
        if self.usable(now_ms()) {
            return Ok(());
        }
        self.fetch_and_publish(&mut st).await?;
        self.start_refresher(&mut st);
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

    /// Starts the background refresh once, when a runtime is at hand.
    fn start_refresher(self: &Arc<Self>, st: &mut FetchState) {
        if !st.refresher_started
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            st.refresher_started = true;
            handle.spawn(refresher(Arc::downgrade(self)));
        }
    }

    async fn fetch_keys(&self, st: &mut FetchState) -> Result<(Vec<VerifyingKey>, Duration)> {
        let url = match (&st.jwks_url, &self.location) {
            (Some(u), _) => u.clone(),
            (None, Location::Jwks(u)) => u.clone(),
            (None, Location::Discovery(u)) => {
                let (body, _) = self.get(u).await?;
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
                st.jwks_url = Some(meta.jwks_uri.clone());
                meta.jwks_uri
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
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>)> {
        let fetch = async {
            let mut resp = self
                .client
                .get(url)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| {
                    Error::KeyFetch(
                        format!("GET {url}: {}", without_url(&e)),
                        Some(Cause::new(e.without_url())),
                    )
                })?;
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

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    s
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
/// failure. Ends when the keys are dropped.
async fn refresher(weak: Weak<RemoteKeys>) {
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
                    tracing::warn!(issuer = %this.issuer, error = %e, "background key refresh failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
