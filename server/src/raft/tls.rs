//! Mutual TLS between nodes (rustls through tonic): each node presents its certificate and
//! accepts only peers whose certificate is signed by the cluster's CA.

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct TlsError {
    path: String,
    source: std::io::Error,
}

/// The server and client TLS configurations of the Raft listener and its connections.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub server: ServerTlsConfig,
    pub client: ClientTlsConfig,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError {
        path: path.display().to_string(),
        source,
    })
}

pub fn load(files: &TlsFiles) -> Result<NodeTls, TlsError> {
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let ca = Certificate::from_pem(read(&files.ca)?);
    let server = ServerTlsConfig::new()
        .identity(identity.clone())
        .client_ca_root(ca.clone());
    let client = ClientTlsConfig::new().identity(identity).ca_certificate(ca);
    Ok(NodeTls { server, client })
}
