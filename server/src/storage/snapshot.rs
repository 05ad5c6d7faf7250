//! Snapshots of the state machine as files, built from a RocksDB point-in-time snapshot and
//! installed back into RocksDB.
//!
//! File format (version 1), all integers big-endian:
//!
//! ```text
//! "CFXSNAP\0"  u32 format version
//! u32 header length, header = codec-encoded SnapshotMeta
//! records: u8 column family (index into storage::cf::STATE), u32 key length, key,
//!          u32 value length, value
//! u8 0xFF end marker, u32 CRC-32 of every byte before it
//! ```
//!
//! Installing is crash-safe: the received file is copied into the snapshot directory,
//! verified and synced first; then a marker naming it is written, the state column families
//! are replaced in bounded batches, and the last batch (applied id, membership, current
//! snapshot pointer, marker removal) is synced. A node that crashes in between finds the
//! marker at its next start and finishes the install from the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftSnapshotBuilder;
use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::state_machine::{ConfigPlane, Shared, load, refresh_fetch_index};
use super::{StorageOpenError, cf, codec, handle, keys, pause_point};
use crate::raft::{
    LogId, NodeInfo, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

type Result<T> = std::result::Result<T, StorageError>;

const MAGIC: &[u8; 8] = b"CFXSNAP\0";
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const END_MARKER: u8 = 0xFF;
/// A record larger than this is corruption, not data (contents are capped at 4 MiB).
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
/// Install writes at most this many bytes per RocksDB batch, so memory stays bounded.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The pointer to the current snapshot, stored under `meta/snapshot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    file: String,
}

fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, &e).into()
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), verb, e)
}

fn corrupt(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

// ---- file format ------------------------------------------------------------------------

struct SnapshotWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
}

impl SnapshotWriter {
    fn create(path: &Path, meta: &SnapshotMeta) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
        };
        w.write(MAGIC)?;
        w.write(&SNAPSHOT_FORMAT_VERSION.to_be_bytes())?;
        let header = codec::encode(meta);
        w.write(&(header.len() as u32).to_be_bytes())?;
        w.write(&header)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    fn record(&mut self, family: u8, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.write(&[family])?;
        self.write(&(key.len() as u32).to_be_bytes())?;
        self.write(key)?;
        self.write(&(value.len() as u32).to_be_bytes())?;
        self.write(value)
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.write(&[END_MARKER])?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// One record of a snapshot file: column family index, key, value.
pub(crate) type Record = (u8, Vec<u8>, Vec<u8>);

/// Reads a snapshot file record by record, checking the CRC at the end.
pub(crate) struct SnapshotReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    pub(crate) meta: SnapshotMeta,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    pub(crate) fn new(input: R) -> std::io::Result<Self> {
        let mut r = SnapshotReader {
            input,
            crc: crc32fast::Hasher::new(),
            meta: SnapshotMeta::default(),
            done: false,
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt("not a Conflux snapshot file"));
        }
        let version = r.read_u32()?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(corrupt(format!(
                "snapshot format {version} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
            )));
        }
        let len = r.read_u32()?;
        if len > MAX_RECORD_BYTES {
            return Err(corrupt("snapshot header too large"));
        }
        let mut header = vec![0u8; len as usize];
        r.read_exact(&mut header)?;
        r.meta = codec::decode(&header).map_err(|e| corrupt(e.to_string()))?;
        Ok(r)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.input.read_exact(buf)?;
        self.crc.update(buf);
        Ok(())
    }

    fn read_u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn read_blob(&mut self) -> std::io::Result<Vec<u8>> {
        let len = self.read_u32()?;
        if len > MAX_RECORD_BYTES {
            return Err(corrupt(format!("snapshot record of {len} bytes")));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact(&mut v)?;
        Ok(v)
    }

    /// The next record, or `None` after the end marker once the CRC has been verified.
    pub(crate) fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let mut family = [0u8; 1];
        self.read_exact(&mut family)?;
        if family[0] == END_MARKER {
            let expected = self.crc.clone().finalize();
            let mut stored = [0u8; 4];
            self.input.read_exact(&mut stored)?;
            if u32::from_be_bytes(stored) != expected {
                return Err(corrupt("snapshot checksum mismatch"));
            }
            self.done = true;
            return Ok(None);
        }
        if usize::from(family[0]) >= cf::STATE.len() {
            return Err(corrupt(format!(
                "unknown column family {} in snapshot",
                family[0]
            )));
        }
        let key = self.read_blob()?;
        let value = self.read_blob()?;
        Ok(Some((family[0], key, value)))
    }

    /// Reads to the end, verifying every record and the checksum.
    pub(crate) fn verify_to_end(mut self) -> std::io::Result<SnapshotMeta> {
        while self.next_record()?.is_some() {}
        Ok(self.meta)
    }
}

// ---- building ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct SnapshotBuilder {
    plane: ConfigPlane,
}

impl SnapshotBuilder {
    pub(crate) fn new(plane: ConfigPlane) -> Self {
        SnapshotBuilder { plane }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot> {
        let shared = self.plane.0.clone();
        let (meta, file) = tokio::task::spawn_blocking(move || build(&shared))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

fn unique_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Builds a snapshot file from a point-in-time view of the state column families. Runs
/// concurrently with applies, with other builds and with installs (openraft builds in a task
/// of its own): the view is taken outside any install, and the current-snapshot pointer only
/// ever moves forward.
fn build(shared: &Shared) -> Result<(SnapshotMeta, File)> {
    let db = &shared.db;
    let snap = {
        let _not_installing = shared.install_guard.read();
        db.snapshot()
    };
    let sm_meta = handle(db, cf::SM_META);
    let read = |key: &[u8]| {
        snap.get_cf(sm_meta, key)
            .map_err(|e| snap_err(ErrorVerb::Read, e))
    };
    let applied: Option<LogId> = match read(keys::SM_APPLIED)? {
        Some(raw) => codec::decode(&raw).map_err(|e| snap_err(ErrorVerb::Read, e))?,
        None => None,
    };
    let membership: StoredMembership = match read(keys::SM_MEMBERSHIP)? {
        Some(raw) => codec::decode(&raw).map_err(|e| snap_err(ErrorVerb::Read, e))?,
        None => StoredMembership::default(),
    };
    let snapshot_id = match applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, unique_suffix()),
        None => format!("0-0-{}", unique_suffix()),
    };
    let meta = SnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
        snapshot_id,
    };

    let file_name = format!("{}.snap", meta.snapshot_id);
    let tmp = shared.snapshot_dir.join(format!("{file_name}.tmp"));
    let path = shared.snapshot_dir.join(&file_name);
    // Written under a name of its own (install never touches other temporary files), and
    // opened for openraft before anything else happens to it.
    let write = || -> std::io::Result<File> {
        let mut w = SnapshotWriter::create(&tmp, &meta)?;
        for (i, name) in cf::STATE.iter().enumerate() {
            let handle = handle(db, name);
            for item in snap.iterator_cf(handle, IteratorMode::Start) {
                let (k, v) = item.map_err(std::io::Error::other)?;
                w.record(i as u8, &k, &v)?;
            }
        }
        w.finish()?;
        File::open(&tmp)
    };
    let file = write().map_err(|e| snap_err(ErrorVerb::Write, e))?;
    pause_point(&shared.snapshot_dir, "build:file-written");
    let _files = shared.snapshot_files.lock();
    match current_pointer(db)?.filter(|c| c.meta.last_log_id >= meta.last_log_id) {
        // An install or another build got as far or further meanwhile: keep that one
        // current. openraft still gets this one, through the open handle.
        Some(current) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(built = %meta.snapshot_id, current = %current.meta.snapshot_id, "a snapshot at least as new exists; the one just built is not kept");
        }
        None => {
            let publish = || -> std::io::Result<()> {
                std::fs::rename(&tmp, &path)?;
                File::open(&shared.snapshot_dir)?.sync_all()
            };
            publish().map_err(|e| snap_err(ErrorVerb::Write, e))?;
            set_current(db, &meta, &file_name, None)?;
            remove_other_snapshots(&shared.snapshot_dir, &file_name);
        }
    }
    Ok((meta, file))
}

fn set_current(db: &DB, meta: &SnapshotMeta, file: &str, batch: Option<WriteBatch>) -> Result<()> {
    let meta_cf = handle(db, cf::META);
    let mut batch = batch.unwrap_or_default();
    let current = CurrentSnapshot {
        meta: meta.clone(),
        file: file.to_owned(),
    };
    batch.put_cf(meta_cf, keys::META_SNAPSHOT, codec::encode(&current));
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)
        .map_err(|e| snap_err(ErrorVerb::Write, e))
}

/// Deletes every snapshot file but `keep` (the current one). The caller holds
/// `snapshot_files` and has just pointed the current snapshot at `keep`, so no file deleted
/// here can still be named by the pointer or by an install in progress.
fn remove_other_snapshots(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".snap") && name != keep {
            // A peer may still be reading it through an open handle; unlinking is safe.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes leftovers of builds or installs interrupted by a crash. Only at start-up: while the
/// node runs, a build or an install may be writing its own temporary file.
pub(crate) fn remove_temporary_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

// ---- reading the current snapshot ---------------------------------------------------------

fn current_pointer(db: &DB) -> Result<Option<CurrentSnapshot>> {
    let meta_cf = handle(db, cf::META);
    match db
        .get_cf(meta_cf, keys::META_SNAPSHOT)
        .map_err(|e| snap_err(ErrorVerb::Read, e))?
    {
        Some(raw) => Ok(Some(
            codec::decode(&raw).map_err(|e| snap_err(ErrorVerb::Read, e))?,
        )),
        None => Ok(None),
    }
}

/// Opens the current snapshot file. Takes no lock: a file is deleted only after the pointer
/// moved past it, so when the file named by the pointer is gone, the pointer has moved and
/// reading it again names a newer file.
fn open_current(shared: &Shared) -> Result<Option<(SnapshotMeta, File)>> {
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        let Some(cur) = current_pointer(&shared.db)? else {
            return Ok(None);
        };
        match File::open(shared.snapshot_dir.join(&cur.file)) {
            Ok(file) => return Ok(Some((cur.meta, file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(snap_err(ErrorVerb::Read, e)),
        }
    }
    Err(snap_err(
        ErrorVerb::Read,
        std::io::Error::other(format!(
            "the current snapshot changed {ATTEMPTS} times while being opened"
        )),
    ))
}

pub(crate) async fn current(shared: &Shared) -> Result<Option<Snapshot>> {
    Ok(open_current(shared)?.map(|(meta, file)| Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    }))
}

/// Meta and an open handle of the current snapshot file, for backups (the handle stays
/// readable even if a newer snapshot replaces the file meanwhile).
pub fn current_file(plane: &ConfigPlane) -> Result<Option<(SnapshotMeta, File)>> {
    open_current(&plane.0)
}

// ---- receiving and installing -------------------------------------------------------------

/// A file to receive a snapshot into. It is unlinked at once: openraft may drop it without
/// installing it (a newer snapshot or log arrived meanwhile), and an unnamed file leaves
/// nothing behind; [`install`] copies it by its handle.
pub(crate) async fn begin_receiving(dir: &Path) -> Result<Box<tokio::fs::File>> {
    let path = dir.join(format!("recv-{}.tmp", unique_suffix()));
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
    tokio::fs::remove_file(&path)
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
    Ok(Box::new(file))
}

pub(crate) async fn install(
    plane: &ConfigPlane,
    meta: &SnapshotMeta,
    file: tokio::fs::File,
) -> Result<()> {
    let mut received = file.into_std().await;
    let shared = plane.0.clone();
    let meta = meta.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        // Exclusive for the whole install: builds must not take their view of a half-written
        // state, nor move the pointer or delete files while this one is being installed.
        let _installing = shared.install_guard.write();
        let _files = shared.snapshot_files.lock();
        pause_point(&shared.snapshot_dir, "install:locked");
        let file_name = format!("{}.snap", meta.snapshot_id);
        let path = shared.snapshot_dir.join(&file_name);
        let tmp = shared.snapshot_dir.join(format!("{file_name}.tmp"));
        let mut copy = || -> std::io::Result<SnapshotMeta> {
            received.seek(SeekFrom::Start(0))?;
            let mut out = File::create(&tmp)?;
            std::io::copy(&mut received, &mut out)?;
            out.sync_all()?;
            let header = SnapshotReader::new(BufReader::new(File::open(&tmp)?))?.verify_to_end()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&shared.snapshot_dir)?.sync_all()?;
            Ok(header)
        };
        let header = copy().map_err(|e| snap_err(ErrorVerb::Read, e))?;
        if header.last_log_id != meta.last_log_id {
            return Err(snap_err(
                ErrorVerb::Read,
                corrupt("snapshot file does not match its meta"),
            ));
        }
        install_from_file(&shared.db, &path, &meta)?;
        remove_other_snapshots(&shared.snapshot_dir, &file_name);
        reload(&shared)?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
        Ok(())
    })
    .await
    .map_err(|e| snap_err(ErrorVerb::Write, e))?
}

/// Replaces the state column families with the snapshot's records (see the module docs).
fn install_from_file(db: &DB, path: &Path, meta: &SnapshotMeta) -> Result<()> {
    let meta_cf = handle(db, cf::META);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.put_cf_opt(
        meta_cf,
        keys::META_INSTALLING,
        codec::encode(&file_name),
        &wo,
    )
    .map_err(|e| snap_err(ErrorVerb::Write, e))?;

    let handles: Vec<_> = cf::STATE.iter().map(|n| handle(db, n)).collect();
    // Clear the state column families, in bounded batches.
    for handle in &handles {
        let mut batch = WriteBatch::default();
        for item in db.iterator_cf(*handle, IteratorMode::Start) {
            let (k, _) = item.map_err(|e| snap_err(ErrorVerb::Write, e))?;
            batch.delete_cf(*handle, k);
            if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
                db.write(std::mem::take(&mut batch))
                    .map_err(|e| snap_err(ErrorVerb::Write, e))?;
            }
        }
        db.write(batch).map_err(|e| snap_err(ErrorVerb::Write, e))?;
    }
    let file = File::open(path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    let mut reader = SnapshotReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| snap_err(ErrorVerb::Read, e))?;
    let mut batch = WriteBatch::default();
    while let Some((family, key, value)) = reader
        .next_record()
        .map_err(|e| snap_err(ErrorVerb::Read, e))?
    {
        batch.put_cf(handles[usize::from(family)], key, value);
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))
                .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        }
    }
    let sm_meta = handle(db, cf::SM_META);
    batch.put_cf(sm_meta, keys::SM_APPLIED, codec::encode(&meta.last_log_id));
    batch.put_cf(
        sm_meta,
        keys::SM_MEMBERSHIP,
        codec::encode(&meta.last_membership),
    );
    batch.delete_cf(meta_cf, keys::META_INSTALLING);
    set_current(db, meta, &file_name, Some(batch))
}

/// Finishes an install that a crash interrupted (see the module docs).
pub(crate) fn finish_interrupted_install(db: &DB, dir: &Path) -> Result<()> {
    let meta_cf = handle(db, cf::META);
    let Some(raw) = db
        .get_cf(meta_cf, keys::META_INSTALLING)
        .map_err(|e| snap_err(ErrorVerb::Read, e))?
    else {
        return Ok(());
    };
    let file_name: String = codec::decode(&raw).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    let path = dir.join(&file_name);
    let file = File::open(&path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    let meta = SnapshotReader::new(BufReader::new(file))
        .and_then(SnapshotReader::verify_to_end)
        .map_err(|e| snap_err(ErrorVerb::Read, e))?;
    tracing::warn!(snapshot = %meta.snapshot_id, "finishing a snapshot install interrupted by a crash");
    install_from_file(db, &path, &meta)
}

/// Replaces the in-memory state with the installed one. The fetch index and the watchers
/// change under the state's write lock, as in apply.
fn reload(shared: &Shared) -> Result<()> {
    let (loaded, applied, membership) = load(&shared.db)?;
    let revision = applied.map_or(0, |l| l.index);
    let mut state = shared.state.write();
    *state = loaded;
    refresh_fetch_index(shared, &state, revision)?;
    *shared.applied.lock() = (applied, membership);
    shared.applied_index.send_replace(revision);
    drop(state);
    Ok(())
}

// ---- restoring a backup into a new cluster ----------------------------------------------

/// Turns a backup (a snapshot file from `GET /_cluster/backup`) into the data directory of
/// the first node of a new cluster: the state is the backup's, the membership is this node
/// alone, and the log continues after the backup's last entry, so revisions keep growing.
/// Refuses a data directory that is not empty.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    node_id: u64,
    me: NodeInfo,
) -> std::result::Result<SnapshotMeta, StorageOpenError> {
    let corrupt_backup =
        |e: std::io::Error| StorageOpenError::Corrupt(format!("{}: {e}", backup.display()));
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(StorageOpenError::NotEmpty {
            path: data_dir.to_owned(),
        });
    }
    let file = File::open(backup).map_err(|source| StorageOpenError::Io {
        path: backup.to_owned(),
        source,
    })?;
    let header = SnapshotReader::new(BufReader::new(file))
        .and_then(SnapshotReader::verify_to_end)
        .map_err(corrupt_backup)?;
    let last = header.last_log_id.ok_or_else(|| {
        StorageOpenError::Corrupt("the backup is of a cluster that never applied anything".into())
    })?;

    let (db, snapshot_dir) = super::open_raw(data_dir, node_id)?;
    let membership = openraft::Membership::new(
        vec![BTreeSet::from([node_id])],
        BTreeMap::from([(node_id, me)]),
    );
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!(
            "{}-{}-restored-{}",
            last.leader_id.term,
            last.index,
            unique_suffix()
        ),
    };
    // Copy the records under the new meta.
    let file_name = format!("{}.snap", meta.snapshot_id);
    let path = snapshot_dir.join(&file_name);
    let copy = || -> std::io::Result<()> {
        let mut reader = SnapshotReader::new(BufReader::new(File::open(backup)?))?;
        let mut writer = SnapshotWriter::create(&path, &meta)?;
        while let Some((family, key, value)) = reader.next_record()? {
            writer.record(family, &key, &value)?;
        }
        writer.finish()
    };
    copy().map_err(corrupt_backup)?;
    let fail = |e: StorageError| StorageOpenError::Corrupt(e.to_string());
    install_from_file(&db, &path, &meta).map_err(fail)?;
    // The log starts after the backup: everything up to it is "purged" into the snapshot,
    // and the vote is that of the term the backup was taken in.
    let meta_cf = handle(&db, cf::META);
    let mut batch = WriteBatch::default();
    batch.put_cf(meta_cf, keys::META_LAST_PURGED, codec::encode(&last));
    batch.put_cf(meta_cf, keys::META_COMMITTED, codec::encode(&Some(last)));
    let vote = openraft::Vote::new_committed(last.leader_id.term, last.leader_id.node_id);
    batch.put_cf(meta_cf, keys::META_VOTE, codec::encode(&vote));
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)
        .map_err(|source| StorageOpenError::Rocks {
            path: data_dir.to_owned(),
            source,
        })?;
    Ok(meta)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Builds and installs racing each other, with the interleavings forced by pause points.

    use std::io::BufReader;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::storage::testing::{arm, runtime, store};

    /// Hands the snapshot in `file` to `target` the way openraft does: received into a file of
    /// `begin_receiving`, then installed.
    async fn receive_and_install(target: &ConfigPlane, meta: &SnapshotMeta, file: &mut File) {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut bytes).unwrap();
        let mut received = begin_receiving(&target.0.snapshot_dir).await.unwrap();
        received.write_all(&bytes).await.unwrap();
        received.flush().await.unwrap();
        install(target, meta, *received).await.unwrap();
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_build_finishing_after_a_newer_install_keeps_the_installed_snapshot() {
        let rt = runtime();
        let (x_dir, y_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let x = store(&rt, x_dir.path(), 5);
        let y = store(&rt, y_dir.path(), 10);
        let (newer, mut newer_file) = build(&y.plane().0).unwrap();

        let x_shared = x.plane().0.clone();
        let gate = arm(&x_shared.snapshot_dir, "build:file-written");
        let builder = std::thread::spawn(move || build(&x_shared));
        gate.wait_arrived();
        rt.block_on(receive_and_install(&x.plane(), &newer, &mut newer_file));
        gate.release();
        let (built, built_file) = builder.join().unwrap().unwrap();

        assert_eq!(built.last_log_id.map(|l| l.index), Some(5));
        // openraft got a whole file from the build...
        SnapshotReader::new(BufReader::new(built_file))
            .unwrap()
            .verify_to_end()
            .unwrap();
        // ...but the pointer stayed on the installed snapshot, whose file is the only one left.
        let (current, _) = open_current(&x.plane().0).unwrap().unwrap();
        assert_eq!(current.snapshot_id, newer.snapshot_id);
        assert_eq!(
            files_in(&x.plane().0.snapshot_dir),
            vec![format!("{}.snap", newer.snapshot_id)]
        );
        // The node starts again, with the installed state.
        drop(x);
        let reopened = crate::storage::open(x_dir.path(), 1).unwrap().state_machine;
        assert_eq!(reopened.plane().applied_index(), 10);
        assert_eq!(reopened.plane().read(|s| s.tenants().count()), 10);
    }

    #[test]
    fn a_build_started_during_an_install_waits_for_it_and_sees_the_installed_state() {
        let rt = runtime();
        let (x_dir, y_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let x = store(&rt, x_dir.path(), 5);
        let y = store(&rt, y_dir.path(), 10);
        let (newer, mut newer_file) = build(&y.plane().0).unwrap();

        let plane = x.plane();
        let gate = arm(&plane.0.snapshot_dir, "install:locked");
        let installing = {
            let plane = plane.clone();
            let newer = newer.clone();
            rt.spawn(async move { receive_and_install(&plane, &newer, &mut newer_file).await })
        };
        gate.wait_arrived();
        let x_shared = plane.0.clone();
        let builder = std::thread::spawn(move || build(&x_shared));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !builder.is_finished(),
            "a build must not take its view of the state while an install rewrites it"
        );
        gate.release();
        rt.block_on(installing).unwrap();
        let (built, _) = builder.join().unwrap().unwrap();
        assert_eq!(built.last_log_id, newer.last_log_id);
        assert_eq!(plane.read(|s| s.tenants().count()), 10);
    }

    #[test]
    fn proposals_travel_in_snapshots_and_survive_a_restart() {
        use conflux_domain::{
            ApprovalSettings, Command, ConfigPath, Format, ProposalStatus, PublishStrategy,
        };
        use openraft::storage::RaftStateMachine;

        use crate::storage::testing::entry;

        let rt = runtime();
        let (x_dir, y_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut y = store(&rt, y_dir.path(), 0);
        let publish = |content: &'static [u8]| Command::Publish {
            config_id: 1,
            content: bytes::Bytes::from_static(content),
            description: None,
            strategy: PublishStrategy::Stable,
            sealed: None,
        };
        let commands = vec![
            Command::CreateTenant {
                name: "acme".into(),
                display_name: None,
                quotas: Default::default(),
            },
            Command::CreateApp {
                tenant: "acme".into(),
                name: "web".into(),
                description: None,
            },
            Command::CreateEnvironment {
                tenant: "acme".into(),
                app: "web".into(),
                name: "prod".into(),
                description: None,
                approval: Some(ApprovalSettings {
                    required: true,
                    ..ApprovalSettings::default()
                }),
            },
            Command::CreateConfig {
                path: ConfigPath::new("acme", "web", "prod", "a.txt"),
                format: Format::Text,
                schema: None,
                retention: None,
                description: None,
                encrypted: false,
            },
            publish(b"one"),
        ];
        let entries = commands
            .into_iter()
            .enumerate()
            .map(|(i, c)| entry(i as u64 + 1, c));
        rt.block_on(y.apply(entries)).unwrap();
        let pending = y.plane().read(|s| s.pending_proposal(1).cloned()).unwrap();
        assert_eq!(pending.status, ProposalStatus::Pending);

        let (meta, mut file) = build(&y.plane().0).unwrap();
        let x = store(&rt, x_dir.path(), 0);
        rt.block_on(receive_and_install(&x.plane(), &meta, &mut file));
        assert_eq!(
            x.plane().read(|s| s.proposal(pending.id).cloned()),
            Some(pending.clone())
        );
        assert_eq!(x.plane().digest(), y.plane().digest());

        drop(x);
        let reopened = crate::storage::open(x_dir.path(), 1).unwrap().state_machine;
        assert_eq!(
            reopened.plane().read(|s| s.pending_proposal(1).cloned()),
            Some(pending)
        );
    }

    #[test]
    fn a_received_snapshot_that_is_never_installed_leaves_no_file() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let x = store(&rt, dir.path(), 1);
        let received = rt
            .block_on(begin_receiving(&x.plane().0.snapshot_dir))
            .unwrap();
        drop(received);
        assert_eq!(files_in(&x.plane().0.snapshot_dir), Vec::<String>::new());
    }
}
