//! [`Kms`]: what the server calls to seal a new version, open a stored one, and rewrap keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conflux_domain::{ContentHash, Seal, SealedContent, WrappedKey};

use crate::cache::{CacheKey, DataKeyCache, cache_key};
use crate::envelope;
use crate::{DEFAULT_CACHE_TTL, KeyProvider, KmsError};

/// Cache settings.
#[derive(Debug, Clone, Copy)]
pub struct KmsOptions {
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
}

impl Default for KmsOptions {
    fn default() -> Self {
        KmsOptions {
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_capacity: 10_000,
        }
    }
}

/// A new version's content, sealed: the ciphertext to store and what the proposal carries.
#[derive(Debug)]
pub struct Sealed {
    pub ciphertext: Bytes,
    pub sealed: SealedContent,
}

/// A content opened, and until when its plaintext may be kept in memory: as long as its data
/// key may (a plaintext must not outlive the key that opened it in the cache, or retiring a
/// KEK would not stop serving what it protects).
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub keep_until: Instant,
}

/// One call to the key provider, as an observer sees it (for metrics: the number of KEKs is
/// small, so operation × KEK × outcome is a bounded label set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsCall<'a> {
    pub operation: &'static str,
    pub kek_id: &'a str,
    /// `ok` or the error's code.
    pub outcome: &'static str,
    pub duration: Duration,
}

/// Told about every call to the key provider.
pub type KmsObserver = Box<dyn Fn(&KmsCall<'_>) + Send + Sync>;

/// The key provider plus the unwrapped-key cache.
pub struct Kms {
    provider: Arc<dyn KeyProvider>,
    cache: DataKeyCache,
    observer: Option<KmsObserver>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("provider", &self.provider)
            .field("cached_keys", &self.cache.len())
            .finish()
    }
}

impl Kms {
    pub fn new(provider: Arc<dyn KeyProvider>, options: KmsOptions) -> Kms {
        Kms {
            provider,
            cache: DataKeyCache::new(options.cache_ttl, options.cache_capacity),
            observer: None,
        }
    }

    /// Calls `observer` after every call to the key provider.
    pub fn with_observer(mut self, observer: KmsObserver) -> Kms {
        self.observer = Some(observer);
        self
    }

    /// The KEK new data keys are wrapped with; keys wrapped by another need a rewrap.
    pub fn current_kek_id(&self) -> &str {
        self.provider.current_kek_id()
    }

    /// Encrypts a new version's plaintext under a fresh data key. The caller has validated
    /// the plaintext against `schema_digest`'s schema.
    pub async fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        schema_digest: Option<ContentHash>,
    ) -> Result<Sealed, KmsError> {
        let kek = self.provider.current_kek_id().to_owned();
        let (key, wrapped) = self
            .counted("generate_data_key", &kek, self.provider.generate_data_key())
            .await?;
        let (ciphertext, nonce) = envelope::seal(&key, plaintext, aad)?;
        // The node that wrote the version serves it next; it already knows the key.
        self.cache.insert(cache_key(&wrapped), key);
        Ok(Sealed {
            ciphertext: Bytes::from(ciphertext),
            sealed: SealedContent {
                seal: Seal {
                    key: wrapped,
                    nonce: Bytes::copy_from_slice(&nonce),
                },
                plaintext_hash: ContentHash::of(plaintext),
                plaintext_size: plaintext.len() as u64,
                schema_digest,
            },
        })
    }

    /// The cache's name for a version's wrapped key (computed once per served version).
    pub fn cache_key(key: &WrappedKey) -> CacheKey {
        cache_key(key)
    }

    /// Decrypts a stored content if its data key is in the cache (no KMS call, no await):
    /// `None` means the caller must use [`Kms::open`].
    pub fn open_cached(
        &self,
        cached_as: &CacheKey,
        seal: &Seal,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Option<Result<Opened, KmsError>> {
        let (key, keep_until) = self.cache.get(cached_as)?;
        Some(
            envelope::open(&key, &seal.nonce, ciphertext, aad, "content").map(|plaintext| Opened {
                plaintext,
                keep_until,
            }),
        )
    }

    /// Decrypts a stored content, unwrapping its data key through the KMS when the cache does
    /// not hold it.
    pub async fn open(
        &self,
        seal: &Seal,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Opened, KmsError> {
        let cached_as = cache_key(&seal.key);
        if let Some(opened) = self.open_cached(&cached_as, seal, ciphertext, aad) {
            return opened;
        }
        let key = self
            .counted(
                "decrypt",
                &seal.key.kek_id,
                self.provider.unwrap_key(&seal.key),
            )
            .await?;
        // Authenticate before caching: a corrupted wrapped key that still unwrapped (a
        // provider without authentication) must not stay in the cache.
        let plaintext = envelope::open(&key, &seal.nonce, ciphertext, aad, "content")?;
        let keep_until = self.cache.insert(cached_as, key);
        Ok(Opened {
            plaintext,
            keep_until,
        })
    }

    /// The same data key wrapped by the current KEK (`None` if it already is).
    pub async fn rewrap(&self, key: &WrappedKey) -> Result<Option<WrappedKey>, KmsError> {
        if key.kek_id == self.current_kek_id() {
            return Ok(None);
        }
        self.counted("re_encrypt", &key.kek_id, self.provider.rewrap_key(key))
            .await
            .map(Some)
    }

    async fn counted<T>(
        &self,
        operation: &'static str,
        kek_id: &str,
        call: impl Future<Output = Result<T, KmsError>>,
    ) -> Result<T, KmsError> {
        let started = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        if let Some(observe) = &self.observer {
            observe(&KmsCall {
                operation,
                kek_id,
                outcome,
                duration: started.elapsed(),
            });
        }
        if let Err(e) = &result {
            tracing::warn!(operation, kek_id, error = %e, "KMS call failed");
        }
        result
    }
}
