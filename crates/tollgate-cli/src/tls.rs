//! HTTPS for `tollgate serve`: the configured certificate and key, or a
//! development CA and certificate generated once into the data directory;
//! reloaded on SIGHUP with the rest.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;

use crate::Failure;
use crate::config::Config;

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// The development CA to trust (`curl --cacert`), when generated.
    pub(crate) ca: Option<PathBuf>,
}

impl Tls {
    /// The TLS set-up of `config`, generating the development certificate
    /// on first use; `None` for plain HTTP, which is refused on an address
    /// other than loopback unless a TLS-terminating proxy is declared.
    pub(crate) fn from_config(config: &Config, listen: SocketAddr) -> Result<Option<Tls>, Failure> {
        let t = &config.tls;
        if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
            return Ok(Some(Tls {
                cert: cert.clone(),
                key: key.clone(),
                ca: None,
            }));
        }
        if t.self_signed {
            return development(&config.data_dir.join("tls"), listen).map(Some);
        }
        if !t.proxy && !listen.ip().is_loopback() {
            return Err(Failure::Usage(format!(
                "plain HTTP on {listen}, which is not a loopback address: tokens and client \
                 secrets would cross the network in clear. Set `[tls] cert` and `key`, or \
                 `[tls] self_signed = true` for development, or `[tls] proxy = true` with an \
                 https `issuer` when a proxy in front terminates TLS"
            )));
        }
        Ok(None)
    }

    /// The rustls configuration, read from the files.
    pub(crate) async fn load(&self) -> Result<RustlsConfig, Failure> {
        RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .map_err(|e| {
                Failure::Usage(format!(
                    "TLS: {} / {}: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })
    }

    /// The certificate's SHA-256 fingerprint (of the CA when generated).
    pub(crate) fn fingerprint(&self) -> Option<String> {
        let pem = std::fs::read_to_string(self.ca.as_ref().unwrap_or(&self.cert)).ok()?;
        let der = pem_der(&pem)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        Some(
            digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }

    /// An HTTP client that reaches this server's own listener by the
    /// issuer URL's name and trusts its certificate: the demo API fetches
    /// its keys through it.
    pub(crate) fn own_client(
        &self,
        issuer: &str,
        own: SocketAddr,
    ) -> Result<reqwest::Client, Failure> {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        let trust = std::fs::read(self.ca.as_ref().unwrap_or(&self.cert))
            .map_err(|e| Failure::Runtime(format!("TLS: {e}")))?;
        for cert in reqwest::Certificate::from_pem_bundle(&trust)
            .map_err(|e| Failure::Usage(format!("TLS: {e}")))?
        {
            b = b.add_root_certificate(cert);
        }
        if let Some(host) = reqwest::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            b = b.resolve(&host, own);
        }
        b.build()
            .map_err(|e| Failure::Runtime(format!("TLS client: {e}")))
    }
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The development CA and a certificate it signs for `listen`, kept in
/// `dir`: generated on first use, and again when the listen address is not
/// in the certificate.
fn development(dir: &Path, listen: SocketAddr) -> Result<Tls, Failure> {
    let tls = Tls {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: Some(dir.join("ca.pem")),
    };
    let names_file = dir.join("names.txt");
    let names = subject_names(listen.ip());
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if current == names.join("\n")
        && tls.cert.exists()
        && tls.key.exists()
        && dir.join("ca.pem").exists()
    {
        return Ok(tls);
    }
    tollgate_issuer::create_private_dir(dir).map_err(crate::runtime)?;
    let fail = |e: rcgen::Error| Failure::Runtime(format!("TLS: cannot make a certificate: {e}"));
    let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Tollgate development CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut leaf = rcgen::CertificateParams::new(names.clone()).map_err(fail)?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "tollgate serve");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;
    let write = |path: &Path, text: String| {
        tollgate_issuer::write_private(path, text.as_bytes()).map_err(crate::runtime)
    };
    write(&dir.join("ca.pem"), ca_cert.pem())?;
    write(&tls.cert, leaf_cert.pem())?;
    write(&tls.key, leaf_key.serialize_pem())?;
    write(&names_file, names.join("\n"))?;
    Ok(tls)
}

/// `localhost`, 127.0.0.1, ::1, and the listen address when it is a
/// specific one.
fn subject_names(ip: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names
}
