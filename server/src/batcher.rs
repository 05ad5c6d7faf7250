//! Group commit at the Raft level: the leader packs proposals that arrive while earlier
//! entries are still in flight into one Raft entry.
//!
//! openraft appends, replicates and applies entry by entry, so one entry per client write
//! costs one log write, one WAL sync and one replication message each. The batcher keeps at
//! most [`MAX_IN_FLIGHT`] entries in flight; whatever queues up meanwhile becomes the next
//! entry. Under light load a proposal goes out alone at once; under heavy load entries grow
//! (up to [`MAX_BATCH_PROPOSALS`] proposals or [`MAX_BATCH_BYTES`] of encoded proposals) and
//! the cost per write falls. The queue is bounded: when it is full, submitters wait.
//!
//! Invariants:
//! - **Every entry in flight is answered within the commit timeout.** openraft never answers
//!   a write whose uncommitted entry was later replaced by a snapshot; without a bound, the
//!   in-flight slot it holds would be lost for good and the node, once leader again, could
//!   not commit anything. An entry whose outcome is not known when the timeout passes, or
//!   when this node stops leading the term it was proposed in, frees its slot and its
//!   proposals get [`SubmitError::OutcomeUnknown`].
//! - **A proposal that may be in the log is never reported as safe to re-propose**, unless it
//!   carries an idempotency key (apply then answers a second copy with the first outcome).
//!   A `ForwardToLeader` after the entry was appended does not prove that it was never
//!   committed: in a cluster of five, a node holding it can still win an election.
//! - **Time is the leader's**: proposals are stamped here, when the entry is formed.

use std::sync::Arc;
use std::time::Duration;

use conflux_domain::Proposal;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::clock;
use crate::metrics::Metrics;
use crate::raft::{ApplyResult, NodeId, ProposalBatch, Raft};
use crate::storage::codec;

/// Entries in flight at once; more queue up into the next batch.
pub const MAX_IN_FLIGHT: usize = 2;
pub const MAX_BATCH_PROPOSALS: usize = 512;
/// Encoded bytes of the proposals of one entry (512 proposals of 1 KiB fit). A single larger
/// proposal still goes alone: request bodies are capped at 4 MiB, so an entry stays within
/// what one append-entries message carries (see `raft/network.rs`).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Proposals waiting for a batch; submitters wait when it is full.
pub const QUEUE_CAPACITY: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The proposal never reached the log (or carries an idempotency key): proposing it
    /// again through the leader is safe.
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
    /// The proposal may or may not commit; only the client can retry it, with the same
    /// idempotency key.
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error("the Raft core stopped: {0}")]
    Stopped(String),
}

struct Pending {
    proposal: Proposal,
    reply: oneshot::Sender<Result<ApplyResult, SubmitError>>,
}

/// Handle to the batching task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

/// Who runs the batches and how long an entry may stay in flight.
struct Leader {
    raft: Raft,
    node_id: NodeId,
    commit_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// Starts the batching task of node `node_id`; an entry in flight longer than
    /// `commit_timeout` is given up (its proposals' outcome is unknown).
    pub fn start(
        raft: Raft,
        node_id: NodeId,
        commit_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let leader = Leader {
            raft,
            node_id,
            commit_timeout,
            metrics,
        };
        tokio::spawn(run(Arc::new(leader), rx));
        Batcher { tx }
    }

    /// Proposes through Raft (this node must lead) and answers this proposal's outcome.
    pub async fn submit(&self, proposal: Proposal) -> Result<ApplyResult, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { proposal, reply })
            .await
            .map_err(|_| SubmitError::Stopped("the batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| SubmitError::Stopped("the batcher dropped the proposal".into()))?
    }
}

async fn run(leader: Arc<Leader>, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A proposal that did not fit into the previous batch opens the next one.
    let mut held: Option<(Pending, usize)> = None;
    loop {
        // Wait for a free slot first: proposals arriving meanwhile accumulate into one batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (first, mut bytes) = match held.take() {
            Some(held) => held,
            None => {
                let Some(p) = rx.recv().await else { return };
                let size = codec::encoded_len(&p.proposal);
                (p, size)
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_PROPOSALS {
            let Ok(p) = rx.try_recv() else { break };
            let size = codec::encoded_len(&p.proposal);
            if bytes + size > MAX_BATCH_BYTES {
                held = Some((p, size));
                break;
            }
            bytes += size;
            batch.push(p);
        }
        let (term, current_leader) = {
            let metrics = leader.raft.metrics();
            let m = metrics.borrow();
            (m.current_term, m.current_leader)
        };
        if current_leader != Some(leader.node_id) {
            // Not handed to openraft: safe to retry on the leader.
            for p in batch {
                let _ = p.reply.send(Err(SubmitError::NotLeader {
                    leader: current_leader,
                }));
            }
            continue;
        }
        leader.metrics.batch_size.observe(batch.len() as f64);
        let now = clock::now_ms();
        for p in &mut batch {
            p.proposal.timestamp_ms = now;
        }
        tokio::spawn(leader.clone().commit(batch, term, permit));
    }
}

impl Leader {
    /// Proposes one entry and answers its proposals; the slot is freed when the entry's
    /// outcome is known or can no longer be learnt here.
    async fn commit(self: Arc<Self>, batch: Vec<Pending>, term: u64, slot: OwnedSemaphorePermit) {
        let mut proposals = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for p in batch {
            waiters.push((p.reply, p.proposal.idempotency.is_some()));
            proposals.push(p.proposal);
        }
        let mut metrics = self.raft.metrics();
        let node_id = self.node_id;
        let result = tokio::select! {
            written = self.raft.client_write(ProposalBatch { proposals }) => Ok(written),
            _ = tokio::time::sleep(self.commit_timeout) => Err(format!(
                "the write was not committed within {:?}", self.commit_timeout
            )),
            _ = metrics.wait_for(|m| m.current_term != term || m.current_leader != Some(node_id)) => {
                Err("the leader lost its leadership before the write committed".to_owned())
            }
        };
        drop(slot);
        let failure = match result {
            Ok(Ok(written)) => {
                let revision = written.data.revision;
                assert_eq!(
                    written.data.outcomes.len(),
                    waiters.len(),
                    "one outcome per proposal of an entry"
                );
                for ((reply, _), outcome) in waiters.into_iter().zip(written.data.outcomes) {
                    let _ = reply.send(Ok(ApplyResult { revision, outcome }));
                }
                return;
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Failure::Unknown {
                    why: "leadership moved before the write committed".to_owned(),
                    leader: f.leader_id,
                }
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Failure::Stopped(format!("unexpected membership error for a write: {e}"))
            }
            Ok(Err(RaftError::Fatal(e))) => Failure::Stopped(e.to_string()),
            Err(why) => {
                let leader = self.raft.metrics().borrow().current_leader;
                Failure::Unknown {
                    why,
                    leader: leader.filter(|l| *l != node_id),
                }
            }
        };
        for (reply, idempotent) in waiters {
            let _ = reply.send(Err(failure.error_for(idempotent)));
        }
    }
}

/// Why an entry's proposals got no outcome.
enum Failure {
    /// The entry may or may not commit.
    Unknown {
        why: String,
        leader: Option<NodeId>,
    },
    Stopped(String),
}

impl Failure {
    fn error_for(&self, idempotent: bool) -> SubmitError {
        match self {
            // Apply answers a second copy of an idempotent proposal with the first outcome,
            // so it may go to the new leader.
            Failure::Unknown { leader, .. } if idempotent => {
                SubmitError::NotLeader { leader: *leader }
            }
            Failure::Unknown { why, .. } => SubmitError::OutcomeUnknown(format!(
                "{why}; its outcome is unknown, retry with the same X-Idempotency-Key"
            )),
            Failure::Stopped(e) => SubmitError::Stopped(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use conflux_domain::{Command, IdempotencyKey};

    #[test]
    fn only_idempotent_proposals_of_an_entry_with_unknown_outcome_may_be_proposed_again() {
        let unknown = Failure::Unknown {
            why: "the leader lost its leadership".into(),
            leader: Some(2),
        };
        assert!(matches!(
            unknown.error_for(true),
            SubmitError::NotLeader { leader: Some(2) }
        ));
        match unknown.error_for(false) {
            SubmitError::OutcomeUnknown(m) => assert!(m.contains("X-Idempotency-Key"), "{m}"),
            other => panic!("a proposal without a key must not be re-proposed: {other:?}"),
        }
    }

    #[test]
    fn batch_bytes_count_every_field_not_only_content() {
        // A proposal with a small content and a large description must weigh its whole
        // encoding: 512 of them must not make one entry of gigabytes.
        let description = "d".repeat(1024 * 1024);
        let p = Proposal::new(
            1,
            Command::CreateVersion {
                config_id: 1,
                content: Bytes::from_static(b"{}"),
                description: Some(description),
                sealed: None,
            },
        );
        assert!(codec::encoded_len(&p) > 1024 * 1024);
        let mut idempotent = p.clone();
        idempotent.idempotency = Some(IdempotencyKey {
            key: "k".into(),
            fingerprint: conflux_domain::ContentHash::of(b"x"),
        });
        assert!(codec::encoded_len(&idempotent) > codec::encoded_len(&p));
    }
}
