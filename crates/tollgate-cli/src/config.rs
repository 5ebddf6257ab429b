//! The TOML configuration of `tollgate serve`, with embedded defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tollgate_core::Algorithm;
use tollgate_issuer::{Client, check_client_id, is_valid_hash};

/// The whole file. Every section and key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `iss` and the base URL of the endpoints (default: `http://` + listen).
    pub issuer: Option<String>,
    /// Keys, clients and the SQLite database live here.
    pub data_dir: PathBuf,
    /// Signing keys.
    pub keys: KeysConfig,
    /// Where credits and revocations live.
    pub store: StoreConfig,
    /// Clients from the file (in addition to those in the data directory).
    pub clients: Vec<Client>,
    /// The metered demo API.
    pub demo: DemoConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// HTTPS.
    pub tls: TlsConfig,
    /// Where `data_dir` came from, for messages (not read from the file).
    #[serde(skip)]
    pub data_dir_origin: String,
}

/// `[keys]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct KeysConfig {
    /// `ES256` (default), `RS256`, `PS256`, `EdDSA`, or `HS256` (local only).
    pub algorithm: String,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// `sqlite` (default), `redis`, `redis-cluster` or `memory`.
    pub kind: String,
    /// Redis URL (`kind = "redis"`).
    pub url: Option<String>,
    /// Redis Cluster nodes to start from (`kind = "redis-cluster"`).
    pub nodes: Option<Vec<String>>,
    /// Redis key prefix.
    pub prefix: Option<String>,
    /// SQLite file (default `<data_dir>/tollgate.db`).
    pub path: Option<PathBuf>,
}

/// `[demo]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DemoConfig {
    /// Serve `/demo/hello` behind the Tollgate layer.
    pub enabled: bool,
    /// Credits per demo request.
    pub cost: u64,
}

/// `[tls]`: a certificate and key, a generated development certificate,
/// or a TLS-terminating proxy in front.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsConfig {
    /// Certificate chain, PEM (leaf first).
    pub cert: Option<PathBuf>,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Generate (once, kept in `<data_dir>/tls/`) a development CA and a
    /// certificate for the listen address, `localhost` and 127.0.0.1.
    pub self_signed: bool,
    /// Plain HTTP behind a proxy that terminates TLS: allowed on any
    /// address; `issuer` must then be the proxy's `https` URL.
    pub proxy: bool,
}

impl TlsConfig {
    /// `serve` speaks TLS itself.
    pub(crate) fn enabled(&self) -> bool {
        self.self_signed || self.cert.is_some()
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// Serve `GET /metrics` (Prometheus text format) on this address, a
    /// listener of its own; off when unset.
    pub listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            data_dir: PathBuf::from("tollgate-data"),
            keys: KeysConfig::default(),
            store: StoreConfig::default(),
            clients: Vec::new(),
            demo: DemoConfig::default(),
            metrics: MetricsConfig::default(),
            tls: TlsConfig::default(),
            data_dir_origin: "the default, ./tollgate-data".to_owned(),
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            algorithm: "ES256".into(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: "sqlite".into(),
            url: None,
            nodes: None,
            prefix: None,
            path: None,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: true,
            cost: 1,
        }
    }
}

/// A configuration error naming the file, the key and the reason.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Reads and checks `path`.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the text of a configuration file named `file`.
    pub(crate) fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        // toml's own layout: the line, a caret under the value, the reason.
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError(format!("{file}: {}", e.to_string().trim_end())))?;
        config.check(file)?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub(crate) fn check(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, reason: String| ConfigError(format!("{file}: `{key}`: {reason}"));
        self.algorithm()
            .map_err(|reason| err("keys.algorithm", reason))?;
        match self.store.kind.as_str() {
            "sqlite" | "memory" => {}
            "redis" if self.store.url.is_some() => {}
            "redis" => {
                return Err(err(
                    "store.url",
                    "required when store.kind is \"redis\"".into(),
                ));
            }
            "redis-cluster" => match &self.store.nodes {
                Some(nodes)
                    if !nodes.is_empty()
                        && nodes
                            .iter()
                            .all(|n| n.starts_with("redis://") || n.starts_with("rediss://")) => {}
                _ => {
                    return Err(err(
                        "store.nodes",
                        "required when store.kind is \"redis-cluster\": a list of redis:// URLs of cluster nodes".into(),
                    ));
                }
            },
            other => {
                return Err(err(
                    "store.kind",
                    format!("`{other}` is not one of sqlite, redis, redis-cluster, memory"),
                ));
            }
        }
        if let Some(iss) = &self.issuer
            && !(iss.starts_with("http://") || iss.starts_with("https://"))
        {
            return Err(err("issuer", "must be an http(s) URL".into()));
        }
        let tls = &self.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(err("tls.cert", "`cert` and `key` go together".into()));
        }
        if tls.self_signed && tls.cert.is_some() {
            return Err(err(
                "tls.self_signed",
                "give `cert` and `key`, or `self_signed`, not both".into(),
            ));
        }
        if tls.proxy && tls.enabled() {
            return Err(err(
                "tls.proxy",
                "a proxy terminates TLS: no `cert`, `key` or `self_signed` with it".into(),
            ));
        }
        if tls.proxy
            && !self
                .issuer
                .as_deref()
                .is_some_and(|i| i.starts_with("https://"))
        {
            return Err(err(
                "issuer",
                "behind a TLS-terminating proxy (`tls.proxy`), set `issuer` to the proxy's https URL"
                    .into(),
            ));
        }
        for (i, c) in self.clients.iter().enumerate() {
            let key = |k: &str| format!("clients[{i}].{k}");
            check_client_id(&c.id).map_err(|reason| err(&key("id"), reason))?;
            if !is_valid_hash(&c.secret_hash) {
                return Err(err(
                    &key("secret_hash"),
                    "not a `sha256$salt$hash` value (make one with `tollgate clients add`)".into(),
                ));
            }
            if c.audiences.is_empty() {
                return Err(err(
                    &key("audiences"),
                    "at least one audience is needed".into(),
                ));
            }
        }
        Ok(())
    }

    /// The signing algorithm.
    pub(crate) fn algorithm(&self) -> Result<Algorithm, String> {
        match self.keys.algorithm.parse::<Algorithm>() {
            Ok(
                a @ (Algorithm::ES256
                | Algorithm::RS256
                | Algorithm::PS256
                | Algorithm::EdDSA
                | Algorithm::HS256),
            ) => Ok(a),
            _ => Err(format!(
                "`{}` is not one of ES256, RS256, PS256, EdDSA, HS256",
                self.keys.algorithm
            )),
        }
    }

    /// The issuer URL.
    pub(crate) fn issuer_url(&self) -> String {
        self.issuer_url_at(self.listen)
    }

    /// The issuer URL when listening on `addr` (port 0 resolved): `issuer`,
    /// else the address, with `localhost` for every address (what the
    /// development certificate holds, and a URL that works here).
    pub(crate) fn issuer_url_at(&self, addr: SocketAddr) -> String {
        self.issuer.clone().unwrap_or_else(|| {
            let scheme = if self.tls.enabled() { "https" } else { "http" };
            if addr.ip().is_unspecified() {
                format!("{scheme}://localhost:{}", addr.port())
            } else {
                format!("{scheme}://{addr}")
            }
        })
    }
}
