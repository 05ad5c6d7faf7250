//! Test certificates: a CA and one certificate per node (for 127.0.0.1 and localhost),
//! generated with rcgen into a directory the test owns.

use std::path::{Path, PathBuf};

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
