//! `tollgate keys`: list, generate, rotate.

use std::process::ExitCode;

use crate::Failure;
use crate::args::KeysCommand;
use tollgate_issuer::KeyRing;

use crate::{load, open_ring, read_clients, runtime};

pub(crate) fn keys(cmd: KeysCommand) -> Result<ExitCode, Failure> {
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
        KeysCommand::Withdraw { common, kid } => {
            let mut ring = open_ring(&load(&common)?)?;
            ring.withdraw(&kid)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            println!("withdrew {kid}; send SIGHUP to a running server to apply it");
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

pub(crate) fn print_keys(ring: &KeyRing) {
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
