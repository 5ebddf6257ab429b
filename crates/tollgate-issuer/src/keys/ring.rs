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
    /// Kids withdrawn from the ring (`withdrawn.txt` beside the key files):
    /// never trusted again, even if a key file comes back.
    withdrawn: Vec<String>,
}

/// The file listing withdrawn kids, one per line, in the key directory.
const WITHDRAWN: &str = "withdrawn.txt";

fn read_withdrawn(dir: &Path) -> Result<Vec<String>, KeyError> {
    match std::fs::read_to_string(dir.join(WITHDRAWN)) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(KeyError::Io {
            path: dir.join(WITHDRAWN),
            source,
        }),
    }
}

impl KeyRing {
    /// A ring in memory only (tests, `token mint` without a data directory).
    pub fn ephemeral(alg: Algorithm) -> Result<KeyRing, KeyError> {
        let mut ring = KeyRing {
            dir: None,
            alg,
            keys: Vec::new(),
            withdrawn: Vec::new(),
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
            withdrawn: read_withdrawn(dir)?,
        };
        ring.forget_unusable(now());
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
        let mut ring = KeyRing {
            dir: Some(dir.to_owned()),
            alg,
            keys: read_key_files(dir)?,
            withdrawn: read_withdrawn(dir)?,
        };
        ring.forget_unusable(now());
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
        self.keys.retain(|k| !k.is_retired(now));
    }

    /// Drops, in memory only, keys past their `retire_at` and withdrawn
    /// keys: a ring read from disk never trusts them, whatever the files
    /// say.
    fn forget_unusable(&mut self, now: i64) {
        let withdrawn = &self.withdrawn;
        self.keys
            .retain(|k| !k.is_retired(now) && !withdrawn.iter().any(|w| w == k.kid()));
    }

    /// Withdraws a key at once (a leaked or compromised key): it leaves the
    /// ring, its kid is recorded so it is never trusted again, and the
    /// JWKS stops publishing it. Withdrawing the active key promotes the
    /// next one; a new next key is generated as needed. A running server
    /// refuses its tokens after `SIGHUP`, and validators after their next
    /// JWKS fetch.
    ///
    /// # Errors
    ///
    /// [`KeyError::Invalid`] when no key has `kid`; I/O errors writing the
    /// directory.
    pub fn withdraw(&mut self, kid: &str) -> Result<(), KeyError> {
        let Some(pos) = self.keys.iter().position(|k| k.kid() == kid) else {
            return Err(KeyError::Invalid {
                path: self.dir.clone().unwrap_or_default(),
                reason: format!("no key `{kid}` in the ring"),
            });
        };
        self.keys.remove(pos);
        self.withdrawn.push(kid.to_owned());
        if let Some(dir) = &self.dir {
            let text: String = self.withdrawn.iter().map(|k| format!("{k}\n")).collect();
            super::files::write_private(&dir.join(WITHDRAWN), text.as_bytes())?;
        }
        self.ensure_keys()?;
        self.persist()
    }

    /// True when `kid` was withdrawn from this ring.
    pub fn is_withdrawn(&self, kid: &str) -> bool {
        self.withdrawn.iter().any(|w| w == kid)
    }

    /// The public JWKS: every published key (HMAC keys never).
    pub fn jwks(&self) -> Value {
        let now = now();
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| !k.is_retired(now))
            .filter_map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// A key set that verifies every key of the ring.
    pub fn key_set(&self) -> Result<KeySet, tollgate_core::ConfigError> {
        let now = now();
        let mut set = KeySet::new();
        for k in self.keys.iter().filter(|k| !k.is_retired(now)) {
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
