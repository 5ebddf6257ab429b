//! Tollgate: JWT bearer tokens for Rust APIs — issue, validate, meter in
//! credits, revoke.
//!
//! This crate re-exports the workspace's crates, one feature each:
//!
//! | feature | module | what |
//! |---|---|---|
//! | (always) | [`core`] | [`Authenticator`], [`TrustedIssuer`], keys, [`Verified`] tokens, [`Error`], policies and the [`MemoryStore`], the framework-free request gate |
//! | `tower` | `tollgate::tower` | `AuthLayer`, `RequireScopeLayer`, `ChargeLayer` for any tower HTTP service |
//! | `axum` | `tollgate::axum` | the tower layers plus the `Claims<C>` and `Scopes` extractors (implies `tower`) |
//! | `actix` | `tollgate::actix` | actix-web's `Auth` middleware, `Claims<C>`, `RequireScope`, `Charge` |
//! | `redis` | `tollgate::redis` | `RedisStore`: credits and revocations shared by every instance and the token server |
//! | `sqlite` | `tollgate::sqlite` | `SqliteStore`: durable credits and revocations for one process |
//! | `issuer` | `tollgate::issuer` | `TokenServer`: the token server as an axum `Router` |
//!
//! The most used types of [`core`] are also at the root.
//!
//! # Quick start
//!
//! With `features = ["axum"]`: trust an issuer, put the layer in front of a
//! router, read the token in handlers.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tollgate::axum::{AuthLayer, Claims};
//! use tollgate::{Authenticator, TrustedIssuer};
//!
//! let auth = Authenticator::builder()
//!     .issuer(TrustedIssuer::new("https://login.example.com").audience("https://api.example.com")
//!         .jwks_url("https://login.example.com/.well-known/jwks.json"))
//!     .build()?;
//! let app = axum::Router::new()
//!     .route("/me", axum::routing::get(|c: Claims| async move { format!("{:?}", c.subject()) }))
//!     .layer(AuthLayer::new(auth));
//! axum::serve(tokio::net::TcpListener::bind("0.0.0.0:3000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! Tokens that carry `credits` or `ip` need the policies that enforce them
//! ([`Policies`] with [`Credits`] and [`IpBinding`]); revocations and spent
//! credits are shared only by services that share a store. The README
//! covers both, CORS preflights, and what the first build needs.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use tollgate_actix as actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use tollgate_axum as axum;
pub use tollgate_core as core;
pub use tollgate_core::policy::{Credits, IpBinding, MemoryStore, Policies};
pub use tollgate_core::{
    Algorithm, Authenticator, BearerExtractor, Error, KeySet, RemoteOptions, TrustedIssuer,
    Verified, VerifyingKey,
};
#[cfg(feature = "issuer")]
#[cfg_attr(docsrs, doc(cfg(feature = "issuer")))]
pub use tollgate_issuer as issuer;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use tollgate_redis as redis;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use tollgate_sqlite as sqlite;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tollgate_tower as tower;

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
