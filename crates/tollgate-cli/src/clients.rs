//! `tollgate clients`: list, add, remove.

use std::process::ExitCode;

use crate::Failure;
use crate::args::ClientsCommand;
use tollgate_issuer::Client;

use crate::{load, read_clients, write_clients};

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
