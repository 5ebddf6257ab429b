//! Minting: access tokens (RFC 9068) and restricted tokens, within the
//! client's limits, signed by the active key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_core::policy::IpNet;

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError, printable};
use crate::server::{ScopeFormat, TokenServer, read};
use crate::support::{now, random_id};

/// What a token request asks for.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    /// Scopes (empty: all the client's scopes for access tokens, none for
    /// restricted tokens).
    pub scopes: Option<Vec<String>>,
    /// Audience (default: the client's first).
    pub audience: Option<String>,
    /// Lifetime in seconds (default: the client's token lifetime).
    pub lifetime: Option<u64>,
    /// The end user (default: none, `sub` is the client id). The token's
    /// `sub` is `client_id:user`, so it names this client's user only.
    pub subject: Option<String>,
    /// Credit allowance, at most the client's `max_credits` (restricted
    /// tokens: default `max_credits`, so they are always metered).
    pub credits: Option<u64>,
    /// Client addresses / CIDR ranges (restricted tokens).
    pub ip: Option<Vec<String>>,
    /// A restricted token: limits are the client's restricted-token limits.
    pub restricted: bool,
    /// The refresh family (`sid`) and when it ends (`sid_exp`); the token
    /// expires by then.
    pub grant: Option<(String, i64)>,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The compact JWS.
    pub token: String,
    /// `exp`.
    pub expires_at: i64,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scopes, space-delimited.
    pub scope: String,
    /// `jti`.
    pub jti: String,
    /// The credit allowance, if any.
    pub credits: Option<u64>,
    /// `aud`.
    pub audience: String,
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Value>,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid_exp: Option<i64>,
}

/// The `sub` of a token of `client` for `user`: the client itself, or
/// `client:user`.
pub(crate) fn subject_of(client: &str, user: Option<&str>) -> String {
    match user {
        Some(user) if user != client => format!("{client}:{user}"),
        _ => client.to_owned(),
    }
}

impl TokenServer {
    /// Mints a token for `client` within its limits.
    pub fn mint(&self, client: &Client, req: &MintRequest) -> Result<Minted, OAuthError> {
        let scopes: Vec<String> = match &req.scopes {
            Some(asked) => {
                if let Some(bad) = asked.iter().find(|s| !client.scopes.contains(s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("scope `{}` is not allowed for this client", printable(bad)),
                    ));
                }
                asked.clone()
            }
            None if req.restricted => Vec::new(),
            None => client.scopes.clone(),
        };
        let audience = match &req.audience {
            Some(a) if client.audiences.contains(a) => a.clone(),
            Some(a) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    format!("audience `{}` is not allowed for this client", printable(a)),
                ));
            }
            None => client.audiences.first().cloned().ok_or_else(|| {
                OAuthError::new(ErrorCode::UnauthorizedClient, "the client has no audience")
            })?,
        };
        let (max_lifetime, default_lifetime) = if req.restricted {
            (
                client.max_restricted_lifetime,
                client.max_restricted_lifetime.min(3600),
            )
        } else {
            (client.token_lifetime, client.token_lifetime)
        };
        let lifetime = req.lifetime.unwrap_or(default_lifetime);
        if lifetime == 0 || lifetime > max_lifetime {
            return Err(OAuthError::invalid_request(format!(
                "lifetime must be 1..={max_lifetime} seconds"
            )));
        }
        if let Some(c) = req.credits
            && c > client.max_credits
        {
            return Err(OAuthError::invalid_request(format!(
                "credits must be at most {}",
                client.max_credits
            )));
        }
        // A restricted token is always metered: without `credits` it carries
        // the client's whole allowance, never an unmetered token.
        let credits = if req.restricted {
            Some(req.credits.unwrap_or(client.max_credits))
        } else {
            req.credits
        };
        // An end user's subject carries its client (`client:user`; no client
        // id holds a `:`), so client A cannot speak for B's users and a
        // subject watermark for B's user leaves A's tokens alone.
        let subject = subject_of(&client.id, req.subject.as_deref());
        let ip = match &req.ip {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(OAuthError::invalid_request("ip must not be empty"));
            }
            Some(list) => {
                if list.iter().any(|a| a.parse::<IpNet>().is_err()) {
                    return Err(OAuthError::invalid_request(
                        "ip must hold addresses or CIDR ranges",
                    ));
                }
                Some(if list.len() == 1 {
                    json!(list[0])
                } else {
                    json!(list)
                })
            }
        };
        let scope_joined = scopes.join(" ");
        let scope = (!scopes.is_empty()).then(|| match self.settings.scope_format {
            ScopeFormat::String => json!(scope_joined),
            ScopeFormat::Array => json!(scopes),
        });
        let iat = now();
        let mut exp = i64::try_from(lifetime).map_or(i64::MAX, |l| iat.saturating_add(l));
        let mut lifetime = lifetime;
        if let Some((_, family_ends)) = &req.grant {
            // No token of a family outlives it.
            if *family_ends <= iat {
                return Err(OAuthError::new(
                    ErrorCode::InvalidGrant,
                    "the grant has ended",
                ));
            }
            if exp > *family_ends {
                exp = *family_ends;
                lifetime = u64::try_from(exp - iat).unwrap_or(0);
            }
        }
        let jti = random_id(16);
        let claims = AccessClaims {
            iss: &self.settings.issuer,
            sub: &subject,
            aud: &audience,
            client_id: &client.id,
            scope,
            iat,
            nbf: iat,
            exp,
            jti: &jti,
            credits,
            ip,
            sid: req.grant.as_ref().map(|(family, _)| family.as_str()),
            sid_exp: req.grant.as_ref().map(|(_, ends)| *ends),
        };
        let token = self.sign(&claims)?;
        Ok(Minted {
            token,
            expires_at: exp,
            expires_in: lifetime,
            scope: scope_joined,
            jti,
            credits,
            audience,
        })
    }

    /// A compact JWS of `claims` (`typ: at+jwt`) signed by the active key.
    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, OAuthError> {
        let server_error =
            || OAuthError::new(ErrorCode::ServerError, "the token could not be signed");
        let ring = read(&self.ring);
        let key = ring.active().ok_or_else(server_error)?;
        let header = json!({"alg": key.algorithm().as_str(), "typ": "at+jwt", "kid": key.kid()});
        let payload = serde_json::to_vec(claims).map_err(|_| server_error())?;
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let sig = key.sign(input.as_bytes()).map_err(|_| server_error())?;
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::server::tests::server;
    use crate::{KeyRing, Settings};
    use std::sync::Arc;

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn huge_lifetimes_saturate() {
        let (mut client, _) = Client::generate("c", vec!["api".into()], vec![]);
        client.token_lifetime = u64::MAX;
        client.max_restricted_lifetime = u64::MAX;
        let server = server(vec![client.clone()]);
        for lifetime in [i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            for restricted in [false, true] {
                let req = MintRequest {
                    lifetime: Some(lifetime),
                    restricted,
                    ..MintRequest::default()
                };
                let m = server.mint(&client, &req).unwrap();
                assert_eq!(m.expires_at, i64::MAX, "{lifetime}");
                assert_eq!(claims(&m.token)["exp"], i64::MAX);
                assert!(server.verify(&m.token).is_ok());
            }
        }
        // Rotation with such a client keeps the old key, without wrapping.
        let old = read(&server.ring).active().unwrap().kid().to_owned();
        server.rotate_keys().unwrap();
        let ring = read(&server.ring);
        let k = ring.keys().iter().find(|k| k.kid() == old).unwrap();
        assert_eq!(k.retire_at(), Some(i64::MAX));
    }

    #[test]
    fn restricted_tokens_are_always_metered() {
        let (mut client, _) = Client::generate("c", vec!["api".into()], vec![]);
        client.max_credits = 7;
        let server = server(vec![client.clone()]);
        let restricted = MintRequest {
            restricted: true,
            ..MintRequest::default()
        };
        let m = server.mint(&client, &restricted).unwrap();
        assert_eq!(m.credits, Some(7));
        assert_eq!(claims(&m.token)["credits"], 7);
        let m = server
            .mint(
                &client,
                &MintRequest {
                    credits: Some(2),
                    ..restricted.clone()
                },
            )
            .unwrap();
        assert_eq!(claims(&m.token)["credits"], 2);
        // Client-credentials access tokens stay unmetered.
        let m = server.mint(&client, &MintRequest::default()).unwrap();
        assert!(claims(&m.token).get("credits").is_none());
    }

    #[test]
    fn an_end_users_subject_names_its_client() {
        let (a, _) = Client::generate("a", vec!["api".into()], vec![]);
        let (b, _) = Client::generate("b", vec!["api".into()], vec![]);
        let server = server(vec![a.clone(), b.clone()]);
        let with_sub = |sub: &str| MintRequest {
            subject: Some(sub.into()),
            restricted: true,
            ..MintRequest::default()
        };
        let sub = |c: &Client, user: &str| {
            claims(&server.mint(c, &with_sub(user)).unwrap().token)["sub"].clone()
        };
        assert_eq!(sub(&a, "user-9"), "a:user-9");
        assert_eq!(sub(&b, "user-9"), "b:user-9");
        // Another client's id is just a user name under this client.
        assert_eq!(sub(&a, "b"), "a:b");
        assert_eq!(sub(&a, "b:user-9"), "a:b:user-9");
        // The client itself.
        assert_eq!(sub(&a, "a"), "a");
    }

    #[test]
    fn client_ids_cannot_make_a_subject_ambiguous() {
        for bad in ["", "a:b", "a\nb", &"x".repeat(129)] {
            let (c, _) = Client::generate(bad, vec!["api".into()], vec![]);
            let e = TokenServer::new(
                Settings::new("https://issuer.example"),
                KeyRing::ephemeral(tollgate_core::Algorithm::ES256).unwrap(),
                vec![c],
                Arc::new(tollgate_core::policy::MemoryStore::new()),
            )
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(matches!(e, tollgate_core::ConfigError::Invalid(_)), "{e}");
        }
        let (c, _) = Client::generate("a", vec!["api".into()], vec![]);
        let twice = TokenServer::new(
            Settings::new("https://issuer.example"),
            KeyRing::ephemeral(tollgate_core::Algorithm::ES256).unwrap(),
            vec![c.clone(), c],
            Arc::new(tollgate_core::policy::MemoryStore::new()),
        );
        assert!(twice.is_err());
    }
}
