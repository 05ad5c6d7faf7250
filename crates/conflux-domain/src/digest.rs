//! A digest of the whole replicated state, for comparing nodes: two nodes that applied the
//! same log up to the same index hold equal states, and equal states have equal digests
//! ([`State::digest`]).
//!
//! What is hashed is everything a node rebuilds from its storage, which is everything
//! [`State::to_changes`] lists, plus the counters: tenants, apps, environments, configs
//! (settings, schema, retention, release rules and comment, revisions, times), every version's
//! metadata (number, content hash and size, format, author, times, revision, and the wrapped
//! data key of a sealed version), idempotency records (key, request fingerprint, remembered
//! outcome, time), the members recorded as having held data, the next config id and the
//! state's clock. Not hashed: the compiled schemas (derived from the configs' schema text),
//! version contents (each version's content hash is hashed instead), and what the state
//! machine keeps outside [`State`]: the Raft membership and the audit outbox.
//!
//! The canonical form: a version tag, then each section in a fixed order as its name and
//! record count, then its records in key order (the state keeps them in ordered maps), each
//! as its length and its JSON serialisation. The JSON of a record is a function of its value:
//! fields come in declaration order, every map in the state is a `BTreeMap` (ordered by key),
//! and no record holds a float. The length prefixes make the form unambiguous, so two
//! different states cannot encode to the same bytes.
//!
//! A digest compares nodes of the same version: adding a field to a record changes the JSON,
//! and so the digest of an equal state.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Versions the canonical form; changed whenever the form changes.
const FORM: &[u8] = b"conflux-state-digest/1\n";

/// The SHA-256 of a state's canonical form and how many records of each kind it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDigest {
    pub sha256: [u8; 32],
    pub tenants: u64,
    pub apps: u64,
    pub environments: u64,
    pub configs: u64,
    pub versions: u64,
    pub idempotency_records: u64,
}

impl fmt::Display for StateDigest {
    /// `sha256:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.sha256))
    }
}

/// Feeds the canonical form of a state into SHA-256, one section and one record at a time.
pub(crate) struct Digester {
    hasher: Sha256,
    /// The current record's JSON, reused across records.
    buffer: Vec<u8>,
}

impl Digester {
    pub(crate) fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(FORM);
        Digester {
            hasher,
            buffer: Vec::new(),
        }
    }

    /// Starts the section `name` of `records` records.
    pub(crate) fn section(&mut self, name: &str, records: usize) {
        self.hasher.update((name.len() as u64).to_be_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update((records as u64).to_be_bytes());
    }

    /// Adds one record of the current section.
    pub(crate) fn record<T: Serialize + ?Sized>(&mut self, record: &T) {
        self.buffer.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buffer, record) {
            // Cannot happen for the state's records (writing to memory does not fail and
            // every map key is a string), but if it did, it would on every node alike: the
            // error stands for the record, marked by a byte that no JSON text contains.
            self.buffer.clear();
            self.buffer.push(0xff);
            self.buffer.extend_from_slice(e.to_string().as_bytes());
        }
        self.hasher.update((self.buffer.len() as u64).to_be_bytes());
        self.hasher.update(&self.buffer);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(sections: &[(&str, &[&str])]) -> [u8; 32] {
        let mut d = Digester::new();
        for (name, records) in sections {
            d.section(name, records.len());
            for r in *records {
                d.record(r);
            }
        }
        d.finish()
    }

    #[test]
    fn moving_a_record_across_a_section_or_record_boundary_changes_the_digest() {
        let base = hash(&[("a", &["x", "y"]), ("b", &[])]);
        assert_ne!(base, hash(&[("a", &["x"]), ("b", &["y"])]));
        assert_ne!(base, hash(&[("a", &["xy"]), ("b", &[])]));
        assert_ne!(base, hash(&[("a", &["y", "x"]), ("b", &[])]));
        assert_eq!(base, hash(&[("a", &["x", "y"]), ("b", &[])]));
    }

    #[test]
    fn renders_as_sha256_hex() {
        let d = StateDigest {
            sha256: [0xab; 32],
            tenants: 0,
            apps: 0,
            environments: 0,
            configs: 0,
            versions: 0,
            idempotency_records: 0,
        };
        assert_eq!(d.to_string(), format!("sha256:{}", "ab".repeat(32)));
    }
}
