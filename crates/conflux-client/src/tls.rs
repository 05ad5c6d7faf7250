//! TLS of every client of the API: which servers to trust and which certificate to present.
//!
//! One crypto provider in the whole workspace: `ring` ([`provider`]). reqwest is built without
//! a provider of its own and is handed the rustls configuration made here, so nothing depends
//! on a process-wide default. The PEM helpers ([`parse_certs`], [`parse_key`]) are shared with
//! the server's listener and the bench.
//!
//! Trust: with a CA bundle ([`TlsOptions::ca_cert_pem`]), the server's certificate must chain
//! to one of its certificates and nothing else (a config center's clients pin the cluster's
//! CA). Without one, an `https://` endpoint is verified against the operating system's trust
//! store (rustls-platform-verifier, which reqwest's rustls support brings in anyway).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::ClientError;

/// The workspace's one rustls crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in `pem`; an error names what is wrong (no certificate, bad PEM).
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certs)
}

/// The private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key (-----BEGIN PRIVATE KEY-----) in it".to_owned()
        }
        e => format!("not a PEM private key: {e}"),
    })
}

/// Reads a file for TLS, with an error naming it.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A root store of the CA certificates in `pem`.
pub fn root_store(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// PEM given inline or as a file read when the client is built.
#[derive(Clone)]
enum Pem {
    Inline(Vec<u8>),
    File(PathBuf),
}

impl Pem {
    fn load(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::Inline(pem) => Ok(pem.clone()),
            Pem::File(path) => read_pem_file(path),
        }
    }

    fn describe(&self) -> String {
        match self {
            Pem::Inline(_) => "<PEM>".into(),
            Pem::File(path) => path.display().to_string(),
        }
    }

    /// `message` prefixed with the file it is about, when there is one.
    fn context(&self, message: String) -> String {
        match self {
            Pem::File(path) if !message.starts_with("cannot read") => {
                format!("{}: {message}", path.display())
            }
            _ => message,
        }
    }
}

/// A client's TLS settings: the CA bundle to trust and an optional client certificate.
/// Files are read when the client is built. `Debug` never shows a key.
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca: Option<Pem>,
    identity: Option<(Pem, Pem)>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca.as_ref().map(Pem::describe))
            .field(
                "client_cert",
                &self.identity.as_ref().map(|(c, _)| c.describe()),
            )
            .field("client_key", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl TlsOptions {
    pub fn new() -> Self {
        TlsOptions::default()
    }

    /// Trust exactly the CA certificates in this PEM bundle.
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(Pem::Inline(pem.into()));
        self
    }

    /// Trust exactly the CA certificates in this PEM file.
    pub fn ca_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(Pem::File(path.into()));
        self
    }

    /// Present this certificate (chain) and key, for servers that require client
    /// certificates (`--api-tls-client-ca`).
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((Pem::Inline(cert_pem.into()), Pem::Inline(key_pem.into())));
        self
    }

    /// The settings of the `--cacert`, `--client-cert` and `--client-key` flags every tool
    /// takes (a certificate without its key is left out; the flags' parsers require both).
    pub fn from_files(
        ca: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Self {
        let mut tls = TlsOptions::new();
        if let Some(ca) = ca {
            tls = tls.ca_cert_file(ca);
        }
        if let (Some(cert), Some(key)) = (client_cert, client_key) {
            tls = tls.client_identity_files(cert, key);
        }
        tls
    }

    /// [`TlsOptions::client_identity`] from files.
    pub fn client_identity_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((Pem::File(cert.into()), Pem::File(key.into())));
        self
    }

    /// Whether anything was set.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }

    /// The rustls client configuration (ALPN `http/1.1`). `https` says whether it
    /// will be used: without a CA bundle, only then is the system trust store loaded.
    pub fn client_config(&self, https: bool) -> Result<ClientConfig, ClientError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::invalid_argument("tls", e.to_string()))?;
        let builder = match &self.ca {
            Some(ca) => {
                let pem = ca
                    .load()
                    .map_err(|m| ClientError::invalid_argument("ca_cert", m))?;
                let roots = root_store(&pem)
                    .map_err(|m| ClientError::invalid_argument("ca_cert", ca.context(m)))?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| ClientError::invalid_argument("ca_cert", e.to_string()))?;
                builder.with_webpki_verifier(verifier)
            }
            None if https => {
                let verifier =
                    rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                        ClientError::invalid_argument(
                            "ca_cert",
                            format!(
                                "no CA bundle given and the system trust store is unusable ({e}); \
                                 give the cluster's CA certificate (--cacert / CONFLUX_CACERT)"
                            ),
                        )
                    })?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            // Plain http: the configuration is never used, so it trusts nothing.
            None => builder.with_root_certificates(RootCertStore::empty()),
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let cert_pem = cert
                    .load()
                    .map_err(|m| ClientError::invalid_argument("client_cert", m))?;
                let certs = parse_certs(&cert_pem)
                    .map_err(|m| ClientError::invalid_argument("client_cert", cert.context(m)))?;
                let key_pem = key
                    .load()
                    .map_err(|m| ClientError::invalid_argument("client_key", m))?;
                let private = parse_key(&key_pem)
                    .map_err(|m| ClientError::invalid_argument("client_key", key.context(m)))?;
                builder.with_client_auth_cert(certs, private).map_err(|e| {
                    ClientError::invalid_argument(
                        "client_key",
                        format!("does not match the client certificate: {e}"),
                    )
                })?
            }
        };
        // HTTP/1.1 only, as over plain http: every long poll holds its request for up to the
        // poll timeout, and on one HTTP/2 connection (200 streams at most on the server) a
        // client with many watches would queue its fetches behind them; HTTP/1.1 gives each
        // its own pooled connection. gRPC clients set `h2` themselves.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A reqwest client builder using `tls` (ring), for programs that make raw HTTP requests
/// beside [`crate::ApiClient`] (tests, the bench). reqwest has no crypto provider of its own
/// here, so a plain `reqwest::Client::new()` would panic.
pub fn reqwest_builder(
    tls: &TlsOptions,
    https: bool,
) -> Result<reqwest::ClientBuilder, ClientError> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls.client_config(https)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(
            parse_certs(b"hello")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(
            parse_key(b"hello")
                .unwrap_err()
                .contains("no PEM private key")
        );
        let err = TlsOptions::new()
            .ca_cert_file("/nonexistent/ca.pem")
            .client_config(true)
            .unwrap_err();
        assert_eq!(err.field(), Some("ca_cert"));
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = TlsOptions::new()
            .ca_cert_pem("not pem")
            .client_config(true)
            .unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let opts = TlsOptions::new().client_identity("CERT", "SECRET-KEY-BYTES");
        let shown = format!("{opts:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
