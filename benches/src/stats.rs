//! Measurement helpers of the load tool: latency histograms, their summaries, and the CPU
//! and memory of processes read from `/proc`.
//!
//! Every latency the tool reports goes through [`Latencies`] (an HDR histogram in
//! microseconds, 3 significant digits), so quantiles of merged runs are exact to that
//! precision instead of averages of averages.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The quantiles every report shows, with their labels.
pub const QUANTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

/// A latency distribution in milliseconds, as reports and JSON carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 60_000_000);
        self.0
            .record(us)
            .expect("value clamped into the histogram's range");
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }

    /// Count, mean and the report quantiles in milliseconds (all zero when empty).
    pub fn summary(&self) -> Summary {
        if self.count() == 0 {
            return Summary::default();
        }
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1e3;
        Summary {
            count: self.count(),
            mean_ms: self.0.mean() / 1e3,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.0.max() as f64 / 1e3,
        }
    }
}

impl Summary {
    /// The value of a quantile label of [`QUANTILES`], or `"max"`.
    pub fn at(&self, label: &str) -> f64 {
        match label {
            "p50" => self.p50_ms,
            "p90" => self.p90_ms,
            "p99" => self.p99_ms,
            "p99.9" => self.p999_ms,
            _ => self.max_ms,
        }
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks; USER_HZ is 100 on every mainstream architecture.
    Some((utime + stime) / 100.0)
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_recorded_values() {
        let mut h = Latencies::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).as_millis();
        let p99 = h.quantile(0.99).as_millis();
        assert!((49..=51).contains(&p50), "{p50}");
        assert!((98..=100).contains(&p99), "{p99}");
        assert_eq!(h.max().as_millis(), 100);
    }

    #[test]
    fn merged_histograms_keep_every_value_and_summaries_are_in_ms() {
        let (mut fast, mut slow) = (Latencies::default(), Latencies::default());
        for _ in 0..990 {
            fast.record(Duration::from_micros(500));
        }
        for _ in 0..10 {
            slow.record(Duration::from_millis(200));
        }
        fast.merge(&slow);
        let s = fast.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 0.5).abs() < 0.01, "{s:?}");
        // 99 % of the values are fast: p99 is the last fast one, p99.9 a slow one.
        assert!((s.p99_ms - 0.5).abs() < 0.01, "{s:?}");
        assert!((s.p999_ms - 200.0).abs() < 0.5, "{s:?}");
        assert!(
            (s.mean_ms - (0.99 * 0.5 + 0.01 * 200.0)).abs() < 0.05,
            "{s:?}"
        );
        assert_eq!(s.at("max"), s.max_ms);
        assert_eq!(Latencies::default().summary(), Summary::default());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = Latencies::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        assert_eq!(h.count(), 2);
        assert_eq!(h.quantile(0.0), Duration::from_micros(1));
        assert!(h.max() >= Duration::from_secs(59));
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(cpu_seconds("self").unwrap() > 0.0);
        assert!(rss_bytes("self").unwrap() > 1024 * 1024);
    }
}
