//! The one error type of the domain. Every variant has a stable snake_case [`code`]
//! (`DomainError::code`) that clients may match on; the server maps variants to HTTP
//! statuses in exactly one place.

use serde::{Deserialize, Serialize};

use crate::format::Format;

/// The kind of entity an error is about. Used in `*_not_found` / `*_already_exists` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Tenant,
    App,
    Environment,
    Config,
    Version,
    Proposal,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Tenant => "tenant",
            Entity::App => "app",
            Entity::Environment => "environment",
            Entity::Config => "config",
            Entity::Version => "version",
            Entity::Proposal => "proposal",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant quota, named as in the API's `quotas` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    MaxApps,
    MaxConfigs,
    MaxConfigBytes,
    MaxVersionsPerConfig,
}

impl Quota {
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::MaxApps => "max_apps",
            Quota::MaxConfigs => "max_configs",
            Quota::MaxConfigBytes => "max_config_bytes",
            Quota::MaxVersionsPerConfig => "max_versions_per_config",
        }
    }
}

/// One JSON Schema violation: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaViolation {
    /// JSON pointer into the parsed document (`""` is the root).
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DomainError {
    /// A name (tenant, app, environment, config, label key) breaks the naming rules.
    #[error("{field}: {message}")]
    InvalidName { field: String, message: String },

    /// Any other request field is out of range or malformed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// Client labels (headers or rule labels) break the label limits.
    #[error("{field}: {message}")]
    InvalidLabel { field: String, message: String },

    /// The release-rule list is not acceptable (no/two default rules, bad percent...).
    #[error("{field}: {message}")]
    InvalidReleaseRules { field: String, message: String },

    /// A release rule or rollback names a version the config does not have.
    #[error("{field}: version {version} does not exist for this config")]
    UnknownVersion { field: String, version: u64 },

    /// The JSON Schema attached to a config is not a valid schema.
    #[error("schema: {message}")]
    InvalidSchema { message: String },

    #[error("{entity} '{key}' not found")]
    NotFound { entity: Entity, key: String },

    #[error("{entity} '{key}' already exists")]
    AlreadyExists { entity: Entity, key: String },

    #[error("{entity} '{key}' still has {children}; delete them first or pass cascade=true")]
    HasChildren {
        entity: Entity,
        key: String,
        children: String,
    },

    #[error("revision mismatch: If-Match was {expected} but the current revision is {actual}")]
    RevisionMismatch { expected: u64, actual: u64 },

    /// `max_config_bytes` is a size limit (HTTP 413); the other quotas are counts (HTTP 429).
    #[error("quota {} exceeded: limit is {limit}, this request needs {requested}", quota.as_str())]
    QuotaExceeded {
        quota: Quota,
        limit: u64,
        requested: u64,
    },

    #[error("content is not valid {format}{}: {message}", position(*line, *column))]
    ContentInvalid {
        format: Format,
        message: String,
        line: Option<u32>,
        column: Option<u32>,
    },

    #[error("content does not match the config's JSON Schema ({} violation(s))", violations.len())]
    SchemaViolation { violations: Vec<SchemaViolation> },

    #[error("idempotency key '{key}' was already used for a different request")]
    IdempotencyKeyReused { key: String },

    #[error("tenant '{tenant}' is suspended; reactivate it to make changes")]
    TenantSuspended { tenant: String },

    #[error("config '{path}' has no release rules yet")]
    NotPublished { path: String },

    /// A config has at most one pending proposal.
    #[error(
        "config '{path}' already has pending proposal {proposal_id}; approve, reject or cancel it first"
    )]
    ProposalPending { path: String, proposal_id: u64 },

    /// A decision on a proposal that is no longer pending (a replayed approval, say).
    #[error("proposal {proposal_id} is already {status}; nothing changed")]
    ProposalFinished { proposal_id: u64, status: String },

    #[error(
        "proposal {proposal_id} was made by {approver}, and this environment does not allow self-approval"
    )]
    SelfApproval { proposal_id: u64, approver: String },

    #[error("{approver} has already approved proposal {proposal_id}")]
    AlreadyApproved { proposal_id: u64, approver: String },

    /// Only the proposer or a tenant_admin may cancel a proposal.
    #[error("only the proposer ({proposer}) or a tenant_admin may cancel proposal {proposal_id}")]
    NotProposer { proposal_id: u64, proposer: String },
}

fn position(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl DomainError {
    /// The stable, client-visible error code. Never change an existing code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidName { .. } => "invalid_name",
            DomainError::InvalidArgument { .. } => "invalid_argument",
            DomainError::InvalidLabel { .. } => "invalid_label",
            DomainError::InvalidReleaseRules { .. } => "invalid_release_rules",
            DomainError::UnknownVersion { .. } => "unknown_version",
            DomainError::InvalidSchema { .. } => "invalid_schema",
            DomainError::NotFound { entity, .. } => match entity {
                Entity::Tenant => "tenant_not_found",
                Entity::App => "app_not_found",
                Entity::Environment => "environment_not_found",
                Entity::Config => "config_not_found",
                Entity::Version => "version_not_found",
                Entity::Proposal => "proposal_not_found",
            },
            DomainError::AlreadyExists { entity, .. } => match entity {
                Entity::Tenant => "tenant_already_exists",
                Entity::App => "app_already_exists",
                Entity::Environment => "environment_already_exists",
                Entity::Config => "config_already_exists",
                Entity::Version => "version_already_exists",
                Entity::Proposal => "proposal_already_exists",
            },
            DomainError::HasChildren { .. } => "has_children",
            DomainError::RevisionMismatch { .. } => "revision_mismatch",
            DomainError::QuotaExceeded { .. } => "quota_exceeded",
            DomainError::ContentInvalid { .. } => "content_invalid",
            DomainError::SchemaViolation { .. } => "schema_violation",
            DomainError::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            DomainError::TenantSuspended { .. } => "tenant_suspended",
            DomainError::NotPublished { .. } => "not_published",
            DomainError::ProposalPending { .. } => "proposal_pending",
            DomainError::ProposalFinished { .. } => "proposal_finished",
            DomainError::SelfApproval { .. } => "self_approval_forbidden",
            DomainError::AlreadyApproved { .. } => "already_approved",
            DomainError::NotProposer { .. } => "forbidden",
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DomainError::InvalidName { field, .. }
            | DomainError::InvalidArgument { field, .. }
            | DomainError::InvalidLabel { field, .. }
            | DomainError::InvalidReleaseRules { field, .. }
            | DomainError::UnknownVersion { field, .. } => Some(field),
            DomainError::InvalidSchema { .. } => Some("schema"),
            DomainError::QuotaExceeded { quota, .. } => Some(quota.as_str()),
            DomainError::ContentInvalid { .. } | DomainError::SchemaViolation { .. } => {
                Some("content")
            }
            DomainError::NotFound { .. }
            | DomainError::AlreadyExists { .. }
            | DomainError::HasChildren { .. }
            | DomainError::RevisionMismatch { .. }
            | DomainError::IdempotencyKeyReused { .. }
            | DomainError::TenantSuspended { .. }
            | DomainError::NotPublished { .. }
            | DomainError::ProposalPending { .. }
            | DomainError::ProposalFinished { .. }
            | DomainError::SelfApproval { .. }
            | DomainError::AlreadyApproved { .. }
            | DomainError::NotProposer { .. } => None,
        }
    }

    pub(crate) fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_rules(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::InvalidReleaseRules {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(entity: Entity, key: impl Into<String>) -> Self {
        DomainError::NotFound {
            entity,
            key: key.into(),
        }
    }
}
