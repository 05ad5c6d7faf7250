//! The systems under test. Each scenario is written once against [`Target`]; this module and
//! its children are the only places that know how Conflux (REST over keep-alive HTTP/1.1
//! connections, WebSocket watches) and etcd (its v3 gRPC API through `etcd-client`) are
//! started, prepared, loaded and watched, so both go through the same driver, the same
//! histograms and the same CPU accounting.
//!
//! Equivalences: a Conflux fetch (a 1 KiB config resolved through 3 release rules from the
//! client's labels, served by whichever node receives it) is an etcd serializable `Get` of a
//! 1 KiB value (served by the member that receives it); a Conflux version creation or publish
//! (acknowledged once committed and applied) is an etcd `Put` of 1 KiB; a Conflux watcher (one
//! WebSocket connection, one subscription) is an etcd watcher (one gRPC connection, one
//! `Watch` stream).

pub mod conflux;
pub mod conflux_watch;
pub mod etcd;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::mpsc;

use crate::load::{Cpu, OpKind, Worker};
use crate::stats::{Latencies, cpu_seconds, rss_bytes};

/// Which system a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Conflux,
    Etcd,
}

impl System {
    pub fn name(&self) -> &'static str {
        match self {
            System::Conflux => "conflux",
            System::Etcd => "etcd",
        }
    }
}

/// What each request of a request/response scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Reads of the 1 KiB config (Conflux: labels varied per request).
    Fetch,
    /// 1 KiB writes, each worker to its own config or key.
    Write,
    /// One write every `write_every` requests, reads otherwise.
    Mixed { write_every: u64 },
}

impl Workload {
    /// Whether request `seq` is a write.
    pub fn is_write(&self, seq: u64) -> bool {
        match *self {
            Workload::Fetch => false,
            Workload::Write => true,
            Workload::Mixed { write_every } => seq % write_every == write_every - 1,
        }
    }
}

/// A system to load: started by this tool (and stopped when dropped) or attached to.
#[derive(Debug)]
pub enum Target {
    // Boxed: a cluster handle with its TLS settings is several times the size of etcd's.
    Conflux(Box<conflux::Conflux>),
    Etcd(etcd::Etcd),
}

impl Target {
    pub fn system(&self) -> System {
        match self {
            Target::Conflux(_) => System::Conflux,
            Target::Etcd(_) => System::Etcd,
        }
    }

    /// Server processes started by this tool (empty for `--target`).
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Target::Conflux(c) => c.pids(),
            Target::Etcd(e) => e.pids(),
        }
    }

    pub fn nodes(&self) -> usize {
        match self {
            Target::Conflux(c) => c.addrs.len(),
            Target::Etcd(e) => e.client_urls.len(),
        }
    }

    /// CPU seconds used so far by the servers (if they are ours) and by this process.
    pub fn cpu(&self) -> Cpu {
        let pids = self.pids();
        let server_s = (!pids.is_empty()).then(|| {
            pids.iter()
                .filter_map(|p| cpu_seconds(&p.to_string()))
                .sum()
        });
        Cpu {
            server_s,
            loadgen_s: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    /// Resident memory of the first node (the one the connections scenario loads).
    pub fn first_node_rss(&self) -> Option<u64> {
        self.pids().first().and_then(|p| rss_bytes(&p.to_string()))
    }

    /// One connected worker per entry of `0..n`, spread over all nodes.
    pub async fn workers(&self, workload: Workload, n: usize) -> Result<Vec<AnyWorker>> {
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            out.push(match self {
                Target::Conflux(c) => AnyWorker::Conflux(c.worker(k, workload).await?),
                Target::Etcd(e) => AnyWorker::Etcd(e.worker(k, workload).await?),
            });
        }
        Ok(out)
    }

    /// Opens watchers `first..first + count` of the watched config or key, spread over all
    /// nodes, or all on the first node with `first_node_only`. Their setup latency (until the
    /// subscription is confirmed) is measured from `due`, or from when each is spawned.
    pub async fn open_watchers(
        &self,
        first: usize,
        count: usize,
        first_node_only: bool,
        due: Option<Instant>,
        set: &WatchSet,
    ) -> Result<()> {
        match self {
            Target::Conflux(c) => {
                c.open_watchers(first, count, first_node_only, due, set)
                    .await;
                Ok(())
            }
            Target::Etcd(e) => {
                e.open_watchers(first, count, first_node_only, due, set)
                    .await
            }
        }
    }

    /// Changes the watched config or key (1 KiB) and answers the revision it got.
    pub async fn write_watched(&self, k: u64) -> Result<u64> {
        match self {
            Target::Conflux(c) => c.write_watched(k).await,
            Target::Etcd(e) => e.write_watched(k).await,
        }
    }

    /// How many writers the prepared data supports (one config or key each).
    pub fn max_writers(&self) -> usize {
        match self {
            Target::Conflux(c) => c.max_writers(),
            Target::Etcd(_) => usize::MAX,
        }
    }
}

/// A worker of either system.
#[derive(Debug)]
pub enum AnyWorker {
    Conflux(conflux::ConfluxWorker),
    Etcd(etcd::EtcdWorker),
}

impl Worker for AnyWorker {
    async fn call(&mut self, seq: u64) -> (OpKind, bool) {
        match self {
            AnyWorker::Conflux(w) => w.call(seq).await,
            AnyWorker::Etcd(w) => w.call(seq).await,
        }
    }
}

/// One event received by one watcher.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub watcher: u32,
    pub revision: u64,
    pub at: Instant,
}

/// A group of watcher tasks: counts the ones whose subscription is confirmed and the ones
/// that failed, forwards every receipt, and aborts them all on [`WatchSet::close`] (or drop
/// of the last handle's owner calling it).
#[derive(Debug, Clone)]
pub struct WatchSet {
    inner: Arc<WatchInner>,
}

#[derive(Debug)]
struct WatchInner {
    receipts: mpsc::UnboundedSender<Receipt>,
    ready: AtomicUsize,
    failed: AtomicUsize,
    setup: Mutex<Latencies>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl WatchSet {
    pub fn new() -> (WatchSet, mpsc::UnboundedReceiver<Receipt>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = WatchInner {
            receipts: tx,
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            setup: Mutex::new(Latencies::default()),
            tasks: Mutex::new(Vec::new()),
        };
        (
            WatchSet {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.inner
            .tasks
            .lock()
            .expect("watch set lock")
            .push(handle);
    }

    pub fn receipt(&self, r: Receipt) {
        let _ = self.inner.receipts.send(r);
    }

    /// A watcher due at `due` has its subscription confirmed.
    pub fn ready_since(&self, due: Instant) {
        self.inner
            .setup
            .lock()
            .expect("watch set lock")
            .record(due.elapsed());
        self.inner.ready.fetch_add(1, Ordering::Relaxed);
    }

    /// Setup latencies (due to confirmed) of the watchers so far.
    pub fn setup_latencies(&self) -> Latencies {
        self.inner.setup.lock().expect("watch set lock").clone()
    }

    pub fn failed(&self) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ready_count(&self) -> usize {
        self.inner.ready.load(Ordering::Relaxed)
    }

    pub fn failed_count(&self) -> usize {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// Waits until `want` watchers are ready; fails early when the rest can no longer make it.
    pub async fn wait_ready(&self, want: usize, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let (ready, failed) = (self.ready_count(), self.failed_count());
            if ready >= want {
                return Ok(ready);
            }
            if Instant::now() > deadline || failed > 0 && ready + failed >= want {
                bail!(
                    "only {ready} of {want} watchers subscribed within {timeout:?} ({failed} failed)"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Aborts every watcher task (their connections close).
    pub fn close(&self) {
        for t in self.inner.tasks.lock().expect("watch set lock").drain(..) {
            t.abort();
        }
    }
}

/// Connections per loopback source address. An address has ~28,000 ephemeral ports, but
/// `bind` to a port chosen by the kernel gets slow (and burns the load generator's CPU in
/// the kernel) as the range fills, so each address takes only a few thousand.
pub const PER_SOURCE_ADDR: usize = 5_000;

static CONNECTIONS_OPENED: AtomicUsize = AtomicUsize::new(0);

/// The source address of the `n`-th watch connection this process opens: one address only
/// has ~28,000 ephemeral ports, and the ports of closed connections stay in TIME_WAIT for a
/// minute, so connections move on to the next address (127.0.0.2, 127.0.0.3, ...) every
/// [`PER_SOURCE_ADDR`] and do not come back to one an earlier run used.
pub fn source_addr(n: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 2 + ((n / PER_SOURCE_ADDR) % 250) as u8)
}

/// The source address for the next watch connection.
pub fn next_source_addr() -> std::net::Ipv4Addr {
    source_addr(CONNECTIONS_OPENED.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_is_one_write_in_twenty() {
        let w = Workload::Mixed { write_every: 20 };
        let writes = (0..2000).filter(|&s| w.is_write(s)).count();
        assert_eq!(writes, 100);
        assert!(!Workload::Fetch.is_write(19));
        assert!(Workload::Write.is_write(0));
    }

    #[test]
    fn source_addresses_move_on_every_5000_connections() {
        assert_eq!(source_addr(0), std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_addr(4_999), std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_addr(5_000), std::net::Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(
            source_addr(250 * 5_000),
            std::net::Ipv4Addr::new(127, 0, 0, 2)
        );
    }
}
