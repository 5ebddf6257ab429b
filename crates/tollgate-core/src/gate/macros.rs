//! What every framework crate would otherwise write again: the builder
//! methods its layer forwards to the [`Gate`](super::Gate), its extractor
//! types, and its scope layer's constructors. `#[doc(hidden)]` macros the
//! adapters invoke; not an API for applications.

/// The builder methods every framework layer forwards to its [`Gate`](super::Gate)
/// (written once here, so the layers cannot drift). The layer type must
/// hold its gate in a field named `gate`.
#[doc(hidden)]
#[macro_export]
macro_rules! __gate_settings {
    ($layer:ty) => {
        impl $layer {
            /// Where tokens are read from (default: the `Authorization`
            /// header). See [`Gate::extractor`]($crate::gate::Gate::extractor).
            pub fn extractor(mut self, extractor: $crate::BearerExtractor) -> Self {
                self.gate = self.gate.extractor(extractor);
                self
            }

            /// Lets requests without any token through as anonymous; a token
            /// that is sent and bad is still rejected. See
            /// [`Gate::optional`]($crate::gate::Gate::optional).
            pub fn optional(mut self) -> Self {
                self.gate = self.gate.optional();
                self
            }

            /// Passes CORS preflights to the inner service unauthenticated.
            /// See [`Gate::allow_preflight`]($crate::gate::Gate::allow_preflight).
            pub fn allow_preflight(mut self) -> Self {
                self.gate = self.gate.allow_preflight();
                self
            }

            /// The `realm` of the `WWW-Authenticate` challenge.
            pub fn realm(mut self, realm: impl Into<String>) -> Self {
                self.gate = self.gate.realm(realm);
                self
            }

            /// Replaces the error answer; the [`Error`]($crate::Error) still
            /// goes into the response's extensions. See
            /// [`Gate::on_error`]($crate::gate::Gate::on_error).
            pub fn on_error<F>(mut self, hook: F) -> Self
            where
                F: Fn(
                        &$crate::Error,
                        $crate::__http::Response<String>,
                    ) -> $crate::__http::Response<String>
                    + Send
                    + Sync
                    + 'static,
            {
                self.gate = self.gate.on_error(hook);
                self
            }

            /// The gate this layer runs.
            pub fn gate(&self) -> &$crate::gate::Gate {
                &self.gate
            }
        }
    };
}

/// The extractor types every framework crate offers ([`Claims`],
/// [`Scopes`] and their rejection), written once; the crate adds its
/// framework's extractor impls. Takes the doc of `Claims`.
#[doc(hidden)]
#[macro_export]
macro_rules! __extractor_types {
    ($(#[$claims_doc:meta])*) => {
        $(#[$claims_doc])*
        #[derive(Debug, Clone)]
        pub struct Claims<C = $crate::NoClaims>(pub $crate::gate::Claims<C>);

        impl<C> ::std::ops::Deref for Claims<C> {
            type Target = $crate::gate::Claims<C>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        /// The scopes of the request's token, whatever the claims type.
        /// Derefs to [`gate::Scopes`]($crate::gate::Scopes).
        #[derive(Debug, Clone)]
        pub struct Scopes(pub $crate::gate::Scopes);

        impl ::std::ops::Deref for Scopes {
            type Target = $crate::gate::Scopes;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        /// Why [`Claims`] or [`Scopes`] could not be extracted: the core
        /// [`ClaimsRejection`]($crate::gate::ClaimsRejection), answered as
        /// every Tollgate rejection is.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Rejection(pub $crate::gate::ClaimsRejection);

        impl ::std::fmt::Display for Rejection {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::error::Error for Rejection {
            fn source(&self) -> Option<&(dyn ::std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
    };
}

/// The constructors of every framework's scope layer, written once. The
/// type must have the fields `check: ScopeRequirement` and
/// `realm: Option<Arc<str>>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __scope_settings {
    ($layer:ty) => {
        impl $layer {
            /// Every one of `scopes` is required.
            pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
                Self::new($crate::ScopeRequirement::all(scopes))
            }

            /// At least one of `scopes` is required.
            pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
                Self::new($crate::ScopeRequirement::any(scopes))
            }

            /// A layer for a requirement built elsewhere.
            pub fn new(require: $crate::ScopeRequirement) -> Self {
                Self {
                    check: require,
                    realm: None,
                }
            }

            /// The `realm` of the challenge.
            pub fn realm(mut self, realm: impl Into<String>) -> Self {
                self.realm = Some(::std::sync::Arc::from(realm.into()));
                self
            }
        }
    };
}

/// The constructors of every framework's claims layer, written once. The
/// type must have the fields `check: ClaimsCheck` and
/// `realm: Option<Arc<str>>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __claims_check_settings {
    ($layer:ty) => {
        impl $layer {
            /// Admits the tokens for which `predicate` holds; others get 403
            /// `access_denied`.
            pub fn new<F>(predicate: F) -> Self
            where
                F: Fn(&$crate::Verified) -> bool + Send + Sync + 'static,
            {
                Self::with($crate::ClaimsCheck::new(predicate))
            }

            /// A layer for a check built elsewhere.
            pub fn with(check: $crate::ClaimsCheck) -> Self {
                Self { check, realm: None }
            }

            /// The `realm` of the challenge.
            pub fn realm(mut self, realm: impl Into<String>) -> Self {
                self.realm = Some(::std::sync::Arc::from(realm.into()));
                self
            }
        }
    };
}
