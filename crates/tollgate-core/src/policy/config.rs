//! The policies' settings: credit metering and address binding, and what a
//! cost function sees of a request.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use super::BadIpNet;
use super::ForwardedHeader;
use super::ip;

/// The allowance claim [`Credits`] reads unless told otherwise.
pub const DEFAULT_CREDITS_CLAIM: &str = "credits";

/// The address claim [`IpBinding`] reads unless told otherwise.
pub const DEFAULT_IP_CLAIM: &str = "ip";

/// What a cost function sees of a request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
}

pub(crate) type CostFn = Arc<dyn Fn(&RequestInfo<'_>) -> u64 + Send + Sync>;
pub(crate) type RefundFn = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// When credits are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChargeMode {
    /// Charged before the handler runs; kept whatever the handler answers.
    #[default]
    OnRequest,
    /// Reserved before the handler runs and refunded when the handler fails
    /// (a 5xx by default, or what [`Credits::refund_when`] says).
    OnSuccess,
}

/// Credit metering: a token carrying an allowance claim (a number or a
/// numeric string) pays for each request out of it. Tokens without the
/// claim are not metered.
///
/// # Examples
///
/// ```
/// use tollgate_core::policy::Credits;
///
/// // Exports cost 10, everything else 1; a failed request costs nothing
/// // (5xx, and 409 here, are refunded).
/// let credits = Credits::new()
///     .cost_fn(|req| if req.path.starts_with("/export") { 10 } else { 1 })
///     .charge_on_success()
///     .refund_when(|status| status.is_server_error() || status == 409);
/// # let _ = credits;
/// ```
///
/// A route's own price is set on the route (`ChargeLayer::cost`, actix's
/// `Charge::cost`).
#[derive(Clone)]
#[must_use]
pub struct Credits {
    pub(crate) claim: String,
    pub(crate) cost: u64,
    pub(crate) cost_fn: Option<CostFn>,
    pub(crate) mode: ChargeMode,
    pub(crate) refund_when: Option<RefundFn>,
}

impl fmt::Debug for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credits")
            .field("claim", &self.claim)
            .field("cost", &self.cost)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Default for Credits {
    fn default() -> Self {
        Self::new()
    }
}

impl Credits {
    /// Allowance claim `credits`, each request costs 1, charged on request.
    pub fn new() -> Self {
        Credits {
            claim: DEFAULT_CREDITS_CLAIM.into(),
            cost: 1,
            cost_fn: None,
            mode: ChargeMode::OnRequest,
            refund_when: None,
        }
    }

    /// The name of the allowance claim.
    pub fn claim(mut self, name: impl Into<String>) -> Self {
        self.claim = name.into();
        self
    }

    /// The default cost of a request (0 allowed). A route-level cost
    /// replaces it for that route.
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }

    /// Computes the cost from the request (replaces the default cost).
    pub fn cost_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> u64 + Send + Sync + 'static,
    {
        self.cost_fn = Some(Arc::new(f));
        self
    }

    /// Charge on success: reserve before, refund when the handler fails.
    pub fn charge_on_success(mut self) -> Self {
        self.mode = ChargeMode::OnSuccess;
        self
    }

    /// Which statuses count as failure under
    /// [`charge_on_success`](Self::charge_on_success) (default: 5xx).
    pub fn refund_when<F>(mut self, f: F) -> Self
    where
        F: Fn(StatusCode) -> bool + Send + Sync + 'static,
    {
        self.refund_when = Some(Arc::new(f));
        self
    }

    /// The charge mode.
    pub fn mode(&self) -> ChargeMode {
        self.mode
    }

    pub(crate) fn cost_of(&self, req: &RequestInfo<'_>) -> u64 {
        match &self.cost_fn {
            Some(f) => f(req),
            None => self.cost,
        }
    }
}

/// Client address binding: a token carrying the address claim (one address
/// or a list of addresses and CIDR ranges, IPv4 and IPv6) is accepted only
/// from those addresses. Tokens without the claim are not bound.
///
/// The client is the connection's peer: serve with connection info (axum's
/// `into_make_service_with_connect_info::<SocketAddr>()`), else a bound
/// token gets 500.
///
/// ```
/// use tollgate_core::policy::{ForwardedHeader, IpBinding};
///
/// // Behind a load balancer in 10.0.0.0/8 that writes `Forwarded`.
/// let binding = IpBinding::new()
///     .trusted_proxies(["10.0.0.0/8", "fd00::/8"])?
///     .forwarded_header(ForwardedHeader::Forwarded);
/// assert!(IpBinding::new().trusted_proxies(["not-an-address"]).is_err());
/// # let _ = binding;
/// # Ok::<(), tollgate_core::policy::BadIpNet>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct IpBinding {
    pub(crate) claim: String,
    pub(crate) trusted: ip::TrustedProxies,
}

impl Default for IpBinding {
    fn default() -> Self {
        Self::new()
    }
}

impl IpBinding {
    /// Claim `ip`; no proxy trusted (the client is the peer).
    pub fn new() -> Self {
        IpBinding {
            claim: DEFAULT_IP_CLAIM.into(),
            trusted: ip::TrustedProxies::default(),
        }
    }

    /// The name of the address claim.
    pub fn claim(mut self, name: impl Into<String>) -> Self {
        self.claim = name.into();
        self
    }

    /// Proxies (addresses or CIDR ranges) whose forwarding header (see
    /// [`forwarded_header`](Self::forwarded_header)) is believed. The
    /// client is the right-most address in the header that is not a
    /// trusted proxy.
    ///
    /// # Errors
    ///
    /// [`BadIpNet`] for an entry that is neither an address nor a CIDR range.
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> std::result::Result<Self, BadIpNet>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for p in proxies {
            self.trusted.nets.push(p.as_ref().parse()?);
        }
        Ok(self)
    }

    /// The header the trusted proxies write (default
    /// [`ForwardedHeader::Both`]: either, and both must agree when both
    /// are present). Name it when you know it.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.trusted.header = header;
        self
    }
}
