//! [`RequireClaimsLayer`]: a route's check of the token's claims.

use std::sync::Arc;

use tollgate_core::ClaimsCheck;

/// Requires a predicate over the token an [`AuthLayer`](crate::AuthLayer)
/// put in the request, beside or instead of scopes. Place it inside the
/// `AuthLayer`: on a router (`Router::layer`, below the `AuthLayer`) or on
/// routes (`route_layer`).
///
/// A token for which the predicate is false gets 403 with code
/// `access_denied` and the challenge `error="insufficient_scope"` (RFC
/// 6750's code for a token without enough privileges) without a `scope`
/// attribute. An anonymous request gets 401; a request that no `AuthLayer`
/// saw gets 500. The predicate runs after the `AuthLayer` admitted the
/// token, so a missing or bad token is still 401 first, and the auth layer
/// refunds a metered token's charge for a refused request.
///
/// ```
/// use tollgate_core::Verified;
/// use tollgate_tower::RequireClaimsLayer;
///
/// let staff = RequireClaimsLayer::new(|token: &Verified| {
///     token.client_id() == Some("backoffice")
/// })
/// .realm("api");
/// # let _ = staff;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireClaimsLayer {
    check: ClaimsCheck,
    realm: Option<Arc<str>>,
}

tollgate_core::__claims_check_settings!(RequireClaimsLayer);

crate::macros::define_token_check!(
    RequireClaimsLayer,
    RequireClaims,
    "The service made by [`RequireClaimsLayer`]."
);
