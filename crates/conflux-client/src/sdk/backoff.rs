//! Jittered exponential backoff between reconnection attempts.
//!
//! "Full jitter": the delay before attempt `n` (0-based) is uniform in `[0, min(max, initial ·
//! 2ⁿ)]`, so a cluster that comes back is not hit by every client at the same instant. The
//! randomness comes from the standard library's per-process random hash keys mixed with a
//! counter and the clock: plenty for spreading retries, no dependency.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delays between reconnection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay.
    pub initial: Duration,
    /// The largest ceiling; reached after a few doublings and kept.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

impl Backoff {
    /// 100 ms doubling to 10 s.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    /// The largest delay before attempt `attempt` (0-based): `min(max, initial · 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(30);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A random delay in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_at(attempt, random_unit())
    }

    /// The delay for a given draw `unit` in `[0, 1)`.
    fn delay_at(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A uniformly distributed number in `[0, 1)`.
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    // The top 53 bits make an exactly representable fraction.
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_max() {
        let b = Backoff::DEFAULT;
        let ms: Vec<u128> = (0..10).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        // No overflow however long the outage.
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        let tiny = Backoff {
            initial: Duration::from_nanos(1),
            max: Duration::from_secs(2),
        };
        assert_eq!(tiny.ceiling(40), Duration::from_nanos(1 << 30));
    }

    #[test]
    fn delays_stay_within_their_bounds() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.delay_at(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay_at(3, 0.5), Duration::from_millis(400));
        assert!(b.delay_at(3, 0.999_999) <= b.ceiling(3));
        assert_eq!(b.delay_at(3, 7.0), b.ceiling(3));
        for attempt in 0..20 {
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d <= b.ceiling(attempt), "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn delays_are_spread_out() {
        let b = Backoff::DEFAULT;
        let n = 4000;
        let draws: Vec<f64> = (0..n)
            .map(|_| b.delay(7).as_secs_f64() / b.ceiling(7).as_secs_f64())
            .collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
        // Every tenth of the range is hit, roughly equally.
        let mut buckets = [0usize; 10];
        for d in &draws {
            buckets[((d * 10.0) as usize).min(9)] += 1;
        }
        for (i, count) in buckets.iter().enumerate() {
            assert!((300..500).contains(count), "bucket {i}: {count} of {n}");
        }
        let mut distinct = draws.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert!(distinct.len() > n * 99 / 100);
    }
}
