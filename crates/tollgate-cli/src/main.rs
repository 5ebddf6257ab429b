//! `tollgate`: a token server with a metered demo API, and the tools around
//! it (keys, clients, token mint and inspect).
//!
//! Exit codes: 0 success (a valid token for `token inspect`), 1 failure (an
//! invalid token), 2 usage or configuration error (`token inspect` without
//! `--jwks`: the token is decoded but cannot be verified).

#![forbid(unsafe_code)]

mod config;
mod serve;
mod sqlite;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tollgate_core::policy::MemoryStore;
use tollgate_core::{Authenticator, KeySet, TrustedIssuer};
use tollgate_issuer::{Client, KeyRing, MintRequest, Settings, TokenServer, write_private};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "JWT bearer tokens: issue, meter in credits, revoke."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
struct Common {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory (keys, clients, database); overrides the file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Listen address; overrides the file.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the key ring (an active and a next key) if there is none.
    Generate(Common),
    /// Rotate: the next key starts signing, the active one retires.
    ///
    /// This rewrites the key files; a running `tollgate serve` uses the new
    /// ring after a SIGHUP (`kill -HUP <pid>`).
    Rotate(Common),
    /// List keys with their state.
    List(Common),
    /// Print the public JWKS.
    Jwks(Common),
}

#[derive(Subcommand)]
enum ClientsCommand {
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
    /// Remove a client.
    Remove {
        #[command(flatten)]
        common: Common,
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn runtime<E: std::fmt::Display>(e: E) -> Failure {
    Failure::Runtime(e.to_string())
}

/// The configuration: the file if given, else embedded defaults; the data
/// directory flag wins over the file.
fn load(common: &Common) -> Result<Config, Failure> {
    let mut config = match &common.config {
        Some(path) => Config::load(path).map_err(|e| Failure::Usage(e.0))?,
        None => Config::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn open_ring(config: &Config) -> Result<KeyRing, Failure> {
    let alg = config.algorithm().map_err(Failure::Usage)?;
    tollgate_issuer::create_private_dir(&config.data_dir).map_err(runtime)?;
    KeyRing::open(&config.data_dir.join("keys"), alg).map_err(runtime)
}

fn clients_file(config: &Config) -> PathBuf {
    config.data_dir.join("clients.json")
}

/// Clients stored in the data directory.
fn read_clients(config: &Config) -> Result<Vec<Client>, Failure> {
    let path = clients_file(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Failure::Runtime(format!("{}: {e}", path.display()))),
    }
}

fn write_clients(config: &Config, clients: &[Client]) -> Result<(), Failure> {
    tollgate_issuer::create_private_dir(&config.data_dir).map_err(runtime)?;
    let text = serde_json::to_string_pretty(clients).map_err(runtime)?;
    write_private(&clients_file(config), text.as_bytes()).map_err(runtime)
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Serve(args) => {
            let mut config = load(&args.common)?;
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            // Checked before the data directory is touched, so no HS256
            // key is generated for a server that cannot use it.
            if config.algorithm().map_err(Failure::Usage)? == tollgate_core::Algorithm::HS256 {
                let file = args
                    .common
                    .config
                    .as_ref()
                    .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
                return Err(serve::hs256_refused(&format!("{file}: `keys.algorithm`")));
            }
            let rt = tokio::runtime::Runtime::new().map_err(runtime)?;
            rt.block_on(serve::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(cmd) => keys(cmd),
        Command::Clients(cmd) => clients(cmd),
        Command::Token(TokenCommand::Mint {
            common,
            client,
            sub,
            aud,
            scopes,
            credits,
            ip,
            lifetime,
        }) => {
            let config = load(&common)?;
            let ring = open_ring(&config)?;
            let mut all = read_clients(&config)?;
            all.extend(config.clients.clone());
            let Some(c) = all.iter().find(|c| c.id == client).cloned() else {
                return Err(Failure::Usage(format!("no client `{client}`")));
            };
            let server = TokenServer::new(
                Settings::new(config.issuer_url()),
                ring,
                all,
                Arc::new(MemoryStore::new()),
            )
            .map_err(runtime)?;
            let req = MintRequest {
                scopes: Some(scopes),
                audience: aud,
                lifetime,
                subject: sub,
                credits,
                ip: (!ip.is_empty()).then_some(ip),
                restricted: credits.is_some(),
            };
            let minted = server
                .mint(&c, &req)
                .map_err(|e| Failure::Usage(format!("{}: {}", e.code, e.description)))?;
            println!("{}", minted.token);
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Inspect {
            token,
            jwks,
            iss,
            aud,
            json,
        }) => inspect(&token, jwks.as_deref(), iss, aud, json),
    }
}

fn keys(cmd: KeysCommand) -> Result<ExitCode, Failure> {
    match cmd {
        KeysCommand::Generate(common) => {
            let ring = open_ring(&load(&common)?)?;
            print_keys(&ring);
        }
        KeysCommand::Rotate(common) => {
            let config = load(&common)?;
            let mut ring = open_ring(&config)?;
            let mut all = read_clients(&config)?;
            all.extend(config.clients.clone());
            let longest = all
                .iter()
                .map(|c| c.token_lifetime.max(c.max_restricted_lifetime))
                .max()
                .unwrap_or(3600);
            ring.rotate(i64::try_from(longest).unwrap_or(i64::MAX))
                .map_err(runtime)?;
            print_keys(&ring);
        }
        KeysCommand::List(common) => {
            let ring = open_ring(&load(&common)?)?;
            print_keys(&ring);
        }
        KeysCommand::Jwks(common) => {
            let ring = open_ring(&load(&common)?)?;
            println!("{}", ring.jwks());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_keys(ring: &KeyRing) {
    for k in ring.keys() {
        let state = match k.state() {
            tollgate_issuer::KeyState::Next => "next".to_owned(),
            tollgate_issuer::KeyState::Active => "active".to_owned(),
            tollgate_issuer::KeyState::Retiring => {
                format!("retiring until {}", k.retire_at().unwrap_or(0))
            }
        };
        println!("{}\t{}\t{}", k.kid(), k.algorithm().as_str(), state);
    }
}

fn clients(cmd: ClientsCommand) -> Result<ExitCode, Failure> {
    match cmd {
        ClientsCommand::Add {
            common,
            id,
            audiences,
            scopes,
            lifetime,
            max_credits,
        } => {
            let config = load(&common)?;
            let mut all = read_clients(&config)?;
            if all.iter().any(|c| c.id == id) {
                return Err(Failure::Usage(format!("client `{id}` exists")));
            }
            let (mut client, secret) = Client::generate(id.clone(), audiences, scopes);
            client.token_lifetime = lifetime;
            client.max_credits = max_credits;
            all.push(client);
            write_clients(&config, &all)?;
            println!("client_id:     {id}");
            println!("client_secret: {secret}");
            println!("(the secret is shown once; only its hash is stored)");
        }
        ClientsCommand::List(common) => {
            let config = load(&common)?;
            let mut all = read_clients(&config)?;
            all.extend(config.clients.clone());
            for c in all {
                println!(
                    "{}\taudiences={}\tscopes={}\tlifetime={}s\tmax_credits={}",
                    c.id,
                    c.audiences.join(","),
                    c.scopes.join(","),
                    c.token_lifetime,
                    c.max_credits
                );
            }
        }
        ClientsCommand::Remove { common, id } => {
            let config = load(&common)?;
            let mut all = read_clients(&config)?;
            let before = all.len();
            all.retain(|c| c.id != id);
            if all.len() == before {
                return Err(Failure::Usage(format!(
                    "no client `{id}` in the data directory"
                )));
            }
            write_clients(&config, &all)?;
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn inspect(
    token: &str,
    jwks: Option<&str>,
    iss: Option<String>,
    aud: Option<String>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let (header, payload) = match parts.as_slice() {
        [h, p, _] => (decode_part(h), decode_part(p)),
        _ => (None, None),
    };
    let (Some(header), Some(payload)) = (header, payload) else {
        report(
            as_json,
            &json!({"valid": false, "error": "malformed_token",
            "detail": "not a compact JWS with JSON header and payload"}),
        );
        return Ok(ExitCode::from(1));
    };
    let Some(jwks) = jwks else {
        // Decoding alone says nothing about validity: shown, but a usage
        // error, not a verdict.
        report(
            as_json,
            &json!({"valid": null, "verified": false, "header": header, "claims": payload,
                "detail": "not verified: give --jwks URL|FILE"}),
        );
        return Err(Failure::Usage(
            "the token was decoded but not verified: give --jwks URL|FILE \
             (the issuer's JWKS) to verify it"
                .into(),
        ));
    };
    let iss = iss
        .or_else(|| payload["iss"].as_str().map(str::to_owned))
        .ok_or_else(|| Failure::Usage("the token has no `iss`; give --iss".into()))?;
    let aud = aud
        .or_else(|| match &payload["aud"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        })
        .ok_or_else(|| Failure::Usage("the token has no `aud`; give --aud".into()))?;
    let mut issuer = TrustedIssuer::new(iss).audience(aud);
    if jwks.starts_with("http://") || jwks.starts_with("https://") {
        issuer = issuer.jwks_url(jwks);
    } else {
        let bytes =
            std::fs::read(Path::new(jwks)).map_err(|e| Failure::Usage(format!("{jwks}: {e}")))?;
        let (set, _) =
            KeySet::from_jwks(&bytes).map_err(|e| Failure::Usage(format!("{jwks}: {e}")))?;
        issuer = issuer.keys(set);
    }
    let auth: Authenticator = Authenticator::builder()
        .issuer(issuer)
        .without_cache()
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(runtime)?;
    let verdict = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            auth.verify(token.trim()),
        )
        .await
    });
    let (valid, error) = match verdict {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e)),
        Err(_) => (false, Some(tollgate_core::Error::KeysUnavailable)),
    };
    let mut out = json!({"valid": valid, "verified": true, "header": header, "claims": payload});
    if let Some(e) = &error {
        out["error"] = json!(e.code());
        out["detail"] = json!(e.to_string());
    }
    report(as_json, &out);
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(as_json: bool, v: &Value) {
    if as_json {
        println!("{v}");
        return;
    }
    match v["valid"].as_bool() {
        Some(true) => println!("valid"),
        Some(false) => println!(
            "INVALID: {} ({})",
            v["detail"].as_str().unwrap_or("?"),
            v["error"].as_str().unwrap_or("?")
        ),
        None => println!("{}", v["detail"].as_str().unwrap_or("")),
    }
    if !v["header"].is_null() {
        println!("header: {}", v["header"]);
    }
    if let Some(claims) = v["claims"].as_object() {
        println!("claims:");
        for (k, val) in claims {
            let human = match (k.as_str(), val.as_i64()) {
                ("exp" | "iat" | "nbf", Some(t)) => format!("{val}  ({})", ago(t)),
                _ => val.to_string(),
            };
            println!("  {k}: {human}");
        }
    }
}

fn ago(t: i64) -> String {
    let now = tollgate_core::Clock::now_secs(&tollgate_core::SystemClock);
    let d = t - now;
    if d >= 0 {
        format!("in {d} s")
    } else {
        format!("{} s ago", -d)
    }
}
