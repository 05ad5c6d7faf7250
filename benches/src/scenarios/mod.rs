//! The load scenarios of `conflux-bench`.

pub mod watch;
