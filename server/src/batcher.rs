//! Group commit at the Raft level: the leader packs proposals that arrive while earlier
//! entries are still in flight into one Raft entry.
//!
//! openraft appends, replicates and applies entry by entry, so one entry per client write
//! costs one log write, one WAL sync and one replication message each. The batcher keeps at
//! most [`MAX_IN_FLIGHT`] entries in flight; whatever queues up meanwhile becomes the next
//! entry. Under light load a proposal goes out alone at once; under heavy load entries grow
//! (up to [`MAX_BATCH_PROPOSALS`] proposals or [`MAX_BATCH_BYTES`] of content) and the cost
//! per write falls. The queue is bounded: when it is full, submitters wait.

use std::sync::Arc;

use conflux_domain::{Command, Proposal};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::raft::{ApplyResult, NodeId, ProposalBatch, Raft};

/// Entries in flight at once; more queue up into the next batch.
pub const MAX_IN_FLIGHT: usize = 2;
pub const MAX_BATCH_PROPOSALS: usize = 512;
/// Content bytes per entry (a single larger proposal still goes alone).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Proposals waiting for a batch; submitters wait when it is full.
pub const QUEUE_CAPACITY: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
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

fn content_len(p: &Proposal) -> usize {
    match &p.command {
        Command::CreateVersion { content, .. } | Command::Publish { content, .. } => content.len(),
        _ => 0,
    }
}

impl Batcher {
    pub fn start(raft: Raft, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(raft, rx, metrics));
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

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // Wait for a free slot first: proposals arriving meanwhile accumulate into one batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = content_len(&first.proposal);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_PROPOSALS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += content_len(&p.proposal);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        metrics.batch_size.observe(batch.len() as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            let (proposals, replies): (Vec<Proposal>, Vec<_>) =
                batch.into_iter().map(|p| (p.proposal, p.reply)).unzip();
            let result = raft.client_write(ProposalBatch { proposals }).await;
            drop(permit);
            match result {
                Ok(written) => {
                    let revision = written.data.revision;
                    assert_eq!(
                        written.data.outcomes.len(),
                        replies.len(),
                        "one outcome per proposal of an entry"
                    );
                    for (reply, outcome) in replies.into_iter().zip(written.data.outcomes) {
                        let _ = reply.send(Ok(ApplyResult { revision, outcome }));
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            SubmitError::NotLeader {
                                leader: f.leader_id,
                            }
                        }
                        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                            SubmitError::Stopped(format!(
                                "unexpected membership error for a write: {e}"
                            ))
                        }
                        RaftError::Fatal(e) => SubmitError::Stopped(e.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}
