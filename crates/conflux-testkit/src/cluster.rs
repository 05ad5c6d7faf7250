//! A cluster of real `conflux` processes: static bootstrap on free loopback ports, waiting
//! for a leader, growing with `--join`, and the faults (kill, pause, restart) of one node.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tempfile::TempDir;

use std::net::{IpAddr, SocketAddr};

use crate::partition::{self, Partition};
use crate::{ClientTls, NodeSpec, TestNode, free_port_on};

/// How often [`Cluster::start`] tries with fresh ports when a reserved one was taken.
const PORT_ATTEMPTS: u32 = 3;

/// Whether a start failed because another process bound a port reserved for a node between
/// its reservation and the node's own bind.
fn lost_port_race(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("Address already in use")
}

/// How long [`Cluster::wait_for_leader`] waits by default.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// GET a JSON document from an open endpoint of a node (blocking, short timeout).
pub fn get_json(url: &str) -> Result<Value> {
    get_json_tls(url, None, None)
}

/// GET a JSON document from a node with a bearer token.
pub fn get_json_as(url: &str, token: &str) -> Result<Value> {
    get_json_tls(url, Some(token), None)
}

/// An HTTP agent with `timeout`, speaking https as `tls` says.
pub(crate) fn agent(timeout: Duration, tls: Option<&ClientTls>) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false);
    if let Some(tls) = tls {
        config = config.tls_config(tls.ureq_config()?);
    }
    Ok(config.build().into())
}

/// GET a JSON document, optionally with a bearer token and over TLS.
pub fn get_json_tls(url: &str, token: Option<&str>, tls: Option<&ClientTls>) -> Result<Value> {
    let agent = agent(Duration::from_secs(3), tls)?;
    let mut request = agent.get(url);
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = request.call().with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body: Value = resp
        .body_mut()
        .read_json()
        .with_context(|| format!("GET {url}: body is not JSON"))?;
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

/// The fixed Raft address of a node of a cluster.
fn raft_addr(node: &TestNode) -> Result<SocketAddr> {
    let addr = node.spec.raft_addr.as_deref().unwrap_or_default();
    addr.parse::<SocketAddr>()
        .with_context(|| format!("node {} has no fixed Raft address", node.spec.node_id))
}

/// One member's reserved addresses.
#[derive(Debug, Clone)]
pub struct Member {
    pub node_id: u64,
    pub raft_addr: String,
    pub api_addr: String,
}

impl Member {
    /// Free loopback ports for node `node_id`'s listeners.
    pub fn reserve(node_id: u64) -> Result<Member> {
        Member::reserve_on(node_id, IpAddr::from([127, 0, 0, 1]))
    }

    /// Free ports on `ip` for node `node_id`'s listeners.
    pub fn reserve_on(node_id: u64, ip: IpAddr) -> Result<Member> {
        Ok(Member {
            node_id,
            raft_addr: SocketAddr::new(ip, free_port_on(ip)?).to_string(),
            api_addr: SocketAddr::new(ip, free_port_on(ip)?).to_string(),
        })
    }

    /// The `--peer` argument naming this member.
    pub fn peer_arg(&self) -> String {
        format!("{}={},{}", self.node_id, self.raft_addr, self.api_addr)
    }

    /// The spec of this member's node with `extra` arguments and the cluster's bootstrap
    /// `token`.
    pub fn spec(&self, extra: &[String], token: &str) -> NodeSpec {
        self.spec_tls(extra, token, None)
    }

    /// [`Member::spec`] of a node whose API is on TLS (`extra` has its `--api-tls-*` flags);
    /// the harness reaches it as `client_tls` says.
    pub fn spec_tls(
        &self,
        extra: &[String],
        token: &str,
        client_tls: Option<ClientTls>,
    ) -> NodeSpec {
        let mut spec = NodeSpec::new(self.node_id);
        spec.client_tls = client_tls;
        spec.api_addr = Some(self.api_addr.clone());
        spec.raft_addr = Some(self.raft_addr.clone());
        spec.extra_args = extra.to_vec();
        spec.bootstrap_token = Some(token.to_owned());
        spec
    }
}

/// Arguments that give a cluster its metadata DB: a fresh database on this test binary's
/// throwaway PostgreSQL server (multi-node clusters refuse SQLite).
pub fn metadata_args() -> Result<Vec<String>> {
    let url = crate::postgres::TestPostgres::shared()?.fresh_database()?;
    Ok(vec!["--metadata-url".into(), url])
}

/// Writes a new local KMS key file (64 hex digits, mode 0600) in `dir` and returns the
/// arguments that make a node use it: every node of a cluster needs the same one.
pub fn kms_args(dir: &Path) -> Result<Vec<String>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    let path = dir.join("kek.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    file.write_all(hex.as_bytes())?;
    Ok(vec!["--kms-key-file".into(), path.display().to_string()])
}

/// Real nodes forming one cluster. Nodes keep fixed addresses across restarts (the
/// membership records them).
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<TestNode>,
    /// Arguments every node gets (TLS files, snapshot policy, the metadata DB...).
    common_args: Vec<String>,
    /// The cluster_admin token every node bootstrapped with.
    token: String,
    /// Holds the cluster's KMS key file when the cluster made it.
    _kms_dir: Option<Arc<TempDir>>,
    /// How to reach the nodes' API when it is on TLS (boxed: most clusters go without).
    client_tls: Option<Box<ClientTls>>,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) that bootstrap one cluster from the same `--peer` list,
    /// and waits for a leader.
    pub fn start(n: usize) -> Result<Cluster> {
        Cluster::start_with(n, Vec::new())
    }

    /// Like [`Cluster::start`], with extra `conflux server` arguments for every node.
    pub fn start_with(n: usize, common_args: Vec<String>) -> Result<Cluster> {
        Cluster::start_addressed(n, common_args, None, |_| IpAddr::from([127, 0, 0, 1]))
    }

    /// Like [`Cluster::start_with`] for nodes whose API is on TLS: `common_args` has the
    /// `--api-tls-*` flags (one certificate for 127.0.0.1 serves every node), and the harness
    /// reaches the nodes as `client_tls` says.
    pub fn start_tls(n: usize, common_args: Vec<String>, client_tls: ClientTls) -> Result<Cluster> {
        Cluster::start_addressed(n, common_args, Some(client_tls), |_| {
            IpAddr::from([127, 0, 0, 1])
        })
    }

    /// Like [`Cluster::start_with`], but every node listens on a loopback address of its own
    /// (127.x.y.<id>, distinct per cluster), and its Raft connections leave from it, so that
    /// [`Cluster::isolate`] can cut it off from the others by address while clients (which
    /// connect from 127.0.0.1) still reach it.
    pub fn start_partitionable(n: usize, common_args: Vec<String>) -> Result<Cluster> {
        let (a, b) = partition::cluster_subnet();
        Cluster::start_addressed(n, common_args, None, |id| {
            IpAddr::from([
                127,
                a,
                b,
                u8::try_from(id).expect("node ids of test clusters fit a byte"),
            ])
        })
    }

    fn start_addressed(
        n: usize,
        mut common_args: Vec<String>,
        client_tls: Option<ClientTls>,
        ip_of: impl Fn(u64) -> IpAddr,
    ) -> Result<Cluster> {
        if !common_args.iter().any(|a| a == "--metadata-url") {
            common_args.extend(metadata_args()?);
        }
        let kms_dir = match common_args.iter().any(|a| a.starts_with("--kms")) {
            true => None,
            false => {
                let dir = TempDir::new().context("a directory for the KMS key file")?;
                common_args.extend(kms_args(dir.path())?);
                Some(Arc::new(dir))
            }
        };
        let mut attempt = 1;
        loop {
            match Cluster::start_once(n, &common_args, client_tls.clone(), &ip_of, kms_dir.clone())
            {
                Err(e) if attempt < PORT_ATTEMPTS && lost_port_race(&e) => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(
        n: usize,
        common_args: &[String],
        client_tls: Option<ClientTls>,
        ip_of: &impl Fn(u64) -> IpAddr,
        kms_dir: Option<Arc<TempDir>>,
    ) -> Result<Cluster> {
        let members: Vec<Member> = (1..=n as u64)
            .map(|id| Member::reserve_on(id, ip_of(id)))
            .collect::<Result<_>>()?;
        let mut args = common_args.to_vec();
        for m in &members {
            args.push("--peer".into());
            args.push(m.peer_arg());
        }
        let token = crate::random_token();
        let mut nodes = Vec::new();
        for m in &members {
            nodes.push(
                TestNode::start(m.spec_tls(&args, &token, client_tls.clone()))
                    .with_context(|| format!("starting node {}", m.node_id))?,
            );
        }
        let cluster = Cluster {
            nodes,
            common_args: common_args.to_vec(),
            token,
            _kms_dir: kms_dir,
            client_tls: client_tls.map(Box::new),
        };
        cluster.wait_for_leader(LEADER_TIMEOUT)?;
        cluster.wait_until_ready(LEADER_TIMEOUT)?;
        Ok(cluster)
    }

    /// Waits until every running node answers `/ready` with 200: it knows the leader, has
    /// applied the log, and has loaded the identities (until then it cannot tell a good
    /// token from a bad one, and answers 503).
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            loop {
                let view = node.get_json("/ready", None);
                if view.as_ref().is_ok_and(|r| r["ready"] == true) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} not ready within {timeout:?}: {view:?}",
                        node.spec.node_id
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// A cluster around a node that is already running (e.g. one restored from a backup),
    /// which others can [`Cluster::join`]. `common_args` must name the node's PostgreSQL
    /// metadata DB (`--metadata-url`), which joining nodes share. Without `--kms*` arguments,
    /// joining nodes use the key file the node created in its data directory.
    pub fn adopt(node: TestNode, mut common_args: Vec<String>) -> Cluster {
        let token = node.token();
        if !common_args.iter().any(|a| a.starts_with("--kms")) {
            common_args.push("--kms-key-file".into());
            common_args.push(node.data_dir().join("kek.key").display().to_string());
        }
        let client_tls = node.spec.client_tls.clone().map(Box::new);
        Cluster {
            nodes: vec![node],
            common_args,
            token,
            _kms_dir: None,
            client_tls,
        }
    }

    /// The `--kms*` arguments every node of this cluster runs with (a node started by hand
    /// to join it needs the same key).
    pub fn kms_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut args = self.common_args.iter();
        while let Some(a) = args.next() {
            if a.starts_with("--kms") {
                out.push(a.clone());
                if !a.contains('=')
                    && let Some(v) = args.next()
                {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The cluster_admin token every node of this cluster accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn nodes(&self) -> &[TestNode] {
        &self.nodes
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.spec.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.spec.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.spec.node_id).collect()
    }

    /// `/_cluster/status` as seen by one node.
    pub fn status(&self, id: u64) -> Result<Value> {
        self.node(id)
            .get_json("/_cluster/status", Some(&self.token))
    }

    /// How to reach the nodes' API when it is on TLS.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.client_tls.as_deref()
    }

    /// Waits until every node in `among` reports the same leader, which is one of them, and
    /// returns it.
    pub fn wait_for_leader_among(&self, among: &[u64], timeout: Duration) -> Result<u64> {
        self.wait_for_leader_among_polling(among, timeout, Duration::from_millis(50))
    }

    /// [`Cluster::wait_for_leader_among`], reading every node's `/ready` each `poll` (a
    /// benchmark timing an election polls more often than a test needs to).
    pub fn wait_for_leader_among_polling(
        &self,
        among: &[u64],
        timeout: Duration,
        poll: Duration,
    ) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let views: Vec<Option<u64>> = among
                .iter()
                .map(|id| {
                    self.node(*id)
                        .get_json("/ready", None)
                        .ok()
                        .and_then(|r| r["leader_id"].as_u64())
                })
                .collect();
            if let Some(Some(leader)) = views.first()
                && views.iter().all(|v| *v == Some(*leader))
                && among.contains(leader)
            {
                return Ok(*leader);
            }
            if Instant::now() > deadline {
                bail!("no agreed leader among {among:?} within {timeout:?}; last views {views:?}");
            }
            std::thread::sleep(poll);
        }
    }

    /// Waits until all running nodes agree on a leader.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<u64> {
        let running: Vec<u64> = self.ids();
        self.wait_for_leader_among(&running, timeout)
    }

    /// Cuts node `id` off from every other node of this cluster (packets between their
    /// addresses are dropped, both ways) until the returned partition is healed or dropped.
    /// The cluster must have been started with [`Cluster::start_partitionable`].
    pub fn isolate(&self, id: u64) -> Result<Partition> {
        let isolated = raft_addr(self.node(id))?.ip();
        let others: Vec<IpAddr> = self
            .nodes
            .iter()
            .filter(|n| n.spec.node_id != id)
            .map(|n| raft_addr(n).map(|a| a.ip()))
            .collect::<Result<_>>()?;
        if others.contains(&isolated) {
            bail!(
                "node {id} shares its address with another node; start the cluster with Cluster::start_partitionable"
            );
        }
        Partition::cut(isolated, &others)
    }

    /// Cuts the connections node `from` opens to node `to`'s Raft listener (replication when
    /// `from` leads), while `to`'s own connections to `from` (its forwarded writes, its
    /// votes) keep working. Needs [`Cluster::start_partitionable`] like [`Cluster::isolate`].
    pub fn cut_connections(&self, from: u64, to: u64) -> Result<Partition> {
        let from_addr = raft_addr(self.node(from))?;
        let to_addr = raft_addr(self.node(to))?;
        if from_addr.ip() == to_addr.ip() {
            bail!(
                "nodes {from} and {to} share an address; start the cluster with Cluster::start_partitionable"
            );
        }
        Partition::cut_connections(from_addr.ip(), to_addr.ip(), to_addr.port())
    }

    /// Starts node `id` with `--join` pointing at `via`, and waits until it is a voter that
    /// has caught up.
    pub fn join(&mut self, id: u64, via: u64) -> Result<()> {
        let member = Member::reserve(id)?;
        let mut args = self.common_args.clone();
        args.push("--join".into());
        args.push(self.node(via).api_addr().to_string());
        let node = TestNode::start(member.spec_tls(
            &args,
            &self.token,
            self.client_tls.as_deref().cloned(),
        ))?;
        self.nodes.push(node);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status(via).ok();
            let voter = status.as_ref().and_then(|s| {
                s["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["id"] == id)
                    .map(|m| m["voter"] == true)
            });
            if voter == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {id} did not become a voter: {status:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Removes node `id` from the cluster through `via`'s API and stops its process.
    pub fn remove(&mut self, id: u64, via: u64) -> Result<()> {
        let url = format!("{}/_cluster/members/{id}", self.node(via).api_url());
        let agent = agent(Duration::from_secs(60), self.node(via).client_tls())?;
        let mut resp = agent
            .delete(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("DELETE {url}"))?;
        if !resp.status().is_success() {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            bail!("DELETE {url}: {} {body}", resp.status());
        }
        let pos = self
            .nodes
            .iter()
            .position(|n| n.spec.node_id == id)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        let mut node = self.nodes.remove(pos);
        let _ = node.terminate();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_recognised_through_the_context_chain() {
        let bind = anyhow!(
            "node 2 exited with exit status: 1 before serving:\nerror: cannot listen on 127.0.0.1:4000: Address already in use (os error 98)"
        );
        assert!(lost_port_race(&bind.context("starting node 2")));
        let other = anyhow!("node 2 did not start within 60s").context("starting node 2");
        assert!(!lost_port_race(&other));
    }
}
