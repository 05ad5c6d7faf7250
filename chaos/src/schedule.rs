//! Scenarios and the seeded fault schedule. Pure: the same scenario, seed, cluster size and
//! duration always give the same schedule, which is what makes a failing run reproducible.
//! Who a fault hits is decided when it starts ("the leader" is whoever leads then), from a
//! number drawn here, so the schedule itself does not depend on the run's timing.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Which node a fault hits, decided when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    Leader,
    Follower,
    Random,
}

/// One fault. Each is undone at the end of its window ("heal").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9`, restarted on the same data at the end of the window.
    Kill { who: Who },
    /// Two nodes at once, the leader among them (5-node clusters: a majority survives).
    KillTwo,
    /// SIGSTOP, SIGCONT at the end of the window.
    Pause { who: Who },
    /// The node cut off from every other node (both ways).
    Isolate { who: Who },
    /// A minority (with the leader) cut off from the majority.
    SplitMajority,
    /// Two sides that cannot reach each other and one node that reaches both.
    Bridge,
    /// Packets from the leader to one follower dropped, the other way delivered.
    OneWay,
    /// This percentage of the packets between every pair of nodes dropped at random.
    Loss { percent: u8 },
    /// Everything a node sends limited to a trickle (`tbf`): a slow link, queueing delay.
    Slow { who: Who },
    /// Every node's incoming Raft connections through a proxy that holds each chunk of bytes
    /// for a seeded delay of its connection's own, so messages on different connections
    /// overtake each other.
    Delay,
    /// The small disk of one node filled up; freed at the end of the window.
    FullDisk,
    /// A new node joins (and is removed again at the end of the window).
    AddRemoveNode,
    /// The leader hands its leadership to another voter.
    TransferLeader,
    /// A follower cut off while writes go on and the leader snapshots and purges its log,
    /// so healing it needs a snapshot install.
    SnapshotInstall,
}

impl Fault {
    /// Whether it changes packet filters (at most one such fault is active at a time).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Fault::Isolate { .. }
                | Fault::SplitMajority
                | Fault::Bridge
                | Fault::OneWay
                | Fault::Loss { .. }
                | Fault::Delay
                | Fault::SnapshotInstall
        )
    }

    /// Whether it takes the leader away (the windows failover is measured on).
    pub fn loses_leader(self) -> bool {
        matches!(
            self,
            Fault::Kill { who: Who::Leader }
                | Fault::KillTwo
                | Fault::Pause { who: Who::Leader }
                | Fault::Isolate { who: Who::Leader }
                | Fault::SplitMajority
        )
    }

    pub fn label(self) -> String {
        match self {
            Fault::Kill { who } => format!("kill-{}", who_name(who)),
            Fault::KillTwo => "kill-two".into(),
            Fault::Pause { who } => format!("pause-{}", who_name(who)),
            Fault::Isolate { who } => format!("isolate-{}", who_name(who)),
            Fault::SplitMajority => "split".into(),
            Fault::Bridge => "bridge".into(),
            Fault::OneWay => "one-way".into(),
            Fault::Loss { percent } => format!("loss-{percent}%"),
            Fault::Slow { who } => format!("slow-{}", who_name(who)),
            Fault::Delay => "delay".into(),
            Fault::FullDisk => "full-disk".into(),
            Fault::AddRemoveNode => "add-remove-node".into(),
            Fault::TransferLeader => "transfer-leader".into(),
            Fault::SnapshotInstall => "snapshot-install".into(),
        }
    }
}

fn who_name(who: Who) -> &'static str {
    match who {
        Who::Leader => "leader",
        Who::Follower => "follower",
        Who::Random => "random",
    }
}

/// A named scenario: the faults it draws from.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    faults: &'static [Fault],
    /// Needs at least this many nodes.
    pub min_nodes: u64,
}

const ALL_FAULTS: &[Fault] = &[
    Fault::Kill { who: Who::Leader },
    Fault::Kill { who: Who::Follower },
    Fault::Kill { who: Who::Random },
    Fault::Pause { who: Who::Leader },
    Fault::Isolate { who: Who::Leader },
    Fault::Isolate { who: Who::Follower },
    Fault::SplitMajority,
    Fault::Bridge,
    Fault::OneWay,
    Fault::Loss { percent: 20 },
    Fault::Slow { who: Who::Leader },
    Fault::Delay,
    Fault::FullDisk,
    Fault::AddRemoveNode,
    Fault::TransferLeader,
    Fault::SnapshotInstall,
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "none",
        about: "no faults: the baseline (and the no-needless-elections check)",
        faults: &[],
        min_nodes: 1,
    },
    Scenario {
        name: "kill-leader",
        about: "kill -9 the leader, restart it",
        faults: &[Fault::Kill { who: Who::Leader }],
        min_nodes: 3,
    },
    Scenario {
        name: "kill-follower",
        about: "kill -9 a follower, restart it",
        faults: &[Fault::Kill { who: Who::Follower }],
        min_nodes: 3,
    },
    Scenario {
        name: "kill-random",
        about: "kill -9 any node, restart it",
        faults: &[Fault::Kill { who: Who::Random }],
        min_nodes: 3,
    },
    Scenario {
        name: "kill-two",
        about: "kill -9 two nodes at once, the leader among them",
        faults: &[Fault::KillTwo],
        min_nodes: 5,
    },
    Scenario {
        name: "pause-leader",
        about: "SIGSTOP the leader, SIGCONT it later",
        faults: &[Fault::Pause { who: Who::Leader }],
        min_nodes: 3,
    },
    Scenario {
        name: "isolate-leader",
        about: "cut the leader off from every other node",
        faults: &[Fault::Isolate { who: Who::Leader }],
        min_nodes: 3,
    },
    Scenario {
        name: "split",
        about: "a minority with the leader cut off from the majority",
        faults: &[Fault::SplitMajority],
        min_nodes: 3,
    },
    Scenario {
        name: "bridge",
        about: "two sides that cannot reach each other, one node that reaches both",
        faults: &[Fault::Bridge],
        min_nodes: 3,
    },
    Scenario {
        name: "one-way",
        about: "the leader's packets to one follower dropped, the other way delivered",
        faults: &[Fault::OneWay],
        min_nodes: 3,
    },
    Scenario {
        name: "loss",
        about: "20 % of the packets between nodes dropped at random",
        faults: &[Fault::Loss { percent: 20 }],
        min_nodes: 3,
    },
    Scenario {
        name: "slow",
        about: "the leader's outgoing link limited to a trickle",
        faults: &[Fault::Slow { who: Who::Leader }],
        min_nodes: 3,
    },
    Scenario {
        name: "delay",
        about: "Raft traffic into every node delayed by a proxy, each connection its own delay",
        faults: &[Fault::Delay],
        min_nodes: 3,
    },
    Scenario {
        name: "full-disk",
        about: "one node's data disk full, then freed",
        faults: &[Fault::FullDisk],
        min_nodes: 3,
    },
    Scenario {
        name: "membership",
        about: "a node joins and leaves, leadership moves, while a node dies",
        faults: &[
            Fault::AddRemoveNode,
            Fault::TransferLeader,
            Fault::Kill { who: Who::Follower },
        ],
        min_nodes: 3,
    },
    Scenario {
        name: "snapshot",
        about: "a follower falls behind the purged log and catches up by snapshot install",
        faults: &[Fault::SnapshotInstall],
        min_nodes: 3,
    },
    Scenario {
        name: "mixed",
        about: "every fault, drawn at random, sometimes two at once",
        faults: ALL_FAULTS,
        min_nodes: 3,
    },
];

pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// One fault window of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub start: Duration,
    pub hold: Duration,
    pub fault: Fault,
    /// Picks the node when `who` is `Random` or `Follower` (and the sides of partitions).
    pub pick: u64,
}

impl Step {
    pub fn end(&self) -> Duration {
        self.start + self.hold
    }
}

/// The schedule of a run: fault windows separated by quiet time, the first after a quiet
/// start and the last healed well before the end (the checkers need a healed cluster).
/// In `mixed` a window may start while another is open (never two network faults at once).
pub fn schedule(scenario: &Scenario, seed: u64, nodes: u64, duration: Duration) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut steps: Vec<Step> = Vec::new();
    let faults: Vec<Fault> = scenario
        .faults
        .iter()
        .copied()
        .filter(|f| nodes >= 5 || *f != Fault::KillTwo)
        .collect();
    if faults.is_empty() {
        return steps;
    }
    let quiet_tail = Duration::from_secs(4);
    let mut t = Duration::from_millis(rng.random_range(1500..3000));
    loop {
        let fault = faults[rng.random_range(0..faults.len())];
        let hold = Duration::from_millis(match fault {
            // Long enough for writes to pass the purged log.
            Fault::SnapshotInstall => rng.random_range(4000..6000),
            Fault::TransferLeader => 500,
            _ => rng.random_range(1500..5000),
        });
        if t + hold + quiet_tail > duration {
            break;
        }
        let overlap = scenario.faults.len() > 3
            && rng.random_bool(0.3)
            && steps.last().is_some_and(|last| {
                !(last.fault.is_network() && fault.is_network()) && last.end() > t
            });
        let start = match (overlap, steps.last()) {
            (true, Some(last)) => last.start + last.hold / 2,
            _ => t,
        };
        // The next window starts after every open one has closed (so at most two overlap).
        let open_until = steps
            .last()
            .map_or(start + hold, |l| l.end().max(start + hold));
        steps.push(Step {
            start,
            hold,
            fault,
            pick: rng.random(),
        });
        t = open_until + Duration::from_millis(rng.random_range(1000..3000));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let mixed = scenario("mixed").unwrap();
        let d = Duration::from_secs(60);
        let a = schedule(mixed, 7, 3, d);
        assert_eq!(a, schedule(mixed, 7, 3, d));
        assert_ne!(a, schedule(mixed, 8, 3, d));
        assert!(a.len() >= 5, "{a:?}");
    }

    #[test]
    fn every_window_heals_before_the_end_and_network_faults_never_overlap() {
        for seed in 0..200 {
            for s in SCENARIOS {
                let d = Duration::from_secs(30);
                let steps = schedule(s, seed, 5, d);
                for (i, step) in steps.iter().enumerate() {
                    assert!(step.end() + Duration::from_secs(4) <= d, "{step:?}");
                    for other in &steps[..i] {
                        let overlaps = other.end() > step.start;
                        assert!(
                            !(overlaps && other.fault.is_network() && step.fault.is_network()),
                            "{} seed {seed}: {other:?} and {step:?}",
                            s.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_delay_fault_has_a_scenario_of_its_own_and_is_drawn_in_mixed() {
        let steps = schedule(scenario("delay").unwrap(), 1, 3, Duration::from_secs(30));
        assert!(!steps.is_empty() && steps.iter().all(|s| s.fault == Fault::Delay));
        let mixed = scenario("mixed").unwrap();
        assert!((0..20).any(|seed| {
            schedule(mixed, seed, 3, Duration::from_secs(60))
                .iter()
                .any(|s| s.fault == Fault::Delay)
        }));
        assert!(Fault::Delay.is_network() && !Fault::Delay.loses_leader());
    }

    #[test]
    fn kill_two_is_only_drawn_for_five_nodes() {
        let kill_two = scenario("kill-two").unwrap();
        assert!(schedule(kill_two, 1, 3, Duration::from_secs(30)).is_empty());
        assert!(!schedule(kill_two, 1, 5, Duration::from_secs(30)).is_empty());
        assert!(schedule(scenario("none").unwrap(), 1, 3, Duration::from_secs(30)).is_empty());
    }
}
