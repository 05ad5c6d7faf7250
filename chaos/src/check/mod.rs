//! Checkers: each takes a history (and, where it needs one, the final state) and returns the
//! anomalies it found. A checker is only worth something if a bad history makes it fail, so
//! each has tests built from hand-made bad histories.
//!
//! - [`writes`]: no acknowledged write lost, no version gaps or duplicates, nothing applied
//!   twice, nothing refused applied, nothing applied that nobody wrote.
//! - [`reads`]: `min_revision` and linearizable reads never older than the client was told;
//!   default reads never go backwards on one node.
//! - [`order`]: versions and revisions agree with real time (a write acknowledged before
//!   another began got the lower number; nothing is seen before it was written).
//! - [`linear`]: each config's writes, release changes and linearizable reads fit one order
//!   that agrees with real time and with a model of the config (a bounded search: a config it
//!   cannot decide in time is `unknown`, not an anomaly).
//! - [`watch`]: every watcher's revisions strictly increase across reconnects, it is never
//!   told of a deletion that did not happen, and it ends at the config's final revision.

pub mod linear;
pub mod order;
pub mod reads;
pub mod watch;
pub mod writes;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{ConfigKey, FinalVersion, Operation, WatchEvent};

/// Something a history shows that the contract rules out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub checker: &'static str,
    /// The operation it is about, when there is one.
    pub op: Option<u64>,
    pub config: ConfigKey,
    pub message: String,
}

/// What a run ends with, for the checkers: each config's versions and revision, read from
/// the healed cluster.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    pub versions: BTreeMap<ConfigKey, Vec<FinalVersion>>,
    pub revisions: BTreeMap<ConfigKey, u64>,
}

/// Every checker's verdict on one run.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub anomalies: Vec<Anomaly>,
    /// Each config's linearizability verdict, the undecided ones included.
    pub linearizability: Vec<linear::ConfigVerdict>,
}

/// Runs every checker over one run; `budget` bounds each config's linearizability search.
pub fn judge(
    history: &[Operation],
    events: &[WatchEvent],
    finals: &FinalState,
    budget: std::time::Duration,
) -> Judgement {
    let mut anomalies = writes::check(history, &finals.versions);
    anomalies.extend(reads::check(history));
    anomalies.extend(order::check(history));
    let linearizability = linear::check_configs(history, &finals.versions, budget);
    anomalies.extend(linear::anomalies(&linearizability));
    anomalies.extend(watch::check(events, &finals.revisions));
    Judgement {
        anomalies,
        linearizability,
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::history::{Call, Operation, Outcome, ReadMode};

    pub const C: &str = "acme/shop/prod/app.txt";

    pub fn write(id: u64, at: (u64, u64), content: &str, outcome: Outcome) -> Operation {
        Operation {
            id,
            client: format!("c{id}"),
            node: 1,
            invoked_ns: at.0,
            completed_ns: Some(at.1),
            call: Call::Write {
                config: C.into(),
                content_hash: content.into(),
                idempotency_key: None,
                publish: true,
            },
            outcome,
        }
    }

    pub fn read(id: u64, node: u64, at: (u64, u64), mode: ReadMode, revision: u64) -> Operation {
        Operation {
            id,
            client: format!("r{id}"),
            node,
            invoked_ns: at.0,
            completed_ns: Some(at.1),
            call: Call::Read {
                config: C.into(),
                mode,
            },
            outcome: ok(revision, 1, "x"),
        }
    }

    pub fn ok(revision: u64, version: u64, content: &str) -> Outcome {
        Outcome::Ok {
            revision,
            version,
            content_hash: content.into(),
        }
    }

    pub fn fail() -> Outcome {
        Outcome::Fail {
            code: "revision_mismatch".into(),
        }
    }

    pub fn unknown() -> Outcome {
        Outcome::Unknown {
            reason: "write_timeout".into(),
        }
    }
}
