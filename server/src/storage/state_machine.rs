//! The config-plane state machine: applies committed entries to the in-memory
//! [`conflux_domain::State`], persists the resulting changes in one RocksDB write batch per
//! apply call, and keeps the fetch index current.
//!
//! [`ConfigPlane`] is the read side shared with the API: the state (behind a reader-writer
//! lock only management reads take), the lock-free fetch index, version contents and the
//! applied index that `min_revision` waits on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conflux_domain::{
    App, Change, Config, ConfigId, ConfigPath, Counters, Environment, IdempotencyRecord,
    ReleaseProposal, Revision, State, StateDigest, Tenant, VersionId, VersionMeta,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use parking_lot::{Mutex, RwLock};
use rocksdb::{DB, IteratorMode, WriteBatch};
use tokio::sync::watch;

use super::snapshot::{self, SnapshotBuilder};
use super::{StorageOpenError, cf, codec, handle, keys, pause_point};
use crate::audit::AuditEntry;
use crate::raft::{
    Entry, EntryResult, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::serving::{FetchIndex, ServedConfig, ServedVersion};
use crate::watch::{Subscription, TooManyWatchers, WatchHub, WatchState};

type Result<T> = std::result::Result<T, StorageError>;

/// Shared state of the state machine and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: Arc<DB>,
    pub(crate) state: RwLock<State>,
    pub(crate) fetch: FetchIndex,
    /// The last applied log id and membership, and the index alone for waiters. Both change
    /// only under `state`'s write lock, together with the state they describe.
    pub(crate) applied: Mutex<(Option<LogId>, StoredMembership)>,
    pub(crate) applied_index: watch::Sender<u64>,
    pub(crate) snapshot_dir: PathBuf,
    pub(crate) watch: Arc<WatchHub>,
    /// Held for writing by a snapshot install for its whole duration (it rewrites the state
    /// column families in several batches); held for reading by whoever needs those
    /// families consistent: a snapshot build taking its RocksDB snapshot, a management
    /// content read.
    pub(crate) install_guard: RwLock<()>,
    /// Serialises moving the current-snapshot pointer and deleting snapshot files, so a file
    /// is deleted only after the pointer moved past it (see `snapshot.rs`).
    pub(crate) snapshot_files: Mutex<()>,
}

/// Read access to the config plane for the API and the node's background tasks.
#[derive(Debug, Clone)]
pub struct ConfigPlane(pub(crate) Arc<Shared>);

impl ConfigPlane {
    /// Runs `f` with a consistent view of the whole state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.0.state.read())
    }

    pub fn fetch_index(&self) -> &FetchIndex {
        &self.0.fetch
    }

    pub fn watch_hub(&self) -> &Arc<WatchHub> {
        &self.0.watch
    }

    /// The content of a version, from RocksDB (management path only). Runs on a blocking
    /// thread: it waits for a snapshot install in progress (which rewrites the contents), and
    /// a content may be megabytes.
    pub async fn content(
        &self,
        config_id: ConfigId,
        version: VersionId,
    ) -> std::result::Result<Option<Bytes>, rocksdb::Error> {
        let shared = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let _consistent = shared.install_guard.read();
            stored_content(&shared.db, config_id, version)
        })
        .await
        .expect("a content read does not panic")
    }

    /// Subscribes to the changes of the config at `path`, starting from what the fetch index
    /// serves now; `None` when there is no such config. Race-free: apply and snapshot
    /// installs update the fetch index and publish while holding the state's write lock, so
    /// holding its read lock here, no change can fall between the read and the subscription.
    pub fn subscribe(
        &self,
        path: &str,
    ) -> std::result::Result<Option<Subscription>, TooManyWatchers> {
        let _no_apply = self.0.state.read();
        match self.0.fetch.get(path) {
            Some(served) => {
                pause_point(&self.0.snapshot_dir, "subscribe:read");
                self.0
                    .watch
                    .subscribe(path, WatchState::present(served))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// The oldest audit records in the outbox after position `after` (all when `None`), at
    /// most `limit`, in log order. A record that cannot be decoded is skipped with an error
    /// in the log (it would otherwise block the drain forever).
    pub fn audit_outbox(
        &self,
        after: Option<(u64, u32)>,
        limit: usize,
    ) -> Vec<(u64, u32, AuditEntry)> {
        let db = &self.0.db;
        let start = after.map(|(i, p)| keys::outbox(i, p));
        let mode = match &start {
            Some(k) => IteratorMode::From(k, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in db.iterator_cf(handle(db, cf::AUDIT_OUTBOX), mode) {
            let Ok((k, v)) = item else { break };
            let Some((index, position)) = keys::parse_outbox(&k) else {
                continue;
            };
            if after == Some((index, position)) {
                continue;
            }
            match codec::decode::<AuditEntry>(&v) {
                Ok(entry) => out.push((index, position, entry)),
                Err(e) => {
                    tracing::error!(index, position, error = %e, "undecodable audit outbox record")
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// The log index of the last applied entry and the digest of the state it produced,
    /// read from one view (the state's read lock keeps apply out, and apply moves the
    /// applied index under its write lock). Hashing reads the whole state: call it off the
    /// async workers.
    pub fn digest(&self) -> (u64, StateDigest) {
        let state = self.0.state.read();
        let applied = self.0.applied.lock().0.map_or(0, |l| l.index);
        (applied, state.digest())
    }

    /// The log index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        *self.0.applied_index.borrow()
    }

    /// The last applied log id and the membership as of that entry.
    pub fn applied_state(&self) -> (Option<LogId>, StoredMembership) {
        self.0.applied.lock().clone()
    }

    /// Waits until `revision` is applied on this node, at most `timeout`. Returns whether it
    /// was reached.
    pub async fn wait_applied(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.0.applied_index.subscribe();
        let reached =
            tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= revision)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

/// The openraft state machine.
#[derive(Debug)]
pub struct StateMachineStore {
    plane: ConfigPlane,
}

impl StateMachineStore {
    pub(crate) fn open(
        db: Arc<DB>,
        snapshot_dir: PathBuf,
    ) -> std::result::Result<Self, StorageOpenError> {
        snapshot::remove_temporary_files(&snapshot_dir);
        snapshot::finish_interrupted_install(&db, &snapshot_dir).map_err(|e| {
            StorageOpenError::Corrupt(format!("finishing an interrupted snapshot install: {e}"))
        })?;
        let (state, applied, membership) =
            load(&db).map_err(|e| StorageOpenError::Corrupt(e.to_string()))?;
        let applied_index = applied.map_or(0, |l| l.index);
        let shared = Shared {
            db,
            state: RwLock::new(state),
            fetch: FetchIndex::default(),
            applied: Mutex::new((applied, membership)),
            applied_index: watch::Sender::new(applied_index),
            snapshot_dir,
            watch: Arc::new(WatchHub::new(usize::MAX)),
            install_guard: RwLock::new(()),
            snapshot_files: Mutex::new(()),
        };
        let plane = ConfigPlane(Arc::new(shared));
        {
            let state = plane.0.state.read();
            refresh_fetch_index(&plane.0, &state, applied_index)
                .map_err(|e| StorageOpenError::Corrupt(e.to_string()))?;
        }
        Ok(StateMachineStore { plane })
    }

    pub fn plane(&self) -> ConfigPlane {
        self.plane.clone()
    }
}

/// The stored content of a version.
fn stored_content(
    db: &DB,
    config_id: ConfigId,
    version: VersionId,
) -> std::result::Result<Option<Bytes>, rocksdb::Error> {
    Ok(db
        .get_cf(handle(db, cf::CONTENTS), keys::version(config_id, version))?
        .map(Bytes::from))
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

/// Rebuilds the in-memory state from the state-machine column families.
pub(crate) fn load(db: &DB) -> Result<(State, Option<LogId>, StoredMembership)> {
    let mut state = State::new();
    fn each<T: serde::de::DeserializeOwned>(
        db: &DB,
        family: &str,
        mut f: impl FnMut(&[u8], T),
    ) -> Result<()> {
        for item in db.iterator_cf(handle(db, family), IteratorMode::Start) {
            let (k, v) = item.map_err(read_err)?;
            f(&k, codec::decode(&v).map_err(read_err)?);
        }
        Ok(())
    }
    each(db, cf::TENANTS, |_, t: Tenant| {
        state.apply_change(Change::PutTenant(t))
    })?;
    each(db, cf::APPS, |_, a: App| {
        state.apply_change(Change::PutApp(a))
    })?;
    each(db, cf::ENVS, |_, e: Environment| {
        state.apply_change(Change::PutEnvironment(e))
    })?;
    each(db, cf::CONFIGS, |_, c: Config| {
        state.apply_change(Change::PutConfig(c))
    })?;
    each(db, cf::VERSIONS, |_, meta: VersionMeta| {
        state.apply_change(Change::PutVersion {
            meta,
            content: Bytes::new(),
        })
    })?;
    each(db, cf::PROPOSALS, |_, p: ReleaseProposal| {
        state.apply_change(Change::PutProposal(Box::new(p)))
    })?;
    each(db, cf::IDEMPOTENCY, |k, record: IdempotencyRecord| {
        let key = String::from_utf8_lossy(k).into_owned();
        state.apply_change(Change::PutIdempotency { key, record })
    })?;
    let sm_meta = handle(db, cf::SM_META);
    let started = db.iterator_cf(
        sm_meta,
        IteratorMode::From(keys::SM_STARTED_MEMBER_PREFIX, rocksdb::Direction::Forward),
    );
    for item in started {
        let (k, _) = item.map_err(read_err)?;
        let Some(node_id) = keys::parse_started_member(&k) else {
            break;
        };
        state.apply_change(Change::PutStartedMember { node_id });
    }
    let get = |key: &[u8]| db.get_cf(sm_meta, key).map_err(read_err);
    if let Some(raw) = get(keys::SM_COUNTERS)? {
        state.set_counters(codec::decode::<Counters>(&raw).map_err(read_err)?);
    }
    let applied = match get(keys::SM_APPLIED)? {
        Some(raw) => codec::decode::<Option<LogId>>(&raw).map_err(read_err)?,
        None => None,
    };
    let membership = match get(keys::SM_MEMBERSHIP)? {
        Some(raw) => codec::decode::<StoredMembership>(&raw).map_err(read_err)?,
        None => StoredMembership::default(),
    };
    Ok((state, applied, membership))
}

/// Adds one change to a write batch.
fn persist(db: &DB, batch: &mut WriteBatch, change: &Change) {
    match change {
        Change::PutTenant(t) => {
            batch.put_cf(handle(db, cf::TENANTS), t.name.as_bytes(), codec::encode(t))
        }
        Change::DeleteTenant { name } => batch.delete_cf(handle(db, cf::TENANTS), name.as_bytes()),
        Change::PutApp(a) => batch.put_cf(
            handle(db, cf::APPS),
            keys::joined(&[&a.tenant, &a.name]),
            codec::encode(a),
        ),
        Change::DeleteApp { tenant, name } => {
            batch.delete_cf(handle(db, cf::APPS), keys::joined(&[tenant, name]))
        }
        Change::PutEnvironment(e) => batch.put_cf(
            handle(db, cf::ENVS),
            keys::joined(&[&e.tenant, &e.app, &e.name]),
            codec::encode(e),
        ),
        Change::DeleteEnvironment { tenant, app, name } => {
            batch.delete_cf(handle(db, cf::ENVS), keys::joined(&[tenant, app, name]))
        }
        Change::PutConfig(c) => batch.put_cf(
            handle(db, cf::CONFIGS),
            keys::config(c.id),
            codec::encode(c),
        ),
        Change::DeleteConfig { id, .. } => {
            batch.delete_cf(handle(db, cf::CONFIGS), keys::config(*id));
            let (from, to) = keys::versions_of(*id);
            batch.delete_range_cf(handle(db, cf::VERSIONS), &from, &to);
            batch.delete_range_cf(handle(db, cf::CONTENTS), &from, &to);
            let (from, to) = keys::proposals_of(*id);
            batch.delete_range_cf(handle(db, cf::PROPOSALS), &from, &to);
        }
        Change::PutVersion { meta, content } => {
            let k = keys::version(meta.config_id, meta.version);
            batch.put_cf(handle(db, cf::VERSIONS), k, codec::encode(meta));
            batch.put_cf(handle(db, cf::CONTENTS), k, content);
        }
        Change::PutVersionMeta(meta) => batch.put_cf(
            handle(db, cf::VERSIONS),
            keys::version(meta.config_id, meta.version),
            codec::encode(meta),
        ),
        Change::DeleteVersion { config_id, version } => {
            let k = keys::version(*config_id, *version);
            batch.delete_cf(handle(db, cf::VERSIONS), k);
            batch.delete_cf(handle(db, cf::CONTENTS), k);
        }
        Change::PutIdempotency { key, record } => batch.put_cf(
            handle(db, cf::IDEMPOTENCY),
            key.as_bytes(),
            codec::encode(record),
        ),
        Change::DeleteIdempotency { key } => {
            batch.delete_cf(handle(db, cf::IDEMPOTENCY), key.as_bytes())
        }
        Change::PutProposal(p) => batch.put_cf(
            handle(db, cf::PROPOSALS),
            keys::proposal(p.config_id, p.id),
            codec::encode(p),
        ),
        Change::DeleteProposal { config_id, id } => {
            batch.delete_cf(handle(db, cf::PROPOSALS), keys::proposal(*config_id, *id))
        }
        Change::PutStartedMember { node_id } => {
            batch.put_cf(handle(db, cf::SM_META), keys::started_member(*node_id), [])
        }
        Change::TrimAuditOutbox { index, position } => {
            let through = keys::outbox(*index, *position);
            let mut end = through.to_vec();
            end.push(0); // the first key after `through`
            batch.delete_range_cf(
                handle(db, cf::AUDIT_OUTBOX),
                &keys::outbox(0, 0)[..],
                &end[..],
            );
        }
    }
}

/// Recomputes what the fetch path serves for one config.
fn served_config(
    shared: &Shared,
    state: &State,
    config: &Config,
    fresh: &HashMap<(ConfigId, VersionId), Bytes>,
) -> Result<ServedConfig> {
    let previous = shared.fetch.get(&config.path.to_string());
    let wanted: BTreeSet<VersionId> = config.rules.iter().map(|r| r.version_id).collect();
    let mut versions = Vec::with_capacity(wanted.len());
    for v in wanted {
        let meta = state.version(config.id, v).ok_or_else(|| {
            read_err(std::io::Error::other(format!(
                "config {} rule points at missing version {v}",
                config.id
            )))
        })?;
        // Versions are immutable and config ids are never reused, so a version already
        // served for this config id can be kept as it is.
        let reusable = previous
            .as_ref()
            .filter(|p| p.config_id == config.id)
            .and_then(|p| p.version(v))
            .filter(|served| served.has_seal(meta.seal.as_deref()));
        if let Some(existing) = reusable {
            versions.push(existing.clone());
            continue;
        }
        let content = match fresh.get(&(config.id, v)) {
            Some(c) => c.clone(),
            None => stored_content(&shared.db, config.id, v)
                .map_err(read_err)?
                .ok_or_else(|| {
                    read_err(std::io::Error::other(format!(
                        "content of {}/{v} is missing",
                        config.id
                    )))
                })?,
        };
        versions.push(Arc::new(ServedVersion::new(config, meta, content)));
    }
    Ok(ServedConfig::new(config, versions))
}

/// Brings the fetch index and the watchers in line with `state` after it was replaced as a
/// whole (start-up, snapshot install). The new views are built aside and swapped in path by
/// path, so a fetch never misses a config that exists before and after; configs that are gone
/// are removed last and reported deleted at `revision`. Versions already served are reused,
/// not read again (they are immutable and config ids are never reused).
///
/// The caller holds the state's write lock (or is alone, at start-up).
pub(crate) fn refresh_fetch_index(shared: &Shared, state: &State, revision: u64) -> Result<()> {
    let fresh = HashMap::new();
    let mut views = Vec::with_capacity(state.configs().size_hint().0);
    for config in state.configs() {
        let served = Arc::new(served_config(shared, state, config, &fresh)?);
        views.push((config.path.to_string(), served));
    }
    let live: std::collections::HashSet<&str> = views.iter().map(|(p, _)| p.as_str()).collect();
    let gone: Vec<String> = shared
        .fetch
        .paths()
        .into_iter()
        .filter(|p| !live.contains(p.as_str()))
        .collect();
    for (path, served) in &views {
        shared.fetch.insert(path.clone(), served.clone());
        shared
            .watch
            .publish(path, WatchState::present(served.clone()));
    }
    for path in gone {
        shared.fetch.remove(&path);
        shared.watch.publish(&path, WatchState::deleted(revision));
    }
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership)> {
        Ok(self.plane.applied_state())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResult>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let shared = &self.plane.0;
        let db = &shared.db;
        let (mut applied, mut membership) = shared.applied.lock().clone();
        let mut batch = WriteBatch::default();
        let mut results = Vec::new();
        // Paths whose served view may have changed, with the revision of their last change:
        // a deletion is published at the revision of the entry that deleted, and a config
        // deleted and created again within this call is published as it is at the end.
        let mut touched: BTreeMap<ConfigPath, Revision> = BTreeMap::new();
        let mut fresh: HashMap<(ConfigId, VersionId), Bytes> = HashMap::new();
        let mut membership_changed = false;

        let mut state = shared.state.write();
        for entry in entries {
            let revision = entry.log_id.index;
            let mut outcomes = Vec::new();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m);
                    membership_changed = true;
                }
                EntryPayload::Normal(entry_batch) => {
                    for (position, proposal) in entry_batch.proposals.iter().enumerate() {
                        // Named before the change: a deleted config is still there.
                        let audited = conflux_domain::audit::describe(&state, &proposal.command);
                        let decision = state.apply(revision, proposal);
                        if let Some(subject) = audited {
                            let entry = AuditEntry::of_change(
                                proposal.author.as_deref().unwrap_or("system"),
                                subject,
                                proposal,
                                revision,
                                &decision.outcome,
                                decision.replayed,
                            );
                            batch.put_cf(
                                handle(db, cf::AUDIT_OUTBOX),
                                keys::outbox(revision, position as u32),
                                codec::encode(&entry),
                            );
                        }
                        for change in &decision.changes {
                            persist(db, &mut batch, change);
                            match change {
                                Change::PutConfig(c) => {
                                    touched.insert(c.path.clone(), revision);
                                }
                                Change::DeleteConfig { path, .. } => {
                                    touched.insert(path.clone(), revision);
                                }
                                Change::PutVersion { meta, content } => {
                                    fresh.insert((meta.config_id, meta.version), content.clone());
                                }
                                // A rewrapped key: the served copy must carry the new one
                                // (the old KEK may be retired next). The config's revision
                                // is unchanged, so watchers see no event.
                                Change::PutVersionMeta(meta) => {
                                    if let Some(c) = state.config(meta.config_id) {
                                        touched.insert(c.path.clone(), revision);
                                    }
                                }
                                _ => {}
                            }
                        }
                        outcomes.push(decision.outcome);
                    }
                }
            }
            applied = Some(entry.log_id);
            results.push(EntryResult { revision, outcomes });
        }
        let sm_meta = handle(db, cf::SM_META);
        batch.put_cf(sm_meta, keys::SM_APPLIED, codec::encode(&applied));
        if membership_changed {
            batch.put_cf(sm_meta, keys::SM_MEMBERSHIP, codec::encode(&membership));
        }
        batch.put_cf(sm_meta, keys::SM_COUNTERS, codec::encode(&state.counters()));
        db.write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;

        for (path, last_change) in touched {
            let key = path.to_string();
            match state.config_by_path(&path) {
                Some(config) => {
                    let served = Arc::new(served_config(shared, &state, config, &fresh)?);
                    shared.fetch.insert(key.clone(), served.clone());
                    shared.watch.publish(&key, WatchState::present(served));
                }
                None => {
                    shared.fetch.remove(&key);
                    shared.watch.publish(&key, WatchState::deleted(last_change));
                }
            }
        }
        // Under the state's write lock, so that a reader holding its read lock sees the
        // applied index of exactly the state it reads (`ConfigPlane::digest`).
        *shared.applied.lock() = (applied, membership);
        if let Some(log_id) = applied {
            shared.applied_index.send_replace(log_id.index);
        }
        drop(state);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.plane.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>> {
        snapshot::begin_receiving(&self.plane.0.snapshot_dir).await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<()> {
        snapshot::install(&self.plane, meta, *snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>> {
        snapshot::current(&self.plane.0).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use conflux_api_types::WatchEventKind;
    use conflux_domain::{ClientLabels, Command, ConfigPath, Format, PublishStrategy, QuotasPatch};
    use openraft::storage::RaftStateMachine;

    use super::StateMachineStore;
    use crate::storage::testing::{arm, entry, runtime};
    use crate::watch::Watcher;

    fn publish(config_id: u64, content: &'static str) -> Command {
        Command::Publish {
            config_id,
            content: bytes::Bytes::from_static(content.as_bytes()),
            description: None,
            strategy: PublishStrategy::Stable,
            sealed: None,
        }
    }

    fn create_config(path: &ConfigPath) -> Command {
        Command::CreateConfig {
            path: path.clone(),
            format: Format::Text,
            schema: None,
            retention: None,
            description: None,
            encrypted: false,
        }
    }

    /// A store with acme/shop/prod/app.txt (config 1) published at revision 5.
    fn published_store(
        rt: &tokio::runtime::Runtime,
        dir: &std::path::Path,
    ) -> (StateMachineStore, ConfigPath) {
        let mut sm = crate::storage::open(dir, 1).unwrap().state_machine;
        let path = ConfigPath::parse("acme/shop/prod/app.txt").unwrap();
        let setup = [
            Command::CreateTenant {
                name: "acme".into(),
                display_name: None,
                quotas: QuotasPatch::default(),
            },
            Command::CreateApp {
                tenant: "acme".into(),
                name: "shop".into(),
                description: None,
            },
            Command::CreateEnvironment {
                tenant: "acme".into(),
                app: "shop".into(),
                name: "prod".into(),
                description: None,
                approval: None,
            },
            create_config(&path),
            publish(1, "one"),
        ];
        let entries: Vec<_> = setup
            .into_iter()
            .enumerate()
            .map(|(i, c)| entry(i as u64 + 1, c))
            .collect();
        rt.block_on(sm.apply(entries)).unwrap();
        (sm, path)
    }

    fn watcher(path: &ConfigPath, revision: u64) -> Watcher {
        Watcher {
            key: path.to_string(),
            revision,
            version: None,
            labels: ClientLabels::default(),
            label_aware: false,
        }
    }

    #[test]
    fn a_config_deleted_and_created_again_in_one_apply_call_is_an_update() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, path) = published_store(&rt, dir.path());
        let plane = sm.plane();
        let mut sub = plane.subscribe(&path.to_string()).unwrap().unwrap();
        // A follower applying a backlog: the deletion, the re-creation (config 2) and its
        // publish, and an unrelated change after them, in one call.
        let backlog = [
            entry(6, Command::DeleteConfig { id: 1 }),
            entry(7, create_config(&path)),
            entry(8, publish(2, "two")),
            entry(
                9,
                Command::CreateTenant {
                    name: "other".into(),
                    display_name: None,
                    quotas: QuotasPatch::default(),
                },
            ),
        ];
        rt.block_on(sm.apply(backlog)).unwrap();

        let served = plane.fetch_index().get(&path.to_string());
        assert_eq!(
            served.map(|s| (s.config_id, s.revision)),
            Some((2, 8)),
            "the fetch index serves the new config"
        );
        let mut w = watcher(&path, 5);
        let event = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(2), w.next(&mut sub)).await
            })
            .expect("an event")
            .expect("the hub is alive");
        assert_eq!(event.event, WatchEventKind::Updated, "{event:?}");
        assert_eq!(event.revision, 8);
        // A new subscriber from before the deletion is told at once too.
        let mut late = plane.subscribe(&path.to_string()).unwrap().unwrap();
        let mut w = watcher(&path, 5);
        let event = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(2), w.next(&mut late)).await
            })
            .expect("an event for a new subscriber")
            .expect("the hub is alive");
        assert_eq!((event.event, event.revision), (WatchEventKind::Updated, 8));
    }

    #[test]
    fn a_deletion_is_published_at_the_revision_of_the_entry_that_deleted() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, path) = published_store(&rt, dir.path());
        let plane = sm.plane();
        let mut sub = plane.subscribe(&path.to_string()).unwrap().unwrap();
        let later = [
            entry(6, Command::DeleteConfig { id: 1 }),
            entry(
                7,
                Command::CreateTenant {
                    name: "other".into(),
                    display_name: None,
                    quotas: QuotasPatch::default(),
                },
            ),
        ];
        rt.block_on(sm.apply(later)).unwrap();
        let mut w = watcher(&path, 5);
        let event = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(2), w.next(&mut sub)).await
            })
            .expect("an event")
            .expect("the hub is alive");
        assert_eq!((event.event, event.revision), (WatchEventKind::Deleted, 6));
    }

    #[test]
    fn a_change_applied_while_a_first_subscriber_subscribes_reaches_it() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, path) = published_store(&rt, dir.path());

        // The first subscriber has read what the fetch index serves (revision 5) but has no
        // channel yet when the next change is applied.
        let plane = sm.plane();
        let gate = arm(&plane.0.snapshot_dir, "subscribe:read");
        let key = path.to_string();
        let subscriber = std::thread::spawn({
            let plane = plane.clone();
            let key = key.clone();
            move || plane.subscribe(&key)
        });
        gate.wait_arrived();
        let applier = rt.spawn(async move { sm.apply([entry(6, publish(1, "two"))]).await });
        std::thread::sleep(Duration::from_millis(100));
        gate.release();
        let mut sub = subscriber
            .join()
            .unwrap()
            .unwrap()
            .expect("the config exists");
        rt.block_on(applier).unwrap().unwrap();

        let mut watcher = watcher(&path, 5);
        let event = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(2), watcher.next(&mut sub)).await
            })
            .expect("the change at revision 6 reaches the subscriber")
            .expect("the hub is alive");
        assert_eq!(event.revision, 6);
    }
}
