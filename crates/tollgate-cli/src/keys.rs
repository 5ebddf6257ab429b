//! `tollgate keys`: generate, rotate, withdraw, list, jwks.

use std::process::ExitCode;

use serde_json::json;
use tollgate_issuer::{KeyRing, KeyState};

use crate::Failure;
use crate::args::KeysCommand;
use crate::config::Config;
use crate::output::{date, outln, reload_hint};
use crate::{existing_ring, load, load_existing, open_ring, read_clients, runtime};

pub(crate) fn keys(cmd: KeysCommand) -> Result<ExitCode, Failure> {
    match cmd {
        KeysCommand::Generate(common) => {
            // The one `keys` command that creates: the directory and a ring.
            let config = load(&common)?;
            let ring = open_ring(&config)?;
            print_keys(&ring, false);
        }
        KeysCommand::Rotate(common) => {
            let config = load_existing(&common)?;
            let mut ring = existing_ring(&config)?;
            let mut all = read_clients(&config)?;
            all.extend(config.clients.clone());
            let longest = all
                .iter()
                .map(|c| c.token_lifetime.max(c.max_restricted_lifetime))
                .max()
                .unwrap_or(3600);
            ring.rotate(i64::try_from(longest).unwrap_or(i64::MAX))
                .map_err(runtime)?;
            print_keys(&ring, false);
            remind(&config);
        }
        KeysCommand::Withdraw { common, kid } => {
            let config = load_existing(&common)?;
            let mut ring = existing_ring(&config)?;
            ring.withdraw(&kid)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            outln!("withdrew {kid}");
            print_keys(&ring, false);
            remind(&config);
        }
        KeysCommand::List { common, json } => {
            let ring = existing_ring(&load_existing(&common)?)?;
            print_keys(&ring, json);
        }
        KeysCommand::Jwks(common) => {
            let ring = existing_ring(&load_existing(&common)?)?;
            outln!("{}", ring.jwks());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// On standard error, so the printed keys stay machine-readable.
fn remind(config: &Config) {
    eprintln!("note: {}", reload_hint(config));
}

/// One line per key (`kid alg state created`), or one JSON object each.
pub(crate) fn print_keys(ring: &KeyRing, as_json: bool) {
    for k in ring.keys() {
        let state = match k.state() {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
        };
        if as_json {
            outln!(
                "{}",
                json!({
                    "kid": k.kid(),
                    "alg": k.algorithm().as_str(),
                    "state": state,
                    "created": date(k.created()),
                    "retire_at": k.retire_at().map(date),
                })
            );
            continue;
        }
        let until = k
            .retire_at()
            .map(|t| format!(" until {}", date(t)))
            .unwrap_or_default();
        outln!(
            "{}\t{}\t{state}{until}\tcreated {}",
            k.kid(),
            k.algorithm().as_str(),
            date(k.created())
        );
    }
}
