//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "JWT bearer tokens: issue, meter in credits, revoke."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the token server and the metered demo API.
    ///
    /// On SIGHUP (`kill -HUP <pid>`, the pid is printed at start) the key
    /// ring and the clients are read again from the data directory: run it
    /// after `tollgate keys rotate` or `tollgate clients add|remove`. The
    /// configuration file is read at start only. SIGINT or SIGTERM stop it
    /// gracefully.
    Serve(ServeArgs),
    /// Signing keys in the data directory.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Clients in the data directory.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Mint or inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (keys, clients, database); overrides the file.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Listen address; overrides the file.
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create the key ring (an active and a next key) if there is none.
    Generate(Common),
    /// Rotate: the next key starts signing, the active one retires.
    ///
    /// This rewrites the key files; a running `tollgate serve` uses the new
    /// ring after a SIGHUP (`kill -HUP <pid>`).
    Rotate(Common),
    /// Withdraw a key at once (leaked or compromised): it leaves the ring
    /// and the JWKS, and is never trusted again. Withdrawing the active key
    /// promotes the next one.
    ///
    /// A running `tollgate serve` refuses the key's tokens after a SIGHUP
    /// (`kill -HUP <pid>`); APIs fetching the JWKS after their next fetch.
    Withdraw {
        #[command(flatten)]
        common: Common,
        /// The key's id (see `tollgate keys list`).
        kid: String,
    },
    /// List keys with their state.
    List(Common),
    /// Print the public JWKS.
    Jwks(Common),
}

#[derive(Subcommand)]
pub(crate) enum ClientsCommand {
    /// Add a client; its secret is printed once and stored only as a hash.
    Add {
        #[command(flatten)]
        common: Common,
        /// The client id.
        id: String,
        /// Audiences it may ask for (first = default).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// Scopes it may ask for.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Access token lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime: u64,
        /// Most credits a restricted token may carry.
        #[arg(long, default_value_t = 1000)]
        max_credits: u64,
    },
    /// List clients (never secrets).
    List(Common),
    /// Remove a client, and revoke every token issued to it so far.
    ///
    /// A running `tollgate serve` applies both after a SIGHUP (`kill -HUP
    /// <pid>`), or at its next start: every API sharing its store then
    /// refuses the client's tokens.
    Remove {
        #[command(flatten)]
        common: Common,
        /// The client id.
        id: String,
    },
    /// Revoke every token issued to a client so far (a leaked secret, a
    /// compromised client); the client itself stays. Applied by `tollgate
    /// serve` after a SIGHUP or at its next start.
    RevokeTokens {
        #[command(flatten)]
        common: Common,
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Sign a token locally with the data directory's active key.
    Mint {
        #[command(flatten)]
        common: Common,
        /// The client the token is issued to.
        #[arg(long)]
        client: String,
        /// `sub` (default: the client id).
        #[arg(long)]
        sub: Option<String>,
        /// `aud` (default: the client's first audience).
        #[arg(long)]
        aud: Option<String>,
        /// Scopes (default: none).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Credit allowance.
        #[arg(long)]
        credits: Option<u64>,
        /// Client address or CIDR range (repeatable).
        #[arg(long)]
        ip: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long)]
        lifetime: Option<u64>,
    },
    /// Decode a token and verify it with the same core as the middleware.
    Inspect {
        /// The token.
        token: String,
        /// JWKS to verify with: an http(s) URL or a file. Without it the
        /// token is only decoded, and the exit code is 2.
        #[arg(long)]
        jwks: Option<String>,
        /// Expected issuer (default: the token's own `iss`).
        #[arg(long)]
        iss: Option<String>,
        /// Expected audience (default: the token's own `aud`).
        #[arg(long)]
        aud: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}
