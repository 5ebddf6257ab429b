//! [`RequireClaims`]: a check of the token's claims for a scope or resource.

use std::sync::Arc;

use tollgate_core::ClaimsCheck;

/// Requires a predicate over the token for a scope or resource
/// (`Scope::wrap`, `Resource::wrap`), inside [`Auth`](crate::Auth). A
/// token for which it is false gets 403 `access_denied` (challenge
/// `error="insufficient_scope"` without a `scope` attribute); an anonymous
/// request 401; a request no `Auth` saw 500. Same answers as the tower
/// `RequireClaimsLayer`.
///
/// ```
/// use tollgate_actix::RequireClaims;
/// use tollgate_core::Verified;
///
/// let staff = RequireClaims::new(|token: &Verified| token.client_id() == Some("backoffice"));
/// # let _ = staff;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireClaims {
    check: ClaimsCheck,
    realm: Option<Arc<str>>,
}

tollgate_core::__claims_check_settings!(RequireClaims);

crate::scope::token_check!(
    RequireClaims,
    RequireClaimsMiddleware,
    "The service made by [`RequireClaims`]."
);
