//! The chaos harness of Conflux: recorded histories and the checkers that judge them.
//!
//! Owns the history format (`history.rs`: every client operation with its invocation and
//! completion times, the node it reached and its outcome) and the checkers (`check/`), which
//! are pure functions of a history and the final state: they do no I/O and can be tested on
//! hand-made bad histories. Starting clusters in network namespaces, injecting faults and
//! driving the workload are not built yet (issue 12).

pub mod check;
pub mod history;

/// The crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("history line {line}: {message}")]
    History { line: usize, message: String },
}
