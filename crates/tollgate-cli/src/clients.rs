//! `tollgate clients`: list, add, remove.

use std::process::ExitCode;

use crate::Failure;
use crate::args::ClientsCommand;
use tollgate_issuer::Client;

use crate::config::Config;
use crate::{load, read_clients, runtime, write_clients};

pub(crate) fn clients(cmd: ClientsCommand) -> Result<ExitCode, Failure> {
    match cmd {
        ClientsCommand::Add {
            common,
            id,
            audiences,
            scopes,
            lifetime,
            max_credits,
        } => {
            tollgate_issuer::check_client_id(&id).map_err(Failure::Usage)?;
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
            queue_client_revocation(&config, &id)?;
            println!("removed {id}; its tokens are revoked when the server reloads (SIGHUP)");
        }
        ClientsCommand::RevokeTokens { common, id } => {
            let config = load(&common)?;
            queue_client_revocation(&config, &id)?;
            println!("every token of {id} is revoked when the server reloads (SIGHUP)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The clients whose tokens the server is to revoke at its next reload or
/// start, one id per line in the data directory. The server applies them
/// through its own store (a SQLite store belongs to one process).
pub(crate) fn pending_file(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("revoke-clients.txt")
}

fn queue_client_revocation(config: &Config, id: &str) -> Result<(), Failure> {
    let path = pending_file(config);
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Failure::Runtime(format!("{}: {e}", path.display()))),
    };
    if !text.lines().any(|l| l == id) {
        text.push_str(id);
        text.push('\n');
    }
    tollgate_issuer::create_private_dir(&config.data_dir).map_err(runtime)?;
    tollgate_issuer::write_private(&path, text.as_bytes()).map_err(runtime)
}

/// Applies the queued client revocations through the server's store, and
/// empties the queue once every one is written (a store that cannot be
/// reached keeps them for the next reload).
pub(crate) async fn apply_client_revocations(
    config: &Config,
    server: &tollgate_issuer::TokenServer,
) {
    let path = pending_file(config);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let mut failed = false;
    for id in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match server.revoke_client_tokens(id).await {
            Ok(()) => tracing::info!(client = %id, "every token of the client revoked"),
            Err(e) => {
                tracing::error!(client = %id, error = %e, "client tokens not revoked; kept for the next reload");
                failed = true;
            }
        }
    }
    if !failed {
        let _ = std::fs::remove_file(&path);
    }
}
