//! RocksDB storage of one node: the Raft log and vote ([`log_store`]), the config-plane state
//! machine ([`state_machine`]) and its snapshots ([`snapshot`]), in one database with one
//! column family per kind of record.
//!
//! Architecture invariants:
//! - Log and state machine share one RocksDB instance and therefore one write-ahead log. Log
//!   appends are made durable by syncing that WAL, which also makes every earlier
//!   state-machine write durable; so the persisted `applied` id never runs ahead of a
//!   persisted log, and anything applied but lost in a crash is re-applied from the log.
//! - Each apply call is one write batch: records, version contents, the applied log id, the
//!   membership and the counters change together or not at all.
//! - Every value written here is encoded by [`codec`] with a leading format-version byte, and
//!   the key layout version is recorded under `meta/format`; a node refuses data it cannot
//!   read instead of guessing.

// openraft's traits fix the error type (`StorageError`, ~224 bytes); boxing it in our
// helpers would only move the allocation around.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod keys;
pub mod log_store;
pub mod snapshot;
pub mod state_machine;
#[cfg(test)]
pub(crate) mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

pub use log_store::LogStore;
pub use state_machine::{ConfigPlane, StateMachineStore};

/// Version of the key layout and column-family set. Bump with a migration when it changes.
pub const STORAGE_FORMAT_VERSION: u32 = 1;

/// Column families. `meta` holds Raft-side singletons (vote, committed, purged, snapshot);
/// the others hold the state machine.
pub mod cf {
    pub const META: &str = "meta";
    pub const LOG: &str = "log";
    pub const SM_META: &str = "sm_meta";
    pub const TENANTS: &str = "tenants";
    pub const APPS: &str = "apps";
    pub const ENVS: &str = "envs";
    pub const CONFIGS: &str = "configs";
    pub const VERSIONS: &str = "versions";
    pub const CONTENTS: &str = "contents";
    pub const IDEMPOTENCY: &str = "idempotency";
    /// Audit records of applied changes not yet in the metadata DB (see `audit.rs`).
    pub const AUDIT_OUTBOX: &str = "audit_outbox";
    /// Release proposals, keyed by (config id, proposal id) like versions.
    pub const PROPOSALS: &str = "proposals";

    /// The state-machine column families, in snapshot order. A snapshot record names its
    /// family by index into this list, so the order is part of the snapshot format.
    /// (New families go at the end, so older snapshots stay readable.)
    pub const STATE: [&str; 10] = [
        SM_META,
        TENANTS,
        APPS,
        ENVS,
        CONFIGS,
        VERSIONS,
        CONTENTS,
        IDEMPOTENCY,
        AUDIT_OUTBOX,
        PROPOSALS,
    ];

    pub const ALL: [&str; 12] = [
        META,
        LOG,
        SM_META,
        TENANTS,
        APPS,
        ENVS,
        CONFIGS,
        VERSIONS,
        CONTENTS,
        IDEMPOTENCY,
        AUDIT_OUTBOX,
        PROPOSALS,
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum StorageOpenError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Rocks {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} has storage format {found}, this build reads format {expected}"
    )]
    FormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "the data directory belongs to node {found}, but this node was started as node {requested}"
    )]
    NodeIdMismatch { found: u64, requested: u64 },
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("{path} is not empty; restore only into a new, empty data directory")]
    NotEmpty { path: PathBuf },
}

/// The storage of one node, opened once at startup.
#[derive(Debug)]
pub struct Storage {
    pub log: LogStore,
    pub state_machine: StateMachineStore,
}

/// Opens (or creates) the node's storage under `data_dir`, checking the format version and
/// that the directory belongs to `node_id`, and rebuilds the in-memory config plane.
pub fn open(data_dir: &Path, node_id: u64) -> Result<Storage, StorageOpenError> {
    let (db, snapshot_dir) = open_raw(data_dir, node_id)?;
    let db = Arc::new(db);
    let log = LogStore::new(db.clone());
    let state_machine = StateMachineStore::open(db, snapshot_dir)?;
    Ok(Storage { log, state_machine })
}

/// Opens the database and snapshot directory without loading the state machine.
fn open_raw(data_dir: &Path, node_id: u64) -> Result<(DB, PathBuf), StorageOpenError> {
    let db_path = data_dir.join("db");
    let snapshot_dir = data_dir.join("snapshots");
    for dir in [data_dir, &db_path, &snapshot_dir] {
        std::fs::create_dir_all(dir).map_err(|source| StorageOpenError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let db = open_db(&db_path)?;
    check_identity(&db, &db_path, node_id)?;
    Ok((db, snapshot_dir))
}

fn open_db(path: &Path) -> Result<DB, StorageOpenError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    // Bounds the memtables of all column families together; the largest is flushed first.
    opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    let cfs = cf::ALL
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options()));
    DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| StorageOpenError::Rocks {
        path: path.to_owned(),
        source,
    })
}

/// Memtable size of one column family. With RocksDB's default (64 MiB) every insert walks a
/// large, cache-cold skip list: skip-list searches took 17 % of a 3-node cluster's CPU under
/// 256 writers, 12 % with 16 MiB (write throughput moved within the noise). Above all, ten
/// families at the default could hold over 1 GiB of memtables; this keeps them to
/// [`DB_WRITE_BUFFER_BYTES`].
const CF_WRITE_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Memtable memory of all column families together.
const DB_WRITE_BUFFER_BYTES: usize = 96 * 1024 * 1024;

fn column_family_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(CF_WRITE_BUFFER_BYTES);
    opts
}

/// A place where unit tests of concurrent storage operations can stop a thread (see
/// `testing.rs`): `snapshot_dir` names the store, `name` the place. Nothing in other builds.
#[cfg(not(test))]
pub(crate) fn pause_point(_snapshot_dir: &Path, _name: &'static str) {}

#[cfg(test)]
pub(crate) fn pause_point(snapshot_dir: &Path, name: &'static str) {
    testing::pass_pause_point(snapshot_dir, name);
}

/// The handle of column family `name`. Every family in [`cf::ALL`] is created when the
/// database is opened, so a missing one is a bug, not a runtime condition.
pub(crate) fn handle<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created at open"))
}

/// Records the format version and node id on first open; checks them afterwards.
fn check_identity(db: &DB, path: &Path, node_id: u64) -> Result<(), StorageOpenError> {
    let meta = handle(db, cf::META);
    let read = |key: &[u8]| -> Result<Option<u64>, StorageOpenError> {
        match db.get_cf(meta, key) {
            Ok(Some(v)) => codec::decode::<u64>(&v)
                .map(Some)
                .map_err(|e| StorageOpenError::Corrupt(e.to_string())),
            Ok(None) => Ok(None),
            Err(source) => Err(StorageOpenError::Rocks {
                path: path.to_owned(),
                source,
            }),
        }
    };
    match read(keys::META_FORMAT)? {
        Some(found) if found != u64::from(STORAGE_FORMAT_VERSION) => {
            return Err(StorageOpenError::FormatVersion {
                path: path.to_owned(),
                found: found as u32,
                expected: STORAGE_FORMAT_VERSION,
            });
        }
        Some(_) => {}
        None => {
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(
                meta,
                keys::META_FORMAT,
                codec::encode(&u64::from(STORAGE_FORMAT_VERSION)),
            );
            batch.put_cf(meta, keys::META_NODE_ID, codec::encode(&node_id));
            db.write_opt(batch, &wo)
                .map_err(|source| StorageOpenError::Rocks {
                    path: path.to_owned(),
                    source,
                })?;
        }
    }
    match read(keys::META_NODE_ID)? {
        Some(found) if found != node_id => Err(StorageOpenError::NodeIdMismatch {
            found,
            requested: node_id,
        }),
        _ => Ok(()),
    }
}
