//! The Conflux config plane as pure data and pure functions.
//!
//! This crate owns everything that decides *what* the config plane is and how it changes:
//! the model (tenants, apps, environments, configs, immutable versions, release rules),
//! name and content validation, the parsers of the seven config formats, JSON Schema
//! validation, release-rule resolution, retention, the state-machine transition
//! ([`State::apply`]) that every node runs for every committed Raft entry, and the digest
//! that compares two nodes' states ([`State::digest`]).
//!
//! It does **not** own any I/O: no sockets, no files, no clocks, no RocksDB, no HTTP. Time
//! and revisions come in as arguments (the leader stamps the time when it proposes; the Raft
//! log index is the revision), so applying the same entries to the same state gives the same
//! result on every node. The server crate persists the [`Change`]s that a transition returns
//! and serves reads; the client crate reuses [`resolve`] so the SDK and the server agree.

pub mod access;
pub mod audit;
mod command;
mod diff;
pub mod digest;
mod error;
pub mod format;
mod labels;
mod model;
mod names;
pub mod proposal;
mod resolve;
mod retention;
mod schema;
mod sealed;
mod state;
mod transition;

pub use access::{Grant, Principal, Role, Scope};
pub use command::Patch;
pub use command::{
    Command, IdempotencyKey, Proposal, PublishStrategy, RequestOrigin, Response, RollbackMode,
};
pub use diff::{DIFF_TIME_LIMIT, unified_diff};
pub use digest::StateDigest;
pub use error::{DomainError, Entity, Quota, SchemaViolation};
pub use format::{Format, ParseError};
pub use labels::{ClientLabels, MAX_CLIENT_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN};
pub use model::{
    App, ApprovalSettings, Config, ConfigId, ConfigPath, ContentHash, Environment, Quotas,
    QuotasPatch, ReleaseRule, RetentionKind, RetentionPolicy, RetentionRule, RetentionStrategy,
    Revision, Tenant, TenantStatus, UnixMillis, VersionId, VersionMeta,
};
pub use names::{validate_config_name, validate_label_key, validate_name};
pub use proposal::{
    Approval, ProposalAction, ProposalEvent, ProposalId, ProposalStatus, ProposedChange,
    ReleaseProposal,
};
pub use resolve::{Resolution, bucket, order_rules, resolve, resolve_ordered};
pub use retention::versions_to_purge;
pub use retention::{MAX_RETENTION_RULES, validate_policy as validate_retention_policy};
pub use schema::CompiledSchema;
pub use sealed::{Rewrap, Seal, SealedContent, WrappedKey};
pub use state::{Change, Counters, IDEMPOTENCY_TTL_MS, IdempotencyRecord, State};
pub use transition::{
    Decision, MAX_CONTENT_BYTES, MAX_RULES_PER_CONFIG, VersionCheck, check_new_version,
    retention_sweep_needed,
};
pub use transition::{MAX_DESCRIPTION_LEN, MAX_DISPLAY_NAME_LEN};
