//! The HTTP endpoints, one file each; [`TokenServer::router`] mounts them.
//!
//! [`TokenServer::router`]: crate::TokenServer::router

mod discovery;
mod introspect;
mod jwks;
mod restricted;
mod revocation;
mod token;

pub(crate) use discovery::discovery;
pub(crate) use introspect::introspect;
pub(crate) use jwks::jwks;
pub(crate) use restricted::restricted;
pub(crate) use revocation::revocation;
pub(crate) use token::token;
