//! The chaos harness of Conflux: recorded histories and the checkers that judge them.
//!
//! Owns the history format (`history.rs`: every client operation with its invocation and
//! completion times, the node it reached and its outcome) and the checkers (`check/`), which
//! are pure functions of a history and the final state: they do no I/O and can be tested on
//! hand-made bad histories.
//!
//! Around them, the harness: `net` (a network namespace per node on one bridge, nftables
//! and `tbf` faults inside the namespaces), `delay` (the delay fault's TCP proxy, one thread
//! in a node's namespace), `cluster` (real `conflux server` processes in
//! those namespaces), `schedule` (scenarios and the seeded fault schedule, pure),
//! `workload` (the clients and the recording of the history), `run` (one run from start to
//! verdict) and `report` (summaries, the timeline picture, the campaign table). The binary
//! `conflux-chaos` (`main.rs`) runs one run or a campaign.
//!
//! It does not own the system under test: nodes are the real `conflux` binary, reached
//! only through its public API (REST, WebSocket, gRPC).

pub mod check;
pub mod cluster;
pub mod delay;
pub mod history;
pub mod net;
pub mod report;
pub mod run;
pub mod schedule;
pub mod workload;

/// The crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("history line {line}: {message}")]
    History { line: usize, message: String },
}
