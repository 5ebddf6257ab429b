//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "JWT bearer tokens: issue, meter in credits, revoke.",
    after_help = "Environment:
  TOLLGATE_CONFIG         configuration file (default: ./tollgate.toml if present)
  TOLLGATE_DATA_DIR       data directory (default: data_dir of the file, else ./tollgate-data)
  TOLLGATE_LOG            log filter: error, warn, info (default), debug, or per target
                          (tollgate_core=debug,info)
  TOLLGATE_CLIENT_SECRET  the client secret of `token inspect --introspect`
  NO_COLOR                no colour in logs (never coloured when stderr is not a terminal)

Exit codes: 0 success; 1 failure (an invalid token for `token inspect`); 2 usage or
configuration error; 3 keys or server unavailable (`token inspect`)."
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
    /// Print a shell completion script (`tollgate completions bash >
    /// ~/.local/share/bash-completion/completions/tollgate`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Configuration file (TOML); every key has a default. Without it,
    /// `./tollgate.toml` is read if present.
    #[arg(long, short, env = "TOLLGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (keys, clients, database); overrides the file's
    /// `data_dir` (default `./tollgate-data`, relative to the file when set
    /// there). Only `serve` and `keys generate` create it.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Listen address (`127.0.0.1:8080`, `[::]:8080`), or a bare port for
    /// 127.0.0.1; overrides the file.
    ///
    /// Without `issuer` in the configuration file the issuer URL is
    /// `http://<listen>`, so tokens minted while listening elsewhere stop
    /// validating; set `issuer` to keep them.
    #[arg(long, value_parser = parse_listen)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address or port,
    /// a listener of its own; overrides `metrics.listen` in the file.
    #[arg(long, value_parser = parse_listen)]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
}

/// `HOST:PORT`, or a bare port on 127.0.0.1.
pub(crate) fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is neither HOST:PORT (127.0.0.1:8080, [::1]:8080) nor a port number")
    })
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
    List {
        #[command(flatten)]
        common: Common,
        /// One JSON object per key (kid, alg, state, created, retire_at).
        #[arg(long)]
        json: bool,
    },
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
        /// Access token lifetime in seconds (at least 1).
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        lifetime: u64,
        /// Most credits a restricted token may carry.
        #[arg(long, default_value_t = 1000)]
        max_credits: u64,
        /// Longest life, in seconds, of a refresh-token family its
        /// restricted tokens may start (`refresh=true` at /connect/jwt);
        /// 0: no refresh tokens.
        #[arg(long, default_value_t = 0)]
        refresh_lifetime: u64,
    },
    /// List clients (never secrets).
    List {
        #[command(flatten)]
        common: Common,
        /// One JSON object per client (the stored fields but the hash).
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret for a client, printed once; the old one stops
    /// working when the server reloads (SIGHUP) or restarts.
    Secret {
        #[command(flatten)]
        common: Common,
        /// The client id.
        id: String,
        /// Print the secret alone (for `export SECRET=$(...)`).
        #[arg(long)]
        secret_only: bool,
    },
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
    ///
    /// Checks the signature, `exp`/`nbf`/`iat` (60 s leeway), `iss` and
    /// `aud`. Revocation and credits live in the store: they are checked
    /// only with `--introspect` (the token server's answer).
    ///
    /// Exit codes: 0 valid; 1 invalid (or inactive at the server); 2 usage
    /// error, or decoded but not verified (no --jwks, --local or
    /// --introspect); 3 keys or server unavailable (the token was not
    /// judged).
    Inspect {
        /// The token, or `-` to read it from standard input (keeps it out
        /// of the shell history). A leading `Bearer ` is ignored.
        token: String,
        /// JWKS to verify with: an http(s) URL or a file.
        #[arg(long, conflicts_with = "local")]
        jwks: Option<String>,
        /// Verify with the data directory's keys (see --data-dir).
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        common: Common,
        /// Ask the token server too (RFC 7662 introspection at
        /// URL/connect/introspect): revoked, spent, credits left. Needs
        /// --client and the secret in TOLLGATE_CLIENT_SECRET.
        #[arg(long, value_name = "URL", requires = "client")]
        introspect: Option<String>,
        /// The client that introspects (its own tokens, or any with
        /// `introspect_any`).
        #[arg(long)]
        client: Option<String>,
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
