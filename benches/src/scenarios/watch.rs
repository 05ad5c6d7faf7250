//! `watch`: W watchers of one config (or etcd key), spread over all nodes, and one writer on
//! the first node. Each write's latency is measured to every watcher's first receipt of a
//! revision at least as new as the write's:
//!
//! - closed loop: the writer writes, then waits until every watcher has it (or 10 s) before
//!   the next write; latency from when the write was sent;
//! - open loop: the writer writes at a fixed rate whatever the watchers do; latency from the
//!   write's intended time, so a stalled writer or a backlog of notifications both count.
//!
//! Both loops measure from the start of the write, never from its acknowledgement: systems
//! differ in whether they acknowledge a write before or after notifying its watchers (etcd
//! queues the notifications while it applies the write, before it answers the put), so a
//! watcher may have a write before the writer has read its acknowledgement, and a latency
//! from the acknowledgement is then negative (cut to 0, it made etcd's closed-loop
//! notification latency read 0.00 ms). The closed loop also keeps, beside
//! ([`AfterAck`]), how long each watcher still waited after the writer read the
//! acknowledgement (0 if it already had the write) and how many had it before: the figure
//! `check` holds Conflux, which acknowledges first, to. The writer's own latency is reported
//! beside too (`writes`).
//!
//! A watcher that never receives a write (within 10 s of the last write) counts as an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc;

use super::{AfterAck, RunRecord, Scenario, Settings, cpu_per_1k};
use crate::load::{Cpu, Loop};
use crate::openloop::Schedule;
use crate::stats::Latencies;
use crate::targets::{Receipt, Target, WatchSet};

/// How long every watcher has to receive a write before it counts as missed.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the watchers may take to connect and subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(300);

/// Open watchers of one target; they are closed when the session is dropped.
#[derive(Debug)]
pub struct Session {
    set: WatchSet,
    receipts: mpsc::UnboundedReceiver<Receipt>,
    /// The newest revision each watcher has received.
    seen: Vec<u64>,
    /// Writes made so far (numbers the written contents).
    writes: u64,
    /// The writer's own latency (sent to acknowledged) in the current run's window.
    write_latencies: Latencies,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.set.close();
    }
}

/// Opens `watchers` watchers and waits until every subscription is confirmed.
pub async fn open(target: &Target, watchers: usize) -> Result<Session> {
    let (set, receipts) = WatchSet::new();
    target.open_watchers(0, watchers, false, None, &set).await?;
    set.wait_ready(watchers, SUBSCRIBE_TIMEOUT).await?;
    Ok(Session {
        set,
        receipts,
        seen: vec![0; watchers],
        writes: 1_000_000,
        write_latencies: Latencies::default(),
    })
}

/// One run of the watch scenario on an open session.
pub async fn run(
    target: &Target,
    session: &mut Session,
    mode: Loop,
    settings: &Settings,
    round: usize,
) -> Result<RunRecord> {
    // Anything received before this run (e.g. the current state at subscription) is old news.
    while let Ok(r) = session.receipts.try_recv() {
        let seen = &mut session.seen[r.watcher as usize];
        *seen = (*seen).max(r.revision);
    }
    session.write_latencies = Latencies::default();
    let (histogram, after_ack, missed, window, cpu) = match mode {
        Loop::Closed => {
            let (r, missed, window, cpu) = closed(target, session, settings).await?;
            let after_ack = AfterAck::new(r.after_ack, r.before_ack);
            (r.from_sent, Some(after_ack), missed, window, cpu)
        }
        Loop::Open { rate_per_s } => {
            let (h, missed, window, cpu) = open_loop(target, session, settings, rate_per_s).await?;
            (h, None, missed, window, cpu)
        }
    };
    // The writer's latencies hold its acknowledged writes of the window, and only those.
    let acked = Some(session.write_latencies.count());
    Ok(RunRecord {
        scenario: Scenario::Watch,
        system: target.system().name(),
        mode: mode.name(),
        rate_per_s: match mode {
            Loop::Open { rate_per_s } => Some(rate_per_s),
            Loop::Closed => None,
        },
        nodes: target.nodes(),
        round,
        load: settings.describe(Scenario::Watch, mode),
        window_s: window.as_secs_f64(),
        ok: histogram.count(),
        errors: missed,
        throughput: histogram.count() as f64 / window.as_secs_f64(),
        unit: Scenario::Watch.unit(),
        latency: histogram.summary(),
        reads: None,
        writes: Some(session.write_latencies.summary()),
        after_ack,
        cpu,
        acked,
        server_cpu_s_per_1k: cpu_per_1k(cpu.server_s, acked),
        rss_bytes: None,
        bytes_per_connection: None,
        histogram,
    })
}

/// Writes, each after every watcher got the previous one; answers the latencies of the
/// window's receipts, the misses, the window and its CPU.
async fn closed(
    target: &Target,
    s: &mut Session,
    settings: &Settings,
) -> Result<(ClosedReceipts, u64, Duration, Cpu)> {
    let warm_end = Instant::now() + settings.warmup;
    loop {
        closed_write(target, s, &mut ClosedReceipts::default()).await?;
        if Instant::now() >= warm_end {
            break;
        }
    }
    s.write_latencies = Latencies::default();
    let cpu0 = target.cpu();
    let start = Instant::now();
    let (mut receipts, mut missed) = (ClosedReceipts::default(), 0);
    while start.elapsed() < settings.duration {
        missed += closed_write(target, s, &mut receipts).await?;
    }
    let window = start.elapsed();
    Ok((receipts, missed, window, target.cpu() - cpu0))
}

/// One write and its receipts; answers how many watchers missed it.
async fn closed_write(target: &Target, s: &mut Session, into: &mut ClosedReceipts) -> Result<u64> {
    s.writes += 1;
    let sent = Instant::now();
    let rev = target.write_watched(s.writes).await?;
    let acked = Instant::now();
    s.write_latencies.record(acked - sent);
    let write = ClosedWrite { sent, acked, rev };
    let mut have = s.seen.iter().filter(|&&r| r >= rev).count();
    let deadline = tokio::time::Instant::from_std(acked + RECEIPT_TIMEOUT);
    while have < s.seen.len() {
        let Ok(Some(r)) = tokio::time::timeout_at(deadline, s.receipts.recv()).await else {
            break;
        };
        if into.record(&write, &r, &mut s.seen) {
            have += 1;
        }
    }
    Ok((s.seen.len() - have) as u64)
}

/// A closed-loop write: when the writer sent it, when it read the acknowledgement, and the
/// revision the write got.
#[derive(Debug, Clone, Copy)]
pub struct ClosedWrite {
    pub sent: Instant,
    pub acked: Instant,
    pub rev: u64,
}

/// What the closed loop measures of the receipts of its writes.
#[derive(Debug, Default)]
pub struct ClosedReceipts {
    /// From each write's send to each watcher's first receipt of it: the notification
    /// latency, measured the same whether a system acknowledges before or after notifying.
    pub from_sent: Latencies,
    /// How long each watcher still waited after the writer read the acknowledgement: 0 for
    /// one that already had the write.
    pub after_ack: Latencies,
    /// How many receipts a watcher had before the writer read the acknowledgement.
    pub before_ack: u64,
}

impl ClosedReceipts {
    /// Records receipt `r` if it is its watcher's first of `w`'s revision or a newer one;
    /// `seen` (the newest revision each watcher has received) is brought up to date either
    /// way. Answers whether the receipt was recorded.
    pub fn record(&mut self, w: &ClosedWrite, r: &Receipt, seen: &mut [u64]) -> bool {
        let seen = &mut seen[r.watcher as usize];
        let first = r.revision >= w.rev && *seen < w.rev;
        if first {
            // The write exists only once it was sent: a receipt of it cannot come earlier.
            self.from_sent
                .record(r.at.saturating_duration_since(w.sent));
            match r.at.checked_duration_since(w.acked) {
                Some(wait) => self.after_ack.record(wait),
                None => {
                    self.after_ack.record(Duration::ZERO);
                    self.before_ack += 1;
                }
            }
        }
        *seen = (*seen).max(r.revision);
        first
    }
}

/// Writes at `rate_per_s` for warm-up and window; answers the latencies of the window's
/// writes from their intended times.
async fn open_loop(
    target: &Target,
    s: &mut Session,
    settings: &Settings,
    rate_per_s: f64,
) -> Result<(Latencies, u64, Duration, Cpu)> {
    let schedule = Schedule::new(rate_per_s, 1);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.duration;
    let last_rev = AtomicU64::new(0);
    let watchers = s.seen.len();
    let mut write_latencies = Latencies::default();
    let first_write = s.writes;
    let writer = async {
        let mut writes = Vec::new();
        let mut cpu = (None, Cpu::default());
        let mut j = 0;
        let result = async {
            loop {
                let intended = start + schedule.offset(0, j);
                if intended >= end {
                    break;
                }
                tokio::time::sleep_until(intended).await;
                if intended >= measure_from && cpu.0.is_none() {
                    cpu.0 = Some(target.cpu());
                }
                let rev = target.write_watched(first_write + j + 1).await?;
                writes.push((intended.into_std(), rev, intended >= measure_from));
                if intended >= measure_from {
                    write_latencies.record(intended.elapsed());
                }
                j += 1;
            }
            tokio::time::sleep_until(end).await;
            cpu.1 = target.cpu();
            anyhow::Ok(())
        }
        .await;
        let rev = writes.last().map_or(u64::MAX, |w| w.1);
        last_rev.store(rev.max(1), Ordering::SeqCst);
        (result, writes, cpu, j)
    };
    let receipts = &mut s.receipts;
    let seen = &mut s.seen;
    let collector = async {
        let mut per_watcher: Vec<Vec<(u64, Instant)>> = vec![Vec::new(); watchers];
        let mut done_at = None;
        loop {
            let last = last_rev.load(Ordering::SeqCst);
            if last != 0 {
                let done = *done_at.get_or_insert_with(Instant::now);
                if seen.iter().all(|&r| r >= last) || done.elapsed() > RECEIPT_TIMEOUT {
                    break;
                }
            }
            if let Ok(Some(r)) =
                tokio::time::timeout(Duration::from_millis(50), receipts.recv()).await
            {
                let w = r.watcher as usize;
                seen[w] = seen[w].max(r.revision);
                per_watcher[w].push((r.revision, r.at));
            }
        }
        per_watcher
    };
    let ((result, writes, cpu, count), per_watcher) = tokio::join!(writer, collector);
    result?;
    s.writes += count;
    s.write_latencies = write_latencies;
    let measured: Vec<(Instant, u64)> = writes.iter().filter(|w| w.2).map(|w| (w.0, w.1)).collect();
    let (histogram, missed) = match_receipts(&measured, &per_watcher);
    let cpu = cpu.1 - cpu.0.unwrap_or(cpu.1);
    Ok((histogram, missed, settings.duration, cpu))
}

/// For each write (intended time, revision) and each watcher, the latency from the intended
/// time to the watcher's first receipt of that revision or a newer one; answers the
/// histogram and how many (write, watcher) pairs had no receipt. Receipts of one watcher are
/// in arrival order, so their revisions never decrease.
pub fn match_receipts(
    writes: &[(Instant, u64)],
    per_watcher: &[Vec<(u64, Instant)>],
) -> (Latencies, u64) {
    let mut histogram = Latencies::default();
    let mut missed = 0;
    for receipts in per_watcher {
        let mut i = 0;
        for &(intended, rev) in writes {
            while i < receipts.len() && receipts[i].0 < rev {
                i += 1;
            }
            match receipts.get(i) {
                Some(&(_, at)) => histogram.record(at.saturating_duration_since(intended)),
                None => missed += 1,
            }
        }
    }
    (histogram, missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_latency_runs_from_the_send_even_when_watchers_beat_the_ack() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Sent at 0, committed and the watchers notified, acknowledgement read at 30 ms.
        let write = ClosedWrite {
            sent: ms(0),
            acked: ms(30),
            rev: 10,
        };
        let receipt = |watcher, revision, at| Receipt {
            watcher,
            revision,
            at,
        };
        let mut seen = vec![9, 9, 8];
        let mut into = ClosedReceipts::default();
        // Watcher 0 is told at 20 ms, before the writer reads its acknowledgement (etcd).
        assert!(into.record(&write, &receipt(0, 10, ms(20)), &mut seen));
        // Watcher 1 at 45 ms, after it (Conflux).
        assert!(into.record(&write, &receipt(1, 10, ms(45)), &mut seen));
        // Watcher 2: an older write first, then a newer revision that holds this one.
        assert!(!into.record(&write, &receipt(2, 9, ms(5)), &mut seen));
        assert!(into.record(&write, &receipt(2, 11, ms(50)), &mut seen));
        // A second receipt of the write is not a second notification.
        assert!(!into.record(&write, &receipt(0, 10, ms(60)), &mut seen));
        assert_eq!(seen, [10, 10, 11]);

        // From the send: 20, 45 and 50 ms; never 0 for the watcher told before the ack.
        assert_eq!(into.from_sent.count(), 3);
        assert_eq!(into.from_sent.quantile(0.0), Duration::from_millis(20));
        let p50 = into.from_sent.summary().p50_ms;
        assert!((p50 - 45.0).abs() < 0.1, "{p50}");
        assert!(
            into.from_sent.max().abs_diff(Duration::from_millis(50)) < Duration::from_micros(100)
        );
        // After the ack: 0 (already told), 15 and 20 ms; one receipt came before it.
        assert_eq!(into.before_ack, 1);
        assert_eq!(into.after_ack.count(), 3);
        assert!(into.after_ack.quantile(0.0) <= Duration::from_micros(1));
        assert!(
            into.after_ack.max().abs_diff(Duration::from_millis(20)) < Duration::from_micros(100)
        );
    }

    #[test]
    fn each_write_is_matched_to_the_first_receipt_at_least_as_new() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let writes = [(ms(0), 10), (ms(100), 11), (ms(200), 12)];
        let watchers = vec![
            // Got every write, 5 ms after each was due.
            vec![(10, ms(5)), (11, ms(105)), (12, ms(205))],
            // Coalesced: 11 and 12 arrived as one receipt of 12 at 250 ms.
            vec![(10, ms(3)), (12, ms(250))],
            // Missed the last write.
            vec![(10, ms(7)), (11, ms(107))],
        ];
        let (h, missed) = match_receipts(&writes, &watchers);
        assert_eq!(missed, 1);
        assert_eq!(h.count(), 8);
        // The coalesced receipt counts for write 11 (150 ms late) and write 12 (50 ms).
        // (HDR buckets at 3 significant digits.)
        assert!(h.max().abs_diff(Duration::from_millis(150)) < Duration::from_micros(200));
        assert_eq!(h.quantile(0.0), Duration::from_millis(3));
    }
}
