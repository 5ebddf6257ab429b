//! Refresh tokens (RFC 6749 §6, RFC 9700 §4.14): families of restricted
//! tokens that renew without widening, rotate on every use, and die whole
//! when a spent refresh token comes back.
//!
//! A family is one grant: its access tokens carry `sid` (the family) and
//! `sid_exp` (when it ends), so every API sharing the store counts one
//! credit allowance and one revocation for all of them. The refresh token
//! is opaque (`tgr_` and 256 random bits), kept only as its SHA-256, and
//! bound to its client; when the grant is bound to addresses, a refresh
//! must come from one of them.

use std::net::IpAddr;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tollgate_core::policy::{IpNet, RefreshGrant, Rotation, TokenRef};

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::mint::{MintRequest, Minted};
use crate::server::TokenServer;
use crate::support::{now, random_id};

/// What every refresh token starts with: tells it from a JWT at the
/// revocation and introspection endpoints, and lets secret scanners find
/// leaked ones.
pub(crate) const PREFIX: &str = "tgr_";

/// What a family may do: the restricted token's request as the client made
/// it, so a refresh re-mints within the same limits (and within the
/// client's limits as they are then: a narrowed client narrows its
/// families).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredGrant {
    pub(crate) client_id: String,
    pub(crate) sub: Option<String>,
    pub(crate) audience: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) credits: u64,
    pub(crate) ip: Option<Vec<String>>,
    /// Lifetime of each access token, seconds.
    pub(crate) lifetime: u64,
    /// When the family started: subject and client watermarks revoke the
    /// family as they revoke a token issued then.
    #[serde(default)]
    pub(crate) started_at: i64,
}

impl StoredGrant {
    /// The `sub` of the family's tokens.
    pub(crate) fn subject(&self) -> String {
        crate::mint::subject_of(&self.client_id, self.sub.as_deref())
    }

    /// The store's view of the family: revoked by its id (a reuse, a
    /// revocation of any of its tokens) or by a watermark on its client or
    /// subject issued at or after its start.
    pub(crate) fn token_ref<'a>(
        &'a self,
        issuer: &'a str,
        grant: &'a RefreshGrant,
        subject: &'a str,
    ) -> TokenRef<'a> {
        TokenRef {
            issuer,
            token_id: Some(&grant.family),
            subject: Some(subject),
            client_id: Some(&self.client_id),
            issued_at: Some(self.started_at),
            expires_at: grant.expires_at,
        }
    }
}

/// A new family's first tokens.
#[derive(Debug, Clone)]
pub struct Refreshable {
    /// The access token.
    pub minted: Minted,
    /// The refresh token: shown once, kept only as a hash.
    pub refresh_token: String,
    /// When the family ends: no refresh after this.
    pub family_expires_at: i64,
    /// The family (`sid` of its access tokens).
    pub family: String,
}

/// The hash a refresh token is kept under.
pub(crate) fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

fn new_refresh_token() -> String {
    format!("{PREFIX}{}", random_id(32))
}

fn invalid_grant(why: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, why)
}

impl TokenServer {
    /// Mints a restricted token that starts a refresh family, if the
    /// client may have one (`refresh_lifetime` above 0).
    ///
    /// # Errors
    ///
    /// The mint's errors; `unauthorized_client` when the client may not
    /// have refresh tokens; `temporarily_unavailable` when the store cannot
    /// keep the family.
    pub async fn mint_refreshable(
        &self,
        client: &Client,
        req: &MintRequest,
    ) -> Result<Refreshable, OAuthError> {
        if client.refresh_lifetime == 0 {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not have refresh tokens",
            ));
        }
        let family = random_id(16);
        let family_expires_at =
            now().saturating_add(i64::try_from(client.refresh_lifetime).unwrap_or(i64::MAX));
        let mut req = req.clone();
        req.restricted = true;
        req.grant = Some((family.clone(), family_expires_at));
        let minted = self.mint(client, &req)?;
        let stored = StoredGrant {
            client_id: client.id.clone(),
            sub: req.subject.clone(),
            audience: minted.audience.clone(),
            scopes: minted
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            credits: minted.credits.unwrap_or(0),
            ip: req.ip.clone(),
            lifetime: minted.expires_in,
            started_at: now(),
        };
        let refresh_token = new_refresh_token();
        let grant = RefreshGrant {
            family,
            grant: serde_json::to_string(&stored).map_err(|_| server_error())?,
            expires_at: family_expires_at,
        };
        self.store
            .put_refresh(&self.settings.issuer, &hash(&refresh_token), &grant)
            .await
            .map_err(|_| OAuthError::store_unavailable())?;
        Ok(Refreshable {
            minted,
            refresh_token,
            family_expires_at,
            family: grant.family,
        })
    }

    /// `grant_type=refresh_token`: rotates `token` for the `client` that
    /// holds it (`peer`: the caller's address, checked when the grant is
    /// bound to addresses), with `scopes` narrowed if asked.
    ///
    /// A spent refresh token presented again revokes its family: its
    /// refresh tokens and its access tokens, in every API sharing the
    /// store.
    ///
    /// # Errors
    ///
    /// `invalid_grant` for an unknown, ended, spent (reused), revoked or
    /// another client's refresh token, or one bound to other addresses;
    /// `invalid_scope` for a scope outside the grant;
    /// `temporarily_unavailable` when the store cannot answer.
    pub async fn refresh_token_grant(
        &self,
        client: &Client,
        token: &str,
        scopes: Option<Vec<String>>,
        peer: Option<IpAddr>,
    ) -> Result<Refreshable, OAuthError> {
        let issuer = &self.settings.issuer;
        let old = hash(token);
        let store_down = |_| OAuthError::store_unavailable();
        // Who may use it is checked before it is spent, so a caller that
        // may not cannot spend (and so kill) another's family.
        let Some((found, _)) = self
            .store
            .find_refresh(issuer, &old, now())
            .await
            .map_err(store_down)?
        else {
            return Err(invalid_grant("the refresh token is invalid or expired"));
        };
        let stored: StoredGrant = serde_json::from_str(&found.grant).map_err(|_| server_error())?;
        if stored.client_id != client.id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if let Some(bound) = &stored.ip {
            let nets: Vec<IpNet> = bound.iter().filter_map(|a| a.parse().ok()).collect();
            match peer {
                Some(addr) if nets.iter().any(|n| n.contains(addr)) => {}
                _ => {
                    return Err(invalid_grant(
                        "the refresh token is bound to other client addresses",
                    ));
                }
            }
        }
        // Checked before the token is spent: a refused request leaves it
        // usable.
        let scopes = match scopes {
            None => stored.scopes.clone(),
            Some(asked) => {
                if let Some(extra) = asked.iter().find(|s| !stored.scopes.contains(s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!(
                            "scope `{}` is not in the grant (a refresh narrows, never widens)",
                            crate::error::printable(extra)
                        ),
                    ));
                }
                asked
            }
        };
        if client.refresh_lifetime == 0 {
            return Err(invalid_grant("this client may no longer refresh tokens"));
        }
        // A revoked family rotates no more: by its id, or by a watermark on
        // its client or subject. Checked before the rotation: a replay can
        // only revoke after the one rotation that wins, so of concurrent
        // refreshes exactly one is answered; and a family revoked while
        // that one is answered leaves its new tokens revoked too (they are
        // stored as the family).
        let subject = stored.subject();
        if self
            .store
            .is_revoked(stored.token_ref(issuer, &found, &subject))
            .await
            .map_err(store_down)?
        {
            return Err(invalid_grant("the grant is revoked"));
        }
        // Minted before the rotation, returned only after it: whatever the
        // mint refuses (a client narrowed since) leaves the token unspent.
        let req = MintRequest {
            scopes: Some(scopes),
            audience: Some(stored.audience.clone()),
            lifetime: Some(stored.lifetime),
            subject: stored.sub.clone(),
            credits: Some(stored.credits),
            ip: stored.ip.clone(),
            restricted: true,
            grant: Some((found.family.clone(), found.expires_at)),
        };
        let minted = self.mint(client, &req)?;
        let new = new_refresh_token();
        let grant = match self
            .store
            .rotate_refresh(issuer, &old, &hash(&new), now())
            .await
            .map_err(store_down)?
        {
            Rotation::Rotated(grant) => grant,
            Rotation::Reused(grant) => {
                self.revoke_family(&grant).await?;
                tracing::warn!(
                    client = %client.id,
                    "a spent refresh token was presented again; its family is revoked"
                );
                return Err(invalid_grant(
                    "the refresh token was already used; every token of its grant is revoked",
                ));
            }
            _ => return Err(invalid_grant("the refresh token is invalid or expired")),
        };
        Ok(Refreshable {
            minted,
            refresh_token: new,
            family_expires_at: grant.expires_at,
            family: grant.family,
        })
    }

    /// What is left of the family's allowance.
    pub(crate) async fn credits_left(&self, r: &Refreshable) -> Result<u64, OAuthError> {
        let allowance = r.minted.credits.unwrap_or(0);
        let spent = self
            .store
            .spent(&self.settings.issuer, &r.family)
            .await
            .map_err(|_| OAuthError::store_unavailable())?;
        Ok(allowance.saturating_sub(spent.unwrap_or(0)))
    }

    /// The family of a refresh token of `client`, if live.
    pub(crate) async fn refresh_family(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Option<(RefreshGrant, StoredGrant, bool)>, OAuthError> {
        let found = self
            .store
            .find_refresh(&self.settings.issuer, &hash(token), now())
            .await
            .map_err(|_| OAuthError::store_unavailable())?;
        let Some((grant, spent)) = found else {
            return Ok(None);
        };
        let stored: StoredGrant = serde_json::from_str(&grant.grant).map_err(|_| server_error())?;
        if stored.client_id != client.id && !client.introspect_any {
            return Ok(None);
        }
        Ok(Some((grant, stored, spent)))
    }

    /// Revokes every token of a family: its refresh tokens stop rotating
    /// and its access tokens are refused wherever the store is shared.
    pub(crate) async fn revoke_family(&self, grant: &RefreshGrant) -> Result<(), OAuthError> {
        self.store
            .revoke(&self.settings.issuer, &grant.family, grant.expires_at)
            .await
            .map_err(|_| OAuthError::store_unavailable())
    }
}

fn server_error() -> OAuthError {
    OAuthError::new(ErrorCode::ServerError, "the grant could not be read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_long_random_and_kept_as_hashes() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(hash(&a), a);
        assert_eq!(hash(&a), hash(&a.clone()));
        assert_eq!(hash(&a).len(), 43);
    }
}
