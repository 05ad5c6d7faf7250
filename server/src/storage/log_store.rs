//! The Raft log and vote in RocksDB, with group commit.
//!
//! `append` writes the entries into RocksDB without syncing (so they are readable as soon as
//! it returns, as openraft requires) and hands the flush callback to one flusher thread. The
//! flusher syncs the write-ahead log once for everything queued since its last sync and then
//! reports all those appends durable together: under load, many client writes share one
//! fsync. The vote is synced before `save_vote` returns.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::mpsc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId, StorageIOError, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{cf, codec, handle, keys};
use crate::raft::{Entry, LogId, NodeId, StorageError, TypeConfig};

type Result<T> = std::result::Result<T, StorageError>;

#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: Arc<Flusher>,
}

/// The WAL sync thread. Dropping the last handle stops and joins it, so that once every
/// `LogStore` clone is gone the thread no longer holds the database open.
#[derive(Debug)]
struct Flusher {
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(db: Arc<DB>) -> Self {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let thread = std::thread::Builder::new()
            .name("conflux-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    let result = db.flush_wal(true);
                    for callback in waiting {
                        callback.log_io_completed(match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::other(e.to_string())),
                        });
                    }
                }
            })
            .expect("spawning the WAL sync thread");
        Flusher {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn submit(&self, callback: LogFlushed<TypeConfig>) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(callback).is_ok())
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        let flusher = Arc::new(Flusher::start(db.clone()));
        LogStore { db, flusher }
    }

    fn cf_log(&self) -> &rocksdb::ColumnFamily {
        handle(&self.db, cf::LOG)
    }

    fn cf_meta(&self) -> &rocksdb::ColumnFamily {
        handle(&self.db, cf::META)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let raw = self
            .db
            .get_cf(self.cf_meta(), key)
            .map_err(|e| StorageIOError::read(&e))?;
        raw.map(|v| codec::decode(&v).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T, sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db
            .put_cf_opt(self.cf_meta(), key, codec::encode(value), &wo)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>> {
        let mut it = self.db.iterator_cf(self.cf_log(), IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(Err(e)) => Err(StorageIOError::read_logs(&e).into()),
            Some(Ok((_, value))) => {
                let entry: Entry =
                    codec::decode(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x + 1,
            Bound::Unbounded => 0,
        };
        let from = keys::log_index(start);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf_log(), IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = keys::parse_log_index(&key)
                .ok_or_else(|| StorageIOError::read_logs(&codec::CodecError::Empty))?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = codec::decode(&value).map_err(|e| StorageIOError::read_logs(&e))?;
            assert_eq!(
                entry.get_log_id().index,
                index,
                "log entry stored under a wrong key"
            );
            out.push(entry);
        }
        Ok(out)
    }

    /// What replication sends: entries from exactly `start` on. When `start` was purged, the
    /// entries after the purged ones must not come back in its place: openraft would send
    /// them as if they followed the entry before `start`, and the follower would append them
    /// after a hole (its state machine would skip every purged entry). An empty answer makes
    /// openraft send a heartbeat and decide again, and it then sends a snapshot.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>> {
        let entries = self.try_get_log_entries(start..end).await?;
        if entries
            .first()
            .is_some_and(|e| e.get_log_id().index != start)
        {
            return Ok(Vec::new());
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = self.get_meta(keys::META_LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.put_meta(keys::META_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.get_meta(keys::META_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<()> {
        // A hint that lets a restarted node re-apply committed entries before it hears from
        // a leader; it does not need to be synced.
        self.put_meta(keys::META_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>> {
        Ok(self
            .get_meta::<Option<LogId>>(keys::META_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let index = entry.get_log_id().index;
            batch.put_cf(self.cf_log(), keys::log_index(index), codec::encode(&entry));
        }
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        if !self.flusher.submit(callback) {
            return Err(StorageIOError::write_logs(&std::io::Error::other(
                "the WAL sync thread has stopped",
            ))
            .into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<()> {
        let from = keys::log_index(log_id.index);
        let to = keys::log_index(u64::MAX);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf_log(), from, to);
        // delete_range's end is exclusive; the entry at u64::MAX cannot exist in practice,
        // but delete it explicitly so the range is really "from index on".
        batch.delete_cf(self.cf_log(), to);
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf_meta(),
            keys::META_LAST_PURGED,
            codec::encode(&log_id),
        );
        batch.delete_range_cf(
            self.cf_log(),
            keys::log_index(0),
            keys::log_index(log_id.index + 1),
        );
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
