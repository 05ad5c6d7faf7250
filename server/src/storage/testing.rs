//! Test support shared by the storage modules' unit tests: pause points that force the
//! interleavings of concurrent threads, and small stores with applied entries.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use conflux_domain::{Command, Proposal, QuotasPatch};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};

use crate::raft::{Entry, LogId, ProposalBatch};
use crate::storage::StateMachineStore;

/// A pause point a test armed: the first thread to reach it waits there until released.
#[derive(Default)]
pub(crate) struct Gate {
    /// (arrived, released)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
    }

    pub(crate) fn wait_arrived(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.changed.wait(s).unwrap();
        }
    }

    pub(crate) fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

type Armed = Vec<(PathBuf, &'static str, Arc<Gate>)>;
static GATES: Mutex<Armed> = Mutex::new(Vec::new());

pub(crate) fn pass_pause_point(snapshot_dir: &Path, name: &'static str) {
    let gate = GATES
        .lock()
        .unwrap()
        .iter()
        .find(|(dir, n, _)| dir == snapshot_dir && *n == name)
        .map(|(_, _, g)| g.clone());
    if let Some(gate) = gate {
        gate.pass();
    }
}

/// Arms `name` for the store whose snapshots live in `snapshot_dir` (tests run side by
/// side; each arms only its own stores).
pub(crate) fn arm(snapshot_dir: &Path, name: &'static str) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    GATES
        .lock()
        .unwrap()
        .push((snapshot_dir.to_owned(), name, gate.clone()));
    gate
}

/// The entry at `index` (term 1) carrying `command`.
pub(crate) fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(ProposalBatch {
            proposals: vec![Proposal::new(1_700_000_000_000 + index, command)],
        }),
    }
}

/// An entry creating tenant `t<index>`.
pub(crate) fn tenant_entry(index: u64) -> Entry {
    entry(
        index,
        Command::CreateTenant {
            name: format!("t{index}"),
            display_name: None,
            quotas: QuotasPatch::default(),
        },
    )
}

/// A state machine in `dir` that has applied entries 1..=n.
pub(crate) fn store(rt: &tokio::runtime::Runtime, dir: &Path, n: u64) -> StateMachineStore {
    let mut sm = crate::storage::open(dir, 1).unwrap().state_machine;
    rt.block_on(sm.apply((1..=n).map(tenant_entry))).unwrap();
    sm
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
