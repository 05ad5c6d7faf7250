//! The crate's error type: everything that can go wrong outside a resource operation
//! (starting as a plugin, TLS, serving, and decoding or encoding values). Errors of resource
//! operations are Terraform diagnostics instead (`protocol::diag`), because Terraform shows
//! those to the user next to the attribute at fault.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "this binary is a Terraform plugin and is started by Terraform (the plugin handshake \
         variable {0} is missing or wrong); see terraform-provider/README.md"
    )]
    NotLaunchedByTerraform(&'static str),

    #[error("Terraform offers plugin protocol versions {offered:?}; this provider speaks only 6")]
    UnsupportedProtocol { offered: String },

    #[error("invalid {var}: {message}")]
    Env { var: &'static str, message: String },

    #[error("plugin TLS: {0}")]
    Tls(String),

    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),

    #[error("cannot decode a Terraform value: {0}")]
    Decode(String),

    #[error("cannot encode a Terraform value: {0}")]
    Encode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
