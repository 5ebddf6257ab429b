//! [`Meter`]: the credits of one metered request, its route cost,
//! refunds and settlement.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

use super::config::{ChargeMode, RefundFn};
use super::store::{Consumed, Consumption, Store, StoreError};
use super::token_ref;
use crate::claims::TokenInfo;
use crate::error::{Error, Result};

/// The credits of one metered request: what was charged, what is left.
/// Framework layers put it in the request; a route-level cost adjusts the
/// charge, a failed request is refunded, and the response carries
/// `Credits-Limit` and `Credits-Remaining`.
///
/// # Examples
///
/// What a framework layer does with it, charging on success:
///
/// ```
/// use std::sync::Arc;
/// use tollgate_core::gate::{Decision, Gate, HttpRequest};
/// use tollgate_core::policy::{Credits, MemoryStore, Policies};
/// use tollgate_core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};
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
/// let gate = Gate::new(Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api")
///         .key(VerifyingKey::hmac(&secret, Algorithm::HS256)?))
///     .policies(Policies::new(Arc::new(MemoryStore::new()))
///         .credits(Credits::new().cost(3).charge_on_success()))
///     .build()?);
/// let token = hs256(&secret, r#"{"iss":"https://issuer.example","aud":"api","jti":"m-1","exp":4102444800,"credits":10}"#);
/// let req = http::Request::get("/").header("authorization", format!("Bearer {token}")).body(())?;
/// let Decision::Accepted(admitted) = gate.decide(&HttpRequest::new(&req, None)) else { unreachable!() };
/// let meter = admitted.meter.expect("the token carries credits");
/// assert_eq!((meter.limit(), meter.charged(), meter.remaining()), (10, 3, 7));
///
/// // The handler failed: the reserved credits go back.
/// meter.settle(http::StatusCode::INTERNAL_SERVER_ERROR, false).wait().await?;
/// assert_eq!(meter.charged(), 0);
/// assert_eq!(meter.credit_headers(), [("credits-limit", 10), ("credits-remaining", 10)]);
/// # Ok(()) }
/// ```
pub struct Meter {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) token: Arc<dyn TokenInfo>,
    pub(crate) limit: u64,
    pub(crate) charged: AtomicU64,
    pub(crate) remaining: AtomicU64,
    pub(crate) mode: ChargeMode,
    pub(crate) refund_when: Option<RefundFn>,
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("limit", &self.limit)
            .field("charged", &self.charged())
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

/// A future a [`Meter`] operation must wait for.
pub type MeterFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

impl Meter {
    /// The token's allowance.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Credits charged to this request so far.
    pub fn charged(&self) -> u64 {
        self.charged.load(Ordering::Acquire)
    }

    /// Credits left after this request's charge.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    /// True when a response with `status` (or a rejection by a Tollgate
    /// layer inside, `rejected`) gives the charge back.
    pub fn should_refund(&self, status: StatusCode, rejected: bool) -> bool {
        if self.charged() == 0 {
            return false;
        }
        if rejected {
            return true;
        }
        match self.mode {
            ChargeMode::OnRequest => false,
            ChargeMode::OnSuccess => match &self.refund_when {
                Some(f) => f(status),
                None => status.is_server_error(),
            },
        }
    }

    /// The response side of a metered request: gives the charge back when
    /// the response failed (`status`, or `rejected` when a Tollgate layer
    /// inside refused the request), as [`should_refund`](Self::should_refund)
    /// says. Then write [`credit_headers`](Self::credit_headers).
    pub fn settle(self: &Arc<Self>, status: StatusCode, rejected: bool) -> MeterStep {
        if self.should_refund(status, rejected) {
            self.refund_all()
        } else {
            MeterStep::Ready(Ok(()))
        }
    }

    /// `Credits-Limit` and `Credits-Remaining`, as header names and values.
    pub fn credit_headers(&self) -> [(&'static str, u64); 2] {
        [
            (crate::CREDITS_LIMIT, self.limit()),
            (crate::CREDITS_REMAINING, self.remaining()),
        ]
    }

    /// Makes this request cost `cost` in all (a route-level cost): charges
    /// the difference, or refunds it. `Err(CreditsExhausted)` when the
    /// difference cannot be paid (the earlier charge stays, for the caller
    /// to refund with the rejection).
    pub fn set_cost(self: &Arc<Self>, cost: u64) -> MeterStep {
        let charged = self.charged();
        if cost == charged {
            return MeterStep::Ready(Ok(()));
        }
        let tref = token_ref(&*self.token);
        if cost > charged {
            let c = Consumption {
                allowance: self.limit,
                cost: cost - charged,
            };
            if let Some(answer) = self.store.try_consume(tref, c) {
                return MeterStep::Ready(self.charged_more(c.cost, answer));
            }
            let this = self.clone();
            MeterStep::Pending(Box::pin(async move {
                let answer = this.store.consume(token_ref(&*this.token), c).await;
                this.charged_more(c.cost, answer)
            }))
        } else {
            self.refund(charged - cost)
        }
    }

    /// Gives back everything charged to this request.
    pub fn refund_all(self: &Arc<Self>) -> MeterStep {
        self.refund(self.charged())
    }

    fn refund(self: &Arc<Self>, amount: u64) -> MeterStep {
        // Take the amount out of `charged` before asking the store, so
        // concurrent refunds of one meter never give back more than it was
        // charged in all.
        let taken = match self
            .charged
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c > 0).then(|| c - c.min(amount))
            }) {
            Ok(before) => before.min(amount),
            Err(_) => 0,
        };
        if taken == 0 {
            return MeterStep::Ready(Ok(()));
        }
        let tref = token_ref(&*self.token);
        if let Some(answer) = self.store.try_refund(tref, self.limit, taken) {
            return MeterStep::Ready(self.refunded(answer));
        }
        let this = self.clone();
        MeterStep::Pending(Box::pin(async move {
            let answer = this
                .store
                .refund(token_ref(&*this.token), this.limit, taken)
                .await;
            this.refunded(answer)
        }))
    }

    fn charged_more(
        &self,
        amount: u64,
        answer: std::result::Result<Consumed, StoreError>,
    ) -> Result<()> {
        match answer {
            Ok(Consumed::Charged { remaining }) => {
                self.charged.fetch_add(amount, Ordering::AcqRel);
                self.remaining.store(remaining, Ordering::Release);
                Ok(())
            }
            Ok(Consumed::Exhausted { remaining }) => Err(Error::CreditsExhausted {
                limit: self.limit,
                remaining,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "credit store unavailable");
                Err(Error::StoreUnavailable)
            }
        }
    }

    /// The refunded amount was already taken out of `charged`, for good.
    fn refunded(&self, answer: std::result::Result<u64, StoreError>) -> Result<()> {
        match answer {
            Ok(remaining) => {
                self.remaining.store(remaining, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // The store may or may not have applied it (a timeout says
                // nothing), so `taken` is not put back: a later refund of
                // this request can only give back less, never twice.
                tracing::warn!(error = %e, "refund failed; credits may stay spent");
                Err(Error::StoreUnavailable)
            }
        }
    }
}

/// A [`Meter`] step, done now or after the store replies.
#[must_use = "a pending step does nothing until awaited"]
pub enum MeterStep {
    /// Done without waiting.
    Ready(Result<()>),
    /// The store must be awaited.
    Pending(MeterFuture),
}

impl MeterStep {
    /// Waits for the step, whichever kind it is.
    pub async fn wait(self) -> Result<()> {
        match self {
            MeterStep::Ready(r) => r,
            MeterStep::Pending(f) => f.await,
        }
    }
}

impl fmt::Debug for MeterStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeterStep::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            MeterStep::Pending(_) => f.write_str("Pending"),
        }
    }
}
