//! The TOML configuration of `tollgate serve`: the CLI's own parser and
//! checks (its module, compiled in), on any text. A configuration it takes
//! must hold what `serve` relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/tollgate-cli/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = config::Config::parse(text, "fuzz.toml") else {
        return;
    };
    assert!(config.algorithm().is_ok());
    assert!(matches!(
        config.store.kind.as_str(),
        "sqlite" | "memory" | "redis" | "redis-cluster"
    ));
    assert!(config.store.kind != "redis" || config.store.url.is_some());
    assert!(
        config.store.kind != "redis-cluster"
            || config
                .store
                .nodes
                .as_ref()
                .is_some_and(|n| !n.is_empty() && n.iter().all(|u| u.starts_with("redis"))),
    );
    let issuer = config.issuer_url();
    assert!(issuer.starts_with("http://") || issuer.starts_with("https://"));
    for c in &config.clients {
        assert!(tollgate_issuer::check_client_id(&c.id).is_ok());
        assert!(tollgate_issuer::is_valid_hash(&c.secret_hash));
        assert!(!c.audiences.is_empty());
    }
});
