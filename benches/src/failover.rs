//! The failover scenario: how long writes stop when the leader is killed (`kill -9`) or cut
//! off from the other nodes (an nftables partition), and how many elections a cluster holds
//! under write load when nothing fails.
//!
//! A light write load runs against every node throughout: `writers` clients spread over the
//! nodes, each creating small versions of its own config one at a time, with a pause after
//! each acknowledgement. Every write carries an idempotency key and a failed write is retried
//! with the same key, as a careful client does. A client never switches nodes: the clients of
//! a killed node fail until it is back.
//!
//! Each round waits until every node names the same leader, lets the load run for a second
//! and a random part of another (so that faults land anywhere between two heartbeats), faults
//! the leader, and measures from the moment the fault is in force (the process is dead, or the
//! packet filter is in place):
//! - **elected**: until every other node names the same new leader (their `/ready`, polled
//!   every 10 ms);
//! - **first write**: until the first acknowledgement of a write *sent after the fault*. The
//!   old leader cannot commit anything after the fault (it is dead, or has no quorum), so the
//!   new leader committed that write; a write sent before the fault may have committed before
//!   it and does not count.
//!
//! Then it heals (restarts the node, or removes the partition) and waits until every node names
//! the same leader again. A round's elections are how much the highest term of the cluster
//! grew: one is the minimum, more mean split votes or a disrupted leader.
//!
//! The quiet run ([`run_quiet`]) runs the same load without faults and counts elections (term
//! changes) and leader changes: a healthy cluster holds none.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, RetentionPolicy,
};
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_domain::{RetentionKind, RetentionRule, RetentionStrategy};
use conflux_testkit::{Cluster, Partition};
use serde::Serialize;

use crate::stats::{Latencies, Summary};

const TENANT: &str = "failover";
const APP: &str = "svc";
const ENV: &str = "prod";
/// How long a client waits for one answer, as a service's client would.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits before retrying a failed write.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How often the survivors' `/ready` is read while a new leader is elected.
const LEADER_POLL: Duration = Duration::from_millis(10);
/// Longest wait for a leader, a first write after a fault, or a healed cluster.
const PATIENCE: Duration = Duration::from_secs(60);
/// Load before each fault: this, plus up to as much again at random.
const SETTLE: Duration = Duration::from_secs(1);

/// What happens to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9`, restarted on the same data directory after the round.
    Kill,
    /// Every packet between it and the other nodes dropped (clients still reach it), healed
    /// after the round.
    Isolate,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Isolate => "isolate",
        }
    }
}

/// The write load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Load {
    /// Clients, spread over the nodes.
    pub writers: usize,
    /// Pause after each acknowledged write.
    #[serde(serialize_with = "millis")]
    pub pause: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// One fault and its recovery.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Wall-clock time of the fault, to find it in the nodes' logs.
    pub fault_unix_ms: u64,
    pub leader: u64,
    pub new_leader: u64,
    /// From the fault until every other node named the new leader.
    pub elected_ms: f64,
    /// From the fault until the first acknowledgement of a write sent after it.
    pub first_write_ms: f64,
    /// How much the highest term grew from before the fault to after the recovery.
    pub elections: u64,
}

/// Writes of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Writes {
    pub acknowledged: u64,
    /// Failed attempts (each retried with the same idempotency key).
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverRun {
    pub fault: Fault,
    pub nodes: usize,
    pub load: Load,
    pub rounds: Vec<Round>,
    pub first_write: Summary,
    pub elected: Summary,
    /// Elections beyond the one each round needs.
    pub extra_elections: u64,
    pub writes: Writes,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuietRun {
    pub nodes: usize,
    pub load: Load,
    pub seconds: f64,
    /// How much the highest term grew: every election, won or not, raises it.
    pub elections: u64,
    /// Changes of the leader the polled node named, sampled every second.
    pub leader_changes: u64,
    pub writes: Writes,
    pub writes_per_s: f64,
}

/// What the writers report to the fault driver.
#[derive(Debug, Default)]
struct Probe {
    window: Mutex<Window>,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

/// The current fault and the first acknowledgement of a write sent after it.
#[derive(Debug, Default)]
struct Window {
    fault_at: Option<Instant>,
    first_ack: Option<Instant>,
}

impl Probe {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acknowledged(&self, sent: Instant, at: Instant) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        let mut w = self.window();
        if w.fault_at.is_some_and(|f| sent > f) && w.first_ack.is_none_or(|first| at < first) {
            w.first_ack = Some(at);
        }
    }

    /// Opens the window of a fault happening now.
    fn fault_now(&self) -> Instant {
        let now = Instant::now();
        *self.window() = Window {
            fault_at: Some(now),
            first_ack: None,
        };
        now
    }

    fn first_ack(&self) -> Option<Instant> {
        self.window().first_ack
    }

    fn writes(&self) -> Writes {
        Writes {
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A started cluster with its write load running.
struct Loaded {
    cluster: Cluster,
    probe: Arc<Probe>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Loaded {
    fn start(rt: &tokio::runtime::Runtime, nodes: usize, fault: Fault, load: Load) -> Result<Self> {
        let cluster = match fault {
            Fault::Kill => Cluster::start(nodes),
            Fault::Isolate => Cluster::start_partitionable(nodes, Vec::new()),
        }
        .context(
            "starting the cluster (is CONFLUX_BIN a release build? isolate needs root and nft)",
        )?;
        cluster.wait_for_leader(PATIENCE)?;
        let clients = cluster
            .nodes()
            .iter()
            .map(|n| {
                ApiClient::builder(n.api_url())
                    .bearer_token(cluster.token())
                    .timeout(CLIENT_TIMEOUT)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids = rt.block_on(prepare(&clients[0], load.writers))?;
        let probe = Arc::new(Probe::default());
        let writers = ids
            .into_iter()
            .enumerate()
            .map(|(w, id)| {
                let client = clients[w % clients.len()].clone();
                rt.spawn(writer(client, id, w, probe.clone(), load.pause))
            })
            .collect();
        Ok(Loaded {
            cluster,
            probe,
            writers,
        })
    }

    /// Copies every node's logs (one file per start) into `dir`.
    fn keep_logs(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for node in self.cluster.nodes() {
            for entry in std::fs::read_dir(node.dir())? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let name = path.file_name().unwrap_or_default();
                    std::fs::copy(&path, dir.join(name))?;
                }
            }
        }
        Ok(())
    }

    fn stop(self, rt: &tokio::runtime::Runtime) -> Writes {
        self.probe.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            // A writer ends after its current request, at most a client timeout.
            let _ = rt.block_on(w);
        }
        self.probe.writes()
    }

    /// The highest term any node reports.
    fn highest_term(&self) -> Result<u64> {
        let mut highest = None;
        for id in self.cluster.ids() {
            if let Ok(status) = self.cluster.status(id)
                && let Some(term) = status["term"].as_u64()
            {
                highest = highest.max(Some(term));
            }
        }
        highest.context("no node reported its term")
    }
}

/// Creates the tenant and one config per writer (keeping its last 100 versions).
async fn prepare(admin: &ApiClient, writers: usize) -> Result<Vec<u64>> {
    let w = WriteOptions::default();
    let tenant = CreateTenant {
        name: TENANT.into(),
        display_name: None,
        quotas: None,
    };
    admin.create_tenant(&tenant, &w).await?;
    admin.create_app(TENANT, &CreateApp::named(APP), &w).await?;
    admin
        .create_env(TENANT, APP, &CreateEnvironment::named(ENV), &w)
        .await?;
    let mut ids = Vec::with_capacity(writers);
    for i in 0..writers {
        let config = CreateConfig {
            name: format!("w{i}.txt"),
            format: Format::Text,
            schema: None,
            retention: Some(RetentionPolicy {
                strategy: RetentionStrategy::Or,
                rules: vec![RetentionRule {
                    kind: RetentionKind::Count,
                    keep: 100,
                }],
            }),
            description: None,
            encrypted: false,
        };
        ids.push(admin.create_config(TENANT, APP, ENV, &config, &w).await?.id);
    }
    Ok(ids)
}

/// Writer `w`: versions of config `id` until stopped; a failed write is retried with the same
/// idempotency key.
async fn writer(client: ApiClient, id: u64, w: usize, probe: Arc<Probe>, pause: Duration) {
    let mut seq = 0u64;
    while !probe.stop.load(Ordering::Relaxed) {
        seq += 1;
        let options = WriteOptions::default().idempotency_key(format!("w{w}-{seq}"));
        let content = format!("writer {w} write {seq}");
        loop {
            let sent = Instant::now();
            let version = NewVersion::new(content.clone(), "text/plain");
            match client.create_version(id, version, &options).await {
                Ok(_) => {
                    probe.acknowledged(sent, Instant::now());
                    break;
                }
                Err(_) => {
                    probe.failed.fetch_add(1, Ordering::Relaxed);
                    if probe.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// A random duration below `max` (the fault's phase against the heartbeats).
fn jitter(max: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    // Without OS randomness the phase is merely the same every round.
    let _ = getrandom::fill(&mut bytes);
    let nanos = max.as_nanos().max(1) as u64;
    Duration::from_nanos(u64::from_le_bytes(bytes) % nanos)
}

/// Waits until every node in `among` names the same leader, one of them.
fn agreed_leader(cluster: &Cluster, among: &[u64], deadline: Instant) -> Result<u64> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    cluster.wait_for_leader_among_polling(among, timeout, LEADER_POLL)
}

/// `rounds` faults of the leader of a cluster of `nodes` under `load`. Prints one line per
/// round on stderr.
pub fn run_failover(
    rt: &tokio::runtime::Runtime,
    nodes: usize,
    rounds: usize,
    fault: Fault,
    load: Load,
    logs: Option<&Path>,
) -> Result<FailoverRun> {
    if nodes < 3 {
        bail!("failover needs at least 3 nodes (a majority must survive the fault)");
    }
    let mut loaded = Loaded::start(rt, nodes, fault, load)?;
    let mut results = Vec::with_capacity(rounds);
    let mut first_write = Latencies::default();
    let mut elected = Latencies::default();
    for round in 1..=rounds {
        let r = run_round(&mut loaded, fault).with_context(|| format!("round {round}"))?;
        eprintln!(
            "  round {round} (at {} ms): {} {} -> leader {}: elected after {:.0} ms, first write after {:.0} ms, {} election(s)",
            r.fault_unix_ms,
            fault.name(),
            r.leader,
            r.new_leader,
            r.elected_ms,
            r.first_write_ms,
            r.elections
        );
        first_write.record(Duration::from_secs_f64(r.first_write_ms / 1e3));
        elected.record(Duration::from_secs_f64(r.elected_ms / 1e3));
        results.push(r);
    }
    if let Some(dir) = logs {
        loaded.keep_logs(dir)?;
    }
    let writes = loaded.stop(rt);
    let extra_elections = results.iter().map(|r| r.elections.saturating_sub(1)).sum();
    Ok(FailoverRun {
        fault,
        nodes,
        load,
        rounds: results,
        first_write: first_write.summary(),
        elected: elected.summary(),
        extra_elections,
        writes,
    })
}

fn run_round(loaded: &mut Loaded, fault: Fault) -> Result<Round> {
    let all = loaded.cluster.ids();
    let leader = agreed_leader(&loaded.cluster, &all, Instant::now() + PATIENCE)?;
    let term_before = loaded.highest_term()?;
    std::thread::sleep(SETTLE + jitter(SETTLE));

    let mut partition: Option<Partition> = None;
    match fault {
        Fault::Kill => loaded.cluster.node_mut(leader).kill9()?,
        Fault::Isolate => partition = Some(loaded.cluster.isolate(leader)?),
    }
    // From when the fault is in force: a write sent while `nft` was still setting up the
    // partition may have been committed by the old leader.
    let fault_at = loaded.probe.fault_now();
    let fault_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let new_leader = agreed_leader(&loaded.cluster, &survivors, fault_at + PATIENCE)?;
    let elected_at = Instant::now();
    let first_ack = loop {
        if let Some(at) = loaded.probe.first_ack() {
            break at;
        }
        if fault_at.elapsed() > PATIENCE {
            bail!("no write sent after the fault was acknowledged within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };

    match partition {
        Some(p) => p.heal()?,
        None => loaded.cluster.node_mut(leader).restart()?,
    }
    agreed_leader(&loaded.cluster, &all, Instant::now() + PATIENCE)?;
    let term_after = loaded.highest_term()?;
    let ms = |at: Instant| at.duration_since(fault_at).as_secs_f64() * 1e3;
    Ok(Round {
        fault_unix_ms,
        leader,
        new_leader,
        elected_ms: ms(elected_at),
        first_write_ms: ms(first_ack),
        elections: term_after.saturating_sub(term_before),
    })
}

/// `duration` of `load` on a cluster of `nodes` without faults, counting elections and leader
/// changes.
pub fn run_quiet(
    rt: &tokio::runtime::Runtime,
    nodes: usize,
    duration: Duration,
    load: Load,
    logs: Option<&Path>,
) -> Result<QuietRun> {
    let loaded = Loaded::start(rt, nodes, Fault::Kill, load)?;
    let all = loaded.cluster.ids();
    let mut leader = agreed_leader(&loaded.cluster, &all, Instant::now() + PATIENCE)?;
    let term_before = loaded.highest_term()?;
    let acknowledged_before = loaded.probe.writes().acknowledged;
    let started = Instant::now();
    let mut leader_changes = 0;
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        let named = all.iter().find_map(|id| {
            loaded
                .cluster
                .node(*id)
                .get_json("/ready", None)
                .ok()
                .and_then(|r| r["leader_id"].as_u64())
        });
        if let Some(now) = named
            && now != leader
        {
            eprintln!(
                "  leader changed from {leader} to {now} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            leader = now;
            leader_changes += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let term_after = loaded.highest_term()?;
    if let Some(dir) = logs {
        loaded.keep_logs(dir)?;
    }
    let writes = loaded.stop(rt);
    Ok(QuietRun {
        nodes,
        load,
        seconds,
        elections: term_after.saturating_sub(term_before),
        leader_changes,
        writes,
        writes_per_s: writes.acknowledged.saturating_sub(acknowledged_before) as f64 / seconds,
    })
}

/// The Markdown report of a failover run.
pub fn markdown_failover(run: &FailoverRun) -> String {
    let mut out =
        String::from("| measured from the fault | p50 | p99 | max |\n|---|---:|---:|---:|\n");
    for (what, s) in [
        ("new leader named by every other node", &run.elected),
        ("first write acknowledged", &run.first_write),
    ] {
        out.push_str(&format!(
            "| {what} | {:.0} ms | {:.0} ms | {:.0} ms |\n",
            s.p50_ms, s.p99_ms, s.max_ms
        ));
    }
    let elections: u64 = run.rounds.iter().map(|r| r.elections).sum();
    out.push_str(&format!(
        "\n{} rounds, {elections} elections ({} beyond one per fault); {} writes acknowledged, {} failed attempts\n",
        run.rounds.len(),
        run.extra_elections,
        run.writes.acknowledged,
        run.writes.failed
    ));
    out
}

/// The Markdown report of a quiet run.
pub fn markdown_quiet(run: &QuietRun) -> String {
    format!(
        "{:.0} s without faults: {} elections, {} leader changes; {} writes acknowledged ({:.0}/s), {} failed attempts\n",
        run.seconds,
        run.elections,
        run.leader_changes,
        run.writes.acknowledged,
        run.writes_per_s,
        run.writes.failed
    )
}
