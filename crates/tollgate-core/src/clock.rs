//! The one clock every time check reads, injectable so that expiry can be
//! tested without waiting or depending on the wall clock.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tollgate_core::{Clock, ManualClock};
//!
//! let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now_ms(), 1_700_000_090_000);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from, in Unix milliseconds.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Whole seconds since the Unix epoch (a JWT NumericDate).
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system's wall clock. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        unix_now_ms()
    }
}

/// A clock that moves only when told to, for tests of time rules.
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{Clock, ManualClock};
///
/// let clock = ManualClock::at_secs(1_800_000_000);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now_secs(), 1_800_000_090);
/// ```
///
/// Give it to [`AuthenticatorBuilder::clock`](crate::AuthenticatorBuilder::clock)
/// to test expiry without waiting.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_secs(secs: i64) -> Self {
        ManualClock(AtomicI64::new(secs.saturating_mul(1000)))
    }

    /// Sets the time, in seconds after the Unix epoch.
    pub fn set_secs(&self, secs: i64) {
        self.0.store(secs.saturating_mul(1000), Ordering::Release);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The wall clock in Unix milliseconds (0 before the epoch).
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
