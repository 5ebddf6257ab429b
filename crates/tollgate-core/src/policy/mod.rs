//! Policies that run after a token verified: client address binding,
//! revocation and credits, with the stores they use.
//!
//! Order per request: the address binding is checked first (it needs no
//! store), then revocation and credit consumption together in one store call
//! ([`Store::check`]), so a revoked token spends nothing and a network store
//! needs one round trip.
//!
//! ```
//! use std::sync::Arc;
//! use tollgate_core::policy::{Credits, IpBinding, MemoryStore, Policies};
//!
//! let policies = Policies::new(Arc::new(MemoryStore::new()))
//!     .credits(Credits::new().cost(1))
//!     .ip_binding(IpBinding::new().trusted_proxies(["10.0.0.0/8"]).unwrap());
//! # let _ = policies;
//! ```
//!
//! Address binding needs the connection's peer address. With axum, serve
//! with connection info, or every request gets 500 `invalid_configuration`
//! naming this call (logged once at `error`):
//!
//! ```text
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! ```
//!
//! actix-web always records the peer of a TCP connection.

mod config;
mod ip;
mod memory;
mod meter;
mod store;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::HeaderMap;

pub use crate::net::{BadIpNet, IpNet};
pub use config::{
    ChargeMode, Credits, DEFAULT_CREDITS_CLAIM, DEFAULT_IP_CLAIM, IpBinding, RequestInfo,
};
pub use ip::ForwardedHeader;
pub use memory::MemoryStore;
pub use meter::{Meter, MeterFuture, MeterStep};
pub use store::{
    Consumed, Consumption, CreditStore, Principal, RefreshGrant, RevocationStore, Rotation, Store,
    StoreError, StoreFuture, TokenRef, Verdict,
};

use crate::claims::TokenInfo;
use crate::error::{Error, Result};

/// The policies an [`Authenticator`](crate::Authenticator) applies after a
/// token verified. Revocation is checked on every request (cache hits
/// included) whenever a store is set.
///
/// Revocations and spent credits are the store's: a token revoked at the
/// token server is refused by an API only when both use the same store, and
/// a token's credits count once across API instances only when they share
/// one. [`MemoryStore`] is one process's; several processes share a Redis
/// (`tollgate-redis`'s `RedisStore`, and `[store] kind = "redis"` for
/// `tollgate serve`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tollgate_core::policy::{Credits, ForwardedHeader, IpBinding, MemoryStore, Policies};
///
/// let policies = Policies::new(Arc::new(MemoryStore::new()))
///     // tokens with a `credits` claim pay 2 per request
///     .credits(Credits::new().cost(2))
///     // tokens with an `ip` claim are served only there; behind one nginx
///     .ip_binding(IpBinding::new()
///         .trusted_proxies(["10.0.0.5"])?
///         .forwarded_header(ForwardedHeader::XForwardedFor));
/// # let _ = policies;
/// # Ok::<(), tollgate_core::policy::BadIpNet>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Policies {
    store: Arc<dyn Store>,
    revocation: bool,
    revocation_fail_open: bool,
    credits: Option<Credits>,
    ip: Option<IpBinding>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("revocation", &self.revocation)
            .field("revocation_fail_open", &self.revocation_fail_open)
            .field("credits", &self.credits)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

impl Policies {
    /// Revocation checks against `store`; no credits, no address binding.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Policies {
            store,
            revocation: true,
            revocation_fail_open: false,
            credits: None,
            ip: None,
        }
    }

    /// Meters tokens that carry an allowance.
    pub fn credits(mut self, credits: Credits) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Binds tokens that carry an address claim to the client address.
    pub fn ip_binding(mut self, binding: IpBinding) -> Self {
        self.ip = Some(binding);
        self
    }

    /// Skips revocation checks (credits still use the store).
    pub fn without_revocation(mut self) -> Self {
        self.revocation = false;
        self
    }

    /// When the store cannot answer, lets unmetered tokens through without a
    /// revocation check (logged at `warn`). Metered tokens still fail closed:
    /// credits are never spent unrecorded. Default: fail closed (503).
    pub fn revocation_fail_open(mut self) -> Self {
        self.revocation_fail_open = true;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn credits_claim(&self) -> Option<&str> {
        self.credits.as_ref().map(|c| c.claim.as_str())
    }

    pub(crate) fn ip_claim(&self) -> Option<&str> {
        self.ip.as_ref().map(|i| i.claim.as_str())
    }

    /// True when address binding is on: every request must then come with
    /// its peer address.
    pub(crate) fn binds_addresses(&self) -> bool {
        self.ip.is_some()
    }

    /// True when the client address must be known for this token: it is
    /// bound to addresses and binding is on.
    pub(crate) fn needs_client_address(&self, token: &dyn TokenInfo) -> bool {
        self.ip.is_some() && token.bound_addresses().is_some()
    }

    /// The client address of a request from `peer`, trusted proxies' headers
    /// considered.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedForwarded`] when a trusted proxy's header cannot be
    /// read, [`Error::AddressMismatch`] when it hides the client or the two
    /// forwarding headers disagree.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use std::sync::Arc;
    /// use tollgate_core::policy::{IpBinding, MemoryStore, Policies};
    ///
    /// let policies = Policies::new(Arc::new(MemoryStore::new()))
    ///     .ip_binding(IpBinding::new().trusted_proxies(["10.0.0.0/8"])?);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-forwarded-for", "198.51.100.7, 10.0.0.2".parse()?);
    ///
    /// // Through the proxies: the right-most address that is not one of them.
    /// let client = policies.client_address("10.0.0.1".parse()?, &headers)?;
    /// assert_eq!(client, "198.51.100.7".parse::<IpAddr>()?);
    /// // From anywhere else the header is the client's own word, and ignored.
    /// let client = policies.client_address("192.0.2.1".parse()?, &headers)?;
    /// assert_eq!(client, "192.0.2.1".parse::<IpAddr>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr> {
        let values = |name| headers.get_all(name).into_iter().map(|v| v.as_bytes());
        self.client_address_from(peer, values("forwarded"), values("x-forwarded-for"))
    }

    /// [`client_address`](Self::client_address) from raw header values,
    /// whatever `http` version carried them.
    pub(crate) fn client_address_from<'h>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'h [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'h [u8]>,
    ) -> Result<IpAddr> {
        match &self.ip {
            Some(b) => b.trusted.client_address(peer, forwarded, x_forwarded_for),
            None => Ok(peer.to_canonical()),
        }
    }

    /// Runs the policies for a verified token: address binding, then
    /// revocation and the charge in one store call. `client` is the client
    /// address (required when [`needs_client_address`](Self::needs_client_address)).
    ///
    /// On success, returns the [`Meter`] of a metered token (to put in the
    /// request, for route costs, refunds and the credit headers).
    pub(crate) fn admit(
        self: &Arc<Self>,
        token: Arc<dyn TokenInfo>,
        client: Option<IpAddr>,
        request: &RequestInfo<'_>,
    ) -> Admission {
        if let (Some(_), Some(bound)) = (&self.ip, token.bound_addresses()) {
            let Some(client) = client else {
                // The gate refuses every request without a peer address
                // under binding, naming the fix, before it gets here.
                return Admission::Ready(Err(Error::Config(
                    "address binding is on but the server gives no peer address".into(),
                )));
            };
            if !bound.iter().any(|n| n.contains(client)) {
                return Admission::Ready(Err(Error::AddressMismatch));
            }
        }
        let consumption = match (&self.credits, token.credits()) {
            (Some(c), Some(allowance)) => {
                if token.token_id().is_none() {
                    return Admission::Ready(Err(Error::MissingClaim("jti".into())));
                }
                Some(Consumption {
                    allowance,
                    cost: c.cost_of(request),
                })
            }
            _ => None,
        };
        if !self.revocation && consumption.is_none() {
            return Admission::Ready(Ok(None));
        }
        let tref = token_ref(&*token);
        if let Some(answer) = self.store.try_check(tref, consumption) {
            return Admission::Ready(self.conclude(&token, consumption, answer));
        }
        let this = self.clone();
        Admission::Pending(Box::pin(async move {
            let answer = this.store.check(token_ref(&*token), consumption).await;
            this.conclude(&token, consumption, answer)
        }))
    }

    fn conclude(
        &self,
        token: &Arc<dyn TokenInfo>,
        consumption: Option<Consumption>,
        answer: std::result::Result<Verdict, StoreError>,
    ) -> Result<Option<Arc<Meter>>> {
        match answer {
            Err(e) if consumption.is_none() && self.revocation_fail_open => {
                tracing::warn!(error = %e, "revocation store unavailable; failing open");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; failing closed");
                Err(Error::StoreUnavailable)
            }
            Ok(Verdict::Revoked) => Err(Error::Revoked),
            Ok(Verdict::Admitted(None)) => Ok(None),
            Ok(Verdict::Admitted(Some(Consumed::Exhausted { remaining }))) => {
                Err(Error::CreditsExhausted {
                    limit: consumption.map_or(0, |c| c.allowance),
                    remaining,
                })
            }
            Ok(Verdict::Admitted(Some(Consumed::Charged { remaining }))) => {
                let (Some(c), Some(credits)) = (consumption, &self.credits) else {
                    return Ok(None);
                };
                Ok(Some(Arc::new(Meter {
                    store: self.store.clone(),
                    token: token.clone(),
                    limit: c.allowance,
                    charged: AtomicU64::new(c.cost),
                    remaining: AtomicU64::new(remaining),
                    mode: credits.mode,
                    refund_when: credits.refund_when.clone(),
                })))
            }
        }
    }
}

/// The store's view of a token. A token of a grant (`sid` with `sid_exp`, a
/// refresh-token family) is stored as its grant: one credit allowance and one revocation
/// for every token of the family, kept until the grant ends (`sid_exp`), so
/// a refresh never restores credits and revoking any of its tokens revokes
/// them all (RFC 7009 §2.1).
pub fn token_ref(token: &dyn TokenInfo) -> TokenRef<'_> {
    // Both claims, as Tollgate's token server writes them: another issuer's
    // `sid` alone (an OpenID Connect session) keeps the token keyed by its
    // `jti`.
    let (token_id, expires_at) = match (token.grant_id(), token.grant_expires_at()) {
        (Some(grant), Some(end)) => (Some(grant), end.max(token.expires_at())),
        _ => (token.token_id(), token.expires_at()),
    };
    TokenRef {
        issuer: token.issuer(),
        token_id,
        subject: token.subject(),
        client_id: token.client_id(),
        issued_at: token.issued_at(),
        expires_at,
    }
}

/// A policy decision still waiting for the store.
pub(crate) type AdmissionFuture = Pin<Box<dyn Future<Output = Result<Option<Arc<Meter>>>> + Send>>;

/// A policy decision, answered now or after the store replies.
pub(crate) enum Admission {
    /// Decided without waiting.
    Ready(Result<Option<Arc<Meter>>>),
    /// The store must be awaited.
    Pending(AdmissionFuture),
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Admission::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Admission::Pending(_) => f.write_str("Pending"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_response;

    /// A store that cannot be reached.
    struct Down;

    fn down<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
        Box::pin(std::future::ready(Err(StoreError::new(
            "connection refused",
        ))))
    }

    impl RevocationStore for Down {
        fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> StoreFuture<'a, ()> {
            down()
        }
        fn revoke_issued_until<'a>(
            &'a self,
            _: &'a str,
            _: Principal<'a>,
            _: i64,
            _: i64,
        ) -> StoreFuture<'a, ()> {
            down()
        }
        fn is_revoked<'a>(&'a self, _: TokenRef<'a>) -> StoreFuture<'a, bool> {
            down()
        }
    }

    impl CreditStore for Down {
        fn consume<'a>(&'a self, _: TokenRef<'a>, _: Consumption) -> StoreFuture<'a, Consumed> {
            down()
        }
        fn refund<'a>(&'a self, _: TokenRef<'a>, _: u64, _: u64) -> StoreFuture<'a, u64> {
            down()
        }
        fn spent<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, Option<u64>> {
            down()
        }
    }

    impl Store for Down {
        fn grace_secs(&self) -> i64 {
            300
        }
        fn purge_expired(&self, _: i64) -> StoreFuture<'_, u64> {
            down()
        }
    }

    struct Token {
        credits: Option<u64>,
    }

    impl TokenInfo for Token {
        fn issuer(&self) -> &str {
            "https://issuer.example"
        }
        fn subject(&self) -> Option<&str> {
            Some("user-1")
        }
        fn client_id(&self) -> Option<&str> {
            None
        }
        fn token_id(&self) -> Option<&str> {
            Some("t-1")
        }
        fn key_id(&self) -> Option<&str> {
            None
        }
        fn expires_at(&self) -> i64 {
            4_000_000_000
        }
        fn issued_at(&self) -> Option<i64> {
            None
        }
        fn credits(&self) -> Option<u64> {
            self.credits
        }
        fn bound_addresses(&self) -> Option<&[IpNet]> {
            None
        }
        fn scope(&self) -> &str {
            ""
        }
    }

    async fn decide(policies: Policies, credits: Option<u64>) -> Result<Option<Arc<Meter>>> {
        let req = RequestInfo {
            method: "GET",
            path: "/",
            query: None,
        };
        match Arc::new(policies).admit(Arc::new(Token { credits }), None, &req) {
            Admission::Ready(r) => r,
            Admission::Pending(f) => f.await,
        }
    }

    #[tokio::test]
    async fn a_store_that_is_down_fails_closed_unless_told_otherwise() {
        let closed = Policies::new(Arc::new(Down)).credits(Credits::new());
        let err = decide(closed.clone(), None).await.unwrap_err();
        assert_eq!(err, Error::StoreUnavailable);
        let resp = error_response(&err, None);
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "5");
        assert_eq!(
            decide(closed, Some(5)).await.unwrap_err(),
            Error::StoreUnavailable
        );

        let open = Policies::new(Arc::new(Down))
            .credits(Credits::new())
            .revocation_fail_open();
        assert!(decide(open.clone(), None).await.unwrap().is_none());
        // Credits are never spent unrecorded: metered tokens still fail closed.
        assert_eq!(
            decide(open, Some(5)).await.unwrap_err(),
            Error::StoreUnavailable
        );
    }

    #[tokio::test]
    async fn cost_from_the_request() {
        let store = Arc::new(MemoryStore::new());
        let policies =
            Arc::new(Policies::new(store).credits(
                Credits::new().cost_fn(|r| if r.path.starts_with("/bulk") { 10 } else { 1 }),
            ));
        let token: Arc<dyn TokenInfo> = Arc::new(Token { credits: Some(12) });
        let admit = |path: &'static str| {
            let req = RequestInfo {
                method: "POST",
                path,
                query: None,
            };
            match policies.admit(token.clone(), None, &req) {
                Admission::Ready(r) => r,
                Admission::Pending(_) => panic!("the memory store answers at once"),
            }
        };
        assert_eq!(admit("/bulk/import").unwrap().unwrap().remaining(), 2);
        assert_eq!(admit("/one").unwrap().unwrap().remaining(), 1);
        assert_eq!(
            admit("/bulk/again").unwrap_err(),
            Error::CreditsExhausted {
                limit: 12,
                remaining: 1
            }
        );
    }

    #[tokio::test]
    async fn exhausted_answers_carry_limit_and_remaining() {
        let store = Arc::new(MemoryStore::new());
        let policies = Policies::new(store).credits(Credits::new().cost(2));
        let meter = decide(policies.clone(), Some(3)).await.unwrap().unwrap();
        assert_eq!(
            (meter.limit(), meter.charged(), meter.remaining()),
            (3, 2, 1)
        );
        let err = decide(policies, Some(3)).await.unwrap_err();
        assert_eq!(
            err,
            Error::CreditsExhausted {
                limit: 3,
                remaining: 1
            }
        );
        let resp = error_response(&err, None);
        assert_eq!(resp.status(), 402);
        assert_eq!(resp.headers()["credits-remaining"], "1");
        assert!(resp.headers().get("www-authenticate").is_none());
        // Refunds give back only what this request was charged.
        meter.refund_all().wait().await.unwrap();
        assert_eq!((meter.charged(), meter.remaining()), (0, 3));
        meter.refund_all().wait().await.unwrap();
        assert_eq!(meter.remaining(), 3);
    }

    /// The memory store, answered only after one yield: every call goes
    /// through the async path, as with a network store.
    struct Later(MemoryStore);

    impl RevocationStore for Later {
        fn revoke<'a>(&'a self, i: &'a str, t: &'a str, e: i64) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.revoke(i, t, e).await
            })
        }
        fn revoke_issued_until<'a>(
            &'a self,
            i: &'a str,
            p: Principal<'a>,
            b: i64,
            k: i64,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.revoke_issued_until(i, p, b, k).await
            })
        }
        fn is_revoked<'a>(&'a self, t: TokenRef<'a>) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.is_revoked(t).await
            })
        }
    }

    impl CreditStore for Later {
        fn consume<'a>(&'a self, t: TokenRef<'a>, c: Consumption) -> StoreFuture<'a, Consumed> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.consume(t, c).await
            })
        }
        fn refund<'a>(&'a self, t: TokenRef<'a>, a: u64, n: u64) -> StoreFuture<'a, u64> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.refund(t, a, n).await
            })
        }
        fn spent<'a>(&'a self, i: &'a str, t: &'a str) -> StoreFuture<'a, Option<u64>> {
            self.0.spent(i, t)
        }
    }

    impl Store for Later {
        fn grace_secs(&self) -> i64 {
            self.0.grace_secs()
        }
        fn purge_expired(&self, now: i64) -> StoreFuture<'_, u64> {
            self.0.purge_expired(now)
        }
    }

    #[tokio::test]
    async fn concurrent_refunds_of_one_meter_give_back_its_charge_once() {
        let store = Arc::new(Later(MemoryStore::new()));
        // Another request's spending, which no refund may hand back.
        let other = decide(
            Policies::new(store.clone()).credits(Credits::new().cost(4)),
            Some(10),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(other.remaining(), 6);
        let policies = Policies::new(store.clone()).credits(Credits::new().cost(3));
        let meter = decide(policies, Some(10)).await.unwrap().unwrap();
        assert_eq!((meter.charged(), meter.remaining()), (3, 3));
        let (a, b, c) = tokio::join!(
            meter.refund_all().wait(),
            meter.refund_all().wait(),
            meter.refund_all().wait()
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        assert_eq!(meter.charged(), 0);
        assert_eq!(
            store.spent("https://issuer.example", "t-1").await.unwrap(),
            Some(4),
            "the other request's 4 credits stay spent"
        );
    }
}
