//! `tollgate clients`: list, add, remove.

use std::process::ExitCode;

use crate::Failure;
use crate::args::ClientsCommand;
use tollgate_issuer::Client;

use crate::config::Config;
use crate::output::{outln, reload_hint};
use crate::{load_existing, read_clients, runtime, write_clients};

pub(crate) fn clients(cmd: ClientsCommand) -> Result<ExitCode, Failure> {
    match cmd {
        ClientsCommand::Add {
            common,
            id,
            audiences,
            scopes,
            lifetime,
            max_credits,
            refresh_lifetime,
        } => {
            tollgate_issuer::check_client_id(&id).map_err(Failure::Usage)?;
            if let Some(a) = audiences.iter().find(|a| a.trim().is_empty()) {
                return Err(Failure::Usage(format!("audience `{a}` is empty")));
            }
            let config = load_existing(&common)?;
            let mut all = read_clients(&config)?;
            if all.iter().chain(&config.clients).any(|c| c.id == id) {
                return Err(Failure::Usage(format!("client `{id}` exists")));
            }
            let (mut client, secret) = Client::generate(id.clone(), audiences, scopes);
            client.token_lifetime = lifetime;
            client.max_credits = max_credits;
            client.refresh_lifetime = refresh_lifetime;
            all.push(client);
            write_clients(&config, &all)?;
            outln!("client_id:     {id}");
            outln!("client_secret: {secret}");
            outln!("(the secret is shown once; only its hash is stored)");
            eprintln!("note: {}", reload_hint(&config));
        }
        ClientsCommand::List { common, json } => {
            let config = load_existing(&common)?;
            let mut all = read_clients(&config)?;
            all.extend(config.clients.clone());
            for c in all {
                if json {
                    let mut v = serde_json::to_value(&c).map_err(runtime)?;
                    if let Some(o) = v.as_object_mut() {
                        o.remove("secret_hash");
                    }
                    outln!("{v}");
                    continue;
                }
                outln!(
                    "{}\taudiences={}\tscopes={}\tlifetime={}s\tmax_credits={}",
                    c.id,
                    c.audiences.join(","),
                    c.scopes.join(","),
                    c.token_lifetime,
                    c.max_credits
                );
            }
        }
        ClientsCommand::Secret {
            common,
            id,
            secret_only,
        } => {
            let config = load_existing(&common)?;
            let mut all = read_clients(&config)?;
            let Some(client) = all.iter_mut().find(|c| c.id == id) else {
                return Err(Failure::Usage(
                    if config.clients.iter().any(|c| c.id == id) {
                        format!(
                            "client `{id}` is defined in the configuration file; \
                             set its `secret_hash` there"
                        )
                    } else {
                        format!("no client `{id}` in {}", config.data_dir.display())
                    },
                ));
            };
            let secret = tollgate_issuer::new_secret();
            client.secret_hash = tollgate_issuer::hash_secret(&secret);
            write_clients(&config, &all)?;
            if secret_only {
                outln!("{secret}");
            } else {
                outln!("client_id:     {id}");
                outln!("client_secret: {secret}");
                outln!("(the secret is shown once; only its hash is stored)");
            }
            eprintln!(
                "note: the old secret works until then; {}",
                reload_hint(&config)
            );
        }
        ClientsCommand::Remove { common, id } => {
            let config = load_existing(&common)?;
            let mut all = read_clients(&config)?;
            let before = all.len();
            all.retain(|c| c.id != id);
            if all.len() == before {
                return Err(Failure::Usage(format!(
                    "no client `{id}` in {}",
                    config.data_dir.display()
                )));
            }
            write_clients(&config, &all)?;
            queue_client_revocation(&config, &id)?;
            outln!("removed {id}; its tokens are revoked when the server reloads");
            eprintln!("note: {}", reload_hint(&config));
        }
        ClientsCommand::RevokeTokens { common, id } => {
            let config = load_existing(&common)?;
            queue_client_revocation(&config, &id)?;
            outln!("every token of {id} is revoked when the server reloads");
            eprintln!("note: {}", reload_hint(&config));
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
