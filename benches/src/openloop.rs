//! Open-loop scheduling: when each request of a fixed arrival rate is meant to be sent.
//!
//! A closed-loop client sends its next request when the previous one is answered, so a
//! server that stalls for a second simply receives fewer requests during that second and the
//! histogram records one slow request instead of the hundreds that real, independent users
//! would have suffered ("coordinated omission"). An open-loop run instead fixes the arrival
//! rate: arrival `i` is due at `start + i / rate`, whatever happened before, and its latency is
//! measured from that intended time. A connection that is still busy when its next arrival is
//! due sends it late, and the lateness is part of the latency. A connection that is idle when
//! an arrival is due waits for it on a timer, which wakes up to a millisecond late (tokio's
//! timer resolution); that slack is the load generator's, not the server's, so such a request
//! is measured from when it was actually sent ([`measured_from`]).
//!
//! Arrivals are dealt round-robin to the run's connections (arrival `i` goes to connection
//! `i mod N`), so each connection has its own evenly spaced schedule at `rate / N` and the
//! union of all schedules is exactly the global one. This module is pure arithmetic; the
//! driver in [`crate::load`] sleeps until each time.

use std::time::Duration;

/// The arrival times of an open-loop run, as offsets from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate_per_s: f64,
    connections: usize,
}

impl Schedule {
    /// `rate_per_s` arrivals per second in total, dealt to `connections` connections.
    pub fn new(rate_per_s: f64, connections: usize) -> Schedule {
        assert!(
            rate_per_s.is_finite() && rate_per_s > 0.0,
            "open-loop rate must be positive"
        );
        assert!(connections > 0, "open-loop run needs a connection");
        Schedule {
            rate_per_s,
            connections,
        }
    }

    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// The global index of the `j`-th arrival of connection `k`.
    pub fn arrival(&self, k: usize, j: u64) -> u64 {
        assert!(k < self.connections, "connection {k} out of range");
        k as u64 + j * self.connections as u64
    }

    /// When the `j`-th arrival of connection `k` is due, from the run's start.
    pub fn offset(&self, k: usize, j: u64) -> Duration {
        Duration::from_secs_f64(self.arrival(k, j) as f64 / self.rate_per_s)
    }

    /// How many arrivals (of all connections) are due in `[from, to)` after the start.
    pub fn arrivals_between(&self, from: Duration, to: Duration) -> u64 {
        let first = |d: Duration| (d.as_secs_f64() * self.rate_per_s).ceil() as u64;
        first(to).saturating_sub(first(from))
    }
}

/// Where the latency of an open-loop request starts: the intended time when its connection
/// was still busy with earlier requests at that time (so waiting for a slow server counts),
/// else the moment it was sent (so the timer's wake-up slack does not). All three are offsets
/// from the run's start; `sent` is never before `intended`.
pub fn measured_from(intended: Duration, connection_free: Duration, sent: Duration) -> Duration {
    assert!(sent >= intended, "a request is never sent before it is due");
    if connection_free > intended {
        intended
    } else {
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_of_connection_schedules_is_the_global_schedule() {
        let s = Schedule::new(1000.0, 7);
        let mut all: Vec<Duration> = (0..7)
            .flat_map(|k| (0..100).map(move |j| s.offset(k, j)))
            .collect();
        all.sort();
        assert_eq!(all.len(), 700);
        for (i, d) in all.iter().enumerate() {
            let want = Duration::from_secs_f64(i as f64 / 1000.0);
            assert!(d.abs_diff(want) < Duration::from_nanos(10), "{i}: {d:?}");
        }
    }

    #[test]
    fn each_connection_is_evenly_spaced_at_its_share_of_the_rate() {
        let s = Schedule::new(5000.0, 50);
        for k in [0, 17, 49] {
            for j in 0..20 {
                let gap = s.offset(k, j + 1) - s.offset(k, j);
                // 50 connections share 5,000/s: 100/s each, every 10 ms.
                assert!(gap.abs_diff(Duration::from_millis(10)) < Duration::from_nanos(10));
            }
        }
        assert_eq!(s.offset(3, 0), Duration::from_secs_f64(3.0 / 5000.0));
    }

    #[test]
    fn a_window_holds_rate_times_its_length() {
        let s = Schedule::new(2000.0, 64);
        assert_eq!(
            s.arrivals_between(Duration::from_secs(2), Duration::from_secs(12)),
            20_000
        );
        assert_eq!(
            s.arrivals_between(Duration::ZERO, Duration::from_millis(1)),
            2
        );
        assert_eq!(
            s.arrivals_between(Duration::from_secs(1), Duration::ZERO),
            0
        );
        // Consistent with the offsets: count the arrivals due in the window directly.
        let (from, to) = (Duration::from_millis(250), Duration::from_millis(750));
        let direct = (0..64)
            .flat_map(|k| (0..100).map(move |j| (k, j)))
            .filter(|&(k, j)| (from..to).contains(&s.offset(k, j)))
            .count() as u64;
        assert_eq!(direct, s.arrivals_between(from, to));
    }

    #[test]
    fn lateness_behind_a_busy_connection_counts_timer_slack_does_not() {
        let ms = Duration::from_millis;
        // Due at 100 ms, the connection was busy until 400 ms: measured from 100 ms.
        assert_eq!(measured_from(ms(100), ms(400), ms(400)), ms(100));
        // Idle since 50 ms, the timer woke at 101 ms: measured from the send.
        assert_eq!(measured_from(ms(100), ms(50), ms(101)), ms(101));
        assert_eq!(measured_from(ms(100), ms(100), ms(100)), ms(100));
    }

    #[test]
    #[should_panic(expected = "rate must be positive")]
    fn a_zero_rate_is_refused() {
        Schedule::new(0.0, 1);
    }
}
