//! `fetch`, `write` and `mixed`: N connections of request/response load through
//! [`crate::load::run`], closed or open loop.

use anyhow::{Result, ensure};

use super::{RunRecord, Scenario, Settings, cpu_per_1k};
use crate::load::{self, Loop};
use crate::targets::{Target, Workload};

/// The workload of a request scenario.
pub fn workload(scenario: Scenario) -> Workload {
    match scenario {
        Scenario::Fetch => Workload::Fetch,
        Scenario::Write => Workload::Write,
        Scenario::Mixed => Workload::Mixed { write_every: 20 },
        other => panic!("{} is not a request scenario", other.name()),
    }
}

/// One run of `scenario` (fetch, write or mixed) against `target`.
pub async fn run(
    target: &Target,
    scenario: Scenario,
    mode: Loop,
    settings: &Settings,
    round: usize,
) -> Result<RunRecord> {
    let workload = workload(scenario);
    let n = settings.concurrency;
    ensure!(
        workload == Workload::Fetch || n <= target.max_writers(),
        "{n} writers but only {} write configs were prepared",
        target.max_writers()
    );
    let workers = target.workers(workload, n).await?;
    let r = load::run(workers, mode, settings.phase(), || target.cpu()).await;
    let histogram = r.all();
    let mixed = scenario == Scenario::Mixed;
    // Only successful requests are in the histograms: what the servers acknowledged.
    let acked = Some(match scenario {
        Scenario::Fetch => r.reads.count(),
        _ => r.writes.count(),
    });
    Ok(RunRecord {
        scenario,
        system: target.system().name(),
        mode: mode.name(),
        rate_per_s: match mode {
            Loop::Open { rate_per_s } => Some(rate_per_s),
            Loop::Closed => None,
        },
        nodes: target.nodes(),
        round,
        load: settings.describe(scenario, mode),
        window_s: r.window.as_secs_f64(),
        ok: r.ok,
        errors: r.errors,
        throughput: r.throughput(),
        unit: scenario.unit(),
        latency: histogram.summary(),
        reads: mixed.then(|| r.reads.summary()),
        writes: mixed.then(|| r.writes.summary()),
        after_ack: None,
        cpu: r.cpu,
        acked,
        server_cpu_s_per_1k: cpu_per_1k(r.cpu.server_s, acked),
        rss_bytes: None,
        bytes_per_connection: None,
        histogram,
    })
}
