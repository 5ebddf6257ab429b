//! [`RemoteOptions`]: how remote keys are fetched and cached.

use std::time::Duration;

/// How remote keys are fetched and cached. Every setting has a default,
/// stated on its method.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{RemoteOptions, TrustedIssuer};
///
/// let issuer = TrustedIssuer::new("https://issuer.example")
///     .audience("api")
///     .jwks_url("https://issuer.example/.well-known/jwks.json")
///     .remote_options(RemoteOptions::new().timeout(Duration::from_secs(2)));
/// # let _ = issuer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteOptions {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) error_backoff: Duration,
    pub(crate) allow_insecure_http: bool,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RemoteOptions {
    /// The defaults below.
    pub fn new() -> Self {
        RemoteOptions {
            client: None,
            timeout: Duration::from_secs(5),
            max_body: 256 * 1024,
            unknown_kid_cooldown: Duration::from_secs(30),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
            error_backoff: Duration::from_secs(5),
            allow_insecure_http: false,
        }
    }

    /// HTTP client to use; by default a client with rustls and no proxy
    /// look-up is built, which follows redirects only within the origin
    /// (scheme, host, port) of the URL asked. Pass your own to share a pool
    /// or set TLS roots; whatever its redirect policy, a response that
    /// comes from another origin than the URL asked is refused (better
    /// give it `reqwest::redirect::Policy::none()` or a same-origin policy
    /// so the request never leaves).
    ///
    /// ```
    /// use tollgate_core::RemoteOptions;
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()?;
    /// let options = RemoteOptions::new().client(http);
    /// # let _ = options;
    /// # Ok::<(), reqwest::Error>(())
    /// ```
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Bound on one fetch, connection to last body byte. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest JWKS or discovery document accepted. Default 256 KiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Least time between two fetches caused by unknown kids. Default 30 s.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown;
        self
    }

    /// Lower clamp on `Cache-Control: max-age`. Default 60 s.
    pub fn min_refresh(mut self, min: Duration) -> Self {
        self.min_refresh = min;
        self
    }

    /// Upper clamp on `Cache-Control: max-age`, and the lifetime used when
    /// the response has none. Default 1 h.
    pub fn max_refresh(mut self, max: Duration) -> Self {
        self.max_refresh = max;
        self
    }

    /// How long keys keep working past their lifetime while the endpoint
    /// fails. Default 1 h.
    pub fn max_stale(mut self, max: Duration) -> Self {
        self.max_stale = max;
        self
    }

    /// After a failed fetch, requests that need one fail fast for this
    /// long. Default 5 s.
    pub fn error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }

    /// Accepts plain `http://` JWKS and discovery URLs on any host. By
    /// default keys come over `https`, and plain `http` only from a
    /// loopback host (127.0.0.0/8, `::1`, `localhost`): anyone on the path
    /// of a plain request can hand over their own keys and mint tokens
    /// this API accepts. Only for a network where that cannot happen. A
    /// discovered `jwks_uri` on another origin than the discovery document
    /// must be `https` even so.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }
}
