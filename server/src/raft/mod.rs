//! openraft glue: the type configuration, node identity, and the network between nodes.
//!
//! The storage side of Raft (log store, state machine, snapshots) lives in [`crate::storage`];
//! this module only says what travels through Raft and how nodes reach each other.

pub mod election;
pub mod network;
pub mod peers;
pub mod service;
pub mod tls;

/// Generated gRPC code of `proto/conflux/raft/v1/raft.proto`.
#[allow(missing_debug_implementations, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("conflux.raft.v1");
}

use std::fmt;

use conflux_domain::{DomainError, Proposal, Response, Revision};
use serde::{Deserialize, Serialize};

/// Node ids are chosen by the operator (`--node-id`) and never change for a data directory.
pub type NodeId = u64;

/// How to reach a member: its Raft listener (node-to-node) and its HTTP API (clients and
/// write forwarding). Stored in the Raft membership, so every node knows every address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub raft_addr: String,
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

/// One node's own view of the cluster, from its Raft metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub node_id: NodeId,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

/// The outcome of one proposal: the revision (log index) of the entry that carried it and
/// the domain's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    pub revision: Revision,
    pub outcome: Result<Response, DomainError>,
}

/// The application payload of one Raft entry: proposals from many clients that the leader
/// batched into one entry (one log append, one replication message, one apply batch). They
/// are applied in order and share the entry's log index as their revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalBatch {
    pub proposals: Vec<Proposal>,
}

/// What applying one entry answers: its log index and, for a batch, one outcome per
/// proposal in order (blank and membership entries have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryResult {
    pub revision: Revision,
    pub outcomes: Vec<Result<Response, DomainError>>,
}

/// What a follower forwards to the leader over the Raft listener. The leader executes it as
/// if it had received the request itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// A client write, already stamped by the follower that received it.
    Propose(Box<Proposal>),
    /// Add a node as a learner and promote it to voter once it has caught up.
    AddMember { node_id: NodeId, node: NodeInfo },
    /// Remove a voter or learner (transferring leadership first if it is the leader).
    RemoveMember { node_id: NodeId },
    /// Hand leadership to another voter (`None`: the most up-to-date one).
    TransferLeader { to: Option<NodeId> },
    /// Confirm leadership and answer the log index a linearizable read must wait for.
    ReadIndex,
    /// Any node: this node's own view (role, term, indexes).
    LocalStatus,
    /// Any node: do not start elections for `millis` (0 resumes at once). Part of a
    /// leadership transfer, so that only the chosen node campaigns.
    PauseElections { millis: u64 },
    /// Any node: start an election now (the other half of a leadership transfer).
    StartElection,
    /// Any node: whether its applied state records `node_id` as a member that has held data
    /// (asked by a node starting on an empty data directory).
    MemberStarted { node_id: NodeId },
}

/// What a follower does with a request it forwarded to a leader when a newer leader is
/// elected before the answer arrives (a leader cut off from the others never answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLeaderChange {
    /// Send it to the new leader: executing it twice has the effect of executing it once
    /// (reads, and writes with an idempotency key, which the state machine answers from its
    /// record the second time).
    Resend,
    /// Answer the client now that the outcome is unknown.
    GiveUp,
    /// Keep waiting for the answer: the request moves leadership itself.
    Wait,
}

impl ForwardRequest {
    pub fn on_leader_change(&self) -> OnLeaderChange {
        match self {
            ForwardRequest::Propose(p) if p.idempotency.is_some() => OnLeaderChange::Resend,
            ForwardRequest::Propose(_) => OnLeaderChange::GiveUp,
            ForwardRequest::ReadIndex
            | ForwardRequest::LocalStatus
            | ForwardRequest::MemberStarted { .. } => OnLeaderChange::Resend,
            // A transfer, and the removal of a leader (which transfers first), change the
            // leader before they answer.
            ForwardRequest::AddMember { .. }
            | ForwardRequest::RemoveMember { .. }
            | ForwardRequest::TransferLeader { .. }
            | ForwardRequest::PauseElections { .. }
            | ForwardRequest::StartElection => OnLeaderChange::Wait,
        }
    }
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Applied(Box<ApplyResult>),
    /// A membership change or leadership transfer finished; the log index it committed at.
    Done {
        revision: Revision,
    },
    ReadIndex(u64),
    Status(NodeView),
    MemberStarted(bool),
    /// The receiver is not the leader (any more); `leader` is who it thinks is.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The operation failed for a reason the caller should report as is.
    Failed {
        kind: FailureKind,
        message: String,
    },
}

/// Why a forwarded request failed on the node that executed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// A write was not committed in time; it may still be.
    WriteTimeout,
    /// The executing node's Raft core stopped.
    NodeStopped,
    /// A node id is already a member with other addresses.
    MemberConflict,
    MemberNotFound,
    /// Removing the node would leave the cluster without voters.
    LastVoter,
    NotAVoter,
    /// openraft refused the membership change (e.g. another change is in progress).
    MembershipChangeRejected,
    /// A joining node did not catch up with the leader in time.
    CatchUpTimeout,
    TransferFailed,
}

impl FailureKind {
    /// The stable error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::WriteTimeout => "write_timeout",
            FailureKind::NodeStopped => "node_stopped",
            FailureKind::MemberConflict => "member_conflict",
            FailureKind::MemberNotFound => "member_not_found",
            FailureKind::LastVoter => "last_voter",
            FailureKind::NotAVoter => "not_a_voter",
            FailureKind::MembershipChangeRejected => "membership_change_rejected",
            FailureKind::CatchUpTimeout => "catch_up_timeout",
            FailureKind::TransferFailed => "transfer_failed",
        }
    }
}

openraft::declare_raft_types!(
    /// The Raft types of Conflux. Snapshots are files on disk, streamed in chunks.
    pub TypeConfig:
        D = ProposalBatch,
        R = EntryResult,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
