//! Elections after a leader loss, sooner than openraft 0.9 holds them on its own.
//!
//! openraft 0.9 loses time after a leader loss in two ways, both when the survivors' logs
//! differ (under writes they usually do: the old leader's last entry reached some followers
//! only):
//! - A voter refuses a candidate whose log is shorter than its own, but does not campaign
//!   until its own timer fires. Then it campaigns in the term the refused candidate already
//!   voted itself in, is refused in turn, and waits a whole timeout more.
//! - A candidate told of a longer log adds twice the longest election timeout to its next
//!   timeout, and forgets that only at its next election by timer. A node that lost such a
//!   round carries the mark into the next leader loss, when its own log may be the longest.
//!
//! [`ElectionAssist`] closes both gaps, through `Raft::trigger().elect()` only:
//! - a voter that refuses a shorter-log candidate after the leader lease has run out
//!   campaigns at once, in a term above the candidate's ([`campaign_after_refusal`]);
//! - a voter that has heard from no leader for the lease, the longest election timeout and a
//!   random part of the timeout range campaigns, whatever marks openraft holds
//!   ([`backstop_due`]).
//!
//! When a node campaigns never affects Raft's safety (a vote still needs an up-to-date log
//! and a quorum), only how soon a leader is elected. Neither rule fires while a leader's
//! heartbeats arrive, so a healthy cluster holds no more elections than before, and both stay
//! silent while elections are paused for a leadership transfer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::raft::{AppendEntriesResponse, VoteRequest, VoteResponse};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{LogId, NodeId, Raft};

/// How often the backstop looks at the clock.
const BACKSTOP_TICK: Duration = Duration::from_millis(25);
/// Voters that refuse the same candidate wait a random part of this before campaigning, so
/// that one of them usually asks the others before they campaign themselves.
const REFUSAL_SPREAD: Duration = Duration::from_millis(40);
/// How long a campaign waits for its election to show in the metrics.
const ELECTION_SHOWS: Duration = Duration::from_millis(200);
/// Elections one campaign starts at most (each moves the term up by at least one).
const MAX_ELECTIONS: usize = 3;

/// The Raft timing the assist works with (openraft's own).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Followers refuse other candidates for this long after the last message from their
    /// leader (openraft: the longest election timeout).
    pub lease: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
}

impl Timing {
    /// How long the backstop waits without a leader: longer than openraft's own timer on every
    /// node (lease plus this node's timeout) unless openraft holds a longer-log mark.
    fn backstop_patience(&self, random: u64) -> Duration {
        let range = self.election_max.saturating_sub(self.election_min);
        let extra = match range.as_millis() as u64 {
            0 => 0,
            r => random % r,
        };
        self.lease + self.election_max + Duration::from_millis(extra)
    }
}

/// Whether a voter that answered `response` to a candidate whose last log entry is
/// `candidate_last_log` should campaign itself now, having heard from no leader for
/// `since_leader`.
///
/// Only a refusal because the candidate's log is behind counts: that candidate cannot win
/// this voter's vote, and waiting for this voter's own timer would cost a timeout or two.
/// Within the lease the leader may still be alive, and campaigning would disrupt it.
pub fn campaign_after_refusal(
    since_leader: Duration,
    lease: Duration,
    candidate_last_log: Option<&LogId>,
    response: &VoteResponse<NodeId>,
) -> bool {
    !response.vote_granted
        && since_leader > lease
        && response.last_log_id.as_ref() > candidate_last_log
}

/// Whether the backstop should campaign: a voter that is not the leader and has heard from
/// no leader for longer than its patience, while elections are not paused.
pub fn backstop_due(
    state: ServerState,
    voter: bool,
    paused: bool,
    since_leader: Duration,
    patience: Duration,
) -> bool {
    state != ServerState::Leader && voter && !paused && since_leader >= patience
}

/// Whether an append-entries answer shows that the sender is this node's leader (a stale
/// leader gets `HigherVote` and does not count).
pub fn from_leader(response: &AppendEntriesResponse<NodeId>) -> bool {
    !matches!(response, AppendEntriesResponse::HigherVote(_))
}

/// Tracks when this node last heard from a leader and starts elections by the two rules of
/// the module docs. Cheap to clone; every clone is the same assist.
#[derive(Clone)]
pub struct ElectionAssist(Arc<Inner>);

struct Inner {
    raft: Raft,
    node_id: NodeId,
    timing: Timing,
    last_leader_contact: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    /// Set while a campaign after a refusal runs (one at a time).
    campaigning: AtomicBool,
}

impl std::fmt::Debug for ElectionAssist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElectionAssist")
            .field("timing", &self.0.timing)
            .finish_non_exhaustive()
    }
}

impl ElectionAssist {
    pub fn new(raft: Raft, node_id: NodeId, timing: Timing) -> Self {
        ElectionAssist(Arc::new(Inner {
            raft,
            node_id,
            timing,
            last_leader_contact: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            campaigning: AtomicBool::new(false),
        }))
    }

    pub fn timing(&self) -> Timing {
        self.0.timing
    }

    /// A leader's message arrived (or this node granted a vote, which, as in Raft, restarts
    /// its wait).
    pub fn heard_from_leader(&self) {
        *self.0.last_leader_contact.lock() = Instant::now();
    }

    fn since_leader(&self) -> Duration {
        self.0.last_leader_contact.lock().elapsed()
    }

    /// No elections from this node for `duration` (openraft's timer and both rules), for a
    /// leadership transfer to another node. A later pause or [`Self::resume`] replaces it.
    pub fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        *self.0.paused_until.lock() = Some(until);
        self.0.raft.runtime_config().elect(false);
        let assist = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let mut paused = assist.0.paused_until.lock();
            if *paused == Some(until) {
                *paused = None;
                assist.0.raft.runtime_config().elect(true);
            }
        });
    }

    pub fn resume(&self) {
        *self.0.paused_until.lock() = None;
        self.0.raft.runtime_config().elect(true);
    }

    fn paused(&self) -> bool {
        self.0
            .paused_until
            .lock()
            .is_some_and(|until| Instant::now() < until)
    }

    /// This node answered `response` to `request`: a granted vote restarts the wait for a
    /// leader; a refusal may start a campaign ([`campaign_after_refusal`]).
    pub fn answered_vote(&self, request: &VoteRequest<NodeId>, response: &VoteResponse<NodeId>) {
        if response.vote_granted {
            self.heard_from_leader();
            return;
        }
        let refused_shorter_log = campaign_after_refusal(
            self.since_leader(),
            self.0.timing.lease,
            request.last_log_id.as_ref(),
            response,
        );
        if !refused_shorter_log || self.paused() {
            return;
        }
        if self.0.campaigning.swap(true, Ordering::AcqRel) {
            return;
        }
        let assist = self.clone();
        let beat_term = request.vote.leader_id().term;
        let refused_with = response.vote;
        tokio::spawn(async move {
            assist.campaign(beat_term, refused_with).await;
            assist.0.campaigning.store(false, Ordering::Release);
        });
    }

    /// Elections until this node campaigns in a term above `beat_term`, unless something else
    /// happens first: a leader appears, this node votes for another candidate (its vote is no
    /// longer `expected_vote`), or elections are paused.
    async fn campaign(&self, beat_term: u64, mut expected_vote: openraft::Vote<NodeId>) {
        let spread = REFUSAL_SPREAD.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(random_u64() % spread.max(1))).await;
        for _ in 0..MAX_ELECTIONS {
            let (state, term, vote) = {
                let m = self.0.raft.metrics().borrow().clone();
                (m.state, m.current_term, m.vote)
            };
            if state == ServerState::Leader
                || vote != expected_vote
                || term > beat_term
                || self.paused()
            {
                return;
            }
            tracing::info!(
                term,
                beat_term,
                "campaigning: refused a candidate with a shorter log after the leader lease"
            );
            if self.0.raft.trigger().elect().await.is_err() {
                return;
            }
            let shown = self
                .0
                .raft
                .wait(Some(ELECTION_SHOWS))
                .metrics(|m| m.current_term > term, "an election by this node")
                .await;
            match shown {
                Ok(m) if m.vote.leader_id().voted_for() == Some(self.0.node_id) => {
                    expected_vote = m.vote;
                }
                _ => return,
            }
        }
    }

    /// Runs the backstop rule until `stop` turns true.
    pub async fn run_backstop(self, mut stop: watch::Receiver<bool>) {
        let mut patience = self.0.timing.backstop_patience(random_u64());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(BACKSTOP_TICK) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let (state, voter) = {
                let m = self.0.raft.metrics().borrow().clone();
                let voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|id| id == self.0.node_id);
                (m.state, voter)
            };
            let paused = self.paused();
            if state == ServerState::Leader || !voter || paused {
                // The wait for a leader starts when this node stops leading, becomes a voter
                // or may campaign again.
                self.heard_from_leader();
                continue;
            }
            let since_leader = self.since_leader();
            if backstop_due(state, voter, paused, since_leader, patience) {
                tracing::info!(
                    since_leader_ms = since_leader.as_millis() as u64,
                    "campaigning: no leader for longer than openraft's own timer allows"
                );
                if self.0.raft.trigger().elect().await.is_err() {
                    return;
                }
                // The next backstop election only after another full patience.
                self.heard_from_leader();
                patience = self.0.timing.backstop_patience(random_u64());
            }
        }
    }
}

fn random_u64() -> u64 {
    u64::from_le_bytes(crate::auth::token::random_bytes::<8>())
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Vote};

    use super::*;

    const LEASE: Duration = Duration::from_millis(800);

    fn log(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn refusal(my_last_log: Option<LogId>) -> VoteResponse<NodeId> {
        VoteResponse::new(Vote::new_committed(3, 1), my_last_log, false)
    }

    #[test]
    fn a_voter_with_a_longer_log_campaigns_once_the_lease_is_over() {
        let candidate = log(3, 10);
        let after_lease = LEASE + Duration::from_millis(1);
        assert!(campaign_after_refusal(
            after_lease,
            LEASE,
            Some(&candidate),
            &refusal(Some(log(3, 11)))
        ));
        // A later term counts as a longer log whatever the index.
        assert!(campaign_after_refusal(
            after_lease,
            LEASE,
            Some(&candidate),
            &refusal(Some(log(4, 2)))
        ));
        // A candidate with no log at all against one entry.
        assert!(campaign_after_refusal(
            after_lease,
            LEASE,
            None,
            &refusal(Some(log(1, 1)))
        ));
    }

    #[test]
    fn no_campaign_within_the_lease_or_when_the_candidate_is_not_behind() {
        let candidate = log(3, 10);
        // The leader may still be alive.
        assert!(!campaign_after_refusal(
            LEASE,
            LEASE,
            Some(&candidate),
            &refusal(Some(log(3, 11)))
        ));
        // Refused for another reason (it voted for someone else in that term): the candidate
        // is as up to date as this node and may win elsewhere.
        let after_lease = LEASE * 2;
        assert!(!campaign_after_refusal(
            after_lease,
            LEASE,
            Some(&candidate),
            &refusal(Some(candidate))
        ));
        assert!(!campaign_after_refusal(
            after_lease,
            LEASE,
            Some(&candidate),
            &refusal(Some(log(3, 9)))
        ));
        // Granted.
        let granted = VoteResponse::new(Vote::new(4, 2), Some(log(3, 11)), true);
        assert!(!campaign_after_refusal(
            after_lease,
            LEASE,
            Some(&candidate),
            &granted
        ));
    }

    #[test]
    fn the_backstop_waits_past_every_node_s_own_timer() {
        let timing = Timing {
            lease: LEASE,
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
        };
        for random in [0, 1, 399, 400, 12345, u64::MAX] {
            let patience = timing.backstop_patience(random);
            assert!(patience >= Duration::from_millis(1600), "{patience:?}");
            assert!(patience < Duration::from_millis(2000), "{patience:?}");
        }
        let fixed = Timing {
            election_min: Duration::from_millis(800),
            ..timing
        };
        assert_eq!(fixed.backstop_patience(77), Duration::from_millis(1600));
    }

    #[test]
    fn the_backstop_fires_only_for_a_follower_voter_without_a_leader() {
        let patience = Duration::from_millis(1600);
        let long = Duration::from_millis(1700);
        assert!(backstop_due(
            ServerState::Follower,
            true,
            false,
            long,
            patience
        ));
        assert!(backstop_due(
            ServerState::Candidate,
            true,
            false,
            long,
            patience
        ));
        assert!(!backstop_due(
            ServerState::Follower,
            true,
            false,
            Duration::from_millis(1599),
            patience
        ));
        assert!(!backstop_due(
            ServerState::Leader,
            true,
            false,
            long,
            patience
        ));
        assert!(!backstop_due(
            ServerState::Learner,
            false,
            false,
            long,
            patience
        ));
        assert!(!backstop_due(
            ServerState::Follower,
            true,
            true,
            long,
            patience
        ));
    }

    #[test]
    fn only_a_current_leader_s_append_counts_as_contact() {
        assert!(from_leader(&AppendEntriesResponse::Success));
        assert!(from_leader(&AppendEntriesResponse::Conflict));
        assert!(from_leader(&AppendEntriesResponse::PartialSuccess(Some(
            log(2, 5)
        ))));
        assert!(!from_leader(&AppendEntriesResponse::HigherVote(Vote::new(
            5, 2
        ))));
    }
}
