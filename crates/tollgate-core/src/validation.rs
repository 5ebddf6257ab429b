//! The claim rules of a token whose signature verified: `exp` (required),
//! `nbf` and `iat` within the issuer's leeway, `aud` against the configured
//! audiences, the required claims, and the `typ` header.
//!
//! Each rule is a function of the claims, the [`TrustedIssuer`] and the
//! time; the authenticator calls them in the order below, and the
//! verified-token cache re-runs [`check_times`] on every hit.

use crate::error::{Error, Result};
use crate::issuer::TrustedIssuer;
use crate::payload::{Payload, Registered};

/// Every claim rule, in order: `exp` present, times, `iat`, `aud`, required
/// claims. `now` is in seconds.
pub(crate) fn check_claims(payload: &Payload<'_>, cfg: &TrustedIssuer, now: i64) -> Result<()> {
    let reg = &payload.reg;
    if !reg.has_exp {
        return Err(Error::MissingClaim("exp".into()));
    }
    check_times(reg, cfg, now)?;
    if let Some(iat) = reg.iat
        && iat > now.saturating_add(leeway(cfg))
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
    Ok(())
}

/// `exp` not past and `nbf` not ahead, each within the leeway. `now` is in
/// seconds.
pub(crate) fn check_times(reg: &Registered, cfg: &TrustedIssuer, now: i64) -> Result<()> {
    let leeway = leeway(cfg);
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

/// The `typ` header rule: the required type, compared case-insensitively
/// and with an optional `application/` prefix (RFC 7515 §4.1.9).
pub(crate) fn check_type(typ: Option<&str>, cfg: &TrustedIssuer) -> Result<()> {
    match &cfg.required_type {
        Some(required) if !typ.is_some_and(|t| type_matches(t, required)) => {
            Err(Error::InvalidType)
        }
        _ => Ok(()),
    }
}

fn leeway(cfg: &TrustedIssuer) -> i64 {
    i64::try_from(cfg.leeway.as_secs()).unwrap_or(i64::MAX)
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
    fn exp_in_past_fails_and_leeway_counts() {
        let cfg = TrustedIssuer::new("i");
        let reg = Registered {
            exp: 1000,
            has_exp: true,
            ..Registered::default()
        };
        assert_eq!(check_times(&reg, &cfg, 1059), Ok(()));
        assert_eq!(check_times(&reg, &cfg, 1060), Err(Error::Expired));
    }

    #[test]
    fn nbf_in_future_fails_beyond_leeway() {
        let cfg = TrustedIssuer::new("i");
        let reg = Registered {
            exp: 5000,
            has_exp: true,
            nbf: Some(2000),
            ..Registered::default()
        };
        assert_eq!(check_times(&reg, &cfg, 1940), Ok(()));
        assert_eq!(check_times(&reg, &cfg, 1939), Err(Error::NotYetValid));
    }
}
