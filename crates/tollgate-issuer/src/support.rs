//! The clock and the random ids the crate's parts share.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Now, in Unix seconds (0 before the epoch).
pub(crate) fn now() -> i64 {
    tollgate_core::Clock::now_secs(&tollgate_core::SystemClock)
}

/// `bytes` random bytes, base64url without padding: key ids, `jti`s,
/// client secrets.
pub(crate) fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // SystemRandom does not fail on supported platforms.
    let _ = SystemRandom::new().fill(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}
