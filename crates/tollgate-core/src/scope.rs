//! Scope requirements shared by the framework layers.

use std::sync::Arc;

use crate::claims::TokenInfo;
use crate::error::{Error, Result};

/// Scopes a resource requires: all of them, or any one.
///
/// ```
/// use tollgate_core::ScopeRequirement;
///
/// let write = ScopeRequirement::all(["reports:read", "reports:write"]);
/// assert_eq!(write.required(), "reports:read reports:write");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
