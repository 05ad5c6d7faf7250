//! Wire types of approvals and webhooks (contract section 7): the 202 answer of a release
//! change that became a proposal, proposal views and decisions, webhook registration, and
//! the deliveries a webhook received.

use serde::{Deserialize, Serialize};

use crate::{ReleaseRule, RollbackMode, Strategy, rfc3339};

/// A webhook's name: 1 to this many characters, no control characters.
pub const WEBHOOK_MAX_NAME_CHARS: usize = 128;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_MAX_URL_BYTES: usize = 2048;
/// Shortest webhook secret, in bytes: an HMAC key guessable by brute force protects nothing.
pub const WEBHOOK_MIN_SECRET_BYTES: usize = 16;
/// Longest webhook secret, in bytes.
pub const WEBHOOK_MAX_SECRET_BYTES: usize = 256;

/// Every event a webhook can subscribe to.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "proposal.created",
    "proposal.approved",
    "proposal.rejected",
    "proposal.executed",
    "proposal.failed",
    "release.changed",
    "version.created",
];

/// `202 Accepted`: the release change became a proposal and changed nothing clients see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalAccepted {
    pub proposal_id: u64,
    /// `pending`.
    pub status: String,
    pub config_id: u64,
    /// The version a `publish` created (creating versions needs no approval; releasing
    /// them does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<u64>,
}

/// Body of `POST /api/v1/mgt/proposals/{id}/approve|reject|cancel` (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalDecision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What a proposal changes when it executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposedChangeView {
    /// `PUT releases`: the whole rule list.
    SetReleases {
        releases: Vec<ReleaseRule>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// `publish`: release an already created version with this strategy.
    Publish { version_id: u64, strategy: Strategy },
    /// `rollback`.
    Rollback { version_id: u64, mode: RollbackMode },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// `user:alice`, `token:<id>`, or `webhook:<id>` for an external approver.
    pub approver: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One step of a proposal's life, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalEventView {
    /// `created`, `approved`, `rejected`, `canceled`, `executed` or `failed`.
    pub action: String,
    pub actor: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The cluster revision of the entry that recorded this step.
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalView {
    pub id: u64,
    pub config_id: u64,
    /// `tenant/app/env/name`.
    pub config: String,
    /// `pending`, `rejected`, `canceled`, `executed` or `failed`.
    pub status: String,
    pub proposer: String,
    pub created_at: String,
    /// The config's revision the change was proposed against: it executes only if the config
    /// is still at this revision.
    pub base_revision: u64,
    pub change: ProposedChangeView,
    pub approvals: Vec<ApprovalView>,
    pub history: Vec<ProposalEventView>,
    /// Why a proposal `failed` (`stale`, or the error its change met).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Revision of the last change to this proposal.
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalList {
    pub proposals: Vec<ProposalView>,
    /// Pass as `?cursor=` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/webhooks`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// A subset of [`WEBHOOK_EVENTS`].
    pub events: Vec<String>,
    /// The HMAC key of `X-Conflux-Signature-256`; stored encrypted, never returned.
    pub secret: String,
    /// Only events of this tenant; absent: every tenant (cluster_admin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl std::fmt::Debug for CreateWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// A registered webhook (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// One try to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttemptView {
    pub time: String,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why the attempt failed (connection refused, timeout, non-2xx answer...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One event for one webhook, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The `X-Conflux-Delivery` id, stable across retries.
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// `pending` (waiting for its next attempt), `delivered`, or `failed` (given up after
    /// 24 h of retries).
    pub status: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// Oldest first.
    pub attempts: Vec<DeliveryAttemptView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

impl From<&conflux_domain::ProposedChange> for ProposedChangeView {
    fn from(c: &conflux_domain::ProposedChange) -> Self {
        use conflux_domain::{ProposedChange, PublishStrategy};
        match c {
            ProposedChange::SetReleases { rules, comment } => ProposedChangeView::SetReleases {
                releases: rules.clone(),
                comment: comment.clone(),
            },
            ProposedChange::Publish {
                version_id,
                strategy,
            } => ProposedChangeView::Publish {
                version_id: *version_id,
                strategy: match strategy {
                    PublishStrategy::Stable => Strategy::Stable,
                    PublishStrategy::Canary {
                        labels,
                        percent,
                        priority,
                    } => Strategy::Canary {
                        labels: labels.clone(),
                        percent: *percent,
                        priority: Some(*priority),
                    },
                },
            },
            ProposedChange::Rollback { version_id, mode } => ProposedChangeView::Rollback {
                version_id: *version_id,
                mode: *mode,
            },
        }
    }
}

impl From<&conflux_domain::ReleaseProposal> for ProposalView {
    fn from(p: &conflux_domain::ReleaseProposal) -> Self {
        ProposalView {
            id: p.id,
            config_id: p.config_id,
            config: p.path.to_string(),
            status: p.status.as_str().to_owned(),
            proposer: p.proposer.clone(),
            created_at: rfc3339(p.created_at),
            base_revision: p.base_revision,
            change: ProposedChangeView::from(&p.change),
            approvals: p
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    approver: a.approver.clone(),
                    time: rfc3339(a.time),
                    comment: a.comment.clone(),
                })
                .collect(),
            history: p
                .history
                .iter()
                .map(|h| ProposalEventView {
                    action: h.action.as_str().to_owned(),
                    actor: h.actor.clone(),
                    time: rfc3339(h.time),
                    comment: h.comment.clone(),
                    revision: h.revision,
                })
                .collect(),
            reason: p.reason.clone(),
            revision: p.revision,
        }
    }
}
