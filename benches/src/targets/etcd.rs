//! etcd as the comparison baseline: a 1- or 3-member cluster of the system's `etcd` binary
//! (Debian `etcd-server`, installed by `scripts/setup-etcd.sh`; this tool installs nothing) on
//! loopback, with its data in a temp dir on disk and etcd's default durability (every commit
//! fsynced), loaded through its v3 gRPC API with `etcd-client`.
//!
//! Each worker and each watcher owns one plain tonic channel (one HTTP/2 connection) to one
//! member, like a Conflux worker owns one HTTP/1.1 connection. Reads are serializable (served
//! by the member that receives them, as a Conflux fetch is); writes are linearizable puts, as
//! every Conflux write is. The history is compacted every 10,000 revisions, as Conflux's
//! retention bounds each config's versions.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use etcd_client::{Client, GetOptions, KvClient};

use super::{Receipt, WatchSet, Workload, next_source_addr};
use crate::load::OpKind;

/// Key fetch workers read.
const FETCHED: &str = "bench/app.json";
/// Key watchers watch.
const WATCHED: &str = "bench/watched.txt";
/// How long members may take to elect a leader and answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running etcd cluster.
pub struct Etcd {
    /// Members this tool started, killed when dropped.
    children: Vec<Child>,
    /// Data directories and logs, removed when dropped.
    dir: tempfile::TempDir,
    pub client_urls: Vec<String>,
    value: Vec<u8>,
    /// The watch scenario's writer (one connection to the first member), once prepared.
    writer: Option<Box<Client>>,
}

/// `etcd --version`'s first line, or `None` when etcd is not installed.
pub fn version() -> Option<String> {
    let out = Command::new("etcd").arg("--version").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

impl Etcd {
    /// Starts `members` etcd processes forming one cluster on loopback and waits until every
    /// member answers with a leader.
    pub async fn start(members: usize) -> Result<Etcd> {
        let v = version().ok_or_else(|| {
            anyhow!("`etcd` is not on PATH: install Debian's etcd-server (scripts/setup-etcd.sh)")
        })?;
        let dir = tempfile::Builder::new()
            .prefix("conflux-bench-etcd-")
            .tempdir()?;
        let ports: Vec<(u16, u16)> = (0..members)
            .map(|_| Ok((conflux_testkit::free_port()?, conflux_testkit::free_port()?)))
            .collect::<Result<_>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            children: Vec::new(),
            client_urls: ports
                .iter()
                .map(|(c, _)| format!("http://127.0.0.1:{c}"))
                .collect(),
            dir,
            value: crate::json_doc(1024),
            writer: None,
        };
        for (i, (client, peer)) in ports.iter().enumerate() {
            let child = spawn_member(etcd.dir.path(), i + 1, *client, *peer, &initial_cluster)
                .with_context(|| format!("starting {v}"))?;
            etcd.children.push(child);
        }
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for (i, url) in self.client_urls.clone().iter().enumerate() {
            loop {
                if let Some(Ok(Some(status))) = self.children[i].try_wait().map(Some).transpose() {
                    bail!(
                        "etcd member {} exited with {status}; log: {}",
                        i + 1,
                        self.log_tail(i + 1)
                    );
                }
                let ok = async {
                    let mut c = connect(url, None).await?;
                    let s = c.status().await?;
                    anyhow::ensure!(s.leader() != 0, "no leader yet");
                    anyhow::Ok(())
                }
                .await;
                if ok.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "etcd member {} not ready within {START_TIMEOUT:?}: {ok:?}; log: {}",
                        i + 1,
                        self.log_tail(i + 1)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn log_tail(&self, member: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("m{member}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Writes the fetched and the watched keys (1 KiB each).
    pub async fn prepare(&mut self) -> Result<()> {
        let mut c = connect(&self.client_urls[0], None).await?;
        self.writer = Some(Box::new(c.clone()));
        c.put(FETCHED, self.value.clone(), None).await?;
        c.put(WATCHED, self.value.clone(), None).await?;
        // Members serve serializable reads from what they have applied: wait for the key.
        for url in &self.client_urls {
            let mut c = connect(url, None).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while c
                .get(FETCHED, Some(GetOptions::new().with_serializable()))
                .await?
                .kvs()
                .is_empty()
            {
                if Instant::now() > deadline {
                    bail!("{url} does not serve {FETCHED}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Worker `k`: a connection to member `k mod n`; writes go to key `bench/w/k`.
    pub async fn worker(&self, k: usize, workload: Workload) -> Result<EtcdWorker> {
        let url = &self.client_urls[k % self.client_urls.len()];
        let client = connect(url, None).await?;
        Ok(EtcdWorker {
            kv: client.kv_client(),
            workload,
            write_key: format!("bench/w/{k}").into_bytes(),
            value: self.value.clone(),
        })
    }

    /// Opens watchers `first..first + count` of the watched key, each on its own connection
    /// from [`next_source_addr`], spread over the members (or all on the first).
    pub async fn open_watchers(
        &self,
        first: usize,
        count: usize,
        first_node_only: bool,
        due: Option<Instant>,
        set: &WatchSet,
    ) -> Result<()> {
        let urls = if first_node_only {
            &self.client_urls[..1]
        } else {
            &self.client_urls[..]
        };
        for i in first..first + count {
            let url = urls[i % urls.len()].clone();
            let set2 = set.clone();
            let due = due.unwrap_or_else(Instant::now);
            set.spawn(async move {
                if watcher(&url, i, due, &set2).await.is_err() {
                    set2.failed();
                }
            });
            if i % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// Puts 1 KiB into the watched key (on the first member); answers the revision.
    pub async fn write_watched(&self, k: u64) -> Result<u64> {
        let mut c = *self.writer.clone().ok_or_else(|| anyhow!("not prepared"))?;
        let mut value = self.value.clone();
        value[..8].copy_from_slice(format!("{:08}", k % 100_000_000).as_bytes());
        let put = c.put(WATCHED, value, None).await?;
        let header = put
            .header()
            .ok_or_else(|| anyhow!("put answered no header"))?;
        Ok(header.revision() as u64)
    }
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("pids", &self.pids())
            .field("client_urls", &self.client_urls)
            .finish_non_exhaustive()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_member(
    dir: &Path,
    id: usize,
    client: u16,
    peer: u16,
    initial_cluster: &str,
) -> Result<Child> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = dir.join(format!("m{id}.log"));
    let child = Command::new("etcd")
        .args(["--name", &format!("m{id}")])
        .arg("--data-dir")
        .arg(dir.join(format!("m{id}")))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", "conflux-bench"])
        .args(["--auto-compaction-mode", "revision"])
        .args(["--auto-compaction-retention", "10000"])
        .args(["--quota-backend-bytes", "8589934592"])
        .args(["--logger", "zap", "--log-level", "warn"])
        .arg("--log-outputs")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(child)
}

/// A client over one plain tonic channel (no load balancer) from `source` if given.
async fn connect(url: &str, source: Option<IpAddr>) -> Result<Client> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .local_address(source)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(Client::from_channel(etcd_client::Channel::Tonic(channel), None).await?)
}

/// One watcher on its own connection: ready when etcd confirms the watch, then one receipt
/// per response carrying events.
async fn watcher(url: &str, i: usize, due: Instant, set: &WatchSet) -> Result<()> {
    let mut client = connect(url, Some(IpAddr::V4(next_source_addr()))).await?;
    let mut stream = client.watch(WATCHED, None).await?;
    while let Some(resp) = stream.message().await? {
        if resp.created() {
            set.ready_since(due);
        }
        let events = resp.events().iter().filter_map(|e| e.kv());
        if let Some(revision) = newest_revision(events.map(|kv| kv.mod_revision())) {
            set.receipt(Receipt {
                watcher: i as u32,
                revision,
                at: Instant::now(),
            });
        }
        if resp.canceled() {
            bail!("watch canceled: {}", resp.cancel_reason());
        }
    }
    Ok(())
}

/// The revision a watch response brings its watcher to: the newest `mod_revision` of its
/// events (`None` without events). Not the header's revision: etcd stamps a response to a
/// watcher that is catching up (unsynced, or with more events to come) with the store's
/// current revision, newer than the events it carries, which would match the receipt to
/// writes it does not hold.
fn newest_revision(mod_revisions: impl IntoIterator<Item = i64>) -> Option<u64> {
    mod_revisions
        .into_iter()
        .max()
        .map(|r| u64::try_from(r).unwrap_or(0))
}

/// An etcd request worker.
pub struct EtcdWorker {
    kv: KvClient,
    workload: Workload,
    write_key: Vec<u8>,
    value: Vec<u8>,
}

impl std::fmt::Debug for EtcdWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWorker")
            .field("workload", &self.workload)
            .field("write_key", &String::from_utf8_lossy(&self.write_key))
            .finish_non_exhaustive()
    }
}

impl crate::load::Worker for EtcdWorker {
    async fn call(&mut self, seq: u64) -> (OpKind, bool) {
        if self.workload.is_write(seq) {
            let ok = self
                .kv
                .put(self.write_key.clone(), self.value.clone(), None)
                .await
                .is_ok();
            (OpKind::Write, ok)
        } else {
            let want = self.value.len();
            let got = self
                .kv
                .get(FETCHED, Some(GetOptions::new().with_serializable()))
                .await;
            let ok = got.is_ok_and(|r| r.kvs().first().is_some_and(|kv| kv.value().len() == want));
            (OpKind::Read, ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::newest_revision;

    #[test]
    fn a_receipt_is_as_new_as_its_newest_event() {
        assert_eq!(newest_revision([12, 14, 13]), Some(14));
        assert_eq!(newest_revision([7]), Some(7));
        assert_eq!(newest_revision([]), None);
    }
}
