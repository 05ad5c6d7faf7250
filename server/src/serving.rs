//! The fetch plane's in-memory index: for every config, its release rules and the contents
//! of the versions those rules point at, ready to be served.
//!
//! Architecture invariant: the fetch path reads only this index. It takes no lock (a
//! lock-free concurrent map of immutable `Arc<ServedConfig>` values that the state machine
//! replaces after each apply), never touches RocksDB, and answers with shared `Bytes`
//! buffers and header values computed once per version instead of per request.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;

use axum::http::HeaderValue;
use bytes::Bytes;
use conflux_domain::{
    Config, ConfigId, Format, ReleaseRule, Revision, Seal, VersionId, VersionMeta, order_rules,
};
use conflux_kms::{CacheKey, Kms, content_aad};

/// One version as the fetch path serves it.
#[derive(Debug)]
pub struct ServedVersion {
    pub version: VersionId,
    /// The plaintext, or the ciphertext when `sealed` is set.
    pub content: Bytes,
    /// `sha256:<hex>` of the plaintext.
    pub hash: HeaderValue,
    pub version_header: HeaderValue,
    /// Strong ETag, unique per config and version content.
    pub etag: HeaderValue,
    pub sealed: Option<ServedSeal>,
}

/// What opening a sealed version needs, computed once per version.
#[derive(Debug)]
pub struct ServedSeal {
    pub seal: Box<Seal>,
    /// The config's associated data (binds the ciphertext to the config).
    pub aad: Vec<u8>,
    /// The wrapped data key's name in the node's unwrapped-key cache.
    pub cache_key: CacheKey,
    /// The plaintext once opened, until its data key expires from the cache: a fetch of an
    /// encrypted config then costs what a plain one does. Memory only.
    pub opened: ArcSwapOption<(Instant, Bytes)>,
}

impl ServedVersion {
    pub fn new(config: &Config, meta: &VersionMeta, content: Bytes) -> Self {
        let hash = meta.hash.to_string();
        let etag = format!(
            "\"{}-{}-{}\"",
            config.id,
            meta.version,
            &meta.hash.to_hex()[..16]
        );
        ServedVersion {
            version: meta.version,
            content,
            hash: HeaderValue::from_str(&hash).expect("hex is a valid header value"),
            version_header: HeaderValue::from(meta.version),
            etag: HeaderValue::from_str(&etag).expect("digits and hex are a valid header value"),
            sealed: meta.seal.as_ref().map(|seal| ServedSeal {
                cache_key: Kms::cache_key(&seal.key),
                aad: content_aad(config.id, config.created_revision),
                seal: seal.clone(),
                opened: ArcSwapOption::empty(),
            }),
        }
    }

    /// Whether this copy was built with `seal` (a rewrap replaces the wrapped key).
    pub fn has_seal(&self, seal: Option<&Seal>) -> bool {
        self.sealed.as_ref().map(|s| &*s.seal) == seal
    }
}

/// A config as the fetch path sees it: rules (with their evaluation order) and the released
/// versions.
#[derive(Debug)]
pub struct ServedConfig {
    pub config_id: ConfigId,
    pub revision: Revision,
    /// The revision that created the config.
    pub created_revision: Revision,
    pub revision_header: HeaderValue,
    pub format: Format,
    pub content_type: HeaderValue,
    pub rules: Vec<ReleaseRule>,
    pub order: Vec<usize>,
    /// The versions referenced by `rules`, ascending by version.
    pub versions: Vec<Arc<ServedVersion>>,
}

impl ServedConfig {
    pub fn new(config: &Config, versions: Vec<Arc<ServedVersion>>) -> Self {
        ServedConfig {
            config_id: config.id,
            revision: config.revision,
            created_revision: config.created_revision,
            revision_header: HeaderValue::from(config.revision),
            format: config.format,
            content_type: HeaderValue::from_static(config.format.content_type()),
            rules: config.rules.clone(),
            order: order_rules(&config.rules),
            versions,
        }
    }

    pub fn version(&self, version: VersionId) -> Option<&Arc<ServedVersion>> {
        self.versions
            .binary_search_by_key(&version, |v| v.version)
            .ok()
            .map(|i| &self.versions[i])
    }
}

/// `tenant/app/env/name` -> what to serve.
#[derive(Debug, Default)]
pub struct FetchIndex {
    map: papaya::HashMap<String, Arc<ServedConfig>>,
}

impl FetchIndex {
    pub fn get(&self, path: &str) -> Option<Arc<ServedConfig>> {
        self.map.pin().get(path).cloned()
    }

    pub fn insert(&self, path: String, served: Arc<ServedConfig>) {
        self.map.pin().insert(path, served);
    }

    pub fn remove(&self, path: &str) {
        self.map.pin().remove(path);
    }

    /// Every path in the index.
    pub fn paths(&self) -> Vec<String> {
        self.map.pin().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
