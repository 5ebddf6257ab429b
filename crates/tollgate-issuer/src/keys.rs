//! The signing-key ring: generation, persistence, rotation, JWKS.
//!
//! A key is `next` (published, not signing), `active` (published, signing)
//! or `retiring` (published until the longest token it signed has expired).
//! Rotation promotes `next` to `active`, so a new key is in the JWKS one
//! rotation before it signs, and validators that cache the JWKS already know
//! it when its first token arrives.
//!
//! This file holds one key (generation, signing, its public JWK); `ring`
//! the ring and its rotation; `files` the key directory on disk.

mod files;
mod ring;

use std::fmt;
use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_core::{Algorithm, VerifyingKey};

pub use files::{create_private_dir, write_private};
pub use ring::KeyRing;

use crate::support::{now, random_id};

/// Key ring failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// True when this key is retiring and its time has passed: it is
    /// neither published nor trusted any more.
    pub fn is_retired(&self, now: i64) -> bool {
        self.state == KeyState::Retiring && self.retire_at.is_none_or(|t| t <= now)
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> Result<VerifyingKey, tollgate_core::ConfigError> {
        let key = match &self.material {
            Material::Hmac(_, secret) => VerifyingKey::hmac(secret, self.alg)?,
            _ => {
                let jwk = self
                    .public_jwk()
                    .ok_or(tollgate_core::ConfigError::Invalid("no public key".into()))?;
                let jwk: tollgate_core::Jwk = serde_json::from_value(jwk)
                    .map_err(|e| tollgate_core::ConfigError::InvalidKey(e.to_string()))?;
                VerifyingKey::from_jwk(&jwk, tollgate_core::JwkTrust::Local)?
            }
        };
        Ok(key.with_kid(&self.kid))
    }
}
