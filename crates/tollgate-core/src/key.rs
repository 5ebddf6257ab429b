//! Verification keys: parsed once, bound to one algorithm, checked per token.
//!
//! A [`VerifyingKey`] is built from a PEM or DER public key, an HMAC secret,
//! or a JWK. Parsing happens here, at load time; the request path only calls
//! [`VerifyingKey::verify`] on an already parsed key.
//!
//! ```
//! use tollgate_core::{Algorithm, VerifyingKey};
//!
//! let key = VerifyingKey::hmac(b"a secret of at least thirty-two bytes!", Algorithm::HS256)
//!     .unwrap()
//!     .with_kid("k1");
//! assert_eq!(key.algorithm(), Algorithm::HS256);
//! assert_eq!(key.kid(), Some("k1"));
//! ```

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::algorithm::{Algorithm, Family};
use crate::error::ConfigError;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A parsed verification key bound to one algorithm.
///
/// Parsed once, when loaded: from an HMAC secret ([`hmac`](Self::hmac)), a
/// PEM or DER public key ([`from_pem`](Self::from_pem),
/// [`from_der`](Self::from_der)), RSA components, or a JWK
/// ([`from_jwk`](Self::from_jwk); a whole JWKS with
/// [`KeySet::from_jwks`](crate::KeySet::from_jwks)). The algorithm is the
/// key's, not the token's: an HS256 token is never checked with an RSA
/// key's bytes.
///
/// # Examples
///
/// ```
/// use tollgate_core::{Algorithm, TrustedIssuer, VerifyingKey};
///
/// let key = VerifyingKey::hmac(&[7; 32], Algorithm::HS256)?.with_kid("2026-11");
/// assert_eq!((key.kid(), key.algorithm()), (Some("2026-11"), Algorithm::HS256));
/// let issuer = TrustedIssuer::new("https://issuer.example").audience("api").key(key);
/// # let _ = issuer;
/// # Ok::<(), tollgate_core::ConfigError>(())
/// ```
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
    /// Canonical public material; two keys with equal fingerprints verify
    /// the same signatures (used to keep parsed keys across JWKS refreshes).
    fingerprint: Vec<u8>,
}

#[allow(clippy::large_enum_variant)] // one per key, never moved on the hot path
enum Material {
    Hmac(hmac::Key),
    Public(ParsedPublicKey),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HMAC secret never reaches a log.
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::InvalidKey(msg.into())
}

/// Result of loading a key.
type KeyResult<T> = std::result::Result<T, ConfigError>;

const fn hmac_algorithm(alg: Algorithm) -> Option<(hmac::Algorithm, usize)> {
    match alg {
        Algorithm::HS256 => Some((hmac::HMAC_SHA256, 32)),
        Algorithm::HS384 => Some((hmac::HMAC_SHA384, 48)),
        Algorithm::HS512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

fn public_algorithm(alg: Algorithm) -> &'static dyn sig::VerificationAlgorithm {
    match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
        // HMAC never reaches here: callers dispatch on the family first.
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 | Algorithm::EdDSA => &sig::ED25519,
    }
}

fn rsa_params(alg: Algorithm) -> &'static sig::RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

impl VerifyingKey {
    /// An HMAC key. The secret must be at least as long as the hash output
    /// (RFC 7518 §3.2: 32 bytes for HS256, 48 for HS384, 64 for HS512).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] naming what is wrong with the key.
    ///
    /// ```
    /// use tollgate_core::{Algorithm, VerifyingKey};
    ///
    /// # let secret_from_config = vec![7u8; 48];
    /// // `secret_from_config`: random bytes your token issuer shares with this API.
    /// let key = VerifyingKey::hmac(&secret_from_config, Algorithm::HS384)?;
    /// assert!(VerifyingKey::hmac(&secret_from_config[..32], Algorithm::HS384).is_err()); // too short
    /// # let _ = key;
    /// # Ok::<(), tollgate_core::ConfigError>(())
    /// ```
    pub fn hmac(secret: &[u8], alg: Algorithm) -> KeyResult<Self> {
        let (halg, min) = hmac_algorithm(alg)
            .ok_or_else(|| invalid(format!("{alg} is not an HMAC algorithm")))?;
        if secret.len() < min {
            return Err(invalid(format!(
                "{alg} needs a secret of at least {min} bytes, got {}",
                secret.len()
            )));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        Ok(VerifyingKey {
            kid: None,
            alg,
            material: Material::Hmac(hmac::Key::new(halg, secret)),
            fingerprint: digest.as_ref().to_vec(),
        })
    }

    /// A public key in PEM (`PUBLIC KEY`, i.e. SubjectPublicKeyInfo, or
    /// `RSA PUBLIC KEY`, PKCS#1).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] naming what is wrong with the key.
    ///
    /// # Examples
    ///
    /// An ES256 key pair made on the spot; an API gets only the public
    /// half, usually as a PEM file:
    ///
    /// ```
    /// use aws_lc_rs::encoding::AsDer;
    /// use aws_lc_rs::rand::SystemRandom;
    /// use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    /// use tollgate_core::{Algorithm, VerifyingKey};
    ///
    /// let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?;
    /// let spki = pair.public_key().as_der()?;
    /// let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref()));
    /// assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    ///
    /// let key = VerifyingKey::from_pem(pem.as_bytes(), Algorithm::ES256)?.with_kid("es-1");
    /// let signature = pair.sign(&SystemRandom::new(), b"header.payload")?;
    /// assert!(key.verify(b"header.payload", signature.as_ref()));
    /// assert!(!key.verify(b"header.other", signature.as_ref()));
    ///
    /// // A P-256 key cannot be used for RS256.
    /// assert!(VerifyingKey::from_pem(pem.as_bytes(), Algorithm::RS256).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(pem_text: &[u8], alg: Algorithm) -> KeyResult<Self> {
        let block = pem::parse(pem_text).map_err(|e| invalid(format!("bad PEM: {e}")))?;
        match block.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Self::from_der(block.contents(), alg),
            other => Err(invalid(format!(
                "PEM block `{other}` is not a public key (expected PUBLIC KEY)"
            ))),
        }
    }

    /// A public key in DER: SubjectPublicKeyInfo for every family, PKCS#1
    /// `RSAPublicKey` for RSA, a raw 32-byte key for Ed25519.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] naming what is wrong with the key.
    ///
    /// ```
    /// use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    /// use tollgate_core::{Algorithm, VerifyingKey};
    ///
    /// let pair = Ed25519KeyPair::generate()?;
    /// let key = VerifyingKey::from_der(pair.public_key().as_ref(), Algorithm::EdDSA)?;
    /// let signature = pair.sign(b"header.payload");
    /// assert!(key.verify(b"header.payload", signature.as_ref()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_der(der: &[u8], alg: Algorithm) -> KeyResult<Self> {
        match alg.family() {
            Family::Hmac => Err(invalid(format!(
                "{alg} is an HMAC algorithm; a public key cannot be used with it"
            ))),
            Family::Rsa => {
                let pk = aws_lc_rs::rsa::PublicKey::from_der(der)
                    .map_err(|e| invalid(format!("not an RSA public key: {e}")))?;
                let n = pk.modulus().big_endian_without_leading_zero().to_vec();
                let e = pk.exponent().big_endian_without_leading_zero().to_vec();
                Self::from_rsa_components(&n, &e, alg)
            }
            Family::Ec | Family::Okp => {
                let parsed = ParsedPublicKey::new(public_algorithm(alg), der)
                    .map_err(|e| invalid(format!("not a {alg} public key: {e}")))?;
                let fingerprint = parsed.as_ref().to_vec();
                Ok(VerifyingKey {
                    kid: None,
                    alg,
                    material: Material::Public(parsed),
                    fingerprint,
                })
            }
        }
    }

    /// An RSA public key from its big-endian modulus and exponent.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] naming what is wrong with the key, e.g.
    /// a modulus under [`MIN_RSA_BITS`].
    ///
    /// ```
    /// use aws_lc_rs::rsa::{KeyPair, KeySize};
    /// use aws_lc_rs::signature::KeyPair as _;
    /// use tollgate_core::{Algorithm, VerifyingKey};
    ///
    /// let pair = KeyPair::generate(KeySize::Rsa2048)?;
    /// let (n, e) = (pair.public_key().modulus(), pair.public_key().exponent());
    /// let key = VerifyingKey::from_rsa_components(
    ///     n.big_endian_without_leading_zero(),
    ///     e.big_endian_without_leading_zero(),
    ///     Algorithm::PS256,
    /// )?;
    /// assert_eq!(key.algorithm(), Algorithm::PS256);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_rsa_components(n: &[u8], e: &[u8], alg: Algorithm) -> KeyResult<Self> {
        if alg.family() != Family::Rsa {
            return Err(invalid(format!("{alg} is not an RSA algorithm")));
        }
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = match n.first() {
            Some(first) => n.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        };
        if bits < MIN_RSA_BITS {
            return Err(invalid(format!(
                "RSA key of {bits} bits refused (minimum {MIN_RSA_BITS})"
            )));
        }
        let parsed = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_params(alg))
            .map_err(|e| invalid(format!("bad RSA key: {e}")))?;
        let mut fingerprint = n.to_vec();
        fingerprint.extend_from_slice(e);
        Ok(VerifyingKey {
            kid: None,
            alg,
            material: Material::Public(parsed),
            fingerprint,
        })
    }

    /// Sets the key id matched against the token's `kid` header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// True when both keys verify the same signatures with the same algorithm and kid.
    pub(crate) fn same_as(&self, other: &VerifyingKey) -> bool {
        self.alg == other.alg && self.kid == other.kid && self.fingerprint == other.fingerprint
    }

    /// Verifies `signature` over `message`. Constant-time for HMAC.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }

    /// A key from a JWK. `trust` says where the JWK came from: symmetric
    /// (`oct`) keys are only accepted from local configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] naming what is wrong with the key.
    ///
    /// ```
    /// use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    /// use tollgate_core::{Jwk, JwkTrust, VerifyingKey};
    ///
    /// # let secret = [7u8; 32];
    /// let jwk: Jwk = serde_json::from_value(serde_json::json!({
    ///     "kty": "oct", "alg": "HS256", "kid": "local-1",
    ///     "k": URL_SAFE_NO_PAD.encode(secret),
    /// }))?;
    /// let key = VerifyingKey::from_jwk(&jwk, JwkTrust::Local)?;
    /// assert_eq!(key.kid(), Some("local-1"));
    /// // A shared secret published in a fetched JWKS would let anyone mint tokens.
    /// assert!(VerifyingKey::from_jwk(&jwk, JwkTrust::Remote).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_jwk(jwk: &Jwk, trust: JwkTrust) -> KeyResult<Self> {
        if let Some(u) = &jwk.use_
            && u != "sig"
        {
            return Err(invalid(format!("`use` is `{u}`, not `sig`")));
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.iter().any(|o| o == "verify")
        {
            return Err(invalid("`key_ops` does not allow `verify`"));
        }
        let alg = match &jwk.alg {
            Some(name) => Algorithm::from_name(name)
                .ok_or_else(|| invalid(format!("unsupported `alg` `{name}`")))?,
            None => jwk.inferred_alg()?,
        };
        let b64 = |field: &Option<String>, name: &str| -> KeyResult<Vec<u8>> {
            let v = field
                .as_deref()
                .ok_or_else(|| invalid(format!("missing `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| invalid(format!("`{name}` is not base64url")))
        };
        let key = match (jwk.kty.as_str(), alg.family()) {
            ("oct", Family::Hmac) => {
                if trust == JwkTrust::Remote {
                    return Err(invalid(
                        "symmetric (`oct`) keys are never taken from a remote JWKS",
                    ));
                }
                Self::hmac(&b64(&jwk.k, "k")?, alg)?
            }
            ("RSA", Family::Rsa) => {
                Self::from_rsa_components(&b64(&jwk.n, "n")?, &b64(&jwk.e, "e")?, alg)?
            }
            ("EC", Family::Ec) => {
                let (crv, len) = match alg {
                    Algorithm::ES256 => ("P-256", 32),
                    Algorithm::ES384 => ("P-384", 48),
                    _ => ("P-521", 66),
                };
                if jwk.crv.as_deref() != Some(crv) {
                    return Err(invalid(format!("{alg} needs `crv` {crv}")));
                }
                let x = b64(&jwk.x, "x")?;
                let y = b64(&jwk.y, "y")?;
                if x.len() != len || y.len() != len {
                    return Err(invalid("EC coordinates have the wrong length"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::from_der(&point, alg)?
            }
            ("OKP", Family::Okp) => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(invalid("EdDSA keys must have `crv` Ed25519"));
                }
                let x = b64(&jwk.x, "x")?;
                if x.len() != 32 {
                    return Err(invalid("Ed25519 key must be 32 bytes"));
                }
                Self::from_der(&x, alg)?
            }
            (kty, _) => {
                return Err(invalid(format!("`kty` `{kty}` does not fit `alg` {alg}")));
            }
        };
        Ok(match &jwk.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => key,
        })
    }
}

/// Where a JWK comes from, which decides what it may be.
///
/// See [`VerifyingKey::from_jwk`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwkTrust {
    /// Local configuration: symmetric keys allowed.
    Local,
    /// A fetched JWKS: public keys only.
    Remote,
}

/// A JSON Web Key (RFC 7517), the members Tollgate reads.
///
/// ```
/// use tollgate_core::{Algorithm, Jwk, JwkTrust, VerifyingKey};
///
/// // An Ed25519 public key (RFC 8037 §A.2).
/// let jwk: Jwk = serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","kid":"ed-1",
///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)?;
/// assert_eq!(jwk.kid.as_deref(), Some("ed-1"));
/// let key = VerifyingKey::from_jwk(&jwk, JwkTrust::Remote)?;
/// assert_eq!(key.algorithm(), Algorithm::EdDSA);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Jwk {
    /// Key type: `RSA`, `EC`, `OKP`, `oct`.
    pub kty: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Algorithm the key is for.
    #[serde(default)]
    pub alg: Option<String>,
    /// Intended use: must be `sig` when present.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// Permitted operations: must include `verify` when present.
    #[serde(default)]
    pub key_ops: Option<Vec<String>>,
    /// Curve for `EC` and `OKP`.
    #[serde(default)]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default)]
    pub e: Option<String>,
    /// EC x coordinate or OKP public key.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default)]
    pub y: Option<String>,
    /// Symmetric key.
    #[serde(default)]
    pub k: Option<String>,
}

impl Jwk {
    /// The algorithm implied by a JWK without `alg`: the curve decides for EC
    /// and OKP keys; RSA keys default to RS256 (what issuers that omit `alg`
    /// mean); `oct` keys must say.
    fn inferred_alg(&self) -> KeyResult<Algorithm> {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => Ok(Algorithm::ES256),
            ("EC", Some("P-384")) => Ok(Algorithm::ES384),
            ("EC", Some("P-521")) => Ok(Algorithm::ES512),
            ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDSA),
            ("RSA", _) => Ok(Algorithm::RS256),
            _ => Err(invalid(format!(
                "cannot tell the algorithm of a `{}` key without `alg`",
                self.kty
            ))),
        }
    }
}

/// A key of a JWKS document that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

/// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot be used are
/// skipped and reported; the document itself must be valid JSON with a
/// `keys` array.
///
/// # Errors
///
/// [`ConfigError::InvalidKey`] when the document is not a JWKS.
///
/// ```
/// use tollgate_core::{JwkTrust, parse_jwks};
///
/// let jwks = br#"{"keys": [
///     {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
///     {"kty": "oct", "kid": "secret", "alg": "HS256", "k": "AAAA"}
/// ]}"#;
/// let (keys, skipped) = parse_jwks(jwks, JwkTrust::Remote)?;
/// assert!(keys.is_empty());
/// assert_eq!(skipped.len(), 2);
/// assert_eq!(skipped[0].kid.as_deref(), Some("broken"));
/// assert!(parse_jwks(b"[]", JwkTrust::Remote).is_err()); // not a JWKS at all
/// # Ok::<(), tollgate_core::ConfigError>(())
/// ```
pub fn parse_jwks(
    document: &[u8],
    trust: JwkTrust,
) -> KeyResult<(Vec<VerifyingKey>, Vec<SkippedKey>)> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(document)
        .map_err(|_| invalid("not a JWKS document (needs a `keys` array)"))?;
    let mut keys = Vec::with_capacity(doc.keys.len());
    let mut skipped = Vec::new();
    for value in doc.keys {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let parsed = serde_json::from_value::<Jwk>(value)
            .map_err(|e| invalid(format!("bad JWK: {e}")))
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk, trust));
        match parsed {
            Ok(key) => keys.push(key),
            Err(e) => skipped.push(SkippedKey {
                kid,
                reason: e.to_string(),
            }),
        }
    }
    Ok((keys, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secret_refused() {
        assert!(VerifyingKey::hmac(b"short", Algorithm::HS256).is_err());
        assert!(VerifyingKey::hmac(&[7; 32], Algorithm::HS256).is_ok());
        assert!(VerifyingKey::hmac(&[7; 32], Algorithm::HS512).is_err());
        assert!(VerifyingKey::hmac(&[7; 32], Algorithm::RS256).is_err());
    }

    #[test]
    fn small_rsa_refused() {
        let n = [0xffu8; 128]; // 1024 bits
        let err = VerifyingKey::from_rsa_components(&n, &[1, 0, 1], Algorithm::RS256).unwrap_err();
        assert!(err.to_string().contains("1024 bits"), "{err}");
        // An empty or all-zero modulus is refused, not a panic.
        assert!(VerifyingKey::from_rsa_components(&[], &[1, 0, 1], Algorithm::RS256).is_err());
        assert!(VerifyingKey::from_rsa_components(&[0, 0], &[], Algorithm::RS256).is_err());
    }

    #[test]
    fn jwk_use_and_key_ops_respected() {
        let enc: Jwk = serde_json::from_str(
            r#"{"kty":"oct","use":"enc","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        )
        .unwrap();
        assert!(VerifyingKey::from_jwk(&enc, JwkTrust::Local).is_err());
        let ops: Jwk = serde_json::from_str(
            r#"{"kty":"oct","key_ops":["sign"],"alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        )
        .unwrap();
        assert!(VerifyingKey::from_jwk(&ops, JwkTrust::Local).is_err());
        let ok: Jwk = serde_json::from_str(
            r#"{"kty":"oct","key_ops":["verify"],"alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        )
        .unwrap();
        assert!(VerifyingKey::from_jwk(&ok, JwkTrust::Local).is_ok());
        assert!(VerifyingKey::from_jwk(&ok, JwkTrust::Remote).is_err());
    }

    #[test]
    fn jwks_skips_bad_keys_and_keeps_good_ones() {
        let doc = br#"{"keys":[
            {"kty":"EC","crv":"P-256","kid":"bad","x":"AA","y":"AA"},
            {"kty":"weird","kid":"weird"},
            {"kty":"oct","kid":"sym","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
        ]}"#;
        let (keys, skipped) = parse_jwks(doc, JwkTrust::Local).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("sym"));
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].kid.as_deref(), Some("bad"));
        let (keys, skipped) = parse_jwks(doc, JwkTrust::Remote).unwrap();
        assert!(keys.is_empty());
        assert_eq!(skipped.len(), 3);
        assert!(parse_jwks(b"[]", JwkTrust::Remote).is_err());
    }
}
