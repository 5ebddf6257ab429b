//! The key ring: which key signs, rotation, the JWKS and the key set that
//! verifies the ring's tokens.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tollgate_core::{Algorithm, KeySet};

use super::files::{check_dirs, open_dir, read_key_files, write_key_files};
use super::{KeyError, KeyState, SigningKey};
use crate::support::now;

/// The issuer's keys, persisted in a directory (owner-only permissions).
#[derive(Debug)]
pub struct KeyRing {
    dir: Option<PathBuf>,
    alg: Algorithm,
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring in memory only (tests, `token mint` without a data directory).
    pub fn ephemeral(alg: Algorithm) -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing {
            dir: None,
            alg,
            keys: Vec::new(),
        };
        ring.ensure_keys()?;
        Ok(ring)
    }

    /// Opens (or creates) the ring in `dir`: loads every key file, and when
    /// there is no active key generates one (and a next one) for `alg`.
    pub fn open(dir: &Path, alg: Algorithm) -> Result<KeyRing, KeyError> {
        open_dir(dir)?;
        let keys = read_key_files(dir)?;
        let mut ring = KeyRing {
            dir: Some(dir.to_owned()),
            alg,
            keys,
        };
        ring.ensure_keys()?;
        Ok(ring)
    }

    /// Reads the ring in `dir` as it is, writing nothing: no directory is
    /// created, no key generated or promoted, no file removed. For a
    /// running server picking up `tollgate keys rotate`, which may be
    /// writing the directory at that moment. A ring without an active key
    /// (a rotation read half-way) is an error.
    pub fn load(dir: &Path, alg: Algorithm) -> Result<KeyRing, KeyError> {
        check_dirs(dir)?;
        let ring = KeyRing {
            dir: Some(dir.to_owned()),
            alg,
            keys: read_key_files(dir)?,
        };
        let active = ring
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count();
        if active != 1 {
            return Err(KeyError::Invalid {
                path: dir.to_owned(),
                reason: if active == 0 {
                    "no active key".into()
                } else {
                    // A rotation read half-way: the new key written active,
                    // the old one not yet retiring.
                    format!("{active} active keys (a rotation in progress?); try again")
                },
            });
        }
        Ok(ring)
    }

    fn ensure_keys(&mut self) -> Result<(), KeyError> {
        let mut changed = false;
        if !self.keys.iter().any(|k| k.state == KeyState::Active) {
            match self.keys.iter_mut().find(|k| k.state == KeyState::Next) {
                Some(next) => next.state = KeyState::Active,
                None => {
                    let mut k = SigningKey::generate(self.alg)?;
                    k.state = KeyState::Active;
                    self.keys.push(k);
                }
            }
            changed = true;
        }
        if !self.keys.iter().any(|k| k.state == KeyState::Next) {
            self.keys.push(SigningKey::generate(self.alg)?);
            changed = true;
        }
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    /// The key that signs now.
    pub fn active(&self) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }

    /// Every key, in every state.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Rotation: the next key starts signing, the active one is kept
    /// published for `longest_token` seconds more (the longest lifetime it
    /// may have signed), a new next key is generated, and retired keys
    /// past their time are dropped.
    /// A huge `longest_token` keeps the old key published "forever"
    /// (`i64::MAX`) rather than wrapping.
    pub fn rotate(&mut self, longest_token: i64) -> Result<(), KeyError> {
        let now = now();
        for k in &mut self.keys {
            if k.state == KeyState::Active {
                k.state = KeyState::Retiring;
                k.retire_at = Some(now.saturating_add(longest_token.max(0)));
            }
        }
        if let Some(next) = self.keys.iter_mut().find(|k| k.state == KeyState::Next) {
            next.state = KeyState::Active;
        }
        self.keys.push(SigningKey::generate(self.alg)?);
        self.drop_retired(now);
        self.ensure_keys()?;
        self.persist()
    }

    /// Drops retiring keys whose time has passed.
    pub fn drop_retired(&mut self, now: i64) {
        self.keys
            .retain(|k| k.state != KeyState::Retiring || k.retire_at.is_some_and(|t| t > now));
    }

    /// The public JWKS: every published key (HMAC keys never).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// A key set that verifies every key of the ring.
    pub fn key_set(&self) -> Result<KeySet, tollgate_core::ConfigError> {
        let mut set = KeySet::new();
        for k in &self.keys {
            set.push(k.verifying_key()?);
        }
        Ok(set)
    }

    /// Writes every key to the directory, if any, and removes the files of
    /// dropped keys.
    fn persist(&self) -> Result<(), KeyError> {
        match &self.dir {
            Some(dir) => write_key_files(dir, &self.keys),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rotation_with_a_huge_lifetime_saturates() {
        let mut ring = KeyRing::ephemeral(Algorithm::ES256).unwrap();
        let old = ring.active().unwrap().kid().to_owned();
        ring.rotate(i64::MAX).unwrap();
        let retiring = ring.keys().iter().find(|k| k.kid() == old).unwrap();
        assert_eq!(retiring.state(), KeyState::Retiring);
        assert_eq!(retiring.retire_at(), Some(i64::MAX));
        // It stays published through the next rotation.
        ring.rotate(3600).unwrap();
        assert!(ring.keys().iter().any(|k| k.kid() == old));
    }
}
