//! `terraform-provider-conflux`: a Terraform provider for Conflux, written in Rust.
//!
//! This crate owns everything between Terraform and the Conflux management API:
//!
//! - [`plugin`]: the go-plugin handshake (magic cookie, the `1|6|tcp|ADDR|grpc|CERT` line),
//!   AutoMTLS with the certificate Terraform passes, go-plugin's side services, shutdown.
//! - [`server`]: the tfplugin6 `Provider` gRPC service, which decodes requests, dispatches
//!   them and encodes answers.
//! - [`protocol`]: Terraform values, the MessagePack/JSON `DynamicValue` codec, schemas and
//!   diagnostics; nothing in it knows Conflux.
//! - [`provider`], [`resources`], [`data_sources`]: the provider block and one file per
//!   resource and data source (schema, validation, CRUD, import), talking to Conflux only
//!   through `conflux-client` via [`api::Api`] (retries on 503).
//! - [`client_errors`]: the one mapping from API errors to diagnostics naming the attribute.
//! - [`validate`], [`timestamp`]: plan-time checks of attributes (names, roles, scopes,
//!   RFC 3339 timestamps), with the rules of `conflux-domain`.
//!
//! It does **not** own the API's semantics (validation, quotas, rule resolution: the server
//! and `conflux-domain` decide), the wire types (`conflux-api-types`), or HTTP
//! (`conflux-client`). The binary in `main.rs` only calls [`run`].

pub mod api;
pub mod client_errors;
pub mod data_sources;
pub mod error;
pub mod plugin;
pub mod protocol;
pub mod provider;
pub mod resources;
pub mod server;
pub mod timestamp;
pub mod validate;

pub use error::{Error, Result};

/// Code generated from `proto/` by `build.rs`.
#[allow(missing_debug_implementations, clippy::all, unreachable_pub)]
pub mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

/// Runs the provider as Terraform's plugin: reads the handshake from the environment and
/// serves until Terraform stops it.
pub async fn run() -> Result<()> {
    let handshake = plugin::Handshake::from_env(|k| std::env::var(k).ok())?;
    plugin::serve(handshake).await
}
