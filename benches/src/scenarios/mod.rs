//! The load scenarios of `conflux-bench`, each written once against
//! [`crate::targets::Target`] and run closed loop (fixed concurrency) or open loop (fixed
//! arrival rate, latency from the intended time):
//!
//! - `fetch`, `write`, `mixed` ([`requests`]): N connections reading the 1 KiB config, writing
//!   1 KiB versions, or 95 % / 5 % of both; throughput and request latency.
//! - `watch` ([`watch`]): W watchers of one config and one writer; latency from each write's
//!   send (closed loop) or intended time (open loop) to every watcher's receipt.
//! - `connections` ([`connections`]): how many idle watch connections the first node holds,
//!   its RSS, and the setup latency of each connection.
//!
//! Every run produces one [`RunRecord`]: what the reports print, chart and store.

pub mod connections;
pub mod requests;
pub mod watch;

use std::time::Duration;

use serde::Serialize;

use crate::load::{Cpu, Loop, Phase};
use crate::stats::{Latencies, Summary};

/// The scenarios, in the order `check` and `compare` run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Connections,
    Fetch,
    Write,
    Mixed,
    Watch,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Connections,
        Scenario::Fetch,
        Scenario::Write,
        Scenario::Mixed,
        Scenario::Watch,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Connections => "connections",
            Scenario::Fetch => "fetch",
            Scenario::Write => "write",
            Scenario::Mixed => "mixed",
            Scenario::Watch => "watch",
        }
    }

    /// What the throughput of this scenario counts.
    pub fn unit(&self) -> &'static str {
        match self {
            Scenario::Connections => "connections",
            Scenario::Watch => "notifications/s",
            Scenario::Write => "writes/s",
            Scenario::Fetch | Scenario::Mixed => "requests/s",
        }
    }

    /// What the server's CPU cost is counted per (its acknowledged requests), or `None` where
    /// a cost per request makes no sense (`connections` holds connections, it answers none).
    /// Mixed counts its writes only, the watch scenario its writer's writes (each notified to
    /// every watcher): what a write costs with the rest of the load beside it.
    pub fn acked_unit(&self) -> Option<&'static str> {
        match self {
            Scenario::Connections => None,
            Scenario::Fetch => Some("fetches"),
            Scenario::Write | Scenario::Mixed | Scenario::Watch => Some("writes"),
        }
    }
}

/// The load of every scenario: concurrency, open-loop rates and sizes.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Connections of fetch, write and mixed.
    pub concurrency: usize,
    /// Open-loop arrival rates per second.
    pub fetch_rate: f64,
    pub write_rate: f64,
    pub mixed_rate: f64,
    /// Watch: writes per second of the open-loop writer.
    pub watch_rate: f64,
    /// Connections: new connections per second in open loop.
    pub connect_rate: f64,
    pub watchers: usize,
    pub connections: usize,
    /// Connections opened per closed-loop step.
    pub connect_step: usize,
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Settings {
    pub fn phase(&self) -> Phase {
        Phase {
            warmup: self.warmup,
            duration: self.duration,
        }
    }

    /// The open-loop mode of `scenario`.
    pub fn open(&self, scenario: Scenario) -> Loop {
        let rate_per_s = match scenario {
            Scenario::Fetch => self.fetch_rate,
            Scenario::Write => self.write_rate,
            Scenario::Mixed => self.mixed_rate,
            Scenario::Watch => self.watch_rate,
            Scenario::Connections => self.connect_rate,
        };
        Loop::Open { rate_per_s }
    }

    /// How the load of a run is described in tables.
    pub fn describe(&self, scenario: Scenario, mode: Loop) -> String {
        let rate = |unit: &str| match mode {
            Loop::Open { rate_per_s } => format!(" at {}{unit}", fmt_count(rate_per_s)),
            Loop::Closed => String::new(),
        };
        match scenario {
            Scenario::Connections => match mode {
                Loop::Closed => format!(
                    "{} conns, steps of {}",
                    fmt_count(self.connections as f64),
                    fmt_count(self.connect_step as f64)
                ),
                Loop::Open { .. } => {
                    format!("{} conns{}", fmt_count(self.connections as f64), rate("/s"))
                }
            },
            Scenario::Watch => match mode {
                Loop::Closed => format!(
                    "{} watchers, next write when all got the last",
                    fmt_count(self.watchers as f64)
                ),
                Loop::Open { .. } => format!(
                    "{} watchers{}",
                    fmt_count(self.watchers as f64),
                    rate(" writes/s")
                ),
            },
            _ => format!("{} conns{}", self.concurrency, rate("/s")),
        }
    }
}

/// One measured run of one scenario against one system.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub scenario: Scenario,
    pub system: &'static str,
    #[serde(rename = "loop")]
    pub mode: &'static str,
    pub rate_per_s: Option<f64>,
    pub nodes: usize,
    pub round: usize,
    /// The load, as tables show it.
    pub load: String,
    pub window_s: f64,
    pub ok: u64,
    pub errors: u64,
    /// Per second for rates; for `connections`, the connections held.
    pub throughput: f64,
    pub unit: &'static str,
    /// Request, notification or connection-setup latency.
    pub latency: Summary,
    /// Mixed: reads and writes separately.
    pub reads: Option<Summary>,
    pub writes: Option<Summary>,
    /// Watch, closed loop: the watchers' wait after the writer read each acknowledgement.
    pub after_ack: Option<AfterAck>,
    /// CPU seconds used in the window by the servers (when this tool started them) and by
    /// the load generator.
    pub cpu: Cpu,
    /// The window's acknowledged (successful, not merely attempted) requests of the kind
    /// [`Scenario::acked_unit`] names: fetches, or writes; `None` for `connections`.
    pub acked: Option<u64>,
    /// Server CPU seconds per 1,000 of `acked` ([`cpu_per_1k`]); `None` when the servers'
    /// CPU is unknown (`--target`), nothing was acknowledged, or for `connections`.
    pub server_cpu_s_per_1k: Option<f64>,
    /// Connections: the node's resident memory with the connections open, and what each
    /// connection added to it.
    pub rss_bytes: Option<u64>,
    pub bytes_per_connection: Option<f64>,
    #[serde(skip)]
    pub histogram: Latencies,
}

impl RunRecord {
    /// Rounds of the same scenario, system and loop as one record: histograms merged, rates
    /// over the summed windows, connection counts and memory averaged.
    pub fn merge(records: &[&RunRecord]) -> RunRecord {
        assert!(!records.is_empty(), "nothing to merge");
        let mut out = records[0].clone();
        for r in &records[1..] {
            out.histogram.merge(&r.histogram);
            out.ok += r.ok;
            out.errors += r.errors;
            out.window_s += r.window_s;
            out.cpu.loadgen_s += r.cpu.loadgen_s;
            out.cpu.server_s = out.cpu.server_s.zip(r.cpu.server_s).map(|(a, b)| a + b);
            out.acked = out.acked.zip(r.acked).map(|(a, b)| a + b);
            out.after_ack = out.after_ack.zip(r.after_ack.as_ref()).map(|(mut a, b)| {
                a.histogram.merge(&b.histogram);
                AfterAck::new(a.histogram, a.before_ack + b.before_ack)
            });
        }
        out.server_cpu_s_per_1k = cpu_per_1k(out.cpu.server_s, out.acked);
        let n = records.len() as f64;
        out.latency = out.histogram.summary();
        if out.scenario == Scenario::Connections {
            out.throughput = records.iter().map(|r| r.throughput).sum::<f64>() / n;
            out.rss_bytes =
                mean(records.iter().map(|r| r.rss_bytes.map(|b| b as f64))).map(|v| v as u64);
            out.bytes_per_connection = mean(records.iter().map(|r| r.bytes_per_connection));
        } else {
            out.throughput = out.ok as f64 / out.window_s;
        }
        out
    }
}

/// Watch, closed loop: how long the watchers still waited for each write after the writer
/// read its acknowledgement, one value per (write, watcher), 0 for a watcher that already had
/// the write; and how many already had it. A system that acknowledges first (Conflux) has
/// few such receipts, one that notifies first (etcd) most.
#[derive(Debug, Clone, Serialize)]
pub struct AfterAck {
    pub latency: Summary,
    /// Receipts a watcher had before the writer read the acknowledgement.
    pub before_ack: u64,
    #[serde(skip)]
    pub histogram: Latencies,
}

impl AfterAck {
    pub fn new(histogram: Latencies, before_ack: u64) -> AfterAck {
        AfterAck {
            latency: histogram.summary(),
            before_ack,
            histogram,
        }
    }

    /// The share of the receipts that came before the acknowledgement (0 without receipts).
    pub fn before_ack_share(&self) -> f64 {
        match self.histogram.count() {
            0 => 0.0,
            n => self.before_ack as f64 / n as f64,
        }
    }
}

/// CPU seconds per 1,000 acknowledged requests: `cpu_s` over `acked`, times 1,000; `None`
/// when either is unknown or nothing was acknowledged (a cost per nothing is no figure).
pub fn cpu_per_1k(cpu_s: Option<f64>, acked: Option<u64>) -> Option<f64> {
    let (cpu_s, acked) = (cpu_s?, acked?);
    (acked > 0 && cpu_s.is_finite()).then(|| cpu_s * 1_000.0 / acked as f64)
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.collect::<Option<_>>()?;
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// `12345.6` as `12,346`.
pub fn fmt_count(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ok: u64, window_s: f64, ms: u64) -> RunRecord {
        let mut h = Latencies::default();
        for _ in 0..ok {
            h.record(Duration::from_millis(ms));
        }
        RunRecord {
            scenario: Scenario::Fetch,
            system: "conflux",
            mode: "closed",
            rate_per_s: None,
            nodes: 1,
            round: 0,
            load: String::new(),
            window_s,
            ok,
            errors: 0,
            throughput: ok as f64 / window_s,
            unit: "requests/s",
            latency: h.summary(),
            reads: None,
            writes: None,
            after_ack: None,
            cpu: Cpu {
                server_s: Some(1.0),
                loadgen_s: 0.5,
            },
            acked: Some(ok),
            server_cpu_s_per_1k: cpu_per_1k(Some(1.0), Some(ok)),
            rss_bytes: None,
            bytes_per_connection: None,
            histogram: h,
        }
    }

    #[test]
    fn merged_rounds_are_rates_over_the_summed_windows() {
        let (a, b) = (record(1000, 10.0, 1), record(3000, 10.0, 3));
        let m = RunRecord::merge(&[&a, &b]);
        assert_eq!(m.ok, 4000);
        assert_eq!(m.throughput, 200.0);
        assert_eq!(m.latency.count, 4000);
        assert!((m.latency.p50_ms - 3.0).abs() < 0.01);
        assert_eq!(m.cpu.server_s, Some(2.0));
        assert_eq!(m.cpu.loadgen_s, 1.0);
        // 2 CPU seconds over 4,000 acknowledged requests, not the first round's figure.
        assert_eq!(m.acked, Some(4000));
        assert_eq!(m.server_cpu_s_per_1k, Some(0.5));
        assert_eq!(a.server_cpu_s_per_1k, Some(1.0));
        // Kept in the JSON records for later tooling.
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["acked"], 4000);
        assert_eq!(json["server_cpu_s_per_1k"], 0.5);
    }

    #[test]
    fn server_cpu_is_counted_per_thousand_acknowledged_requests() {
        let per_1k = cpu_per_1k(Some(33.6), Some(100_000)).unwrap();
        assert!((per_1k - 0.336).abs() < 1e-12, "{per_1k}");
        assert_eq!(cpu_per_1k(Some(2.0), Some(1_000)), Some(2.0));
        // Nothing acknowledged, CPU unknown (--target), no count (connections): no figure.
        assert_eq!(cpu_per_1k(Some(33.6), Some(0)), None);
        assert_eq!(cpu_per_1k(None, Some(100_000)), None);
        assert_eq!(cpu_per_1k(Some(33.6), None), None);
        assert_eq!(cpu_per_1k(Some(f64::NAN), Some(10)), None);
    }

    #[test]
    fn merged_costs_need_every_round_to_know_its_count_and_cpu() {
        let (a, mut b) = (record(1000, 10.0, 1), record(3000, 10.0, 3));
        b.cpu.server_s = None;
        assert_eq!(RunRecord::merge(&[&a, &b]).server_cpu_s_per_1k, None);
        b = record(3000, 10.0, 3);
        b.acked = None;
        let m = RunRecord::merge(&[&a, &b]);
        assert_eq!((m.acked, m.server_cpu_s_per_1k), (None, None));
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.4), "999");
        assert_eq!(fmt_count(12345.6), "12,346");
        assert_eq!(fmt_count(1_000_000.0), "1,000,000");
    }
}
