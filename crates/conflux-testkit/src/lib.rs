//! The shared harness of every test that needs real `conflux` processes.
//!
//! It owns starting a node process on loopback with port 0 and its own temporary data
//! directory, learning the address it bound from the line it prints, and killing
//! (`SIGKILL`), stopping (`SIGTERM`), pausing (`SIGSTOP`/`SIGCONT`) and restarting it on the
//! same data directory. Every process it starts is killed when its handle is dropped; it never
//! signals a process it did not start. It does not know the API: tests talk to nodes through
//! `conflux-client` or raw HTTP.

mod cluster;
pub mod moto;
mod partition;
pub mod postgres;
pub mod tls;

pub use cluster::{
    Cluster, LEADER_TIMEOUT, Member, get_json, get_json_as, get_json_tls, kms_args, metadata_args,
};
pub use partition::Partition;
pub use postgres::TestPostgres;
pub use tls::ClientTls;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a node may take to print its address after being started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `conflux` binary to test: `$CONFLUX_BIN` if set, otherwise the `conflux` next to the
/// running executable (a harness binary in `target/<profile>/`) or one level up from it (a
/// test executable in `target/<profile>/deps/`).
pub fn conflux_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CONFLUX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("conflux"))
        .collect();
    candidates
        .iter()
        .find(|bin| bin.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "{} does not exist; build it (cargo build --bins) or set CONFLUX_BIN",
                candidates
                    .last()
                    .map_or_else(|| exe.display().to_string(), |b| b.display().to_string())
            )
        })
}

/// Reserves a free loopback port by binding port 0 and releasing it. Racy by nature (another
/// process may take it before the node binds it), so only for addresses a node must know
/// before any process starts (e.g. static cluster membership); [`Cluster::start`] retries with
/// new ports when a node loses that race. A port is never handed out twice by one process, so
/// tests running side by side cannot be given the same one.
pub fn free_port() -> Result<u16> {
    free_port_on(IpAddr::from([127, 0, 0, 1]))
}

/// [`free_port`] on another local address (e.g. a loopback address of its own).
pub fn free_port_on(ip: IpAddr) -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<(IpAddr, u16)>> = Mutex::new(BTreeSet::new());
    loop {
        let l = std::net::TcpListener::bind((ip, 0))?;
        let port = l.local_addr()?.port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((ip, port))
        {
            return Ok(port);
        }
    }
}

/// What to start: the `conflux server` arguments of one node, minus the data directory and
/// the API address, which the harness supplies.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub node_id: u64,
    /// Fixed API address, or `None` for port 0 (a new port at every start).
    pub api_addr: Option<String>,
    /// Fixed Raft address, or `None` for port 0.
    pub raft_addr: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The cluster_admin token the node bootstraps its metadata DB with (written to a file
    /// passed as `--bootstrap-token-file`). `None`: no such flag, so a node with an empty DB
    /// makes its own and writes it to `<data-dir>/admin.token` (the embedded default).
    pub bootstrap_token: Option<String>,
    /// How the harness reaches this node's API when it is on TLS (`--api-tls-cert` among the
    /// arguments): the CA to trust and, when the node requires one, a client certificate.
    pub client_tls: Option<ClientTls>,
    /// The network namespace to run the node in (`ip netns exec`, which execs the binary, so
    /// the process the harness signals is the node itself). `None`: this process's namespace.
    pub netns: Option<String>,
}

/// A fresh random token of the kind an operator would put in a bootstrap token file.
pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("test-admin-{hex}")
}

impl NodeSpec {
    pub fn new(node_id: u64) -> Self {
        NodeSpec {
            node_id,
            api_addr: None,
            raft_addr: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            bootstrap_token: Some(random_token()),
            client_tls: None,
            netns: None,
        }
    }

    /// Puts the node's API on TLS with `cert` (`--api-tls-cert`/`--api-tls-key`); the harness
    /// reaches it as `client` says.
    pub fn api_tls(mut self, cert: &tls::NodeCert, client: ClientTls) -> Self {
        self.extra_args.extend(cert.api_args());
        self.client_tls = Some(client);
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra_args.push(a.into());
        self
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// Runs `conflux restore --from backup` into `data_dir` as node `node_id` at these addresses;
/// the error carries what the command printed.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    node_id: u64,
    raft_addr: &str,
    api_addr: &str,
) -> Result<()> {
    let out = Command::new(conflux_binary()?)
        .args(["restore", "--from"])
        .arg(backup)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--node-id", &node_id.to_string()])
        .args(["--raft-addr", raft_addr, "--api-addr", api_addr])
        .output()
        .context("running conflux restore")?;
    if !out.status.success() {
        bail!(
            "conflux restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One `conflux server` process and its data directory.
#[derive(Debug)]
pub struct TestNode {
    pub spec: NodeSpec,
    binary: PathBuf,
    /// Owns the data directory and the logs; removed when the node is dropped.
    dir: tempfile::TempDir,
    child: Option<Child>,
    api_addr: SocketAddr,
    /// `http` or `https`, as the node printed it.
    api_scheme: String,
    starts: u32,
}

impl TestNode {
    /// Starts a node with a fresh data directory and waits until it serves.
    pub fn start(spec: NodeSpec) -> Result<TestNode> {
        TestNode::start_prepared(spec, |_| Ok(()))
    }

    /// The first node of a new cluster, made from a backup: `conflux restore` into its data
    /// directory as this spec's node at its addresses (which the spec must give), then started.
    pub fn start_restored(spec: NodeSpec, backup: &Path) -> Result<TestNode> {
        let (Some(raft), Some(api)) = (spec.raft_addr.clone(), spec.api_addr.clone()) else {
            bail!("a restored node needs its raft_addr and api_addr in the spec");
        };
        let node_id = spec.node_id;
        TestNode::start_prepared(spec, |data_dir| {
            restore(backup, data_dir, node_id, &raft, &api)
        })
    }

    /// Like [`TestNode::start`], but first lets `prepare` fill the (not yet existing) data
    /// directory, e.g. with [`restore`]; the node is not started if `prepare` fails.
    pub fn start_prepared(
        spec: NodeSpec,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<TestNode> {
        let dir = tempfile::Builder::new().prefix("conflux-node-").tempdir()?;
        let binary = conflux_binary()?;
        let mut node = TestNode {
            spec,
            binary,
            dir,
            child: None,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_scheme: "http".to_owned(),
            starts: 0,
        };
        prepare(&node.data_dir())?;
        node.launch()?;
        Ok(node)
    }

    /// The node's own directory: its data directory and the logs of every start.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// `http://addr`, or `https://addr` when the node serves its API over TLS.
    pub fn api_url(&self) -> String {
        format!("{}://{}", self.api_scheme, self.api_addr)
    }

    /// How to reach this node's API over TLS, if it is on TLS.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.spec.client_tls.as_ref()
    }

    /// GET a JSON document from this node (`path` after the API URL), with a bearer token.
    pub fn get_json(&self, path: &str, token: Option<&str>) -> Result<serde_json::Value> {
        cluster::get_json_tls(
            &format!("{}{path}", self.api_url()),
            token,
            self.client_tls(),
        )
    }

    /// A cluster_admin token of this node: the bootstrap token of its spec, or (embedded
    /// default) the one the node wrote to `<data-dir>/admin.token`.
    pub fn token(&self) -> String {
        match &self.spec.bootstrap_token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(self.data_dir().join("admin.token"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.dir.path().join(format!(
            "node-{}-start-{}.log",
            self.spec.node_id, self.starts
        ));
        let stderr = std::fs::File::create(&log)?;
        let api_addr = self
            .spec
            .api_addr
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let raft_addr = self
            .spec
            .raft_addr
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let mut bootstrap = Vec::new();
        if let Some(token) = &self.spec.bootstrap_token {
            let file = self.dir.path().join("bootstrap.token");
            std::fs::write(&file, format!("{token}\n"))?;
            bootstrap.push("--bootstrap-token-file".to_owned());
            bootstrap.push(file.display().to_string());
        }
        let mut cmd = match &self.spec.netns {
            None => Command::new(&self.binary),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
        };
        cmd.arg("server")
            .arg("--node-id")
            .arg(self.spec.node_id.to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-addr")
            .arg(&api_addr)
            .arg("--raft-addr")
            .arg(&raft_addr)
            .args(&bootstrap)
            .args(&self.spec.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("CONFLUX_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        let stdout_log = self.dir.path().join(format!(
            "node-{}-start-{}.stdout",
            self.spec.node_id, self.starts
        ));
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(stdout_log).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("serving the API on ").nth(1) {
                    let url = url.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(url);
                }
                if let Some(f) = out.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    let (scheme, addr) = url
                        .split_once("://")
                        .ok_or_else(|| anyhow!("the node printed {url:?}, not a URL"))?;
                    self.api_scheme = scheme.to_owned();
                    self.api_addr = addr
                        .parse()
                        .with_context(|| format!("parsing address {addr:?}"))?;
                    return Ok(());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "node {} exited with {status} before serving:\n{}",
                    self.spec.node_id,
                    self.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not start within {START_TIMEOUT:?}:\n{}",
                    self.spec.node_id,
                    self.log_tail(40)
                );
            }
        }
    }

    /// Whether any start's log of this node contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        (1..=self.starts).any(|s| {
            let log = self
                .dir
                .path()
                .join(format!("node-{}-start-{s}.log", self.spec.node_id));
            std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
        })
    }

    /// The last lines of the current start's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.dir.path().join(format!(
            "node-{}-start-{}.log",
            self.spec.node_id, self.starts
        ));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("node {} is not running", self.spec.node_id))?;
        kill(Pid::from_raw(pid as i32), sig)
            .with_context(|| format!("sending {sig} to node {}", self.spec.node_id))
    }

    /// `kill -9`: the process gets no chance to flush or clean up. A process that already
    /// exited by itself (a fatal error) is only reaped, so it can be restarted.
    pub fn kill9(&mut self) -> Result<()> {
        let exited = match self.child.as_mut() {
            Some(c) => c.try_wait()?.is_some(),
            None => false,
        };
        if !exited {
            self.signal(Signal::SIGKILL)?;
        }
        if let Some(mut c) = self.child.take() {
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        let mut c = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!("node {} ignored SIGTERM for 30 s", self.spec.node_id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, like a hung machine.
    pub fn pause(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Starts the process again on the same data directory (after `kill9` or `terminate`).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("node {} is still running", self.spec.node_id);
        }
        self.launch()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Only ever our own child; SIGCONT first in case it was paused.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- node {} log (last 60 lines) ---\n{}",
                self.spec.node_id,
                self.log_tail(60)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..500).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
