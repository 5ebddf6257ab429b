//! The token server's state: settings, key ring, clients, store and the
//! verifier of its own tokens; the routes; reloads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::routing::{get, post};
use tollgate_core::policy::{Credits, IpBinding, Policies, Store};
use tollgate_core::{Authenticator, TrustedIssuer};

use crate::clients::{Client, check_client_id, hash_secret, new_secret, verify_secret};
use crate::endpoint;
use crate::keys::{KeyError, KeyRing};

/// How `scope` is written into access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ScopeFormat {
    /// Space-delimited string (RFC 9068).
    #[default]
    String,
    /// JSON array of strings (what IdentityServer-based services emit).
    Array,
}

/// Issuer-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `iss`, and the base URL of the endpoints.
    pub issuer: String,
    /// How `scope` is written.
    pub scope_format: ScopeFormat,
}

impl Settings {
    /// Settings for the issuer at `url` (no trailing slash needed).
    pub fn new(url: impl Into<String>) -> Self {
        Settings {
            issuer: url.into().trim_end_matches('/').to_owned(),
            scope_format: ScopeFormat::String,
        }
    }

    /// Writes `scope` as a JSON array.
    pub fn scope_array(mut self) -> Self {
        self.scope_format = ScopeFormat::Array;
        self
    }
}

/// The token server: keys, clients, the store, and the verifier its
/// introspection and revocation endpoints use.
///
/// Its store is where `/connect/revocation` (and
/// [`revoke_client_tokens`](Self::revoke_client_tokens)) write: an API
/// refuses a revoked token, and counts a token's credits together with
/// the other APIs, only when its policies use that same store (across
/// processes, one Redis: `tollgate-redis`'s `RedisStore`).
///
/// # Examples
///
/// The server and an API in one process, sharing a store:
///
/// ```
/// use std::sync::Arc;
/// use tollgate_core::gate::{Decision, Gate, HttpRequest};
/// use tollgate_core::policy::{Credits, IpBinding, MemoryStore, Policies, RevocationStore, Store};
/// use tollgate_core::{Algorithm, Authenticator, Error, TrustedIssuer};
/// use tollgate_issuer::{Client, KeyRing, MintRequest, Settings, TokenServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let ring = KeyRing::ephemeral(Algorithm::ES256)?;
/// let api_keys = ring.key_set()?; // an API in another process reads the JWKS URL instead
/// let (client, _secret) = Client::generate("shop", vec!["https://api.example".into()], vec![]);
/// let server = TokenServer::new(
///     Settings::new("https://auth.example"),
///     ring,
///     vec![client.clone()],
///     store.clone(),
/// )?;
///
/// let api = Gate::new(Authenticator::builder()
///     .issuer(TrustedIssuer::new("https://auth.example").audience("https://api.example").keys(api_keys))
///     .policies(Policies::new(store.clone()).credits(Credits::new()).ip_binding(IpBinding::new()))
///     .build()?);
///
/// // A token worth 5 credits for one of the client's users.
/// let minted = server.mint(&client, &MintRequest {
///     restricted: true,
///     credits: Some(5),
///     subject: Some("alice".into()),
///     ..MintRequest::default()
/// })?;
/// let req = http::Request::get("/").header("authorization", format!("Bearer {}", minted.token)).body(())?;
/// let peer = Some("203.0.113.7".parse()?);
/// let ask = || match api.decide(&HttpRequest::new(&req, peer)) {
///     Decision::Accepted(admitted) => Ok(admitted.token.end_user().map(str::to_owned)),
///     Decision::Rejected(rejection) => Err(rejection.error),
///     _ => unreachable!("the memory store answers at once"),
/// };
/// assert_eq!(ask(), Ok(Some("alice".to_owned())));
///
/// // What `POST /connect/revocation` does with the token:
/// server.store().revoke(&server.settings().issuer, &minted.jti, minted.expires_at).await?;
/// assert_eq!(ask(), Err(Error::Revoked));
/// # Ok(()) }
/// ```
pub struct TokenServer {
    pub(crate) settings: Settings,
    pub(crate) ring: RwLock<KeyRing>,
    pub(crate) clients: RwLock<HashMap<String, Client>>,
    pub(crate) store: Arc<dyn Store>,
    verifier: RwLock<Authenticator>,
    /// A client hash to compare against when the id is unknown, so unknown
    /// ids take as long as wrong secrets.
    decoy: String,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// Reads a lock, poisoned or not (no writer leaves half-written state).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes a lock, poisoned or not.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl TokenServer {
    /// A server with these keys, clients and store.
    pub fn new(
        settings: Settings,
        ring: KeyRing,
        clients: Vec<Client>,
        store: Arc<dyn Store>,
    ) -> Result<Arc<TokenServer>, tollgate_core::ConfigError> {
        let clients = index_clients(clients)?;
        let verifier = build_verifier(&settings, &ring, &clients, &store)?;
        Ok(Arc::new(TokenServer {
            settings,
            ring: RwLock::new(ring),
            clients: RwLock::new(clients),
            store,
            verifier: RwLock::new(verifier),
            decoy: hash_secret(&new_secret()),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store revocations and credits go to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The routes: `POST /connect/token`, `POST /connect/jwt`,
    /// `POST /connect/introspect`, `POST /connect/revocation`,
    /// `GET /.well-known/jwks.json`, `GET /.well-known/openid-configuration`
    /// (and `/.well-known/oauth-authorization-server`).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/connect/token", post(endpoint::token))
            .route("/connect/jwt", post(endpoint::restricted))
            .route("/connect/introspect", post(endpoint::introspect))
            .route("/connect/revocation", post(endpoint::revocation))
            .route("/.well-known/jwks.json", get(endpoint::jwks))
            .route(
                "/.well-known/openid-configuration",
                get(endpoint::discovery),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(endpoint::discovery),
            )
            .with_state(self.clone())
    }

    /// Rotates the signing key (see [`KeyRing::rotate`]); the old key stays
    /// published for the longest token lifetime any client has.
    pub fn rotate_keys(&self) -> Result<(), KeyError> {
        let longest = read(&self.clients)
            .values()
            .map(|c| c.token_lifetime.max(c.max_restricted_lifetime))
            .max()
            .unwrap_or(3600);
        write(&self.ring).rotate(i64::try_from(longest).unwrap_or(i64::MAX))?;
        self.rebuild_verifier();
        Ok(())
    }

    /// Replaces the key ring, e.g. with the one on disk after `tollgate keys
    /// rotate`. On error the current ring stays.
    pub fn replace_keys(&self, ring: KeyRing) -> Result<(), tollgate_core::ConfigError> {
        let mut current = write(&self.ring);
        if ring.active().is_none() {
            return Err(tollgate_core::ConfigError::Invalid(
                "the new key ring has no active key".into(),
            ));
        }
        // Tokens the current key signed are out there: a ring without it
        // (a directory emptied or swapped) would refuse every one of them.
        if let Some(active) = current.active()
            && !ring.keys().iter().any(|k| k.kid() == active.kid())
            && !ring.is_withdrawn(active.kid())
        {
            return Err(tollgate_core::ConfigError::Invalid(format!(
                "the new key ring drops the signing key {kid} (rotated more than once \
                 without a reload?); restart to adopt it, and tokens signed by {kid} \
                 will fail",
                kid = active.kid()
            )));
        }
        let clients = read(&self.clients);
        let verifier = build_verifier(&self.settings, &ring, &clients, &self.store)?;
        *current = ring;
        *write(&self.verifier) = verifier;
        Ok(())
    }

    /// Replaces every client, e.g. with those on disk after `tollgate
    /// clients add|remove`. On error the current clients stay.
    pub fn replace_clients(&self, clients: Vec<Client>) -> Result<(), tollgate_core::ConfigError> {
        let ring = read(&self.ring);
        let mut current = write(&self.clients);
        let clients = index_clients(clients)?;
        let verifier = build_verifier(&self.settings, &ring, &clients, &self.store)?;
        *current = clients;
        *write(&self.verifier) = verifier;
        Ok(())
    }

    /// Revokes every token issued to `client_id` so far, in every API that
    /// shares the store: a client watermark, kept as long as such a token
    /// can live. For a removed or compromised client.
    ///
    /// # Errors
    ///
    /// The store's, when it cannot be written now.
    pub async fn revoke_client_tokens(
        &self,
        client_id: &str,
    ) -> Result<(), tollgate_core::policy::StoreError> {
        let now = crate::support::now();
        // As long as a token of the client can live, refresh families
        // (whose refreshes check the watermark) included.
        let longest = read(&self.clients)
            .values()
            .map(|c| {
                c.token_lifetime
                    .max(c.max_restricted_lifetime)
                    .max(c.refresh_lifetime)
            })
            .max()
            .unwrap_or(3600)
            .max(3600);
        let keep_until = now.saturating_add(i64::try_from(longest).unwrap_or(i64::MAX));
        self.store
            .revoke_issued_until(
                &self.settings.issuer,
                tollgate_core::policy::Principal::Client(client_id),
                now,
                keep_until,
            )
            .await
    }

    /// Adds or replaces a client.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`](tollgate_core::ConfigError::Invalid) when its
    /// id fails [`check_client_id`].
    pub fn put_client(&self, client: Client) -> Result<(), tollgate_core::ConfigError> {
        check_client_id(&client.id).map_err(tollgate_core::ConfigError::Invalid)?;
        write(&self.clients).insert(client.id.clone(), client);
        self.rebuild_verifier();
        Ok(())
    }

    fn rebuild_verifier(&self) {
        let ring = read(&self.ring);
        let clients = read(&self.clients);
        match build_verifier(&self.settings, &ring, &clients, &self.store) {
            Ok(v) => *write(&self.verifier) = v,
            Err(e) => tracing::error!(error = %e, "verifier not rebuilt"),
        }
    }

    /// The client registered as `id`, if any (not authenticated).
    pub(crate) fn client(&self, id: &str) -> Option<Client> {
        read(&self.clients).get(id).cloned()
    }

    /// Authenticates a client by id and secret.
    pub fn authenticate(&self, id: &str, secret: &str) -> Option<Client> {
        let clients = read(&self.clients);
        match clients.get(id) {
            Some(c) if c.check_secret(secret) => Some(c.clone()),
            Some(_) => None,
            None => {
                let _ = verify_secret(&self.decoy, secret);
                None
            }
        }
    }

    /// Verifies a token this server issued (signature, `exp`, issuer,
    /// audience among the clients' audiences).
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<Arc<tollgate_core::Verified>, tollgate_core::Error> {
        let verifier = read(&self.verifier).clone();
        let verified = verifier.verify_now(token)?;
        // A key past its `retire_at` (or gone from the ring) signs nothing
        // valid any more, though the verifier was built while it was in use.
        let ring = read(&self.ring);
        let now = crate::support::now();
        let usable = verified
            .key_id()
            .and_then(|kid| ring.keys().iter().find(|k| k.kid() == kid))
            .is_some_and(|k| !k.is_retired(now));
        if !usable {
            return Err(tollgate_core::Error::UnknownKey);
        }
        Ok(verified)
    }
}

/// The clients by id; an invalid or repeated id is refused.
fn index_clients(
    clients: Vec<Client>,
) -> Result<HashMap<String, Client>, tollgate_core::ConfigError> {
    let mut by_id = HashMap::with_capacity(clients.len());
    for c in clients {
        check_client_id(&c.id).map_err(tollgate_core::ConfigError::Invalid)?;
        if by_id.contains_key(&c.id) {
            return Err(tollgate_core::ConfigError::Invalid(format!(
                "client `{}` is registered twice",
                c.id
            )));
        }
        by_id.insert(c.id.clone(), c);
    }
    Ok(by_id)
}

fn build_verifier(
    settings: &Settings,
    ring: &KeyRing,
    clients: &HashMap<String, Client>,
    store: &Arc<dyn Store>,
) -> Result<Authenticator, tollgate_core::ConfigError> {
    let mut issuer = TrustedIssuer::new(settings.issuer.clone())
        .keys(ring.key_set()?)
        .require_type("at+jwt");
    let mut any = false;
    for aud in clients.values().flat_map(|c| c.audiences.iter()) {
        issuer = issuer.audience(aud.clone());
        any = true;
    }
    if !any {
        // No client yet: nothing can verify, but the verifier must exist.
        issuer = issuer.audience(format!("{}/none", settings.issuer));
    }
    Authenticator::builder()
        .issuer(issuer)
        // Reads the allowance and address claims of restricted tokens.
        .policies(
            Policies::new(store.clone())
                .credits(Credits::new())
                .ip_binding(IpBinding::new()),
        )
        .build()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::write_private;
    use tollgate_core::Algorithm;
    use tollgate_core::policy::MemoryStore;

    /// A server at `https://issuer.example` with an ES256 ring in memory.
    pub(crate) fn server(clients: Vec<Client>) -> Arc<TokenServer> {
        TokenServer::new(
            Settings::new("https://issuer.example"),
            KeyRing::ephemeral(Algorithm::ES256).unwrap(),
            clients,
            Arc::new(MemoryStore::new()),
        )
        .unwrap()
    }

    #[test]
    fn a_new_ring_must_keep_the_signing_key() {
        let server = server(vec![]);
        let before = server.jwks();
        let err = server
            .replace_keys(KeyRing::ephemeral(Algorithm::ES256).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("drops the signing key"), "{err}");
        assert_eq!(server.jwks(), before, "the running ring stays");
    }

    fn temp_keys(name: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir()
            .join(format!("tollgate-server-{name}-{nanos:x}"))
            .join("keys")
    }

    fn mint(server: &TokenServer, client: &Client) -> String {
        let req = crate::MintRequest::default();
        server.mint(client, &req).unwrap().token
    }

    #[test]
    fn a_withdrawn_key_is_refused_at_once_and_never_trusted_again() {
        let dir = temp_keys("withdraw");
        let (client, _) = Client::generate("app", vec!["api".into()], vec![]);
        let server = TokenServer::new(
            Settings::new("https://issuer.example"),
            KeyRing::open(&dir, Algorithm::ES256).unwrap(),
            vec![client.clone()],
            Arc::new(MemoryStore::new()),
        )
        .unwrap();
        let token = mint(&server, &client);
        assert!(server.verify(&token).is_ok());
        let leaked = read(&server.ring).active().unwrap().kid().to_owned();

        // `tollgate keys withdraw <kid>`, then SIGHUP.
        let mut ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        let key_file = std::fs::read(dir.join(format!("{leaked}.json"))).unwrap();
        ring.withdraw(&leaked).unwrap();
        server
            .replace_keys(KeyRing::load(&dir, Algorithm::ES256).unwrap())
            .unwrap();
        assert!(server.verify(&token).is_err(), "its tokens are refused");
        assert!(!server.jwks().to_string().contains(&leaked), "unpublished");
        // A fresh token is signed by the promoted key and verifies.
        assert!(server.verify(&mint(&server, &client)).is_ok());

        // The key file put back (a backup restored): still not trusted.
        write_private(&dir.join(format!("{leaked}.json")), &key_file).unwrap();
        let ring = KeyRing::load(&dir, Algorithm::ES256).unwrap();
        assert!(ring.keys().iter().all(|k| k.kid() != leaked));
    }

    #[test]
    fn a_key_past_its_retire_at_is_dropped_when_the_ring_is_read() {
        let dir = temp_keys("retire");
        let mut ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        let old = ring.active().unwrap().kid().to_owned();
        ring.rotate(30 * 86_400).unwrap();
        // Its time has come (the file says so), though no rotation since.
        let path = dir.join(format!("{old}.json"));
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["retire_at"] = serde_json::json!(crate::support::now() - 1);
        write_private(&path, file.to_string().as_bytes()).unwrap();
        for ring in [
            KeyRing::load(&dir, Algorithm::ES256).unwrap(),
            KeyRing::open(&dir, Algorithm::ES256).unwrap(),
        ] {
            assert!(ring.keys().iter().all(|k| k.kid() != old));
            assert!(!ring.jwks().to_string().contains(&old));
        }
    }
}
