//! Key layout of the column families. Integers are big-endian so that RocksDB's byte order
//! is numeric order; composite string keys are joined with a 0 byte, which names never
//! contain.

use conflux_domain::{ConfigId, ProposalId, VersionId};

pub const META_FORMAT: &[u8] = b"format";
pub const META_NODE_ID: &[u8] = b"node_id";
pub const META_VOTE: &[u8] = b"vote";
pub const META_COMMITTED: &[u8] = b"committed";
pub const META_LAST_PURGED: &[u8] = b"last_purged";
/// The current snapshot: its meta and file name.
pub const META_SNAPSHOT: &[u8] = b"snapshot";
/// Present while a received snapshot is being installed; names its file, so a crash in the
/// middle of an install is finished at the next start.
pub const META_INSTALLING: &[u8] = b"installing";

pub const SM_APPLIED: &[u8] = b"applied";
pub const SM_MEMBERSHIP: &[u8] = b"membership";
pub const SM_COUNTERS: &[u8] = b"counters";
/// Prefix of one key per cluster member known to have held data (value: nothing).
pub const SM_STARTED_MEMBER_PREFIX: &[u8] = b"started_member/";

pub fn started_member(node_id: u64) -> Vec<u8> {
    let mut k = SM_STARTED_MEMBER_PREFIX.to_vec();
    k.extend_from_slice(&node_id.to_be_bytes());
    k
}

pub fn parse_started_member(key: &[u8]) -> Option<u64> {
    let id = key.strip_prefix(SM_STARTED_MEMBER_PREFIX)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn parse_log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub fn joined(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p.as_bytes());
    }
    out
}

pub fn config(id: ConfigId) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn version(config_id: ConfigId, version: VersionId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&config_id.to_be_bytes());
    k[8..].copy_from_slice(&version.to_be_bytes());
    k
}

/// The key range holding every version (or content) of a config.
pub fn versions_of(config_id: ConfigId) -> (Vec<u8>, Vec<u8>) {
    (
        version(config_id, 0).to_vec(),
        version(config_id, VersionId::MAX).to_vec(),
    )
}

/// A proposal: its config, then its id (so a config's deletion takes a key range).
pub fn proposal(config_id: ConfigId, id: ProposalId) -> [u8; 16] {
    version(config_id, id)
}

/// The key range holding every proposal of a config (the end is exclusive, as RocksDB's
/// range deletes are: the largest id is never assigned).
pub fn proposals_of(config_id: ConfigId) -> (Vec<u8>, Vec<u8>) {
    versions_of(config_id)
}

/// An audit outbox record: log index, then position of the proposal in the entry.
pub fn outbox(index: u64, position: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&index.to_be_bytes());
    k[8..].copy_from_slice(&position.to_be_bytes());
    k
}

pub fn parse_outbox(key: &[u8]) -> Option<(u64, u32)> {
    let index = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let position = u32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
    Some((index, position))
}
