//! Tollgate: JWT bearer tokens for Rust APIs — issue, validate, meter in
//! credits, revoke.
//!
//! This umbrella crate re-exports the workspace crates: [`core`] always, the
//! framework integrations behind features as they land.

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
