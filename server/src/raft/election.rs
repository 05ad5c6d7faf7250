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
//!   campaigns, in a term above the candidate's ([`campaign_after_refusal`],
//!   [`elections_to_beat`]); in clusters of more than three voters after a wait
//!   ([`refusal_wait`]): the refused candidate may still win there with the others' votes,
//!   and the first of several such voters should ask the others before they campaign too;
//! - a voter that has heard from no leader for the lease, the longest election timeout and a
//!   random part of the timeout range campaigns, whatever marks openraft holds
//!   ([`backstop_due`]).
//!
//! When a node campaigns never affects Raft's safety (a vote still needs an up-to-date log
//! and a quorum), only how soon a leader is elected. Neither rule fires while a leader's
//! heartbeats arrive, so a healthy cluster holds no more elections than before, and both stay
//! silent while elections are paused for a leadership transfer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::raft::{AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::{ServerState, Vote};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{LogId, NodeId, Raft};

/// How often the backstop looks at the clock.
const BACKSTOP_TICK: Duration = Duration::from_millis(25);
/// In a cluster of more than three voters, the candidate a voter refused may still win with
/// the others' votes; the voter waits this long for its first message (openraft's tick, 1.5
/// heartbeats) before campaigning, as campaigning against a new leader would unseat it.
const REFUSAL_GRACE: Duration = Duration::from_millis(150);
/// ...and a random part of this on top, so that the first of several voters that refused the
/// same candidate usually asks the others before they campaign themselves (and they then vote
/// for it, or campaign above it if their log is longer still).
const REFUSAL_SPREAD: Duration = Duration::from_millis(100);
/// Elections one campaign starts at most (each moves the term up by one).
const MAX_ELECTIONS: u64 = 4;

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

/// How long a voter that refused a shorter-log candidate waits before campaigning, in a
/// cluster of `voters` (`random` picks a part of [`REFUSAL_SPREAD`]). With three, the refused
/// candidate cannot win without this voter and no other voter is left to race with, so it
/// campaigns at once; with more, [`REFUSAL_GRACE`] and a random part of the spread.
pub fn refusal_wait(voters: usize, random: u64) -> Duration {
    if voters <= 3 {
        return Duration::ZERO;
    }
    let spread = REFUSAL_SPREAD.as_millis() as u64;
    REFUSAL_GRACE + Duration::from_millis(random % spread.max(1))
}

/// How many elections in a row a node starts so that it campaigns in a term above
/// `refused_term` (the highest of the candidates it refused for their shorter logs), given
/// its role and vote; 0 when it should not campaign: it leads, or it already voted in a
/// later term (for a newer candidate, or for itself).
pub fn elections_to_beat(state: ServerState, vote: &Vote<NodeId>, refused_term: u64) -> u64 {
    let term = vote.leader_id().term;
    if state == ServerState::Leader || term > refused_term {
        return 0;
    }
    let needed = refused_term + 1 - term;
    // A candidate far ahead (a node that campaigned alone for long) is passed by openraft
    // itself: the answer to this node's first election carries the higher term.
    needed.min(MAX_ELECTIONS)
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
    /// The highest term of a candidate this node refused for its shorter log.
    refused_term: AtomicU64,
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
            refused_term: AtomicU64::new(0),
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
        self.0
            .refused_term
            .fetch_max(request.vote.leader_id().term, Ordering::AcqRel);
        if self.0.campaigning.swap(true, Ordering::AcqRel) {
            return;
        }
        let assist = self.clone();
        tokio::spawn(async move {
            assist.campaign().await;
            assist.0.campaigning.store(false, Ordering::Release);
        });
    }

    /// After [`refusal_wait`], campaigns above every candidate refused so far
    /// ([`elections_to_beat`]), unless a leader was heard from or elections were paused
    /// meanwhile.
    async fn campaign(&self) {
        let voters = self
            .0
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        let wait = refusal_wait(voters, random_u64());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if self.paused() || self.since_leader() <= self.0.timing.lease {
            return;
        }
        let (state, vote) = {
            let m = self.0.raft.metrics().borrow().clone();
            (m.state, m.vote)
        };
        let refused_term = self.0.refused_term.load(Ordering::Acquire);
        let elections = elections_to_beat(state, &vote, refused_term);
        if elections == 0 {
            return;
        }
        tracing::info!(
            term = vote.leader_id().term,
            refused_term,
            "campaigning: refused a candidate with a shorter log after the leader lease"
        );
        // Each election moves this node's term up by one; the vote requests of all but the
        // last are overtaken at once.
        for _ in 0..elections {
            if self.0.raft.trigger().elect().await.is_err() {
                return;
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
    use openraft::CommittedLeaderId;

    use super::*;

    const LEASE: Duration = Duration::from_millis(600);

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
    fn a_campaign_starts_above_every_refused_candidate() {
        // A follower still holding the old leader's term 3 refused a candidate of term 4:
        // its first election would meet the candidate's own vote in term 4.
        assert_eq!(
            elections_to_beat(ServerState::Follower, &Vote::new_committed(3, 1), 4),
            2
        );
        // Already a candidate in the refused term (its own timer fired first).
        assert_eq!(
            elections_to_beat(ServerState::Candidate, &Vote::new(4, 2), 4),
            1
        );
        // A candidate far ahead: a few elections, and openraft learns the rest.
        assert_eq!(
            elections_to_beat(ServerState::Follower, &Vote::new_committed(3, 1), 40),
            MAX_ELECTIONS
        );
    }

    #[test]
    fn only_clusters_of_more_than_three_voters_wait_before_campaigning() {
        assert_eq!(refusal_wait(3, 77), Duration::ZERO);
        assert_eq!(refusal_wait(2, 77), Duration::ZERO);
        // With five, long enough for a candidate that won without this vote to be heard from.
        for random in [0, 1, 99, 100, 12345, u64::MAX] {
            let wait = refusal_wait(5, random);
            assert!(wait >= REFUSAL_GRACE, "{wait:?}");
            assert!(wait < REFUSAL_GRACE + REFUSAL_SPREAD, "{wait:?}");
        }
    }

    #[test]
    fn no_campaign_by_a_leader_or_a_node_that_voted_in_a_later_term() {
        assert_eq!(
            elections_to_beat(ServerState::Leader, &Vote::new_committed(4, 2), 4),
            0
        );
        // It voted for a newer candidate (whose log is at least as long as its own).
        assert_eq!(
            elections_to_beat(ServerState::Follower, &Vote::new(5, 3), 4),
            0
        );
        // It campaigns above the refused candidate already.
        assert_eq!(
            elections_to_beat(ServerState::Candidate, &Vote::new(5, 2), 4),
            0
        );
    }

    #[test]
    fn the_backstop_waits_past_every_node_s_own_timer() {
        // The node's own timing: lease 600 ms, timeouts 300-600 ms. openraft's timer fires
        // by lease + 600 ms at the latest (when it holds no longer-log mark).
        let timing = Timing {
            lease: LEASE,
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(600),
        };
        for random in [0, 1, 299, 300, 12345, u64::MAX] {
            let patience = timing.backstop_patience(random);
            assert!(patience >= Duration::from_millis(1200), "{patience:?}");
            assert!(patience < Duration::from_millis(1500), "{patience:?}");
        }
        let fixed = Timing {
            election_min: Duration::from_millis(600),
            ..timing
        };
        assert_eq!(fixed.backstop_patience(77), Duration::from_millis(1200));
    }

    #[test]
    fn the_backstop_fires_only_for_a_follower_voter_without_a_leader() {
        let patience = Duration::from_millis(1200);
        let long = Duration::from_millis(1300);
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
            Duration::from_millis(1199),
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
