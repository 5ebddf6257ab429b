//! Tollgate's token server as an axum [`Router`]: OAuth2 client credentials
//! (RFC 6749 §4.4) with RFC 9068 access tokens, restricted tokens for end
//! users (credits, client addresses, lifetime), JWKS, discovery (RFC 8414),
//! introspection (RFC 7662) and revocation (RFC 7009) on the same stores the
//! APIs use.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate_core::Algorithm;
//! use tollgate_core::policy::MemoryStore;
//! use tollgate_issuer::{Client, KeyRing, Settings, TokenServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = KeyRing::ephemeral(Algorithm::ES256)?;
//! let (client, secret) = Client::generate("reports", vec!["https://api.example".into()], vec!["reports:read".into()]);
//! println!("client secret (shown once): {secret}");
//! let server = TokenServer::new(
//!     Settings::new("http://127.0.0.1:8080"),
//!     ring,
//!     vec![client],
//!     Arc::new(MemoryStore::new()),
//! )?;
//! let app = server.router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod clients;
mod error;
mod keys;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_core::policy::{Credits, IpBinding, IpNet, Policies, Store, token_ref};
use tollgate_core::{Authenticator, Issuer, TokenInfo};

pub use clients::{Client, hash_secret, is_valid_hash, new_secret, verify_secret};
pub use error::{CLIENT_CHALLENGE, ErrorCode, OAuthError};
use error::{no_store, printable};
pub use keys::{KeyError, KeyRing, KeyState, SigningKey, create_private_dir, write_private};
use support::{now, random_id};

/// How `scope` is written into access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// `sub` (default: the client id); never another client's id.
    pub subject: Option<String>,
    /// Credit allowance, at most the client's `max_credits` (restricted
    /// tokens: default `max_credits`, so they are always metered).
    pub credits: Option<u64>,
    /// Client addresses / CIDR ranges (restricted tokens).
    pub ip: Option<Vec<String>>,
    /// A restricted token: limits are the client's restricted-token limits.
    pub restricted: bool,
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
}

/// The token server: keys, clients, the store, and the verifier its
/// introspection and revocation endpoints use.
pub struct TokenServer {
    settings: Settings,
    ring: RwLock<KeyRing>,
    clients: RwLock<HashMap<String, Client>>,
    store: Arc<dyn Store>,
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
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
}

impl TokenServer {
    /// A server with these keys, clients and store.
    pub fn new(
        settings: Settings,
        ring: KeyRing,
        clients: Vec<Client>,
        store: Arc<dyn Store>,
    ) -> Result<Arc<TokenServer>, tollgate_core::Error> {
        let clients: HashMap<String, Client> =
            clients.into_iter().map(|c| (c.id.clone(), c)).collect();
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
            .route("/connect/token", post(token_endpoint))
            .route("/connect/jwt", post(restricted_endpoint))
            .route("/connect/introspect", post(introspect_endpoint))
            .route("/connect/revocation", post(revocation_endpoint))
            .route("/.well-known/jwks.json", get(jwks_endpoint))
            .route("/.well-known/openid-configuration", get(discovery_endpoint))
            .route(
                "/.well-known/oauth-authorization-server",
                get(discovery_endpoint),
            )
            .with_state(self.clone())
    }

    /// The public JWKS.
    pub fn jwks(&self) -> Value {
        read(&self.ring).jwks()
    }

    /// The RFC 8414 metadata document.
    pub fn metadata(&self) -> Value {
        let base = &self.settings.issuer;
        let algs: Vec<&str> = read(&self.ring)
            .keys()
            .iter()
            .map(|k| k.algorithm().as_str())
            .collect();
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/connect/token"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{base}/connect/introspect"),
            "revocation_endpoint": format!("{base}/connect/revocation"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            // RFC 8414 makes this field required; this server has no
            // authorization endpoint, so it supports no response type.
            "response_types_supported": [],
            "access_token_signing_alg_values_supported": algs,
        })
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
    pub fn replace_keys(&self, ring: KeyRing) -> Result<(), tollgate_core::Error> {
        let mut current = write(&self.ring);
        if ring.active().is_none() {
            return Err(tollgate_core::Error::Config(
                "the new key ring has no active key".into(),
            ));
        }
        // Tokens the current key signed are out there: a ring without it
        // (a directory emptied or swapped) would refuse every one of them.
        if let Some(active) = current.active()
            && !ring.keys().iter().any(|k| k.kid() == active.kid())
        {
            return Err(tollgate_core::Error::Config(format!(
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
    pub fn replace_clients(&self, clients: Vec<Client>) -> Result<(), tollgate_core::Error> {
        let ring = read(&self.ring);
        let mut current = write(&self.clients);
        let clients: HashMap<String, Client> =
            clients.into_iter().map(|c| (c.id.clone(), c)).collect();
        let verifier = build_verifier(&self.settings, &ring, &clients, &self.store)?;
        *current = clients;
        *write(&self.verifier) = verifier;
        Ok(())
    }

    /// Adds or replaces a client.
    pub fn put_client(&self, client: Client) {
        write(&self.clients).insert(client.id.clone(), client);
        self.rebuild_verifier();
    }

    fn rebuild_verifier(&self) {
        let ring = read(&self.ring);
        let clients = read(&self.clients);
        match build_verifier(&self.settings, &ring, &clients, &self.store) {
            Ok(v) => *write(&self.verifier) = v,
            Err(e) => tracing::error!(error = %e, "verifier not rebuilt"),
        }
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
        if let Some(sub) = &req.subject
            && *sub != client.id
            && read(&self.clients).contains_key(sub)
        {
            return Err(OAuthError::invalid_request("`sub` names another client"));
        }
        let ip = match &req.ip {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(OAuthError::invalid_request("ip must not be empty"));
            }
            Some(list) => {
                for a in list {
                    if a.parse::<IpNet>().is_err() {
                        return Err(OAuthError::invalid_request(
                            "ip must hold addresses or CIDR ranges",
                        ));
                    }
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
        let exp = i64::try_from(lifetime).map_or(i64::MAX, |l| iat.saturating_add(l));
        let jti = random_id(16);
        let claims = AccessClaims {
            iss: &self.settings.issuer,
            sub: req.subject.as_deref().unwrap_or(&client.id),
            aud: &audience,
            client_id: &client.id,
            scope,
            iat,
            nbf: iat,
            exp,
            jti: &jti,
            credits,
            ip,
        };
        let token = self.sign(&claims)?;
        Ok(Minted {
            token,
            expires_at: exp,
            expires_in: lifetime,
            scope: scope_joined,
            jti,
            credits,
        })
    }

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

    /// Verifies a token this server issued (signature, `exp`, issuer,
    /// audience among the clients' audiences).
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<Arc<tollgate_core::Verified>, tollgate_core::Error> {
        let verifier = read(&self.verifier).clone();
        match verifier.try_verify(token) {
            Some(r) => r,
            None => Err(tollgate_core::Error::KeysUnavailable),
        }
    }
}

fn build_verifier(
    settings: &Settings,
    ring: &KeyRing,
    clients: &HashMap<String, Client>,
    store: &Arc<dyn Store>,
) -> Result<Authenticator, tollgate_core::Error> {
    let mut issuer = Issuer::new(settings.issuer.clone())
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

/// A parsed `application/x-www-form-urlencoded` body; a repeated parameter
/// is an error (RFC 6749 §3.2).
struct Form(HashMap<String, String>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` repeated",
                    printable(&k)
                )));
            }
        }
        Ok(Form(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Client authentication: HTTP Basic (id and secret form-urlencoded, then
/// base64, RFC 6749 §2.3.1) or `client_id` + `client_secret` in the body;
/// never both.
fn authenticate(
    server: &TokenServer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Client, OAuthError> {
    let auth = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .collect::<Vec<_>>();
    let basic = match auth.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
    };
    let in_body = form.get("client_secret").is_some();
    let (id, secret) = match basic {
        Some(value) => {
            if in_body {
                return Err(OAuthError::invalid_request(
                    "client authenticated twice (Basic and body)",
                ));
            }
            let fail = || OAuthError::invalid_client("client authentication failed");
            let value = value.to_str().map_err(|_| fail())?;
            let (scheme, rest) = value.split_once(' ').ok_or_else(fail)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(fail());
            }
            let decoded = STANDARD.decode(rest.trim()).map_err(|_| fail())?;
            let decoded = String::from_utf8(decoded).map_err(|_| fail())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(fail)?;
            let unform = |s: &str| {
                form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let id = unform(id);
            if let Some(body_id) = form.get("client_id")
                && body_id != id
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, unform(secret))
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required",
                ));
            }
        },
    };
    server
        .authenticate(&id, &secret)
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
}

fn scopes_param(form: &Form) -> Option<Vec<String>> {
    form.get("scope").map(|s| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn audience_param(form: &Form) -> Result<Option<String>, OAuthError> {
    match (form.get("audience"), form.get("resource")) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "give `audience` or `resource`, not both",
        )),
        (a, r) => Ok(a.or(r).map(str::to_owned)),
    }
}

async fn token_endpoint(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| {
        let form = Form::parse(&headers, &body)?;
        let client = authenticate(&server, &headers, &form)?;
        match form.get("grant_type") {
            None => {
                return Err(OAuthError::invalid_request("grant_type is required"));
            }
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "only client_credentials is supported",
                ));
            }
        }
        let req = MintRequest {
            scopes: scopes_param(&form),
            audience: audience_param(&form)?,
            ..MintRequest::default()
        };
        server.mint(&client, &req)
    })();
    match result {
        Ok(m) => {
            let mut body = json!({
                "access_token": m.token,
                "token_type": "Bearer",
                "expires_in": m.expires_in,
            });
            if !m.scope.is_empty() {
                body["scope"] = json!(m.scope);
            }
            (no_store(), axum::Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `/connect/jwt` accepts a form or a JSON body: `lifetime`, `credits`,
/// `ip` (string or list; a form gives a space- or comma-separated list),
/// `scope`, `sub`, `audience`.
async fn restricted_endpoint(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        let (form, fields) = if is_json {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|_| OAuthError::invalid_request("the body is not JSON"))?;
            (Form(HashMap::new()), v)
        } else {
            let form = Form::parse(&headers, &body)?;
            let mut v = json!({});
            for (k, val) in &form.0 {
                v[k] = json!(val);
            }
            (form, v)
        };
        let client = authenticate(&server, &headers, &form)?;
        let bad = |what: &str| OAuthError::invalid_request(format!("`{what}` is invalid"));
        let num = |name: &str| -> Result<Option<u64>, OAuthError> {
            match &fields[name] {
                Value::Null => Ok(None),
                Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| bad(name)),
                Value::String(s) => s.parse().map(Some).map_err(|_| bad(name)),
                _ => Err(bad(name)),
            }
        };
        let string = |name: &str| -> Result<Option<String>, OAuthError> {
            match &fields[name] {
                Value::Null => Ok(None),
                Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
                _ => Err(bad(name)),
            }
        };
        let ip = match &fields["ip"] {
            Value::Null => None,
            Value::String(s) => Some(
                s.split([' ', ','])
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| bad("ip")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => return Err(bad("ip")),
        };
        let scopes = match &fields["scope"] {
            Value::Null => None,
            Value::String(s) => Some(
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| bad("scope")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => return Err(bad("scope")),
        };
        let req = MintRequest {
            scopes,
            audience: string("audience")?,
            lifetime: num("lifetime")?,
            subject: string("sub")?,
            credits: num("credits")?,
            ip,
            restricted: true,
        };
        server.mint(&client, &req)
    })();
    match result {
        Ok(m) => (
            no_store(),
            axum::Json(json!({
                "token": m.token,
                "token_type": "Bearer",
                "credits_remaining": m.credits,
                "expires_at": m.expires_at,
                "expires_in": m.expires_in,
                "scope": m.scope,
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn introspect_endpoint(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authenticate(&server, &headers, &form) {
        return e.into_response();
    }
    let Some(token) = form.get("token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    let inactive = || (no_store(), axum::Json(json!({"active": false}))).into_response();
    let Ok(v) = server.verify(token) else {
        return inactive();
    };
    let info: &dyn TokenInfo = &*v;
    match server.store.is_revoked(token_ref(info)).await {
        Ok(false) => {}
        Ok(true) => return inactive(),
        Err(_) => {
            return OAuthError::store_unavailable().into_response();
        }
    }
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "iss": v.issuer(),
        "sub": v.subject(),
        "aud": v.audiences(),
        "client_id": v.client_id(),
        "exp": v.expires_at(),
        "iat": v.issued_at(),
        "nbf": v.not_before(),
        "jti": v.token_id(),
    });
    let scope = v.scopes().collect::<Vec<_>>().join(" ");
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    if let (Some(allowance), Some(jti)) = (v.credits(), v.token_id()) {
        match server.store.spent(v.issuer(), jti).await {
            Ok(spent) => {
                body["credits"] = json!(allowance);
                body["credits_remaining"] = json!(allowance.saturating_sub(spent.unwrap_or(0)));
            }
            Err(_) => {
                return OAuthError::store_unavailable().into_response();
            }
        }
    }
    (no_store(), axum::Json(body)).into_response()
}

async fn revocation_endpoint(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let client = match authenticate(&server, &headers, &form) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.get("token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    // RFC 7009 §2.2: invalid or unknown tokens are answered 200 too.
    let ok = || (no_store(), StatusCode::OK).into_response();
    let Ok(v) = server.verify(token) else {
        return ok();
    };
    if v.client_id() != Some(client.id.as_str()) {
        return OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "a client may revoke only its own tokens",
        )
        .into_response();
    }
    let Some(jti) = v.token_id() else {
        return ok();
    };
    match server.store.revoke(v.issuer(), jti, v.expires_at()).await {
        Ok(()) => ok(),
        Err(_) => OAuthError::store_unavailable().into_response(),
    }
}

async fn jwks_endpoint(State(server): State<Arc<TokenServer>>) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        axum::Json(server.jwks()),
    )
        .into_response()
}

async fn discovery_endpoint(State(server): State<Arc<TokenServer>>) -> Response {
    axum::Json(server.metadata()).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tollgate_core::Algorithm;
    use tollgate_core::policy::MemoryStore;

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn server(clients: Vec<Client>) -> Arc<TokenServer> {
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
    fn sub_never_names_another_client() {
        let (a, _) = Client::generate("a", vec!["api".into()], vec![]);
        let (b, _) = Client::generate("b", vec!["api".into()], vec![]);
        let server = server(vec![a.clone(), b]);
        let with_sub = |sub: &str| MintRequest {
            subject: Some(sub.into()),
            restricted: true,
            ..MintRequest::default()
        };
        let e = server.mint(&a, &with_sub("b")).unwrap_err();
        assert_eq!(
            (e.code, e.status()),
            (ErrorCode::InvalidRequest, StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            claims(&server.mint(&a, &with_sub("a")).unwrap().token)["sub"],
            "a"
        );
        assert_eq!(
            claims(&server.mint(&a, &with_sub("user-9")).unwrap().token)["sub"],
            "user-9"
        );
    }
}
