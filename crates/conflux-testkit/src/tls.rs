//! Test certificates: a CA and one certificate per node (for 127.0.0.1 and localhost),
//! generated with rcgen into a directory the test owns, and [`ClientTls`]: what the harness and
//! its HTTP helpers need to reach a node whose API is on TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The PEM files of one node.
#[derive(Debug, Clone)]
pub struct NodeCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl NodeCert {
    /// `--tls-cert ... --tls-key ... --tls-ca ...`
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--tls-ca".into(),
            self.ca.display().to_string(),
        ]
    }
}

impl NodeCert {
    /// `--api-tls-cert ... --api-tls-key ...`: the API listener on TLS with this certificate.
    pub fn api_args(&self) -> Vec<String> {
        vec![
            "--api-tls-cert".into(),
            self.cert.display().to_string(),
            "--api-tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// A client that trusts this certificate's CA and presents this certificate.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca: self.ca.clone(),
            identity: Some((self.cert.clone(), self.key.clone())),
        }
    }
}

/// How a client reaches a node whose API is on TLS: the CA to trust and an optional client
/// certificate and key (PEM files).
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// A client that trusts `ca` and presents no certificate.
    pub fn trusting(ca: &Path) -> ClientTls {
        ClientTls {
            ca: ca.to_owned(),
            identity: None,
        }
    }

    /// The CLI's global flags for it: `--cacert`, and `--client-cert`/`--client-key`.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--cacert".into(), self.ca.display().to_string()];
        if let Some((cert, key)) = &self.identity {
            args.extend([
                "--client-cert".into(),
                cert.display().to_string(),
                "--client-key".into(),
                key.display().to_string(),
            ]);
        }
        args
    }

    /// ureq's TLS configuration for it (rustls with ring, the workspace's one provider).
    pub fn ureq_config(&self) -> Result<ureq::tls::TlsConfig> {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
        let pem = std::fs::read(&self.ca)?;
        let roots: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<std::result::Result<_, _>>()?;
        let client_cert = match &self.identity {
            None => None,
            Some((cert, key)) => {
                let cert_pem = std::fs::read(cert)?;
                let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<std::result::Result<_, _>>()?;
                let key = PrivateKey::from_pem(&std::fs::read(key)?)?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
        };
        Ok(TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .build())
    }
}

/// A certificate authority that signs node certificates.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    ca_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Creates a CA named `name`, writing `<name>-ca.pem` into `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_path, cert.pem())?;
        let issuer = Issuer::new(params, key);
        Ok(TestCa {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer,
            ca_path,
        })
    }

    /// The CA certificate's PEM file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// A client that trusts this CA and presents no certificate.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::trusting(&self.ca_path)
    }

    /// A certificate for a node, valid for 127.0.0.1 and localhost, usable as server and
    /// client certificate.
    pub fn node_cert(&self, node: &str) -> Result<NodeCert> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, node.to_owned());
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_path = self.dir.join(format!("{}-{node}.pem", self.name));
        let key_path = self.dir.join(format!("{}-{node}.key", self.name));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok(NodeCert {
            cert: cert_path,
            key: key_path,
            ca: self.ca_path.clone(),
        })
    }
}
