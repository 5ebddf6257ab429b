//! A set of parsed verification keys, looked up by `kid` and algorithm.

use std::sync::Arc;

use crate::algorithm::Algorithm;
use crate::key::{JwkTrust, SkippedKey, VerifyingKey, parse_jwks};

/// Keys of one issuer, parsed once. Cloning is cheap (keys are shared).
///
/// ```
/// use tollgate_core::{Algorithm, KeySet, VerifyingKey};
///
/// let keys = KeySet::new()
///     .with(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).unwrap().with_kid("2026-11"));
/// assert_eq!(keys.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
}

/// What a key lookup found.
pub(crate) enum Selected<'a> {
    Key(&'a Arc<VerifyingKey>),
    /// A key with this `kid` exists but is bound to another algorithm.
    WrongAlgorithm,
    NotFound,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        KeySet::default()
    }

    /// Adds a key.
    pub fn with(mut self, key: VerifyingKey) -> Self {
        self.push(key);
        self
    }

    /// Adds a key.
    pub fn push(&mut self, key: VerifyingKey) {
        self.keys.push(Arc::new(key));
    }

    /// Parses a local JWKS document. Symmetric (`oct`) keys are accepted
    /// (this is local configuration); unusable keys are returned, not fatal.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`](crate::ConfigError::InvalidKey) when the
    /// document is not a JWKS.
    ///
    /// ```
    /// use tollgate_core::{KeySet, TrustedIssuer};
    ///
    /// # let dir = std::env::temp_dir().join(format!("tollgate-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join("jwks.json");
    /// # std::fs::write(&path, format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{}"}}]}}"#,
    /// #     base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 32])))?;
    /// // A JWKS file shipped with the service's configuration:
    /// let (keys, skipped) = KeySet::from_jwks(&std::fs::read(&path)?)?;
    /// for key in &skipped {
    ///     eprintln!("key {:?} not loaded: {}", key.kid, key.reason);
    /// }
    /// assert_eq!(keys.len(), 1);
    /// let issuer = TrustedIssuer::new("https://issuer.example").audience("api").keys(keys);
    /// # let _ = issuer;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_jwks(
        document: &[u8],
    ) -> std::result::Result<(KeySet, Vec<SkippedKey>), crate::ConfigError> {
        let (keys, skipped) = parse_jwks(document, JwkTrust::Local)?;
        Ok((KeySet::from_keys(keys), skipped))
    }

    pub(crate) fn from_keys(keys: Vec<VerifyingKey>) -> KeySet {
        KeySet {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    pub(crate) fn from_arcs(keys: Vec<Arc<VerifyingKey>>) -> KeySet {
        KeySet { keys }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter().map(|k| &**k)
    }

    pub(crate) fn arcs(&self) -> &[Arc<VerifyingKey>] {
        &self.keys
    }

    /// With a `kid`: the key with that id, which must be bound to `alg`.
    /// Without: the one key bound to `alg`; several candidates are refused
    /// rather than tried in turn (a token without `kid` must not cost N
    /// signature checks).
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selected<'_> {
        match kid {
            Some(kid) => {
                let mut wrong_alg = false;
                for k in &self.keys {
                    if k.kid() == Some(kid) {
                        if k.algorithm() == alg {
                            return Selected::Key(k);
                        }
                        wrong_alg = true;
                    }
                }
                if wrong_alg {
                    Selected::WrongAlgorithm
                } else {
                    Selected::NotFound
                }
            }
            None => {
                let mut found = None;
                for k in &self.keys {
                    if k.algorithm() == alg {
                        if found.is_some() {
                            return Selected::NotFound;
                        }
                        found = Some(k);
                    }
                }
                match found {
                    Some(k) => Selected::Key(k),
                    None if self.keys.is_empty() => Selected::NotFound,
                    None => Selected::WrongAlgorithm,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_by_kid_and_alg() {
        let ks = KeySet::new()
            .with(
                VerifyingKey::hmac(&[1; 32], Algorithm::HS256)
                    .unwrap()
                    .with_kid("a"),
            )
            .with(
                VerifyingKey::hmac(&[2; 48], Algorithm::HS384)
                    .unwrap()
                    .with_kid("b"),
            );
        assert!(matches!(
            ks.select(Some("a"), Algorithm::HS256),
            Selected::Key(_)
        ));
        assert!(matches!(
            ks.select(Some("a"), Algorithm::HS384),
            Selected::WrongAlgorithm
        ));
        assert!(matches!(
            ks.select(Some("c"), Algorithm::HS256),
            Selected::NotFound
        ));
        assert!(matches!(
            ks.select(None, Algorithm::HS384),
            Selected::Key(_)
        ));
        assert!(matches!(
            ks.select(None, Algorithm::RS256),
            Selected::WrongAlgorithm
        ));
        let two = ks.with(VerifyingKey::hmac(&[3; 32], Algorithm::HS256).unwrap());
        assert!(matches!(
            two.select(None, Algorithm::HS256),
            Selected::NotFound
        ));
    }
}
