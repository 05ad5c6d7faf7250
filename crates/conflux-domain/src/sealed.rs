//! Envelope-encrypted ("sealed") version contents, as data.
//!
//! A config created with `encrypted: true` never has plaintext in a command, the state or
//! storage: the node that receives a new version validates the plaintext, encrypts it under
//! a fresh data key and proposes the ciphertext with a [`SealedContent`] that says how to
//! open it (the data key wrapped by a key-encryption key, the nonce) and what the plaintext
//! was (hash, size, and the schema it was checked against). This module only describes that
//! data; the cryptography lives in the `conflux-kms` crate, outside the domain, because it
//! needs randomness and a KMS.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{ConfigId, ContentHash, VersionId};

/// A data key wrapped (encrypted) by a key-encryption key. Opaque here.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Which key-encryption key wrapped it: `local:<fingerprint>` or an AWS KMS key ARN.
    pub kek_id: String,
    pub ciphertext: Bytes,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_id", &self.kek_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// How a stored version's content is opened: the version's wrapped data key and the nonce.
/// The stored content is AES-256-GCM ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub key: WrappedKey,
    pub nonce: Bytes,
}

/// What a proposal of a sealed version carries besides the ciphertext: the seal, and the facts
/// about the plaintext that apply needs but can no longer check itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedContent {
    pub seal: Seal,
    /// SHA-256 and length of the plaintext: a version's hash, ETag and size are the
    /// plaintext's, encrypted or not.
    pub plaintext_hash: ContentHash,
    pub plaintext_size: u64,
    /// SHA-256 of the JSON Schema text the receiving node validated the plaintext against
    /// (`None`: the config had no schema). Apply refuses the version if the config's schema
    /// is no longer that one, so a schema change racing the write cannot be bypassed.
    pub schema_digest: Option<ContentHash>,
}

impl SealedContent {
    /// The digest [`SealedContent::schema_digest`] records for a config's schema text.
    pub fn digest_of_schema(schema: Option<&str>) -> Option<ContentHash> {
        schema.map(|s| ContentHash::of(s.as_bytes()))
    }
}

/// One data key to rewrap (`Command::RewrapKeys`): replaced only if the version still has
/// exactly the key `from`, so a repeated or stale rewrap changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrap {
    pub config_id: ConfigId,
    pub version: VersionId,
    pub from: WrappedKey,
    pub to: WrappedKey,
}
