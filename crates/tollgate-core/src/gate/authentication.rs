//! What the gate leaves in a request, and how handlers and inner layers
//! read it: the token, typed claims, scopes, and the one rule for "no
//! authentication layer in front of this handler".

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::claims::{NoClaims, Verified};
use crate::error::Error;

/// What the gate put into a request's extensions: the verified token, or
/// the note that the request went on without one ([`Gate::optional`]).
/// A request without either passed no gate.
///
/// [`Gate::optional`]: super::Gate::optional
///
/// ```
/// use tollgate_core::gate::{Authentication, ClaimsRejection};
///
/// // What a handler behind a gate does with a request's extensions.
/// fn who(extensions: &http::Extensions) -> Result<String, ClaimsRejection> {
///     let found = extensions.get::<Authentication>();
///     Ok(match Authentication::optional_token(found)? {
///         Some(token) => token.subject().unwrap_or("a client").to_owned(),
///         None => "anonymous".to_owned(),
///     })
/// }
///
/// let mut ext = http::Extensions::new();
/// assert_eq!(who(&ext), Err(ClaimsRejection::MissingLayer)); // no gate ran: 500
/// ext.insert(Authentication::Anonymous);
/// assert_eq!(who(&ext).as_deref(), Ok("anonymous"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Authentication {
    /// A token that passed every check.
    Token(Arc<Verified>),
    /// No token was sent and the gate lets such requests through.
    Anonymous,
}

/// The text of the missing-layer mistake, logged and answered alike.
const NO_LAYER: &str = "no authentication layer in front of this handler";

impl Authentication {
    /// The token of a request, from what its extensions hold (`found`).
    ///
    /// # Errors
    ///
    /// [`ClaimsRejection::Unauthenticated`] for an anonymous request,
    /// [`ClaimsRejection::MissingLayer`] (logged at `error`: a server
    /// mistake) when no gate ran.
    pub fn token(found: Option<&Authentication>) -> Result<&Arc<Verified>, ClaimsRejection> {
        match Self::optional_token(found)? {
            Some(token) => Ok(token),
            None => Err(ClaimsRejection::Unauthenticated),
        }
    }

    /// Like [`token`](Self::token), but an anonymous request is `None`.
    ///
    /// # Errors
    ///
    /// [`ClaimsRejection::MissingLayer`] when no gate ran.
    pub fn optional_token(
        found: Option<&Authentication>,
    ) -> Result<Option<&Arc<Verified>>, ClaimsRejection> {
        match found {
            Some(Authentication::Token(token)) => Ok(Some(token)),
            Some(Authentication::Anonymous) => Ok(None),
            None => {
                tracing::error!("{NO_LAYER}");
                Err(ClaimsRejection::MissingLayer)
            }
        }
    }
}

/// Why [`Claims`] or [`Scopes`] could not be had for a request.
///
/// ```
/// use tollgate_core::gate::ClaimsRejection;
///
/// let answer = ClaimsRejection::MissingLayer.response();
/// assert_eq!(answer.status(), 500); // a server mistake, never a silent 401
/// assert_eq!(ClaimsRejection::Unauthenticated.error().code(), "missing_token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request went on without a token (optional authentication): 401.
    Unauthenticated,
    /// No authentication layer ran in front of the handler: a server
    /// misconfiguration, 500 `invalid_configuration`.
    MissingLayer,
    /// The token's claims do not fit the application's type: 401
    /// `invalid_claim`, naming the claim.
    InvalidClaims(Error),
}

impl ClaimsRejection {
    /// The error this rejection answers with.
    pub fn error(&self) -> Error {
        match self {
            ClaimsRejection::Unauthenticated => Error::MissingToken,
            ClaimsRejection::MissingLayer => Error::Config(NO_LAYER.into()),
            ClaimsRejection::InvalidClaims(e) => e.clone(),
        }
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.error().status()
    }

    /// The whole answer, rendered as every Tollgate rejection is.
    pub fn response(&self) -> http::Response<String> {
        crate::error_response(&self.error(), None)
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error().fmt(f)
    }
}

impl std::error::Error for ClaimsRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClaimsRejection::InvalidClaims(e) => Some(e),
            _ => None,
        }
    }
}

/// The verified token of a request with the application's claims `C`, read
/// from the token on first use (once per token and type; a token served from
/// the verified-token cache is not read again). Derefs to [`Verified`].
///
/// The framework crates wrap it in their extractors.
///
/// ```
/// use tollgate_core::gate::{Authentication, Claims, ClaimsRejection};
///
/// #[derive(serde::Deserialize)]
/// struct Plan {
///     tier: String,
/// }
///
/// fn tier(extensions: &http::Extensions) -> Result<String, ClaimsRejection> {
///     let claims = Claims::<Plan>::from_authentication(extensions.get::<Authentication>())?;
///     Ok(format!("{} is on {}", claims.subject().unwrap_or("?"), claims.claims().tier))
/// }
///
/// let mut ext = http::Extensions::new();
/// ext.insert(Authentication::Anonymous);
/// let rejection = tier(&ext).unwrap_err();
/// assert_eq!(rejection, ClaimsRejection::Unauthenticated);
/// assert_eq!(rejection.status(), 401);
/// ```
pub struct Claims<C = NoClaims> {
    token: Arc<Verified>,
    claims: Arc<C>,
}

impl<C> Clone for Claims<C> {
    fn clone(&self) -> Self {
        Claims {
            token: self.token.clone(),
            claims: self.claims.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Claims<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("token", &self.token)
            .field("claims", &self.claims)
            .finish()
    }
}

impl<C> Deref for Claims<C> {
    type Target = Verified;
    fn deref(&self) -> &Verified {
        &self.token
    }
}

impl<C: DeserializeOwned + Send + Sync + 'static> Claims<C> {
    /// The claims of a request, from what its extensions hold.
    ///
    /// # Errors
    ///
    /// As [`Authentication::token`], and
    /// [`ClaimsRejection::InvalidClaims`] when the token does not fit `C`.
    pub fn from_authentication(found: Option<&Authentication>) -> Result<Self, ClaimsRejection> {
        Self::of(Authentication::token(found)?)
    }

    /// Like [`from_authentication`](Self::from_authentication), but an
    /// anonymous request is `None`.
    ///
    /// # Errors
    ///
    /// [`ClaimsRejection::MissingLayer`] or
    /// [`ClaimsRejection::InvalidClaims`].
    pub fn optional(found: Option<&Authentication>) -> Result<Option<Self>, ClaimsRejection> {
        Authentication::optional_token(found)?
            .map(Self::of)
            .transpose()
    }

    /// The claims `C` of a verified token.
    ///
    /// # Errors
    ///
    /// [`ClaimsRejection::InvalidClaims`] when the token does not fit `C`.
    pub fn of(token: &Arc<Verified>) -> Result<Self, ClaimsRejection> {
        let claims = token
            .claims::<C>()
            .map_err(ClaimsRejection::InvalidClaims)?;
        Ok(Claims {
            token: token.clone(),
            claims,
        })
    }
}

impl<C> Claims<C> {
    /// The application's claims.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The verified token.
    pub fn token(&self) -> &Arc<Verified> {
        &self.token
    }
}

/// The scopes of a request's token.
///
/// ```
/// use tollgate_core::gate::{Authentication, ClaimsRejection, Scopes};
///
/// fn may_export(extensions: &http::Extensions) -> Result<bool, ClaimsRejection> {
///     let scopes = Scopes::from_authentication(extensions.get::<Authentication>())?;
///     Ok(scopes.contains("reports:export"))
/// }
/// # assert!(may_export(&http::Extensions::new()).is_err());
/// ```
///
/// To refuse a route to tokens without a scope, use the scope layers
/// (`RequireScopeLayer`, actix's `RequireScope`), which answer 403 with
/// the challenge RFC 6750 asks for.
#[derive(Clone)]
pub struct Scopes(Arc<Verified>);

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Scopes {
    /// The scopes of a request, from what its extensions hold.
    ///
    /// # Errors
    ///
    /// As [`Authentication::token`].
    pub fn from_authentication(found: Option<&Authentication>) -> Result<Self, ClaimsRejection> {
        Authentication::token(found).map(|t| Scopes(t.clone()))
    }

    /// Each scope.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.scopes()
    }

    /// True when the token carries `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.has_scope(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_layer_is_a_server_mistake_and_anonymous_is_the_clients() {
        assert_eq!(
            Authentication::token(None).unwrap_err().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let anonymous = Authentication::Anonymous;
        assert_eq!(
            Authentication::token(Some(&anonymous)).unwrap_err(),
            ClaimsRejection::Unauthenticated
        );
        assert!(
            Authentication::optional_token(Some(&anonymous))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            ClaimsRejection::MissingLayer.error().code(),
            "invalid_configuration"
        );
    }
}
