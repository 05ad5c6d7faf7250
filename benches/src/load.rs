//! The request driver shared by every request/response scenario (fetch, write, mixed) and
//! every system (Conflux, etcd): N workers, each owning one connection, run either closed
//! loop (send, wait for the answer, send again) or open loop (arrivals at a fixed rate from
//! [`Schedule`], latency from the intended send time). A run has a warm-up, whose requests
//! are not recorded, then a measured window of fixed length; a request belongs to the window
//! its start (closed loop) or intended time (open loop) falls in, so throughput is the count
//! of window requests divided by the window's length.
//!
//! The driver knows nothing of HTTP or gRPC: a [`Worker`] performs request number `seq` and
//! says whether it was a read or a write and whether it succeeded.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::openloop::{Schedule, measured_from};
use crate::stats::Latencies;

/// What a request was, for the per-kind histograms of mixed workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
}

/// One connection's worth of load: performs request `seq` (a global sequence number the
/// worker may use to vary labels, keys or the read/write choice).
pub trait Worker: Send + 'static {
    fn call(&mut self, seq: u64) -> impl Future<Output = (OpKind, bool)> + Send;
}

/// Closed loop (fixed concurrency) or open loop (fixed arrival rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "loop", rename_all = "snake_case")]
pub enum Loop {
    Closed,
    Open { rate_per_s: f64 },
}

impl Loop {
    pub fn name(&self) -> &'static str {
        match self {
            Loop::Closed => "closed",
            Loop::Open { .. } => "open",
        }
    }
}

/// Warm-up and measured window of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub warmup: Duration,
    pub duration: Duration,
}

/// CPU seconds used by the servers (when known) and by this load generator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cpu {
    pub server_s: Option<f64>,
    pub loadgen_s: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            server_s: self.server_s.zip(earlier.server_s).map(|(a, b)| a - b),
            loadgen_s: self.loadgen_s - earlier.loadgen_s,
        }
    }
}

/// What a run measured in its window.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub reads: Latencies,
    pub writes: Latencies,
    pub ok: u64,
    pub errors: u64,
    pub window: Duration,
    /// CPU used during the window.
    pub cpu: Cpu,
}

impl LoadResult {
    /// Successful requests per second of the window.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// Reads and writes together.
    pub fn all(&self) -> Latencies {
        let mut all = self.reads.clone();
        all.merge(&self.writes);
        all
    }
}

#[derive(Default)]
struct Tally {
    reads: Latencies,
    writes: Latencies,
    ok: u64,
    errors: u64,
}

impl Tally {
    fn add(&mut self, kind: OpKind, ok: bool, latency: Duration) {
        if !ok {
            self.errors += 1;
            return;
        }
        self.ok += 1;
        match kind {
            OpKind::Read => self.reads.record(latency),
            OpKind::Write => self.writes.record(latency),
        }
    }
}

/// Runs `workers` (one task each) for `phase` in `mode`; `cpu` is sampled at the window's
/// start and end.
pub async fn run<W: Worker>(
    workers: Vec<W>,
    mode: Loop,
    phase: Phase,
    cpu: impl Fn() -> Cpu,
) -> LoadResult {
    assert!(!workers.is_empty(), "a run needs a worker");
    assert!(!phase.duration.is_zero(), "a run needs a measured window");
    let n = workers.len();
    let start = Instant::now() + Duration::from_millis(10);
    let measure_from = start + phase.warmup;
    let end = measure_from + phase.duration;
    let schedule = match mode {
        Loop::Open { rate_per_s } => Some(Schedule::new(rate_per_s, n)),
        Loop::Closed => None,
    };
    let mut tasks = Vec::with_capacity(n);
    for (k, mut w) in workers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut j = 0u64;
            match schedule {
                None => {
                    tokio::time::sleep_until(start).await;
                    loop {
                        let sent = Instant::now();
                        if sent >= end {
                            break;
                        }
                        let (kind, ok) = w.call(j * n as u64 + k as u64).await;
                        if sent >= measure_from {
                            tally.add(kind, ok, sent.elapsed());
                        }
                        j += 1;
                    }
                }
                Some(s) => loop {
                    let intended = start + s.offset(k, j);
                    if intended >= end {
                        break;
                    }
                    let free = Instant::now();
                    if free < intended {
                        tokio::time::sleep_until(intended).await;
                    }
                    let sent = Instant::now();
                    let from = start + measured_from(intended - start, free - start, sent - start);
                    let (kind, ok) = w.call(s.arrival(k, j)).await;
                    if intended >= measure_from {
                        // Lateness behind a busy connection counts (see `measured_from`).
                        tally.add(kind, ok, from.elapsed());
                    }
                    j += 1;
                },
            }
            tally
        }));
    }
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = cpu();
    tokio::time::sleep_until(end).await;
    let cpu1 = cpu();
    let mut result = LoadResult {
        window: phase.duration,
        cpu: cpu1 - cpu0,
        ..LoadResult::default()
    };
    for t in tasks {
        let t = t.await.expect("load worker panicked");
        result.reads.merge(&t.reads);
        result.writes.merge(&t.writes);
        result.ok += t.ok;
        result.errors += t.errors;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers in 1 ms, except that it stalls for `stall` once, at 2 s.
    struct Stalling {
        stall: Duration,
        t0: Instant,
        stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl Worker for Stalling {
        async fn call(&mut self, seq: u64) -> (OpKind, bool) {
            use std::sync::atomic::Ordering;
            if self.t0.elapsed() >= Duration::from_secs(2)
                && !self.stalled.swap(true, Ordering::SeqCst)
            {
                tokio::time::sleep(self.stall).await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            let kind = if seq % 20 == 19 {
                OpKind::Write
            } else {
                OpKind::Read
            };
            (kind, true)
        }
    }

    fn workers(n: usize, stall: Duration) -> Vec<Stalling> {
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t0 = Instant::now();
        (0..n)
            .map(|_| Stalling {
                stall,
                t0,
                stalled: stalled.clone(),
            })
            .collect()
    }

    const PHASE: Phase = Phase {
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(4),
    };

    #[tokio::test(start_paused = true)]
    async fn closed_loop_throughput_is_concurrency_over_service_time() {
        let r = run(
            workers(4, Duration::ZERO),
            Loop::Closed,
            PHASE,
            Cpu::default,
        )
        .await;
        // 4 workers, 1 ms each: 4,000/s.
        assert!((r.throughput() - 4000.0).abs() < 40.0, "{}", r.throughput());
        assert_eq!(r.errors, 0);
        // seq % 20 == 19 are writes: 5 %.
        let share = r.writes.count() as f64 / r.ok as f64;
        assert!((share - 0.05).abs() < 0.005, "{share}");
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_sends_at_the_rate_whatever_the_concurrency() {
        let mode = Loop::Open { rate_per_s: 500.0 };
        let r = run(workers(8, Duration::ZERO), mode, PHASE, Cpu::default).await;
        assert_eq!(r.ok, 2000, "500/s for 4 s");
        assert!((r.throughput() - 500.0).abs() < 1e-9);
        // Never late: every latency is the 1 ms service time.
        assert_eq!(r.all().max(), Duration::from_millis(1));
    }

    /// The point of open loop: one 500 ms stall delays every request due during it.
    /// Closed loop records it as one slow request per stalled worker; open loop records the
    /// hundreds of requests that were due meanwhile, each with its lateness.
    #[tokio::test(start_paused = true)]
    async fn a_stall_is_visible_in_open_loop_and_hidden_in_closed_loop() {
        let stall = Duration::from_millis(500);
        let closed = run(workers(1, stall), Loop::Closed, PHASE, Cpu::default).await;
        let open = run(
            workers(1, stall),
            Loop::Open { rate_per_s: 200.0 },
            PHASE,
            Cpu::default,
        )
        .await;
        let (c, o) = (closed.all(), open.all());
        // Closed: 1 slow request among ~3,500: p99 is the service time.
        assert_eq!(c.quantile(0.99), Duration::from_millis(1));
        assert!(c.max() >= stall);
        // Open: 100 of 800 requests were due during the stall: p90 is far above 1 ms.
        assert_eq!(open.ok, 800);
        assert!(
            o.quantile(0.9) > Duration::from_millis(50),
            "{:?}",
            o.quantile(0.9)
        );
        assert!(o.max() >= stall);
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_requests_are_not_recorded() {
        let phase = Phase {
            warmup: Duration::from_secs(3),
            duration: Duration::from_secs(1),
        };
        let r = run(
            workers(1, Duration::ZERO),
            Loop::Open { rate_per_s: 100.0 },
            phase,
            Cpu::default,
        )
        .await;
        assert_eq!(r.ok, 100);
    }

    #[test]
    fn cpu_deltas_need_both_server_samples() {
        let a = Cpu {
            server_s: Some(1.0),
            loadgen_s: 0.5,
        };
        let b = Cpu {
            server_s: Some(3.5),
            loadgen_s: 1.0,
        };
        assert_eq!(
            b - a,
            Cpu {
                server_s: Some(2.5),
                loadgen_s: 0.5
            }
        );
        let unknown = Cpu {
            server_s: None,
            loadgen_s: 2.0,
        };
        assert_eq!((unknown - a).server_s, None);
    }
}
