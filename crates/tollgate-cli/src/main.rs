//! `tollgate`: a token server with a metered demo API, and the tools around
//! it (keys, clients, token mint and inspect).
//!
//! Exit codes: 0 success (a valid token for `token inspect`), 1 failure (an
//! invalid token), 2 usage or configuration error (`token inspect` without
//! `--jwks`: the token is decoded but cannot be verified).

#![forbid(unsafe_code)]

mod args;
mod clients;
mod config;
mod keys;
mod serve;
mod sqlite;
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

pub(crate) enum Failure {
    Usage(String),
    Runtime(String),
}

pub(crate) fn runtime<E: std::fmt::Display>(e: E) -> Failure {
    Failure::Runtime(e.to_string())
}

/// The configuration: the file if given, else embedded defaults; the data
/// directory flag wins over the file.
pub(crate) fn load(common: &Common) -> Result<Config, Failure> {
    let mut config = match &common.config {
        Some(path) => Config::load(path).map_err(|e| Failure::Usage(e.0))?,
        None => Config::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

pub(crate) fn open_ring(config: &Config) -> Result<KeyRing, Failure> {
    let alg = config.algorithm().map_err(Failure::Usage)?;
    tollgate_issuer::create_private_dir(&config.data_dir).map_err(runtime)?;
    KeyRing::open(&config.data_dir.join("keys"), alg).map_err(runtime)
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
