//! Mutual TLS between nodes (rustls through tonic): each node presents its certificate and
//! accepts only peers whose certificate is signed by the cluster's CA. The files are read and
//! checked with the same PEM helpers as the API listener's (`api::tls`), so a bad file stops
//! the node at start-up with its name and the reason.

use conflux_client::tls::{parse_certs, parse_key, read_pem_file};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The server and client TLS configurations of the Raft listener and its connections.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub server: ServerTlsConfig,
    pub client: ClientTlsConfig,
}

/// Reads `path` and checks that `parse` accepts it; the error names the file.
fn read<T>(
    path: &std::path::Path,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<u8>, TlsError> {
    let pem = read_pem_file(path).map_err(TlsError)?;
    parse(&pem).map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    Ok(pem)
}

pub fn load(files: &TlsFiles) -> Result<NodeTls, TlsError> {
    let identity = Identity::from_pem(
        read(&files.cert, parse_certs)?,
        read(&files.key, parse_key)?,
    );
    let ca = Certificate::from_pem(read(&files.ca, parse_certs)?);
    let server = ServerTlsConfig::new()
        .identity(identity.clone())
        .client_ca_root(ca.clone());
    let client = ClientTlsConfig::new().identity(identity).ca_certificate(ca);
    Ok(NodeTls { server, client })
}
