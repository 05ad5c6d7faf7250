//! Envelope encryption of config contents (contract section 8).
//!
//! Owns the cryptography of encrypted configs: a fresh 256-bit data key per version
//! (`envelope.rs`: AES-256-GCM with associated data that binds a ciphertext to its config),
//! the key-encryption keys (KEKs) that wrap data keys, behind one small trait
//! ([`KeyProvider`]) with two implementations: a local key file (`local.rs`) and AWS KMS
//! (`aws.rs`), the bounded, expiring cache of unwrapped data keys (`cache.rs`), and the
//! facade the server uses ([`Kms`]).
//!
//! It does not own where sealed contents live (the domain describes them as data:
//! `conflux_domain::SealedContent`; storage keeps them as bytes), nor when to seal or open
//! (the server's API layer decides). Key material is zeroized when dropped and never appears
//! in `Debug` output or logs.

mod aws;
mod cache;
mod envelope;
mod error;
mod kms;
mod local;

pub use aws::{AwsKms, AwsKmsOptions};
pub use cache::CacheKey;
pub use cache::DEFAULT_CACHE_TTL;
pub use envelope::{content_aad, open, seal};
pub use error::KmsError;
pub use kms::{Kms, KmsCall, KmsObserver, KmsOptions, Opened, Sealed};
pub use local::{LocalKms, generate_key_file};

use conflux_domain::WrappedKey;
use futures::future::BoxFuture;
use zeroize::Zeroizing;

/// A plaintext 256-bit data key. Zeroized on drop.
pub type DataKey = Zeroizing<[u8; 32]>;

/// Where key-encryption keys live. A provider wraps and unwraps data keys; it never sees a
/// config's content.
pub trait KeyProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The id of the KEK new data keys are wrapped with (recorded with every wrapped key).
    fn current_kek_id(&self) -> &str;

    /// A fresh data key, in plaintext and wrapped by the current KEK.
    fn generate_data_key(&self) -> BoxFuture<'_, Result<(DataKey, WrappedKey), KmsError>>;

    /// The plaintext of a data key wrapped by any KEK this provider still holds.
    fn unwrap_key<'a>(&'a self, key: &'a WrappedKey) -> BoxFuture<'a, Result<DataKey, KmsError>>;

    /// The same data key wrapped by the current KEK.
    fn rewrap_key<'a>(&'a self, key: &'a WrappedKey)
    -> BoxFuture<'a, Result<WrappedKey, KmsError>>;
}
