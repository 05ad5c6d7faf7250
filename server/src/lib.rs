//! The Conflux node.
//!
//! This crate owns the process that runs a node: the openraft glue ([`raft`]), RocksDB
//! storage of the Raft log and the config-plane state machine ([`storage`]), the in-memory
//! fetch index ([`serving`]), the axum HTTP API ([`api`]), configuration ([`config`]) and the
//! node lifecycle ([`node`]). It does not own the model or any decision about the config
//! plane (that is `conflux-domain`), nor the wire types (`conflux-api-types`), nor the client
//! subcommands of the `conflux` binary (`conflux-cli`).

pub mod api;
pub mod audit;
pub mod auth;
pub mod batcher;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod kms;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod serving;
pub mod storage;
pub mod watch;
pub mod webhooks;
