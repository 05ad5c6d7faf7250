//! `connections`: how many idle watch connections the first node holds, and its resident
//! memory with them open. Closed loop opens them in steps (each step waits until every
//! subscription of the previous one is confirmed); open loop opens them at a fixed rate.
//! The latency is each connection's setup time (connect, handshake, subscription confirmed),
//! from its intended time in open loop.
//!
//! Memory is reported against a baseline the caller took before the target's first load
//! (allocators keep freed memory, so a baseline taken after other scenarios would hide
//! part of the cost).

use std::time::Duration;

use anyhow::Result;

use super::{RunRecord, Scenario, Settings};
use crate::load::Loop;
use crate::openloop::Schedule;
use crate::targets::{Target, WatchSet};

/// How long a step (or the open-loop tail) may take to be confirmed.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(
    target: &Target,
    mode: Loop,
    settings: &Settings,
    baseline_rss: Option<u64>,
    round: usize,
) -> Result<RunRecord> {
    let n = settings.connections;
    let (set, _receipts) = WatchSet::new();
    let cpu0 = target.cpu();
    let start = tokio::time::Instant::now();
    match mode {
        Loop::Closed => {
            let step = settings.connect_step.max(1);
            let mut first = 0;
            while first < n {
                let count = step.min(n - first);
                target.open_watchers(first, count, true, None, &set).await?;
                first += count;
                if set.wait_ready(first, STEP_TIMEOUT).await.is_err() {
                    break;
                }
            }
        }
        Loop::Open { rate_per_s } => {
            let schedule = Schedule::new(rate_per_s, 1);
            for i in 0..n {
                let due = start + schedule.offset(0, i as u64);
                tokio::time::sleep_until(due).await;
                target
                    .open_watchers(i, 1, true, Some(due.into_std()), &set)
                    .await?;
            }
            let _ = set.wait_ready(n, STEP_TIMEOUT).await;
        }
    }
    let window = start.elapsed();
    let cpu = target.cpu() - cpu0;
    // Let the node finish allocating for the last connections before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = target.first_node_rss();
    let held = set.ready_count();
    let failed = set.failed_count();
    let histogram = set.setup_latencies();
    set.close();
    // Let the node see the connections close before the next run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(RunRecord {
        scenario: Scenario::Connections,
        system: target.system().name(),
        mode: mode.name(),
        rate_per_s: match mode {
            Loop::Open { rate_per_s } => Some(rate_per_s),
            Loop::Closed => None,
        },
        nodes: target.nodes(),
        round,
        load: settings.describe(Scenario::Connections, mode),
        window_s: window.as_secs_f64(),
        ok: held as u64,
        errors: (failed + n.saturating_sub(held + failed)) as u64,
        throughput: held as f64,
        unit: Scenario::Connections.unit(),
        latency: histogram.summary(),
        reads: None,
        writes: None,
        after_ack: None,
        cpu,
        // Connections are held, not acknowledged requests: no cost per request.
        acked: None,
        server_cpu_s_per_1k: None,
        rss_bytes: rss,
        bytes_per_connection: rss
            .zip(baseline_rss)
            .filter(|_| held > 0)
            .map(|(r, b)| r.saturating_sub(b) as f64 / held as f64),
        histogram,
    })
}
