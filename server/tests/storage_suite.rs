//! The RocksDB log store and state machine against openraft's own storage conformance
//! suite, plus the reopen guarantees the suite does not cover.

use conflux_domain::{Command, Proposal, QuotasPatch};
use conflux_server::raft::{Entry, LogId, ProposalBatch, TypeConfig};
use conflux_server::storage::{self, LogStore, StateMachineStore};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, StorageError};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = TempDir::new().expect("temp dir");
        let s = storage::open(dir.path(), 1).expect("open storage");
        Ok((dir, s.log, s.state_machine))
    }
}

#[test]
fn rocksdb_storage_passes_the_openraft_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("storage conformance: {e}");
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn tenant_entry(index: u64, name: &str) -> Entry {
    let proposal = Proposal::new(
        1_700_000_000_000 + index,
        Command::CreateTenant {
            name: name.into(),
            display_name: None,
            quotas: QuotasPatch::default(),
        },
    );
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(ProposalBatch {
            proposals: vec![proposal],
        }),
    }
}

#[tokio::test]
async fn reopening_returns_the_same_state() {
    let dir = TempDir::new().unwrap();
    let (vote, applied, tenants) = {
        let s = storage::open(dir.path(), 7).unwrap();
        let (mut log, mut sm) = (s.log, s.state_machine);
        let vote = openraft::Vote::new_committed(3, 7);
        log.save_vote(&vote).await.unwrap();
        let replies = sm
            .apply([
                tenant_entry(1, "alpha"),
                tenant_entry(2, "beta"),
                tenant_entry(3, "alpha"),
            ])
            .await
            .unwrap();
        assert!(matches!(replies[0].outcomes[..], [Ok(_)]));
        assert_eq!(replies[2].revision, 3);
        assert_eq!(
            replies[2].outcomes[0].as_ref().unwrap_err().code(),
            "tenant_already_exists"
        );
        let applied = sm.applied_state().await.unwrap().0;
        let tenants: Vec<String> = sm
            .plane()
            .read(|st| st.tenants().map(|t| t.name.clone()).collect());
        (vote, applied, tenants)
    };
    let s = storage::open(dir.path(), 7).unwrap();
    let (mut log, mut sm) = (s.log, s.state_machine);
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(sm.applied_state().await.unwrap().0, applied);
    assert_eq!(applied, Some(log_id(1, 3)));
    let reopened: Vec<String> = sm
        .plane()
        .read(|st| st.tenants().map(|t| t.name.clone()).collect());
    assert_eq!(reopened, tenants);
    assert_eq!(reopened, vec!["alpha".to_owned(), "beta".to_owned()]);
}

#[test]
fn a_data_dir_belongs_to_one_node() {
    let dir = TempDir::new().unwrap();
    drop(storage::open(dir.path(), 1).unwrap());
    let err = storage::open(dir.path(), 2).unwrap_err();
    assert!(err.to_string().contains("belongs to node 1"), "{err}");
}

/// Replication reading from a purged index gets nothing rather than the entries after the
/// purged ones: a leader that read `[10, 100)` after purging up to 89 and got 90.. back sent
/// them as if they followed entry 9, and the follower applied them after a hole.
#[tokio::test]
async fn replication_reading_from_a_purged_index_gets_nothing() {
    use openraft::storage::{RaftLogReader, RaftLogStorageExt};

    let dir = TempDir::new().unwrap();
    let s = storage::open(dir.path(), 1).unwrap();
    let mut log = s.log;
    log.blocking_append((1..=20).map(|i| tenant_entry(i, &format!("t{i}"))))
        .await
        .unwrap();
    log.purge(log_id(1, 12)).await.unwrap();

    let indexes = |entries: Vec<Entry>| entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
    assert_eq!(
        indexes(log.limited_get_log_entries(5, 20).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        indexes(log.limited_get_log_entries(12, 16).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        indexes(log.limited_get_log_entries(13, 16).await.unwrap()),
        vec![13, 14, 15]
    );
    // openraft's own helpers read "whatever exists" in a range; that stays as it is.
    assert_eq!(
        indexes(log.try_get_log_entries(5..16).await.unwrap()),
        vec![13, 14, 15]
    );
}
