//! The typed async Rust client of the Conflux HTTP API (contract section 4).
//!
//! This crate owns how a Rust program talks to a Conflux node: building request URLs (every
//! name percent-encoded into its own path segment), the request headers of writes
//! (`X-Idempotency-Key`, `If-Match`) and of fetches (`X-Client-Label-*`, `X-Client-Id`,
//! `If-None-Match`), reading answers into the wire types, and turning every failure into one
//! [`ClientError`] with a stable code. The CLI, the Terraform provider and the process-level
//! tests all go through it.
//!
//! It does **not** own the wire shapes (they are `conflux-api-types`, re-exported here as
//! [`types`], so the server and this client cannot drift), nor any semantics: validation,
//! quotas and rule resolution are the server's and `conflux-domain`'s. It does not retry:
//! [`ClientError::is_retryable`] tells a caller when a retry (with the same idempotency key,
//! for writes) makes sense. Watch, tokens and several endpoints are not here yet;
//! [`ApiClientBuilder`] is where they will be configured.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conflux_client::ClientError> {
//! use conflux_client::{ApiClient, FetchOptions, Fetched};
//! use conflux_domain::ConfigPath;
//!
//! let client = ApiClient::new("http://127.0.0.1:8080")?;
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
mod options;
mod path;
pub mod sdk;

#[cfg(test)]
mod mock_tests;

pub use client::{
    ApiClient, ApiClientBuilder, BackupDownload, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT, WATCH_GRACE,
};
pub use error::{ClientError, MAX_ERROR_TEXT_BYTES};
pub use options::{FetchOptions, Fetched, NewVersion, WatchOptions, WriteOptions};
pub use sdk::{
    Backoff, Change, ChangeKind, ConfigHandle, ConfigValue, ConfigWatch, ConfluxClient,
    ConfluxClientBuilder, StartMode,
};

/// The path type [`ApiClient::fetch`] and [`ApiClient::get_config_by_path`] take.
pub use conflux_domain::ConfigPath;

/// The request and response bodies, from `conflux-api-types`.
pub use conflux_api_types as types;
