//! `tollgate`: a token server with a metered demo API, and the tools around
//! it (keys, clients, token mint and inspect).
//!
//! Exit codes: 0 success (a valid token for `token inspect`), 1 failure (an
//! invalid token), 2 usage or configuration error (`token inspect` without a
//! key source: the token is decoded but cannot be verified), 3 keys or
//! server unavailable (`token inspect`: the token was not judged).

#![forbid(unsafe_code)]

mod args;
mod clients;
mod config;
mod keys;
mod ops;
mod output;
mod serve;
mod sqlite;
mod tls;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tollgate_core::policy::MemoryStore;
use tollgate_issuer::{Client, KeyRing, MintRequest, Settings, TokenServer, write_private};

use crate::args::{Cli, Command, Common, TokenCommand};
use crate::clients::clients;
use crate::config::Config;
use crate::keys::keys;
use crate::token::inspect;

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
    // Colour only for a person at a terminal, never into a file or a pipe.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
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

pub(crate) enum Failure {
    Usage(String),
    Runtime(String),
}

pub(crate) fn runtime<E: std::fmt::Display>(e: E) -> Failure {
    Failure::Runtime(e.to_string())
}

/// The configuration file a command reads when none is named: this one,
/// in the working directory, if it exists.
pub(crate) const LOCAL_CONFIG: &str = "tollgate.toml";

/// The configuration: `--config` (or `TOLLGATE_CONFIG`), else
/// `./tollgate.toml` if present, else embedded defaults. The data directory
/// is `--data-dir` (or `TOLLGATE_DATA_DIR`), else the file's `data_dir`
/// (relative to the file), else `./tollgate-data`; where it came from is
/// kept for messages.
pub(crate) fn load(common: &Common) -> Result<Config, Failure> {
    let local = PathBuf::from(LOCAL_CONFIG);
    let file = match &common.config {
        Some(path) => Some(path.clone()),
        None if local.is_file() => Some(local),
        None => None,
    };
    let mut config = match &file {
        Some(path) => {
            let mut config = Config::load(path).map_err(|e| Failure::Usage(e.0))?;
            config.data_dir_origin = if config.data_dir == Config::default().data_dir {
                format!("the default `tollgate-data` beside {}", path.display())
            } else {
                format!("`data_dir` of {}", path.display())
            };
            if config.data_dir.is_relative()
                && let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty())
            {
                config.data_dir = base.join(&config.data_dir);
            }
            config
        }
        None => Config::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
        config.data_dir_origin =
            if std::env::var_os(DATA_DIR_ENV).as_deref() == Some(dir.as_os_str()) {
                DATA_DIR_ENV.to_owned()
            } else {
                "--data-dir".to_owned()
            };
    }
    Ok(config)
}

/// The environment variable naming the data directory.
pub(crate) const DATA_DIR_ENV: &str = "TOLLGATE_DATA_DIR";
/// The environment variable naming the configuration file.
pub(crate) const CONFIG_ENV: &str = "TOLLGATE_CONFIG";

/// The configuration of a command that reads or changes an existing data
/// directory and must never create one: without it, a usage error names
/// the directory looked in, how it was chosen, and how to choose another.
pub(crate) fn load_existing(common: &Common) -> Result<Config, Failure> {
    let config = load(common)?;
    if !config.data_dir.is_dir() {
        return Err(no_data_dir(&config));
    }
    Ok(config)
}

fn no_data_dir(config: &Config) -> Failure {
    let shown = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    Failure::Usage(format!(
        "no data directory at {} (from {}); `tollgate serve` creates it on first start, \
         `tollgate keys generate` creates it with a key ring; to use another one, pass \
         --data-dir, set {DATA_DIR_ENV}, or set `data_dir` in {LOCAL_CONFIG} (or the file \
         named by --config or {CONFIG_ENV})",
        shown.display(),
        config.data_dir_origin
    ))
}

/// Creates the key ring if there is none (`serve`, `keys generate`).
pub(crate) fn open_ring(config: &Config) -> Result<KeyRing, Failure> {
    let alg = config.algorithm().map_err(Failure::Usage)?;
    tollgate_issuer::create_private_dir(&config.data_dir).map_err(runtime)?;
    KeyRing::open(&config.data_dir.join("keys"), alg).map_err(runtime)
}

/// Reads the existing key ring; never creates or changes one.
pub(crate) fn existing_ring(config: &Config) -> Result<KeyRing, Failure> {
    let alg = config.algorithm().map_err(Failure::Usage)?;
    let keys = config.data_dir.join("keys");
    if !keys.is_dir() {
        if !config.data_dir.is_dir() {
            return Err(no_data_dir(config));
        }
        return Err(Failure::Usage(format!(
            "no key ring in {} (from {}); create one with `tollgate keys generate` \
             or by starting `tollgate serve`",
            keys.display(),
            config.data_dir_origin
        )));
    }
    KeyRing::load(&keys, alg).map_err(runtime)
}

pub(crate) fn clients_file(config: &Config) -> PathBuf {
    config.data_dir.join("clients.json")
}

/// Clients stored in the data directory.
pub(crate) fn read_clients(config: &Config) -> Result<Vec<Client>, Failure> {
    let path = clients_file(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Failure::Runtime(format!("{}: {e}", path.display()))),
    }
}

pub(crate) fn write_clients(config: &Config, clients: &[Client]) -> Result<(), Failure> {
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
            if let Some(listen) = args.metrics_listen {
                config.metrics.listen = Some(listen);
            }
            // Checked before the data directory is touched, so no HS256
            // key is generated for a server that cannot use it.
            if config.algorithm().map_err(Failure::Usage)? == tollgate_core::Algorithm::HS256 {
                let file = match &args.common.config {
                    Some(p) => p.display().to_string(),
                    None if std::path::Path::new(LOCAL_CONFIG).is_file() => LOCAL_CONFIG.to_owned(),
                    None => "configuration".to_owned(),
                };
                return Err(serve::hs256_refused(&format!("{file}: `keys.algorithm`")));
            }
            let rt = tokio::runtime::Runtime::new().map_err(runtime)?;
            rt.block_on(serve::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(cmd) => keys(cmd),
        Command::Clients(cmd) => clients(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tollgate", &mut script);
            output::line(format_args!(
                "{}",
                String::from_utf8_lossy(&script).trim_end()
            ));
            Ok(ExitCode::SUCCESS)
        }
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
            let config = load_existing(&common)?;
            let ring = existing_ring(&config)?;
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
                grant: None,
            };
            let minted = server
                .mint(&c, &req)
                .map_err(|e| Failure::Usage(format!("{}: {}", e.code, e.description)))?;
            output::line(format_args!("{}", minted.token));
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Inspect {
            token,
            jwks,
            local,
            common,
            introspect,
            client,
            iss,
            aud,
            json,
        }) => {
            let source = match (jwks, local) {
                (Some(url_or_file), _) => Some(token::KeySource::Jwks(url_or_file)),
                (None, true) => Some(token::KeySource::Local(existing_ring(&load_existing(
                    &common,
                )?)?)),
                (None, false) => None,
            };
            let server = introspect.map(|url| token::Introspect {
                url,
                client: client.unwrap_or_default(),
            });
            inspect(&token, source, server, iss, aud, json)
        }
    }
}
