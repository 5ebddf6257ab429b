//! The signing-key ring: generation, persistence, rotation, JWKS.
//!
//! A key is `next` (published, not signing), `active` (published, signing)
//! or `retiring` (published until the longest token it signed has expired).
//! Rotation promotes `next` to `active`, so a new key is in the JWKS one
//! rotation before it signs, and validators that cache the JWKS already know
//! it when its first token arrives.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_core::{Algorithm, KeySet, VerifyingKey};

use crate::support::{now, random_id};

/// Key ring failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key directory failed.
    #[error("key store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file cannot be used.
    #[error("key file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The algorithm cannot sign here.
    #[error("algorithm {0} is not available for signing")]
    Unsupported(String),
    /// Key generation failed.
    #[error("key generation failed")]
    Generation,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Published and signing.
    Active,
    /// Published until `retire_at`, no longer signing.
    Retiring,
}

#[allow(clippy::large_enum_variant)] // one per key, a handful per process
enum Material {
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ed(Ed25519KeyPair),
    Hmac(aws_lc_rs::hmac::Key, Vec<u8>),
}

/// One signing key.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    state: KeyState,
    created: i64,
    retire_at: Option<i64>,
    material: Material,
    /// PKCS#8 (or the HMAC secret), as persisted.
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    alg: String,
    state: KeyState,
    created: i64,
    #[serde(default)]
    retire_at: Option<i64>,
    /// Base64 PKCS#8 DER (HMAC: the secret).
    private: String,
}

impl SigningKey {
    /// Generates a key for `alg`.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, KeyError> {
        let rng = SystemRandom::new();
        let secret = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError::Generation)?
                    .as_der()
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => {
                let mut s = vec![0u8; 32];
                rng.fill(&mut s).map_err(|_| KeyError::Generation)?;
                s
            }
            other => return Err(KeyError::Unsupported(other.as_str().into())),
        };
        let kid = format!("{}-{}", alg.as_str().to_lowercase(), random_id(9));
        Self::from_parts(kid, alg, KeyState::Next, now(), None, secret)
            .map_err(|_| KeyError::Generation)
    }

    fn from_parts(
        kid: String,
        alg: Algorithm,
        state: KeyState,
        created: i64,
        retire_at: Option<i64>,
        secret: Vec<u8>,
    ) -> Result<SigningKey, String> {
        let material = match alg {
            Algorithm::ES256 => Material::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &secret)
                    .map_err(|e| e.to_string())?,
            ),
            Algorithm::RS256 | Algorithm::PS256 => Material::Rsa(
                aws_lc_rs::rsa::KeyPair::from_pkcs8(&secret).map_err(|e| e.to_string())?,
            ),
            Algorithm::EdDSA => {
                Material::Ed(Ed25519KeyPair::from_pkcs8(&secret).map_err(|e| e.to_string())?)
            }
            Algorithm::HS256 => {
                if secret.len() < 32 {
                    return Err("HMAC secret under 32 bytes".into());
                }
                Material::Hmac(
                    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
                    secret.clone(),
                )
            }
            other => return Err(format!("algorithm {} cannot sign here", other.as_str())),
        };
        Ok(SigningKey {
            kid,
            alg,
            state,
            created,
            retire_at,
            material,
            secret,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The state.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// When it was created (Unix seconds).
    pub fn created(&self) -> i64 {
        self.created
    }

    /// Until when a retiring key stays published.
    pub fn retire_at(&self) -> Option<i64> {
        self.retire_at
    }

    /// Signs a JWS signing input.
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.material {
            Material::Ec(kp) => kp
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Generation),
            Material::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = if self.alg == Algorithm::PS256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(padding, &rng, input, &mut out)
                    .map_err(|_| KeyError::Generation)?;
                Ok(out)
            }
            Material::Ed(kp) => Ok(kp.sign(input).as_ref().to_vec()),
            Material::Hmac(k, _) => Ok(aws_lc_rs::hmac::sign(k, input).as_ref().to_vec()),
        }
    }

    /// The public JWK (`None` for HMAC keys: never published).
    pub fn public_jwk(&self) -> Option<Value> {
        let common = |mut v: Value| {
            v["kid"] = json!(self.kid);
            v["alg"] = json!(self.alg.as_str());
            v["use"] = json!("sig");
            v
        };
        match &self.material {
            Material::Ec(kp) => {
                let p = kp.public_key().as_ref();
                Some(common(json!({"kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&p[33..65])})))
            }
            Material::Rsa(kp) => {
                let public = kp.public_key();
                let n = public.modulus();
                let e = public.exponent();
                Some(common(json!({"kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(n.big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(e.big_endian_without_leading_zero())})))
            }
            Material::Ed(kp) => Some(common(json!({"kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(kp.public_key().as_ref())}))),
            Material::Hmac(..) => None,
        }
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> Result<VerifyingKey, tollgate_core::Error> {
        let key = match &self.material {
            Material::Hmac(_, secret) => VerifyingKey::hmac(secret, self.alg)?,
            _ => {
                let jwk = self
                    .public_jwk()
                    .ok_or(tollgate_core::Error::Config("no public key".into()))?;
                let jwk: tollgate_core::Jwk = serde_json::from_value(jwk)
                    .map_err(|e| tollgate_core::Error::InvalidKey(e.to_string()))?;
                VerifyingKey::from_jwk(&jwk, tollgate_core::JwkTrust::Local)?
            }
        };
        Ok(key.with_kid(&self.kid))
    }
}

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
        create_private_dir(dir)?;
        // The key directory is Tollgate's own: owner-only even if it existed.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| KeyError::Io {
                    path: dir.to_owned(),
                    source,
                },
            )?;
        }
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
        let ring = KeyRing {
            dir: Some(dir.to_owned()),
            alg,
            keys: read_key_files(dir)?,
        };
        if ring.active().is_none() {
            return Err(KeyError::Invalid {
                path: dir.to_owned(),
                reason: "no active key".into(),
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
    pub fn key_set(&self) -> Result<KeySet, tollgate_core::Error> {
        let mut set = KeySet::new();
        for k in &self.keys {
            set.push(k.verifying_key()?);
        }
        Ok(set)
    }

    fn persist(&self) -> Result<(), KeyError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for k in &self.keys {
            let file = KeyFile {
                kid: k.kid.clone(),
                alg: k.alg.as_str().to_owned(),
                state: k.state,
                created: k.created,
                retire_at: k.retire_at,
                private: STANDARD.encode(&k.secret),
            };
            let path = dir.join(format!("{}.json", k.kid));
            let text = serde_json::to_string_pretty(&file).map_err(|e| KeyError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            write_private(&path, text.as_bytes())?;
            wanted.push(path);
        }
        // Files of dropped keys go.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") && !wanted.contains(&p) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        Ok(())
    }
}

/// Every key file (`*.json`) in `dir`, in name order.
fn read_key_files(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    let mut keys = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let alg: Algorithm = file
            .alg
            .parse()
            .map_err(|_| invalid("unknown alg".into()))?;
        let secret = STANDARD
            .decode(file.private.as_bytes())
            .map_err(|_| invalid("private key is not base64".into()))?;
        keys.push(
            SigningKey::from_parts(
                file.kid,
                alg,
                file.state,
                file.created,
                file.retire_at,
                secret,
            )
            .map_err(invalid)?,
        );
    }
    Ok(keys)
}

/// Creates `dir` and any missing parents, each created one readable by its
/// owner only. Directories that already exist keep their mode: the parent
/// of a configured file may be `/tmp` or a home directory.
pub fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)
}

/// Writes `bytes` to `path` atomically, readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("tollgate-keys-{name}-{nanos:x}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn existing_directories_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let base = temp("mode");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        // An existing directory (the parent of `store.path = "/tmp/x.db"`).
        create_private_dir(&base).unwrap();
        assert_eq!(mode(&base), 0o755);
        // Created ones are owner-only, parents included; the existing one
        // above them is untouched.
        let deep = base.join("a/b");
        create_private_dir(&deep).unwrap();
        assert_eq!(mode(&base), 0o755);
        assert_eq!(mode(&base.join("a")) & 0o077, 0);
        assert_eq!(mode(&deep) & 0o077, 0);
        // The key directory is Tollgate's own: made owner-only even when it
        // existed with a wider mode.
        let keys = base.join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        KeyRing::open(&keys, Algorithm::ES256).unwrap();
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&base), 0o755);
        for e in std::fs::read_dir(&keys).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn load_reads_and_never_writes() {
        let dir = temp("load").join("keys");
        let ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        let files = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = files(&dir);
        assert_eq!(before.len(), 2, "active and next");
        let loaded = KeyRing::load(&dir, Algorithm::ES256).unwrap();
        let kids = |r: &KeyRing| {
            let mut v: Vec<(String, KeyState)> = r
                .keys()
                .iter()
                .map(|k| (k.kid().to_owned(), k.state()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(kids(&loaded), kids(&ring));
        // A rotation read half-way: the active key's file is gone.
        let active = ring.active().unwrap().kid().to_owned();
        std::fs::remove_file(dir.join(format!("{active}.json"))).unwrap();
        let err = KeyRing::load(&dir, Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("no active key"), "{err}");
        assert_eq!(files(&dir).len(), 1, "load neither promoted nor generated");
        assert!(KeyRing::load(&dir.join("missing"), Algorithm::ES256).is_err());
        assert!(!dir.join("missing").exists(), "load creates no directory");
    }

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
