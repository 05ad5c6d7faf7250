//! The Rust client of Conflux, in two layers.
//!
//! - **The SDK** ([`sdk`]: [`ConfluxClient`], [`ConfigHandle`], [`ConfigWatch`]) is what a
//!   service embeds: several endpoints with failover, reads that never go back in time
//!   (`min_revision`), watches that reconnect with jittered backoff and never miss a change,
//!   and live handles that keep a config's latest content in memory, deserialise it
//!   (`get::<T>()` for json, yaml and toml) and keep a local fallback copy to start from when
//!   the cluster is unreachable. See the [`sdk`] module for its guarantees and why it watches
//!   over HTTP long polls, and `examples/watch.rs` for a runnable program.
//! - **The typed API client** ([`ApiClient`]) is one method per endpoint of the HTTP API
//!   (contract section 4) against one node, used by the SDK, the CLI, the Terraform provider
//!   and the process-level tests. It owns building request URLs (every name percent-encoded
//!   into its own path segment), the request headers of writes (`X-Idempotency-Key`,
//!   `If-Match`), of fetches and watches (`X-Client-Label-*`, `X-Client-Id`,
//!   `If-None-Match`) and of authentication (`Authorization: Bearer`), reading answers into
//!   the wire types, and turning every failure into one [`ClientError`] with a stable code.
//!   It does not retry: [`ClientError::is_retryable`] tells a caller when a retry (with the
//!   same idempotency key, for writes) makes sense; the SDK is the layer that retries.
//!   Identity, access and audit (contract section 6: login, whoami, users, service tokens,
//!   role bindings, [`AuditQuery`]) are methods of the same client, in `identity.rs`. A
//!   client built with [`ApiClientBuilder::bearer_token`] (or an SDK client with
//!   [`ConfluxClientBuilder::with_token`]) sends the token with every request, and neither
//!   builder shows it in its `Debug` output.
//!
//! TLS: both take `https://` endpoints; [`TlsOptions`] (or the builders' `ca_cert_*` and
//! `client_identity*` shortcuts) gives the CA bundle to trust and an optional client
//! certificate; [`tls`] builds the rustls configuration (ring) handed to reqwest.
//!
//! Neither owns the wire shapes (they are `conflux-api-types`, re-exported here as
//! [`types`], so the server and this client cannot drift), nor any semantics: validation,
//! quotas and rule resolution are the server's and `conflux-domain`'s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conflux_client::ClientError> {
//! use conflux_client::ConfluxClient;
//!
//! let client = ConfluxClient::new(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
//!     .with_token("a reader token")
//!     .with_labels([("canary", "true")])
//!     .build()
//!     .await?;
//! let handle = client.handle("acme", "billing", "prod", "database.toml").await?;
//! println!("version {}: {} bytes", handle.version(), handle.raw().len());
//! # Ok(())
//! # }
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), conflux_client::ClientError> {
//! use conflux_client::{ApiClient, FetchOptions, Fetched};
//! use conflux_domain::ConfigPath;
//!
//! let client = ApiClient::builder("http://127.0.0.1:8080")
//!     .bearer_token(std::env::var("CONFLUX_TOKEN").unwrap_or_default())
//!     .build()?;
//! let path = ConfigPath::new("acme", "billing", "prod", "database.toml");
//! if let Fetched::Modified { content, version, .. } =
//!     client.fetch(&path, &FetchOptions::default()).await?
//! {
//!     println!("version {version}: {} bytes", content.len());
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod governance;
mod identity;
mod options;
mod path;
pub mod sdk;
pub mod tls;

#[cfg(test)]
mod mock_tests;

pub use client::{
    ApiClient, ApiClientBuilder, BackupDownload, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT, WATCH_GRACE,
};
pub use error::{ClientError, MAX_ERROR_TEXT_BYTES};
pub use governance::ProposalQuery;
pub use identity::AuditQuery;
pub use options::{FetchOptions, Fetched, NewVersion, WatchOptions, WriteOptions};
pub use sdk::{
    Backoff, Change, ChangeKind, ConfigHandle, ConfigValue, ConfigWatch, ConfluxClient,
    ConfluxClientBuilder, StartMode,
};
pub use tls::TlsOptions;

/// The path type [`ApiClient::fetch`] and [`ApiClient::get_config_by_path`] take.
pub use conflux_domain::ConfigPath;

/// The request and response bodies, from `conflux-api-types`.
pub use conflux_api_types as types;
