//! OAuth2 clients: what each may ask for, and its secret, kept only as a
//! salted hash and compared in constant time.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::support::random_id;

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// The secret's hash, `sha256$<salt>$<hmac>` (see [`hash_secret`]).
    pub secret_hash: String,
    /// Scopes the client may ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences (`aud`) the client may ask for; the first is the default.
    pub audiences: Vec<String>,
    /// Access token lifetime in seconds (default 3600).
    #[serde(default = "default_lifetime")]
    pub token_lifetime: u64,
    /// Longest lifetime of a restricted token it mints (default 3600).
    #[serde(default = "default_lifetime")]
    pub max_restricted_lifetime: u64,
    /// Most credits a restricted token it mints may carry (default 1000);
    /// also the allowance of one minted without `credits`.
    #[serde(default = "default_max_credits")]
    pub max_credits: u64,
    /// May introspect tokens issued to other clients (RFC 7662 §4: a
    /// resource server that checks its callers' tokens). Default: only its
    /// own tokens; about any other, introspection answers inactive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub introspect_any: bool,
    /// Longest life of a refresh-token family started by its restricted
    /// tokens, in seconds; 0 (the default): no refresh tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_lifetime: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_lifetime() -> u64 {
    3600
}

fn default_max_credits() -> u64 {
    1000
}

/// The longest `client_id` accepted, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// Checks a `client_id`: 1 to [`MAX_CLIENT_ID_LEN`] bytes without control
/// characters or `:`. The colon separates the client from its end
/// user in a restricted token's `sub` (`client:user`), so no client id may
/// contain one and every subject names exactly one client.
///
/// # Errors
///
/// What is wrong with the id, for the operator.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN {
        return Err(format!("a client id has 1 to {MAX_CLIENT_ID_LEN} bytes"));
    }
    if id.contains(':') {
        return Err(format!(
            "client id `{}` contains `:`, which separates a client from its end users in `sub`",
            id.escape_default()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(format!(
            "client id `{}` contains a control character",
            id.escape_default()
        ));
    }
    Ok(())
}

impl Client {
    /// A client with a fresh random secret (returned once, never stored).
    pub fn generate(
        id: impl Into<String>,
        audiences: Vec<String>,
        scopes: Vec<String>,
    ) -> (Client, String) {
        let secret = new_secret();
        let client = Client {
            id: id.into(),
            secret_hash: hash_secret(&secret),
            scopes,
            audiences,
            token_lifetime: default_lifetime(),
            max_restricted_lifetime: default_lifetime(),
            max_credits: default_max_credits(),
            introspect_any: false,
            refresh_lifetime: 0,
        };
        (client, secret)
    }

    /// True when `secret` is this client's secret (constant time).
    pub fn check_secret(&self, secret: &str) -> bool {
        verify_secret(&self.secret_hash, secret)
    }
}

/// A new client secret: 256 random bits, base64url.
pub fn new_secret() -> String {
    random_id(32)
}

/// Hashes a secret for storage: `sha256$<salt>$<HMAC-SHA256(salt, secret)>`.
///
/// Generated secrets carry 256 random bits, so a slow password hash would
/// add cost per token request and no strength; the salt keeps equal secrets
/// from having equal hashes.
pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut salt);
    let tag = mac(&salt, secret);
    format!(
        "sha256${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

fn mac(salt: &[u8], secret: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, salt);
    aws_lc_rs::hmac::sign(&key, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Checks `secret` against a stored hash, in constant time.
pub fn verify_secret(stored: &str, secret: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(tag)) = (URL_SAFE_NO_PAD.decode(salt), URL_SAFE_NO_PAD.decode(tag)) else {
        return false;
    };
    aws_lc_rs::constant_time::verify_slices_are_equal(&mac(&salt, secret), &tag).is_ok()
}

/// A well-formed hash, for configuration checks.
pub fn is_valid_hash(stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    parts.len() == 3
        && parts[0] == "sha256"
        && URL_SAFE_NO_PAD.decode(parts[1]).is_ok()
        && URL_SAFE_NO_PAD
            .decode(parts[2])
            .is_ok_and(|t| t.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_and_verify() {
        let (client, secret) = Client::generate("c1", vec!["api".into()], vec![]);
        assert!(client.check_secret(&secret));
        assert!(!client.check_secret("wrong"));
        assert!(!client.check_secret(""));
        assert!(is_valid_hash(&client.secret_hash));
        assert!(!client.secret_hash.contains(&secret));
        assert_ne!(hash_secret(&secret), hash_secret(&secret), "salted");
        assert!(!verify_secret("sha256$$", "x"));
        assert!(!verify_secret("plain", "plain"));
    }
}
