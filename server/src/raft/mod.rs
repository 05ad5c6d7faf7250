//! openraft glue: the type configuration, node identity, and the network between nodes.
//!
//! The storage side of Raft (log store, state machine, snapshots) lives in [`crate::storage`];
//! this module only says what travels through Raft and how nodes reach each other.

pub mod network;

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

/// What applying one entry answers: the entry's log index (the revision it created) and,
/// for application entries, the domain outcome. Blank and membership entries have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    pub revision: Revision,
    pub outcome: Option<Result<Response, DomainError>>,
}

openraft::declare_raft_types!(
    /// The Raft types of Conflux. Snapshots are files on disk, streamed in chunks.
    pub TypeConfig:
        D = Proposal,
        R = ApplyResult,
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
