//! Tollgate's token server as an axum [`Router`](axum::Router): OAuth2 client credentials
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

//! # Layout
//!
//! Each file holds one role: `server` (state, settings, routes, reloads),
//! `mint` (access and restricted tokens), `error` (OAuth2 error answers),
//! `client_auth` (client authentication, an axum extractor), `form` (form
//! bodies), `endpoint/*` (one file per endpoint), `clients` (client records
//! and secrets), `keys` (signing keys, the ring, the key directory).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_auth;
mod clients;
mod endpoint;
mod error;
mod form;
mod keys;
mod mint;
mod refresh;
mod server;
mod support;

pub use clients::{
    Client, MAX_CLIENT_ID_LEN, check_client_id, hash_secret, is_valid_hash, new_secret,
    verify_secret,
};
pub use error::{CLIENT_CHALLENGE, ErrorCode, OAuthError};
pub use keys::{KeyError, KeyRing, KeyState, SigningKey, create_private_dir, write_private};
pub use mint::{MintRequest, Minted};
pub use refresh::Refreshable;
pub use server::{ScopeFormat, Settings, TokenServer};
