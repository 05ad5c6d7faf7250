//! The node's wall clock, in Unix milliseconds.
//!
//! Only the leader's clock reaches the replicated state: the batcher stamps every proposal
//! when it forms an entry (a follower's stamp is replaced), so one node with a wrong clock
//! cannot move the cluster's clock unless it leads.
//!
//! `CONFLUX_TEST_CLOCK_OFFSET_MS` shifts this node's clock by a signed number of
//! milliseconds. It exists for tests of clock skew (a real process with a wrong clock) and is
//! logged loudly when set; operators have no reason to use it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable of the test hook that skews this node's clock.
pub const OFFSET_ENV: &str = "CONFLUX_TEST_CLOCK_OFFSET_MS";

fn offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let offset = std::env::var(OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if offset != 0 {
            tracing::warn!(
                offset_ms = offset,
                "{OFFSET_ENV} is set: this node's clock is skewed on purpose"
            );
        }
        offset
    })
}

/// Milliseconds since the Unix epoch on this node.
pub fn now_ms() -> u64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    real.saturating_add_signed(offset_ms())
}
