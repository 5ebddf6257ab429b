//! The observability vocabulary of the gate, the same for every framework:
//! one `debug` span per authentication (`tollgate.auth`, fields `iss`,
//! `sub`, `client_id`, `kid`, `outcome`, `reason`), one counter
//! (`tollgate_authentications_total{outcome,reason}`), and one log shape per
//! rejection (`debug`, or `warn` when the failure is the server's). No field
//! ever holds the token.

use tracing::Span;

use crate::claims::Verified;
use crate::error::Error;

/// The counter every authentication increments once.
pub const AUTHENTICATIONS: &str = "tollgate_authentications_total";

pub(crate) fn span() -> Span {
    tracing::debug_span!(
        "tollgate.auth",
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
        iss = tracing::field::Empty,
        sub = tracing::field::Empty,
        client_id = tracing::field::Empty,
        kid = tracing::field::Empty,
    )
}

pub(crate) fn accepted(span: &Span, token: &Verified) {
    if !span.is_disabled() {
        span.record("iss", token.issuer());
        span.record("sub", token.subject());
        span.record("client_id", token.client_id());
        span.record("kid", token.key_id());
        span.record("outcome", "accepted");
    }
    metrics::counter!(AUTHENTICATIONS, "outcome" => "accepted").increment(1);
}

pub(crate) fn anonymous(span: &Span) {
    span.record("outcome", "anonymous");
    metrics::counter!(AUTHENTICATIONS, "outcome" => "anonymous").increment(1);
}

pub(crate) fn rejected(span: &Span, err: &Error) {
    if !span.is_disabled() {
        span.record("outcome", "rejected");
        span.record("reason", err.code());
    }
    span.in_scope(|| log_rejection(err));
    metrics::counter!(AUTHENTICATIONS, "outcome" => "rejected", "reason" => err.code())
        .increment(1);
}

/// The log line of a rejection, by the gate or by a layer inside it.
pub(crate) fn log_rejection(err: &Error) {
    if err.is_temporary() {
        tracing::warn!(reason = err.code(), "authentication unavailable");
    } else {
        tracing::debug!(reason = err.code(), "request rejected");
    }
}
