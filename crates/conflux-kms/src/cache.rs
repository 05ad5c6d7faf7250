//! Unwrapped data keys kept in memory for a while, so serving an encrypted config does not
//! call the KMS on every fetch.
//!
//! Bounded (the least recently inserted half is dropped when full) and expiring: a key is
//! used for at most the TTL after it was unwrapped, so disabling a KEK in the KMS stops a
//! node from serving what it protects within one TTL. Lock-free reads (papaya), like the
//! rest of the fetch path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use conflux_domain::WrappedKey;
use sha2::{Digest, Sha256};

use crate::DataKey;

/// The contract's default: unwrapped keys live five minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Names a wrapped key in the cache without holding it: SHA-256 of its KEK id and bytes.
pub type CacheKey = [u8; 32];

pub fn cache_key(key: &WrappedKey) -> CacheKey {
    Sha256::new()
        .chain_update(key.kek_id.as_bytes())
        .chain_update([0])
        .chain_update(&key.ciphertext)
        .finalize()
        .into()
}

#[derive(Clone)]
struct Cached {
    key: Arc<DataKey>,
    unwrapped_at: Instant,
}

pub(crate) struct DataKeyCache {
    map: papaya::HashMap<CacheKey, Cached>,
    ttl: Duration,
    capacity: usize,
}

impl DataKeyCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        DataKeyCache {
            map: papaya::HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The key and when it stops being usable.
    pub(crate) fn get(&self, k: &CacheKey) -> Option<(Arc<DataKey>, Instant)> {
        let map = self.map.pin();
        let cached = map.get(k)?;
        if cached.unwrapped_at.elapsed() < self.ttl {
            Some((cached.key.clone(), cached.unwrapped_at + self.ttl))
        } else {
            map.remove(k);
            None
        }
    }

    /// Keeps `key`; returns when it stops being usable.
    pub(crate) fn insert(&self, k: CacheKey, key: DataKey) -> Instant {
        let map = self.map.pin();
        if map.len() >= self.capacity {
            // Drop the older half (expired keys are the oldest, the TTL being the same for
            // all): rare, since it only happens when more keys are in use than the cache
            // holds, and cheaper than tracking recency on every read.
            let mut by_age: Vec<(CacheKey, Instant)> =
                map.iter().map(|(k, v)| (*k, v.unwrapped_at)).collect();
            by_age.sort_by_key(|(_, at)| *at);
            let drop = by_age.len().saturating_sub(self.capacity / 2);
            for (k, _) in &by_age[..drop] {
                map.remove(k);
            }
        }
        let unwrapped_at = Instant::now();
        map.insert(
            k,
            Cached {
                key: Arc::new(key),
                unwrapped_at,
            },
        );
        unwrapped_at + self.ttl
    }

    pub(crate) fn len(&self) -> usize {
        self.map.pin().len()
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;

    #[test]
    fn keys_expire_and_the_cache_stays_bounded() {
        let cache = DataKeyCache::new(Duration::from_millis(50), 4);
        cache.insert([1; 32], Zeroizing::new([1; 32]));
        assert_eq!(**cache.get(&[1; 32]).unwrap().0, [1; 32]);
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&[1; 32]).is_none());

        for i in 0..20u8 {
            cache.insert([i; 32], Zeroizing::new([i; 32]));
            assert!(cache.len() <= 4, "{} keys", cache.len());
        }
        assert!(cache.get(&[19; 32]).is_some(), "the newest key is kept");
    }
}
