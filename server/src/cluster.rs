//! Cluster operations that must run on the leader, reached from any node.
//!
//! A node that receives a write, a membership change or a linearizable read it cannot serve
//! itself forwards it to the leader over the Raft listener ([`ForwardRequest`]) and answers
//! the client with the leader's result: the client sees one request. With no leader the
//! caller gets [`ClusterError::NoLeader`] after a bounded wait, never a hang.
//!
//! openraft 0.9 has no leadership transfer; [`Cluster::transfer_leader`] builds one from its
//! runtime switches: the other voters pause elections, the leader stops heartbeats, and once
//! the leader lease has run out the target campaigns and wins.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership, ServerState};

use crate::batcher::{Batcher, SubmitError};
use crate::metrics::Metrics;
use crate::raft::election::ElectionAssist;
use crate::raft::pb::Payload;
use crate::raft::peers::Peers;
use conflux_domain::Proposal;

use crate::raft::{
    ApplyResult, FailureKind, ForwardReply, ForwardRequest, NodeId, NodeInfo, NodeView,
    OnLeaderChange, Raft,
};
use crate::storage::{ConfigPlane, codec};

/// How long to wait between attempts while the cluster has no (known) leader.
const NO_LEADER_RETRY: Duration = Duration::from_millis(100);
/// A learner must catch up within this long before it is promoted.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);
/// A new learner must acknowledge its first replication message within this long.
const LEARNER_CONTACT_TIMEOUT: Duration = Duration::from_secs(10);
/// A learner this close to the leader's log counts as caught up.
const LEARNER_MAX_LAG: u64 = 100;
/// Longest a leadership transfer may take before it is abandoned.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a status query to another member.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the cluster has no leader at the moment; retry shortly")]
    NoLeader,
    /// The request may or may not have been applied (the leader failed mid-way, or the
    /// deadline passed): the client should retry with the same idempotency key.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The leader refused the operation (bad membership change, unknown member...).
    #[error("{message}")]
    Rejected { kind: FailureKind, message: String },
    #[error("this node's Raft core has stopped: {0}")]
    Stopped(String),
    /// The write committed at `revision`, but this node had applied only up to `applied`
    /// when the write timeout passed; a read here would not show it yet.
    #[error(
        "the write committed at revision {revision}, but this node has applied only revision {applied} so far; retry with the same X-Idempotency-Key, or read with min_revision={revision}"
    )]
    NotAppliedHere { revision: u64, applied: u64 },
}

/// Handle to the cluster operations of this node; cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    node_id: NodeId,
    raft: Raft,
    peers: Arc<Peers>,
    plane: ConfigPlane,
    write_timeout: Duration,
    /// When this node last heard from a leader, and elections sooner than openraft's own.
    elections: ElectionAssist,
    /// Set while this leader hands leadership over: it takes no new writes (every append
    /// would renew the followers' lease and keep the target from winning); callers retry
    /// and reach the new leader.
    transferring: AtomicBool,
    batcher: Batcher,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.0.node_id)
            .finish_non_exhaustive()
    }
}

enum ForwardError {
    /// The connection could not be made: the request did not leave this node.
    NotSent(String),
    /// The request may have been delivered.
    Unknown(String),
    /// A newer leader (`to`) was elected while the request was in flight; it may still be
    /// executed by the old one.
    LeaderMoved { to: NodeId },
}

fn rejected(kind: FailureKind, message: impl Into<String>) -> ForwardReply {
    ForwardReply::Failed {
        kind,
        message: message.into(),
    }
}

impl Cluster {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        peers: Arc<Peers>,
        plane: ConfigPlane,
        write_timeout: Duration,
        elections: ElectionAssist,
        metrics: Arc<Metrics>,
    ) -> Self {
        let batcher = Batcher::start(raft.clone(), node_id, write_timeout, metrics);
        Cluster(Arc::new(Inner {
            node_id,
            raft,
            peers,
            plane,
            write_timeout,
            elections,
            transferring: AtomicBool::new(false),
            batcher,
        }))
    }

    pub fn node_id(&self) -> NodeId {
        self.0.node_id
    }

    pub fn raft(&self) -> &Raft {
        &self.0.raft
    }

    pub fn elections(&self) -> &ElectionAssist {
        &self.0.elections
    }

    /// Members of the effective membership (the latest one in the log, committed or not)
    /// with their addresses: whom this node may have to talk to right now.
    pub fn members(&self) -> Vec<(NodeId, NodeInfo, bool)> {
        let metrics = self.0.raft.metrics().borrow().clone();
        member_list(metrics.membership_config.membership())
    }

    /// Members as of the last applied entry: the membership the cluster has agreed on.
    fn applied_members(&self) -> Vec<(NodeId, NodeInfo, bool)> {
        let (_, stored) = self.0.plane.applied_state();
        member_list(stored.membership())
    }

    fn node_info(&self, id: NodeId) -> Option<NodeInfo> {
        self.members()
            .into_iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, n, _)| n)
    }

    // ---- client writes and reads ---------------------------------------------------------

    /// Commits a proposal through the leader and waits until this node has applied it, so
    /// a client reading from this node afterwards sees its write. A write that committed but
    /// is not applied here by the deadline is not acknowledged as if it were visible:
    /// [`ClusterError::NotAppliedHere`].
    pub async fn propose(&self, proposal: Proposal) -> Result<ApplyResult, ClusterError> {
        let deadline = Instant::now() + self.0.write_timeout;
        match self
            .on_leader(ForwardRequest::Propose(Box::new(proposal)), deadline)
            .await?
        {
            ForwardReply::Applied(result) => {
                let result = *result;
                let remaining = deadline.saturating_duration_since(Instant::now());
                if self.0.plane.wait_applied(result.revision, remaining).await {
                    Ok(result)
                } else {
                    Err(ClusterError::NotAppliedHere {
                        revision: result.revision,
                        applied: self.0.plane.applied_index(),
                    })
                }
            }
            other => Err(unexpected(other)),
        }
    }

    /// The log index a linearizable read on this node must wait for (confirmed by the
    /// leader's quorum).
    pub async fn read_index(&self) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + self.0.write_timeout;
        match self.on_leader(ForwardRequest::ReadIndex, deadline).await? {
            ForwardReply::ReadIndex(index) => Ok(index),
            other => Err(unexpected(other)),
        }
    }

    /// Runs a leader-only request: here if this node leads, otherwise on the leader.
    /// Retries while there is no leader or leadership moves, until `deadline`.
    pub async fn on_leader(
        &self,
        request: ForwardRequest,
        deadline: Instant,
    ) -> Result<ForwardReply, ClusterError> {
        loop {
            let reply = match self.handle_forwarded(request.clone()).await {
                ForwardReply::NotLeader {
                    leader: Some(leader),
                } if leader != self.0.node_id => match self.node_info(leader) {
                    None => ForwardReply::NotLeader { leader: None },
                    Some(node) => match self.forward_to_leader(&node, &request, deadline).await {
                        Ok(reply) => reply,
                        Err(ForwardError::NotSent(why)) => {
                            tracing::debug!(leader, %why, "leader not reachable, retrying");
                            ForwardReply::NotLeader { leader: None }
                        }
                        Err(ForwardError::LeaderMoved { to })
                            if request.on_leader_change() == OnLeaderChange::Resend =>
                        {
                            tracing::debug!(
                                leader,
                                to,
                                "leadership moved, retrying on the new leader"
                            );
                            ForwardReply::NotLeader { leader: None }
                        }
                        Err(ForwardError::LeaderMoved { to }) => {
                            return Err(ClusterError::OutcomeUnknown(format!(
                                "leadership moved from node {leader} to node {to} while the request was with node {leader}; the outcome is unknown, retry with the same X-Idempotency-Key"
                            )));
                        }
                        Err(ForwardError::Unknown(why)) => {
                            return Err(ClusterError::OutcomeUnknown(format!(
                                "the leader (node {leader}) did not answer: {why}; the outcome is unknown, retry with the same X-Idempotency-Key"
                            )));
                        }
                    },
                },
                other => other,
            };
            match reply {
                ForwardReply::NotLeader { .. } => {
                    if Instant::now() + NO_LEADER_RETRY >= deadline {
                        return Err(ClusterError::NoLeader);
                    }
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                }
                ForwardReply::Failed {
                    kind: FailureKind::NodeStopped,
                    message,
                } => {
                    return Err(ClusterError::Stopped(message));
                }
                ForwardReply::Failed {
                    kind: FailureKind::WriteTimeout,
                    message,
                } => {
                    return Err(ClusterError::OutcomeUnknown(message));
                }
                ForwardReply::Failed { kind, message } => {
                    return Err(ClusterError::Rejected { kind, message });
                }
                other => return Ok(other),
            }
        }
    }

    /// Forwards `request` to the leader `node`, but stops waiting once this node knows of a
    /// leader elected after the request left (unless the request itself moves leadership,
    /// [`OnLeaderChange::Wait`]): a leader cut off from the others neither answers nor closes
    /// the connection, and waiting for the deadline would hold the client long after the
    /// cluster has recovered.
    async fn forward_to_leader(
        &self,
        node: &NodeInfo,
        request: &ForwardRequest,
        deadline: Instant,
    ) -> Result<ForwardReply, ForwardError> {
        if request.on_leader_change() == OnLeaderChange::Wait {
            return self.forward(node, request, deadline).await;
        }
        let mut metrics = self.0.raft.metrics();
        let term = metrics.borrow().current_term;
        let newer_leader = async move {
            let newer = metrics
                .wait_for(|m| m.current_term > term && m.current_leader.is_some())
                .await
                .ok()
                .and_then(|m| m.current_leader);
            match newer {
                Some(to) => to,
                // Raft stopped: the forward ends on its own.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            reply = self.forward(node, request, deadline) => reply,
            to = newer_leader => Err(ForwardError::LeaderMoved { to }),
        }
    }

    async fn forward(
        &self,
        node: &NodeInfo,
        request: &ForwardRequest,
        deadline: Instant,
    ) -> Result<ForwardReply, ForwardError> {
        self.forward_within(
            node,
            request,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
    }

    async fn forward_within(
        &self,
        node: &NodeInfo,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardReply, ForwardError> {
        let mut client = self
            .0
            .peers
            .client(&node.raft_addr)
            .map_err(|e| ForwardError::NotSent(e.to_string()))?;
        let mut req = tonic::Request::new(Payload {
            data: codec::encode(request),
        });
        let timeout = timeout.max(Duration::from_millis(10));
        req.set_timeout(timeout);
        match crate::raft::peers::within(timeout, client.forward(req)).await {
            Ok(reply) => codec::decode(&reply.into_inner().data)
                .map_err(|e| ForwardError::Unknown(format!("undecodable reply: {e}"))),
            Err(status) => {
                let msg = format!("{}: {}", node.raft_addr, status.message());
                // A refused connection means the request never left this node.
                if status.code() == tonic::Code::Unavailable && status.message().contains("connect")
                {
                    Err(ForwardError::NotSent(msg))
                } else {
                    Err(ForwardError::Unknown(msg))
                }
            }
        }
    }

    // ---- the leader side -----------------------------------------------------------------

    /// Executes a request on this node. Leader-only requests answer `NotLeader` here if this
    /// node does not lead; they are never forwarded again (no forwarding loops).
    pub async fn handle_forwarded(&self, request: ForwardRequest) -> ForwardReply {
        let raft = &self.0.raft;
        match request {
            ForwardRequest::Propose(_) if self.0.transferring.load(Ordering::SeqCst) => {
                ForwardReply::NotLeader { leader: None }
            }
            ForwardRequest::Propose(p) => {
                match tokio::time::timeout(self.0.write_timeout, self.0.batcher.submit(*p)).await {
                    Err(_) => rejected(
                        FailureKind::WriteTimeout,
                        format!(
                            "the write was not committed within {:?}; its outcome is unknown, retry with the same X-Idempotency-Key",
                            self.0.write_timeout
                        ),
                    ),
                    Ok(Ok(applied)) => ForwardReply::Applied(Box::new(applied)),
                    Ok(Err(SubmitError::NotLeader { leader })) => {
                        ForwardReply::NotLeader { leader }
                    }
                    Ok(Err(SubmitError::OutcomeUnknown(e))) => {
                        rejected(FailureKind::WriteTimeout, e)
                    }
                    Ok(Err(SubmitError::Stopped(e))) => rejected(FailureKind::NodeStopped, e),
                }
            }
            ForwardRequest::ReadIndex => match raft.get_read_log_id().await {
                Ok((read, _applied)) => ForwardReply::ReadIndex(read.map_or(0, |l| l.index)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                    f,
                ))) => ForwardReply::NotLeader {
                    leader: f.leader_id,
                },
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(
                    e,
                ))) => {
                    tracing::debug!(error = %e, "leadership not confirmed by a quorum");
                    ForwardReply::NotLeader { leader: None }
                }
                Err(RaftError::Fatal(e)) => rejected(FailureKind::NodeStopped, e.to_string()),
            },
            ForwardRequest::AddMember { node_id, node } => {
                self.add_member_here(node_id, node).await
            }
            ForwardRequest::RemoveMember { node_id } => self.remove_member_here(node_id).await,
            ForwardRequest::TransferLeader { to } => match to.or_else(|| self.best_successor()) {
                Some(to) => self.transfer_leader_here(to).await,
                None => rejected(
                    FailureKind::NotAVoter,
                    "there is no other voter to transfer leadership to",
                ),
            },
            ForwardRequest::LocalStatus => ForwardReply::Status(self.local_view()),
            ForwardRequest::MemberStarted { node_id } => {
                ForwardReply::MemberStarted(self.0.plane.read(|s| s.member_started(node_id)))
            }
            ForwardRequest::PauseElections { millis } => {
                if millis == 0 {
                    self.0.elections.resume();
                } else {
                    self.0.elections.pause(Duration::from_millis(millis));
                }
                ForwardReply::Done {
                    revision: self.0.plane.applied_index(),
                }
            }
            ForwardRequest::StartElection => match raft.trigger().elect().await {
                Ok(()) => ForwardReply::Done {
                    revision: self.0.plane.applied_index(),
                },
                Err(e) => rejected(FailureKind::NodeStopped, e.to_string()),
            },
        }
    }

    fn leader_here(&self) -> Result<(), ForwardReply> {
        let leader = self.0.raft.metrics().borrow().current_leader;
        if leader == Some(self.0.node_id) {
            Ok(())
        } else {
            Err(ForwardReply::NotLeader { leader })
        }
    }

    async fn add_member_here(&self, node_id: NodeId, node: NodeInfo) -> ForwardReply {
        if let Err(not) = self.leader_here() {
            return not;
        }
        if let Some((_, existing, voter)) =
            self.members().into_iter().find(|(id, _, _)| *id == node_id)
        {
            if existing != node {
                return rejected(
                    FailureKind::MemberConflict,
                    format!(
                        "node {node_id} is already a member with other addresses ({existing}); remove it first"
                    ),
                );
            }
            if voter {
                return ForwardReply::Done {
                    revision: self.0.plane.applied_index(),
                };
            }
        }
        let raft = &self.0.raft;
        // openraft's own "blocking" add_learner counts a learner within 5000 entries of the
        // leader as caught up, even one that has received nothing; wait for real progress.
        let added = match raft.add_learner(node_id, node, false).await {
            Ok(r) => r.log_id.index,
            Err(e) => return write_error(e),
        };
        let mut metrics = raft.metrics();
        let matched = |m: &openraft::RaftMetrics<NodeId, NodeInfo>| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&node_id).cloned().flatten())
        };
        // A node that is up answers within milliseconds; one that never does is not waited
        // for the whole catch-up time.
        let contacted = tokio::time::timeout(
            LEARNER_CONTACT_TIMEOUT,
            metrics.wait_for(|m| matched(m).is_some()),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let caught_up = contacted
            && tokio::time::timeout(
                CATCH_UP_TIMEOUT,
                metrics.wait_for(|m| {
                    let at = matched(m).map_or(0, |l| l.index);
                    let last = m.last_log_index.unwrap_or(0);
                    at >= added && last.saturating_sub(at) <= LEARNER_MAX_LAG
                }),
            )
            .await
            .is_ok_and(|r| r.is_ok());
        if !caught_up {
            // Do not leave a dead learner in the membership.
            let remove = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
            if let Err(e) = raft.change_membership(remove, false).await {
                tracing::warn!(node_id, error = %e, "could not remove a learner that never caught up");
            }
            return rejected(
                FailureKind::CatchUpTimeout,
                format!(
                    "node {node_id} did not catch up within {CATCH_UP_TIMEOUT:?}; is it running and reachable?"
                ),
            );
        }
        match raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
        {
            Ok(r) => {
                tracing::info!(node_id, "node joined as a voter");
                ForwardReply::Done {
                    revision: r.log_id.index,
                }
            }
            Err(e) => write_error(e),
        }
    }

    async fn remove_member_here(&self, node_id: NodeId) -> ForwardReply {
        if let Err(not) = self.leader_here() {
            return not;
        }
        let members = self.members();
        let Some((_, _, voter)) = members.iter().find(|(id, _, _)| *id == node_id).cloned() else {
            return rejected(
                FailureKind::MemberNotFound,
                format!("node {node_id} is not a member"),
            );
        };
        let voters: Vec<NodeId> = members.iter().filter(|m| m.2).map(|m| m.0).collect();
        if voter && voters.len() == 1 {
            return rejected(
                FailureKind::LastVoter,
                "cannot remove the last voter of the cluster",
            );
        }
        if node_id == self.0.node_id {
            // Hand leadership over first, then let the new leader remove this node.
            let Some(target) = self.best_successor() else {
                return rejected(
                    FailureKind::TransferFailed,
                    "no other voter can take over leadership",
                );
            };
            return match self.transfer_leader_here(target).await {
                ForwardReply::Done { .. } => ForwardReply::NotLeader {
                    leader: Some(target),
                },
                other => other,
            };
        }
        let change = if voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        match self.0.raft.change_membership(change, false).await {
            Ok(r) => {
                tracing::info!(node_id, "node removed from the cluster");
                ForwardReply::Done {
                    revision: r.log_id.index,
                }
            }
            Err(e) => write_error(e),
        }
    }

    /// The voter other than this node with the most replicated log.
    pub fn best_successor(&self) -> Option<NodeId> {
        let metrics = self.0.raft.metrics().borrow().clone();
        let replication = metrics.replication.clone().unwrap_or_default();
        self.members()
            .into_iter()
            .filter(|(id, _, voter)| *voter && *id != self.0.node_id)
            .max_by_key(|(id, _, _)| {
                replication
                    .get(id)
                    .cloned()
                    .flatten()
                    .map_or(0, |l| l.index)
            })
            .map(|(id, _, _)| id)
    }

    /// Runs the transfer in a task of its own: elections and heartbeats are switched off
    /// during a transfer and must be switched back on even if the request that started it is
    /// dropped (client gone, forwarding deadline), so the transfer always runs to its end.
    async fn transfer_leader_here(&self, to: NodeId) -> ForwardReply {
        let this = self.clone();
        tokio::spawn(async move { this.transfer_leader_detached(to).await })
            .await
            .unwrap_or_else(|e| {
                rejected(
                    FailureKind::TransferFailed,
                    format!("the transfer task failed: {e}"),
                )
            })
    }

    async fn transfer_leader_detached(&self, to: NodeId) -> ForwardReply {
        if let Err(not) = self.leader_here() {
            return not;
        }
        if to == self.0.node_id {
            return ForwardReply::Done {
                revision: self.0.plane.applied_index(),
            };
        }
        let members = self.members();
        let Some((_, target, true)) = members.iter().find(|(id, _, _)| *id == to).cloned() else {
            return rejected(
                FailureKind::NotAVoter,
                format!("node {to} is not a voter of this cluster"),
            );
        };
        let raft = &self.0.raft;
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        // 1. Let the target catch up, so that it can win the election.
        let mut metrics = raft.metrics();
        let caught_up = tokio::time::timeout_at(
            deadline.into(),
            metrics.wait_for(|m| {
                let last = m.last_log_index.unwrap_or(0);
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&to).cloned().flatten())
                    .is_some_and(|l| l.index >= last)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !caught_up {
            return rejected(
                FailureKind::TransferFailed,
                format!("node {to} did not catch up with the leader"),
            );
        }
        // 2. Only the target may campaign: the others pause elections for a while.
        let pause = ForwardRequest::PauseElections {
            millis: TRANSFER_TIMEOUT.as_millis() as u64,
        };
        for (id, node, voter) in &members {
            if *voter && *id != to && *id != self.0.node_id {
                let _ = self.forward_within(node, &pause, STATUS_TIMEOUT).await;
            }
        }
        raft.runtime_config().elect(false);
        self.0.transferring.store(true, Ordering::SeqCst);
        // 3. Stop heartbeats (and new writes); once the followers' leader lease has run out, the target
        //    campaigns with an up-to-date log and wins.
        raft.runtime_config().heartbeat(false);
        tokio::time::sleep(self.0.elections.timing().lease + Duration::from_millis(50)).await;
        let started = self
            .forward_within(&target, &ForwardRequest::StartElection, STATUS_TIMEOUT)
            .await;
        let moved = match started {
            Ok(ForwardReply::Done { .. }) => {
                let mut metrics = raft.metrics();
                tokio::time::timeout_at(
                    deadline.into(),
                    metrics.wait_for(|m| m.current_leader == Some(to)),
                )
                .await
                .is_ok_and(|r| r.is_ok())
            }
            _ => false,
        };
        // 4. Back to normal, whatever happened.
        self.0.transferring.store(false, Ordering::SeqCst);
        raft.runtime_config().heartbeat(true);
        raft.runtime_config().elect(true);
        let resume = ForwardRequest::PauseElections { millis: 0 };
        for (id, node, voter) in &members {
            if *voter && *id != to && *id != self.0.node_id {
                let _ = self.forward_within(node, &resume, STATUS_TIMEOUT).await;
            }
        }
        if moved {
            tracing::info!(to, "leadership transferred");
            ForwardReply::Done {
                revision: self.0.plane.applied_index(),
            }
        } else {
            rejected(
                FailureKind::TransferFailed,
                format!("node {to} did not become leader within {TRANSFER_TIMEOUT:?}"),
            )
        }
    }

    // ---- lost data directories -------------------------------------------------------------

    /// Which of `members` (other than this node) records this node as a member that has
    /// already held data, if any answers so. Asked before a node with an empty data directory
    /// takes part in a cluster: it would otherwise vote with an empty log and could elect a
    /// leader that lacks committed entries. Members that do not answer within a second are
    /// skipped (at a cluster's first start, the others may not be up yet).
    pub async fn started_before(&self, members: &[(NodeId, NodeInfo)]) -> Option<NodeId> {
        let me = self.0.node_id;
        let request = ForwardRequest::MemberStarted { node_id: me };
        let queries = members
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, node)| {
                let request = &request;
                async move {
                    match self.forward_within(node, request, STATUS_TIMEOUT).await {
                        Ok(ForwardReply::MemberStarted(true)) => Some(*id),
                        _ => None,
                    }
                }
            });
        futures::future::join_all(queries)
            .await
            .into_iter()
            .flatten()
            .next()
    }

    /// Records, once, that this node has held data in a cluster of several members (see
    /// [`Cluster::started_before`]). Runs in the background until it has succeeded: waits
    /// until the membership has more than one member, catches up with the leader, and
    /// proposes the record if the state does not hold it yet.
    pub async fn record_started(self) {
        let me = self.0.node_id;
        let mut metrics = self.0.raft.metrics();
        let mut delay = Duration::from_millis(200);
        loop {
            let shared = metrics
                .wait_for(|m| m.membership_config.membership().nodes().count() > 1)
                .await
                .is_ok();
            if !shared {
                return; // Raft stopped.
            }
            self.catch_up_with_leader(Duration::from_secs(5)).await;
            if self.0.plane.read(|s| s.member_started(me)) {
                return;
            }
            let proposal = Proposal::new(
                crate::clock::now_ms(),
                conflux_domain::Command::RecordMemberStarted { node_id: me },
            );
            match self.propose(proposal).await {
                Ok(_) => {
                    tracing::info!("this node is recorded as a member that holds data");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "recording this node as started failed; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    // ---- status ----------------------------------------------------------------------------

    pub fn local_view(&self) -> NodeView {
        let m = self.0.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        NodeView {
            node_id: self.0.node_id,
            role: role.to_owned(),
            term: m.current_term,
            leader_id: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
        }
    }

    /// Every member of the agreed membership with its own view (`None` when it does not
    /// answer within a second). This node first catches up with the leader, so that a status
    /// read here right after a membership change acknowledged by the leader reflects it.
    pub async fn member_views(&self) -> Vec<(NodeId, NodeInfo, bool, Option<NodeView>)> {
        self.catch_up_with_leader(STATUS_TIMEOUT).await;
        let members = self.applied_members();
        let queries = members.into_iter().map(|(id, node, voter)| async move {
            let view = if id == self.0.node_id {
                Some(self.local_view())
            } else {
                match self
                    .forward_within(&node, &ForwardRequest::LocalStatus, STATUS_TIMEOUT)
                    .await
                {
                    Ok(ForwardReply::Status(v)) => Some(v),
                    _ => None,
                }
            };
            (id, node, voter, view)
        });
        futures::future::join_all(queries).await
    }

    /// Waits, at most `timeout`, until this node has applied what the leader had committed
    /// when asked. Best effort: without a reachable leader the local state is all there is.
    async fn catch_up_with_leader(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if let Ok(ForwardReply::ReadIndex(index)) =
            self.on_leader(ForwardRequest::ReadIndex, deadline).await
        {
            let remaining = deadline.saturating_duration_since(Instant::now());
            self.0.plane.wait_applied(index, remaining).await;
        }
    }
}

fn member_list(membership: &Membership<NodeId, NodeInfo>) -> Vec<(NodeId, NodeInfo, bool)> {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| (*id, n.clone(), voters.contains(id)))
        .collect()
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> ForwardReply {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardReply::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            rejected(FailureKind::MembershipChangeRejected, e.to_string())
        }
        RaftError::Fatal(e) => rejected(FailureKind::NodeStopped, e.to_string()),
    }
}

fn unexpected(reply: ForwardReply) -> ClusterError {
    ClusterError::OutcomeUnknown(format!("unexpected answer from the leader: {reply:?}"))
}
