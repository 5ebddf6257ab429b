//! Scope requirements and claims checks shared by the framework layers.

use std::fmt;
use std::sync::Arc;

use crate::claims::{TokenInfo, Verified};
use crate::error::{Error, Result};
use crate::gate::Authentication;

/// Scopes a resource requires: all of them, or any one.
///
/// ```
/// use tollgate_core::ScopeRequirement;
///
/// let write = ScopeRequirement::all(["reports:read", "reports:write"]);
/// assert_eq!(write.required(), "reports:read reports:write");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ScopeRequirement {
    all: bool,
    scopes: Arc<[String]>,
    joined: Arc<str>,
}

impl ScopeRequirement {
    /// Every one of `scopes` is required.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::with(true, scopes)
    }

    /// At least one of `scopes` is required.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::with(false, scopes)
    }

    fn with<I: IntoIterator<Item = S>, S: Into<String>>(all: bool, scopes: I) -> Self {
        let scopes: Arc<[String]> = scopes.into_iter().map(Into::into).collect();
        let joined = Arc::from(scopes.join(" "));
        ScopeRequirement {
            all,
            scopes,
            joined,
        }
    }

    /// The required scopes, space-delimited (the challenge's `scope`).
    pub fn required(&self) -> &str {
        &self.joined
    }

    /// `Ok` when `token` satisfies the requirement, else
    /// [`Error::InsufficientScope`].
    pub fn check(&self, token: &dyn TokenInfo) -> Result<()> {
        let ok = if self.all {
            self.scopes.iter().all(|s| token.has_scope(s))
        } else {
            self.scopes.iter().any(|s| token.has_scope(s))
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InsufficientScope {
                required: self.joined.to_string(),
            })
        }
    }
}

impl ScopeRequirement {
    /// The check a scope layer makes of a request, from what the gate left
    /// in it: the token's scopes, 401 for an anonymous request, 500 when no
    /// authentication layer ran (see [`Authentication::token`]).
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientScope`], [`Error::MissingToken`] or
    /// [`Error::Config`].
    pub fn check_request(&self, found: Option<&Authentication>) -> Result<()> {
        match Authentication::token(found) {
            Ok(token) => self.check(&**token),
            Err(rejection) => Err(rejection.error()),
        }
    }
}

/// A route's check of the verified token beyond scopes: a predicate over
/// its claims. `false` answers 403 [`Error::AccessDenied`] (code
/// `access_denied`, challenge `insufficient_scope` without a `scope`).
/// Cloning is cheap.
///
/// ```
/// use tollgate_core::{ClaimsCheck, Verified};
///
/// let admins = ClaimsCheck::new(|token: &Verified| {
///     token.subject().is_some_and(|sub| sub.starts_with("admin:"))
/// });
/// # let _ = admins;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClaimsCheck {
    predicate: Arc<dyn Fn(&Verified) -> bool + Send + Sync>,
}

impl fmt::Debug for ClaimsCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimsCheck(..)")
    }
}

impl ClaimsCheck {
    /// Admits the tokens for which `predicate` holds.
    pub fn new<F>(predicate: F) -> Self
    where
        F: Fn(&Verified) -> bool + Send + Sync + 'static,
    {
        ClaimsCheck {
            predicate: Arc::new(predicate),
        }
    }

    /// `Ok` when the predicate holds for `token`, else
    /// [`Error::AccessDenied`].
    ///
    /// # Errors
    ///
    /// [`Error::AccessDenied`].
    pub fn check(&self, token: &Verified) -> Result<()> {
        if (self.predicate)(token) {
            Ok(())
        } else {
            Err(Error::AccessDenied)
        }
    }

    /// The check a claims layer makes of a request, from what the gate
    /// left in it: 401 for an anonymous request, 500 when no
    /// authentication layer ran (see [`Authentication::token`]).
    ///
    /// # Errors
    ///
    /// [`Error::AccessDenied`], [`Error::MissingToken`] or
    /// [`Error::Config`].
    pub fn check_request(&self, found: Option<&Authentication>) -> Result<()> {
        match Authentication::token(found) {
            Ok(token) => self.check(token),
            Err(rejection) => Err(rejection.error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Token(&'static str);

    impl TokenInfo for Token {
        fn issuer(&self) -> &str {
            "i"
        }
        fn subject(&self) -> Option<&str> {
            None
        }
        fn client_id(&self) -> Option<&str> {
            None
        }
        fn token_id(&self) -> Option<&str> {
            None
        }
        fn key_id(&self) -> Option<&str> {
            None
        }
        fn expires_at(&self) -> i64 {
            0
        }
        fn issued_at(&self) -> Option<i64> {
            None
        }
        fn credits(&self) -> Option<u64> {
            None
        }
        fn bound_addresses(&self) -> Option<&[crate::net::IpNet]> {
            None
        }
        fn scope(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn all_and_any() {
        let all = ScopeRequirement::all(["a", "b"]);
        let any = ScopeRequirement::any(["a", "b"]);
        assert!(all.check(&Token("b a c")).is_ok());
        assert_eq!(
            all.check(&Token("a c")),
            Err(Error::InsufficientScope {
                required: "a b".into()
            })
        );
        assert!(any.check(&Token("c b")).is_ok());
        assert!(any.check(&Token("c ab")).is_err());
        assert!(any.check(&Token("")).is_err());
    }
}
