//! Shared test parts: signing keys, token minting, and a loopback JWKS server
//! that counts its hits.

#![allow(missing_docs, clippy::unwrap_used, clippy::large_enum_variant)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tollgate_core::{Algorithm, VerifyingKey};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the tests' own, able to mint any header and payload.
pub enum Signer {
    Hmac(aws_lc_rs::hmac::Key, Vec<u8>),
    Es256(EcdsaKeyPair),
}

impl Signer {
    pub fn hs256(secret: &[u8]) -> Self {
        Signer::Hmac(
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            secret.to_vec(),
        )
    }

    pub fn es256() -> Self {
        Signer::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    /// The key a verifier needs.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Signer::Hmac(_, secret) => VerifyingKey::hmac(secret, Algorithm::HS256).unwrap(),
            Signer::Es256(kp) => {
                VerifyingKey::from_der(kp.public_key().as_ref(), Algorithm::ES256).unwrap()
            }
        }
    }

    /// Public JWK (ES256 only).
    pub fn jwk(&self, kid: &str) -> Value {
        let Signer::Es256(kp) = self else {
            panic!("HMAC keys have no public JWK")
        };
        let p = kp.public_key().as_ref();
        json!({"kty":"EC","crv":"P-256","kid":kid,"use":"sig","alg":"ES256",
               "x": b64(&p[1..33]), "y": b64(&p[33..65])})
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Signer::Hmac(..) => "HS256",
            Signer::Es256(_) => "ES256",
        }
    }

    /// Signs exactly these header and payload bytes.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = match self {
            Signer::Hmac(k, _) => aws_lc_rs::hmac::sign(k, input.as_bytes()).as_ref().to_vec(),
            Signer::Es256(kp) => kp
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// Signs `claims` with a header of this key's algorithm and `kid`.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// Claims that pass the default checks of the tests' issuer.
pub fn good_claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "api", "sub": "user-1", "exp": now() + 600, "iat": now()})
}

#[derive(Default)]
pub struct JwksState {
    pub keys: Vec<Value>,
    pub cache_control: Option<String>,
    pub oversized: bool,
    pub discovery_issuer: Option<String>,
    /// The `jwks_uri` the discovery document names (default: this
    /// server's `/keys`).
    pub discovery_jwks_uri: Option<String>,
    /// Where `/redirect` sends its client (a 302); `None`: 404.
    pub redirect_to: Option<String>,
}

/// A JWKS and discovery server on 127.0.0.1 counting its hits.
pub struct JwksServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<JwksState>>,
    pub jwks_hits: Arc<AtomicUsize>,
    pub other_hits: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<JwksState>>,
    jwks_hits: Arc<AtomicUsize>,
    other_hits: Arc<AtomicUsize>,
    base: String,
}

async fn jwks(State(s): State<Shared>) -> impl IntoResponse {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let st = s.state.lock().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = &st.cache_control {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
    }
    let body = if st.oversized {
        let filler = "x".repeat(512 * 1024);
        json!({"keys": st.keys, "filler": filler}).to_string()
    } else {
        json!({"keys": st.keys}).to_string()
    };
    (headers, body)
}

async fn discovery(State(s): State<Shared>) -> impl IntoResponse {
    s.other_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = s
        .state
        .lock()
        .unwrap()
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| s.base.clone());
    let jwks_uri = s
        .state
        .lock()
        .unwrap()
        .discovery_jwks_uri
        .clone()
        .unwrap_or_else(|| format!("{}/keys", s.base));
    axum::Json(json!({"issuer": issuer, "jwks_uri": jwks_uri}))
}

async fn redirect(State(s): State<Shared>) -> impl IntoResponse {
    s.other_hits.fetch_add(1, Ordering::SeqCst);
    match s.state.lock().unwrap().redirect_to.clone() {
        Some(to) => (
            StatusCode::FOUND,
            [(header::LOCATION, HeaderValue::from_str(&to).unwrap())],
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn other(State(s): State<Shared>) -> impl IntoResponse {
    s.other_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, "{}")
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(JwksState {
            keys,
            ..Default::default()
        }));
        let shared = Shared {
            state: state.clone(),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            other_hits: Arc::new(AtomicUsize::new(0)),
            base: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/keys", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/redirect", get(redirect))
            .fallback(other)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        JwksServer {
            addr,
            state,
            jwks_hits: shared.jwks_hits,
            other_hits: shared.other_hits,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.base())
    }

    /// `/redirect`, which answers 302 to `state.redirect_to`.
    pub fn redirect_url(&self) -> String {
        format!("{}/redirect", self.base())
    }

    /// Requests to anything but `/keys` (discovery, `/redirect`, others).
    pub fn other_hits(&self) -> usize {
        self.other_hits.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    /// Stops accepting connections and closes the open ones.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}
