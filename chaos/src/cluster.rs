//! A Conflux cluster of a chaos run: real `conflux server` processes, one per network
//! namespace ([`crate::net`]), with a throwaway PostgreSQL metadata DB (reached through its
//! Unix socket, which crosses namespaces) and a shared local KMS key file.
//!
//! Nodes listen on fixed ports of their own addresses (each namespace has its own ports, so
//! nothing can clash) and keep those addresses across restarts. Node processes are the
//! testkit's [`TestNode`]s: killed when dropped, never a process this run did not start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conflux_api_types::ClusterStatus;
use conflux_client::ApiClient;
use conflux_testkit::{NodeSpec, TestNode, TestPostgres, kms_args, random_token};

use crate::net::Net;

pub const API_PORT: u16 = 8080;
pub const RAFT_PORT: u16 = 7000;
/// Entries between snapshots: small, so a follower cut off for a few seconds of writes falls
/// behind the purged log and needs a snapshot install.
pub const SNAPSHOT_EVERY: u64 = 300;
/// The size of the small disk of the full-disk fault.
pub const SMALL_DISK_MIB: u32 = 96;

#[derive(Debug)]
pub struct ChaosCluster {
    pub net: Net,
    _pg: TestPostgres,
    _kms_dir: tempfile::TempDir,
    token: String,
    /// Arguments every node gets: the metadata DB, the KMS key, the snapshot policy.
    common_args: Vec<String>,
    /// Running or stopped members (a removed member is dropped, its process killed).
    nodes: BTreeMap<u64, TestNode>,
    /// Nodes killed, not yet restarted.
    down: Vec<u64>,
    /// Nodes paused with SIGSTOP.
    paused: Vec<u64>,
    /// The node whose data directory is a small tmpfs, if any.
    small_disk: Option<u64>,
}

impl ChaosCluster {
    /// Starts `n` voters (ids 1..=n) bootstrapped from one static peer list and waits for a
    /// leader. With `small_disk`, that node's data directory is a small tmpfs.
    pub fn start(n: u64, small_disk: Option<u64>) -> Result<ChaosCluster> {
        let mut net = Net::create()?;
        for id in 1..=n {
            net.add_node(id)?;
        }
        let pg = TestPostgres::start().context("starting PostgreSQL for the metadata DB")?;
        let kms_dir = tempfile::Builder::new()
            .prefix("conflux-chaos-kms-")
            .tempdir()?;
        let mut common_args = vec![
            "--metadata-url".to_owned(),
            pg.fresh_database_on_socket()?,
            "--snapshot-every".to_owned(),
            SNAPSHOT_EVERY.to_string(),
        ];
        common_args.extend(kms_args(kms_dir.path())?);
        let mut cluster = ChaosCluster {
            net,
            _pg: pg,
            _kms_dir: kms_dir,
            token: random_token(),
            common_args,
            nodes: BTreeMap::new(),
            down: Vec::new(),
            paused: Vec::new(),
            small_disk,
        };
        let mut peers = Vec::new();
        for id in 1..=n {
            peers.push("--peer".to_owned());
            peers.push(format!(
                "{id}={},{}",
                cluster.raft_addr(id),
                cluster.api_addr(id)
            ));
        }
        for id in 1..=n {
            cluster.launch(id, &peers)?;
        }
        cluster.wait_for_leader(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn raft_addr(&self, id: u64) -> String {
        format!("{}:{RAFT_PORT}", self.net.ip(id))
    }

    fn api_addr(&self, id: u64) -> String {
        format!("{}:{API_PORT}", self.net.ip(id))
    }

    fn launch(&mut self, id: u64, extra: &[String]) -> Result<()> {
        let mut spec = NodeSpec::new(id).args(self.common_args.iter().cloned());
        spec = spec.args(extra.iter().cloned());
        spec.api_addr = Some(self.api_addr(id));
        spec.raft_addr = Some(self.raft_addr(id));
        spec.bootstrap_token = Some(self.token.clone());
        spec.netns = Some(self.net.namespace(id));
        spec.env
            .push(("RUST_LOG".into(), "info,openraft=info".into()));
        let small_disk = (self.small_disk == Some(id)).then(|| self.net.tmpfs_source());
        let net = &self.net;
        let node = TestNode::start_prepared(spec, |data_dir| match small_disk {
            Some(_) => net.mount_small_disk(data_dir, SMALL_DISK_MIB),
            None => Ok(()),
        })
        .with_context(|| format!("starting node {id}"))?;
        self.nodes.insert(id, node);
        Ok(())
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The members, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Members whose process runs and is not paused.
    pub fn live(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|id| !self.down.contains(id) && !self.paused.contains(id))
            .collect()
    }

    pub fn is_down(&self, id: u64) -> bool {
        self.down.contains(&id)
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.paused.contains(&id)
    }

    pub fn small_disk(&self) -> Option<u64> {
        self.small_disk
    }

    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.api_addr(id))
    }

    pub fn node_dir(&self, id: u64) -> Option<&Path> {
        self.nodes.get(&id).map(TestNode::dir)
    }

    pub fn data_dir(&self, id: u64) -> Option<PathBuf> {
        self.nodes.get(&id).map(TestNode::data_dir)
    }

    /// An API client of node `id` with the cluster_admin token.
    pub fn client(&self, id: u64, timeout: Duration) -> Result<ApiClient> {
        Ok(ApiClient::builder(self.url(id))
            .bearer_token(&self.token)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?)
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut TestNode> {
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("node {id} is not a member"))
    }

    pub fn kill(&mut self, id: u64) -> Result<()> {
        if self.paused.contains(&id) {
            self.resume(id)?;
        }
        self.node_mut(id)?.kill9()?;
        self.down.push(id);
        Ok(())
    }

    pub fn restart(&mut self, id: u64) -> Result<()> {
        self.node_mut(id)?.restart()?;
        self.down.retain(|d| *d != id);
        Ok(())
    }

    pub fn pause(&mut self, id: u64) -> Result<()> {
        self.node_mut(id)?.pause()?;
        self.paused.push(id);
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> Result<()> {
        self.node_mut(id)?.resume()?;
        self.paused.retain(|p| *p != id);
        Ok(())
    }

    /// Whether node `id`'s process is still there (a node that hit a full disk may exit).
    pub fn is_running(&mut self, id: u64) -> bool {
        self.nodes.get_mut(&id).is_some_and(TestNode::is_running)
    }

    /// Starts node `id` (a new namespace) and has it join through node `via`; returns once
    /// the process serves (it becomes a voter once it has caught up).
    pub fn add_member(&mut self, id: u64, via: u64) -> Result<()> {
        self.net.add_node(id)?;
        let join = vec!["--join".to_owned(), self.api_addr(via)];
        self.launch(id, &join)
    }

    /// Drops a removed member: kills its process, deletes its directory.
    pub fn forget(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.down.retain(|d| *d != id);
        self.paused.retain(|p| *p != id);
    }

    /// `/_cluster/status` of node `id`, blocking (for start-up and the end of a run).
    pub fn status_blocking(&self, id: u64) -> Result<ClusterStatus> {
        let v = self
            .nodes
            .get(&id)
            .with_context(|| format!("node {id} is not a member"))?
            .get_json("/_cluster/status", Some(&self.token))?;
        Ok(serde_json::from_value(v)?)
    }

    /// Waits until every live node names the same leader, one of them.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.live();
            let views: Vec<Option<u64>> = live
                .iter()
                .map(|id| self.status_blocking(*id).ok().and_then(|s| s.leader_id))
                .collect();
            if let Some(Some(leader)) = views.first()
                && views.iter().all(|v| *v == Some(*leader))
                && live.contains(leader)
            {
                return Ok(*leader);
            }
            if Instant::now() > deadline {
                bail!("no agreed leader among {live:?} within {timeout:?}; views {views:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills every node (for the end of a run, before the namespaces go).
    pub fn stop(&mut self) {
        for id in self.ids() {
            if self.paused.contains(&id) {
                let _ = self.resume(id);
            }
        }
        self.nodes.clear();
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        self.stop();
        self.net.destroy();
    }
}
