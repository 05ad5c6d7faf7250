//! What a Raft entry carries ([`Proposal`]) and what applying it answers ([`Response`]).
//!
//! A proposal is built by the node that receives the request: it stamps the time and the
//! request's idempotency key and `If-Match` revision, so that apply needs nothing but the
//! entry and the state. Everything that depends on the state (ids, version numbers, quota
//! checks, what retention purges, what a rollback rewrites) is decided in apply.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::format::Format;
use crate::model::{
    App, ApprovalSettings, Config, ConfigId, ConfigPath, ContentHash, Environment, QuotasPatch,
    ReleaseRule, RetentionPolicy, Revision, Tenant, TenantStatus, UnixMillis, VersionId,
    VersionMeta,
};
use crate::proposal::{ProposalId, ReleaseProposal};
use crate::sealed::{Rewrap, SealedContent};

/// An idempotency key and the fingerprint of the request it was first used with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub key: String,
    /// Hash of method, path and body: the same key with a different request is an error.
    pub fingerprint: ContentHash,
}

/// One Raft log entry's application payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Wall-clock time of the proposing node. Apply uses `max(this, previous)` so time never
    /// runs backwards across a leader change.
    pub timestamp_ms: UnixMillis,
    #[serde(default)]
    pub idempotency: Option<IdempotencyKey>,
    /// `If-Match`: the revision the client expects the target entity to have.
    #[serde(default)]
    pub expected_revision: Option<Revision>,
    /// The principal that asked for the change (`user:alice`, `token:<id>`): versions record
    /// it, and so does the change's audit record.
    #[serde(default)]
    pub author: Option<String>,
    /// Where the request came from, for the audit record the apply produces.
    #[serde(default)]
    pub origin: Option<RequestOrigin>,
    pub command: Command,
}

/// The request behind a proposal, as its audit record shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOrigin {
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
}

impl Proposal {
    pub fn new(timestamp_ms: UnixMillis, command: Command) -> Self {
        Proposal {
            timestamp_ms,
            idempotency: None,
            expected_revision: None,
            author: None,
            origin: None,
            command,
        }
    }
}

/// A three-way field update for PATCH: leave as is, clear, or set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Patch<T> {
    #[default]
    Unchanged,
    Clear,
    Set(T),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackMode {
    /// Point the default rule at the target version; keep every other rule.
    StableOnly,
    /// Replace all rules with one default rule pointing at the target version.
    Emergency,
}

/// How a publish changes the rule list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishStrategy {
    /// Point the default rule at the new version (creating it if there are no rules).
    Stable,
    /// Add, or replace the rule with the same labels and percent, at `priority`.
    Canary {
        labels: std::collections::BTreeMap<String, String>,
        percent: Option<u8>,
        priority: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateTenant {
        name: String,
        display_name: Option<String>,
        quotas: QuotasPatch,
    },
    UpdateTenant {
        name: String,
        display_name: Option<String>,
        status: Option<TenantStatus>,
        quotas: Option<QuotasPatch>,
    },
    DeleteTenant {
        name: String,
        cascade: bool,
    },
    CreateApp {
        tenant: String,
        name: String,
        description: Option<String>,
    },
    UpdateApp {
        tenant: String,
        name: String,
        description: Option<String>,
    },
    DeleteApp {
        tenant: String,
        name: String,
        cascade: bool,
    },
    CreateEnvironment {
        tenant: String,
        app: String,
        name: String,
        description: Option<String>,
        approval: Option<ApprovalSettings>,
    },
    UpdateEnvironment {
        tenant: String,
        app: String,
        name: String,
        description: Option<String>,
        approval: Option<ApprovalSettings>,
    },
    DeleteEnvironment {
        tenant: String,
        app: String,
        name: String,
        cascade: bool,
    },
    CreateConfig {
        path: ConfigPath,
        format: Format,
        schema: Option<String>,
        retention: Option<RetentionPolicy>,
        description: Option<String>,
        #[serde(default)]
        encrypted: bool,
    },
    UpdateConfig {
        id: ConfigId,
        schema: Patch<String>,
        retention: Patch<RetentionPolicy>,
        description: Option<String>,
        /// Only accepted when it repeats the config's setting, which cannot change.
        #[serde(default)]
        encrypted: Option<bool>,
    },
    DeleteConfig {
        id: ConfigId,
    },
    /// `content` is the plaintext, or the ciphertext when `sealed` is given (encrypted
    /// configs).
    CreateVersion {
        config_id: ConfigId,
        content: Bytes,
        description: Option<String>,
        #[serde(default)]
        sealed: Option<SealedContent>,
    },
    SetReleases {
        config_id: ConfigId,
        rules: Vec<ReleaseRule>,
        comment: Option<String>,
    },
    /// A new version and the rule change that releases it, as one entry.
    Publish {
        config_id: ConfigId,
        content: Bytes,
        description: Option<String>,
        strategy: PublishStrategy,
        #[serde(default)]
        sealed: Option<SealedContent>,
    },
    Rollback {
        config_id: ConfigId,
        version_id: VersionId,
        mode: RollbackMode,
        /// Set by the receiving node for an emergency rollback by a tenant_admin of the
        /// config: in an environment that requires approval it applies at once (break
        /// glass, marked in its audit record) instead of becoming a proposal.
        #[serde(default)]
        break_glass: bool,
    },
    /// Approves a pending proposal as the proposal's author. The approval that reaches the
    /// environment's `min_approvals` executes the change in this same command.
    ApproveProposal {
        id: ProposalId,
        comment: Option<String>,
    },
    RejectProposal {
        id: ProposalId,
        comment: Option<String>,
    },
    /// Withdraws a pending proposal: its proposer may, and so may anyone the receiving node
    /// found to be a tenant_admin of the config (`by_admin`).
    CancelProposal {
        id: ProposalId,
        comment: Option<String>,
        by_admin: bool,
    },
    /// Proposed periodically by the leader: purge versions that time-based retention rules
    /// no longer keep, across all configs.
    SweepRetention,
    /// Proposed by a cluster member once it has caught up after its first start: from then
    /// on the cluster knows it held data, so the same member starting again on an empty data
    /// directory (a lost disk) can be refused instead of voting with an empty log.
    RecordMemberStarted {
        node_id: u64,
    },
    /// Proposed by the leader once the audit records up to and including this position
    /// (log index, position in the entry) are in the metadata DB: every node drops them from
    /// its outbox.
    TrimAuditOutbox {
        index: u64,
        position: u32,
    },
    /// Replaces the wrapped data keys of sealed versions with the same keys wrapped by
    /// another key-encryption key (KEK rotation). Content and revisions do not change.
    RewrapKeys {
        keys: Vec<Rewrap>,
    },
}

impl Command {
    /// The config a command is about, for commands scoped to one config.
    pub fn config_id(&self) -> Option<ConfigId> {
        match self {
            Command::UpdateConfig { id, .. } | Command::DeleteConfig { id } => Some(*id),
            Command::CreateVersion { config_id, .. }
            | Command::SetReleases { config_id, .. }
            | Command::Publish { config_id, .. }
            | Command::Rollback { config_id, .. } => Some(*config_id),
            _ => None,
        }
    }
}

/// What a successfully applied command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Tenant(Tenant),
    App(App),
    Environment(Environment),
    /// A config after a metadata or rule change (create, update, releases, rollback).
    Config(Config),
    /// A new version, and the config it belongs to after the change (create, publish).
    Version {
        version: VersionMeta,
        config: Config,
    },
    /// A release change in an environment that requires approval: nothing was released;
    /// the change became this pending proposal. `version` is the version a publish created.
    Proposed {
        proposal: Box<ReleaseProposal>,
        version: Option<VersionMeta>,
    },
    /// A proposal after a decision (approve, reject, cancel); `config` is the config after
    /// the change when the decision executed it.
    Proposal {
        proposal: Box<ReleaseProposal>,
        config: Option<Config>,
    },
    Deleted {
        revision: Revision,
    },
    Swept {
        purged: u64,
    },
    MemberRecorded,
    AuditTrimmed,
    /// How many of a `RewrapKeys` command's keys were replaced; the others had changed (or
    /// gone) since the command was built and were left alone.
    Rewrapped {
        rewrapped: u64,
        skipped: u64,
    },
}
