//! Release proposals: the approval workflow of contract section 7, as replicated records.
//!
//! In an environment whose approval settings say `required`, a release change (`PUT
//! releases`, `publish`, a rollback) does not change the rules: apply records a
//! [`ReleaseProposal`] instead. Approvals are further commands; the one that reaches the
//! environment's `min_approvals` executes the change inside its own apply, provided the
//! config is still at the proposal's `base_revision` (otherwise the proposal fails as
//! `stale`). Everything here is decided in apply, so every node reaches the same statuses.
//!
//! Retention: a config keeps its newest [`MAX_FINISHED_PROPOSALS_PER_CONFIG`] finished
//! proposals (their audit records stay in the audit log for as long as it is kept); deleting
//! the config deletes its proposals.

use serde::{Deserialize, Serialize};

use crate::command::{PublishStrategy, RollbackMode};
use crate::model::{ConfigId, ConfigPath, ReleaseRule, Revision, UnixMillis, VersionId};

pub type ProposalId = u64;

/// Finished proposals kept per config; older ones are deleted when another finishes.
pub const MAX_FINISHED_PROPOSALS_PER_CONFIG: usize = 50;
/// Bounds what one proposal's comments may add to the replicated state.
pub const MAX_COMMENT_LEN: usize = 1024;

/// Where a proposal stands. There is no resting `approved` state: the approval that reaches
/// `min_approvals` executes the change in the same command, so a proposal goes from
/// `pending` straight to `executed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Rejected,
    Canceled,
    Executed,
    Failed,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Canceled => "canceled",
            ProposalStatus::Executed => "executed",
            ProposalStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ProposalStatus> {
        Some(match s {
            "pending" => ProposalStatus::Pending,
            "rejected" => ProposalStatus::Rejected,
            "canceled" => ProposalStatus::Canceled,
            "executed" => ProposalStatus::Executed,
            "failed" => ProposalStatus::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        self != ProposalStatus::Pending
    }
}

/// The release change a proposal makes when it executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposedChange {
    SetReleases {
        rules: Vec<ReleaseRule>,
        comment: Option<String>,
    },
    /// Releases a version the proposing `publish` created (creating versions needs no
    /// approval; releasing them does).
    Publish {
        version_id: VersionId,
        strategy: PublishStrategy,
    },
    Rollback {
        version_id: VersionId,
        mode: RollbackMode,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: String,
    pub time: UnixMillis,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalAction {
    Created,
    Approved,
    Rejected,
    Canceled,
    Executed,
    Failed,
}

impl ProposalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalAction::Created => "created",
            ProposalAction::Approved => "approved",
            ProposalAction::Rejected => "rejected",
            ProposalAction::Canceled => "canceled",
            ProposalAction::Executed => "executed",
            ProposalAction::Failed => "failed",
        }
    }
}

/// One step of a proposal's life: who did what, when, and at which revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalEvent {
    pub action: ProposalAction,
    pub actor: String,
    pub time: UnixMillis,
    pub comment: Option<String>,
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseProposal {
    pub id: ProposalId,
    pub config_id: ConfigId,
    /// The config's path when the proposal was made (it cannot change: paths are identity).
    pub path: ConfigPath,
    pub status: ProposalStatus,
    pub proposer: String,
    pub created_at: UnixMillis,
    /// The config's revision the change was proposed against.
    pub base_revision: Revision,
    pub change: ProposedChange,
    pub approvals: Vec<Approval>,
    pub history: Vec<ProposalEvent>,
    /// Why it failed: `stale: ...`, or the error its change met.
    pub reason: Option<String>,
    /// Log index of the last change to this proposal.
    pub revision: Revision,
}
