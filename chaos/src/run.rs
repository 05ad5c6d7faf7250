//! One seeded run: start a cluster in namespaces, run the workload, play the fault schedule,
//! heal, let the cluster converge, read the final state, judge the history and write the
//! run's folder (history, watch events, schedule, summary, timeline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conflux_client::ApiClient;
use serde::Serialize;

use crate::check::{self, Anomaly, FinalState};
use crate::cluster::{ChaosCluster, RAFT_PORT};
use crate::delay::DelaySpec;
use crate::history::{ConfigKey, FinalVersion, Operation, Outcome};
use crate::net::Filter;
use crate::report;
use crate::schedule::{self, Fault, Scenario, Step, Who};
use crate::workload::{self, REQUEST_TIMEOUT, Shared, Transport};

/// Configs the workload writes (linearizability is checked per config).
const CONFIGS: usize = 4;
const WRITERS_PER_NODE: usize = 2;
const READERS_PER_NODE: usize = 1;
/// How long the healed cluster has to converge (same applied index and digest everywhere).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long failover probes go on without an acknowledgement (a cluster that has not
/// elected a leader by then shows as a failover of this long, or none).
const PROBE_GIVE_UP: Duration = Duration::from_secs(8);
/// How long the linearizability search may take per config.
const LINEAR_BUDGET: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: &'static Scenario,
    pub seed: u64,
    pub nodes: u64,
    pub duration: Duration,
    /// The run's folder.
    pub out: PathBuf,
}

impl RunOptions {
    /// The command that repeats this run: same scenario, seed, size and duration, so the same
    /// schedule.
    pub fn reproduce(&self) -> String {
        format!(
            "conflux-chaos run --scenario {} --seed {} --nodes {} --duration {}",
            self.scenario.name,
            self.seed,
            self.nodes,
            humantime::format_duration(self.duration)
        )
    }
}

/// A fault window as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub label: String,
    pub nodes: Vec<u64>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Why it was not applied, when it was not (e.g. its node was already down).
    pub skipped: Option<String>,
    pub loses_leader: bool,
    /// What it did, where the fault can tell (the delay proxies' traffic).
    pub detail: Option<String>,
}

/// Who led, as one node saw it at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LeaderSample {
    pub at_ns: u64,
    pub node: u64,
    pub leader: Option<u64>,
    pub term: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub scenario: String,
    pub seed: u64,
    pub nodes: u64,
    pub duration_s: f64,
    pub reproduce: String,
    pub operations: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub watch_events: usize,
    pub faults: usize,
    /// The fault windows in the order they ended (a skipped one when it was due).
    pub windows: Vec<FaultWindow>,
    /// Leader-loss windows: time to the first change acknowledged after the fault, ms.
    pub failover_ms: Vec<f64>,
    /// Term increases seen over the run (each is at least one election).
    pub elections: u64,
    pub errors_by_code: BTreeMap<String, usize>,
    pub converged: bool,
    pub digest: Option<String>,
    pub linearizability: BTreeMap<String, String>,
    pub anomalies: Vec<Anomaly>,
    /// Set when the run itself broke (not the system under test): nothing was judged.
    pub harness_error: Option<String>,
}

impl RunSummary {
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty() && self.harness_error.is_none() && self.converged
    }
}

/// Runs one seeded run and writes its folder. `interrupted` stops it early (Ctrl-C); the
/// cluster, namespaces and mounts are removed in every case.
pub async fn run(opts: &RunOptions, interrupted: Arc<AtomicBool>) -> Result<RunSummary> {
    if opts.nodes < opts.scenario.min_nodes {
        bail!(
            "scenario {} needs at least {} nodes",
            opts.scenario.name,
            opts.scenario.min_nodes
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let steps = schedule::schedule(opts.scenario, opts.seed, opts.nodes, opts.duration);
    write_json(&opts.out.join("schedule.json"), &steps)?;
    let small_disk = steps
        .iter()
        .any(|s| s.fault == Fault::FullDisk)
        .then_some(opts.nodes);
    let cluster = tokio::task::block_in_place(|| ChaosCluster::start(opts.nodes, small_disk))?;
    let mut runner = Runner::new(cluster, opts, interrupted)?;
    let result = runner.drive(&steps).await;
    runner.save_logs(&opts.out.join("logs"));
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => runner.broken(format!("{e:#}")),
    };
    write_json(&opts.out.join("summary.json"), &summary)?;
    std::fs::write(opts.out.join("summary.md"), report::run_markdown(&summary))?;
    Ok(summary)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

struct Runner<'a> {
    cluster: ChaosCluster,
    opts: &'a RunOptions,
    interrupted: Arc<AtomicBool>,
    start: Instant,
    recorder: Arc<workload::Recorder>,
    windows: Vec<FaultWindow>,
    /// Every member's status client (short timeouts), for the monitor and for finding the
    /// leader; changed when a node joins or leaves.
    members: Arc<Mutex<Vec<(u64, ApiClient)>>>,
    samples: Arc<Mutex<Vec<LeaderSample>>>,
    /// Files filled by the full-disk fault, to be deleted when it heals.
    fillers: Vec<PathBuf>,
    /// Nodes added by the membership fault, still members.
    added: Vec<u64>,
    /// The config the failover probes write, and the probes started so far.
    probe_target: Option<Arc<workload::Target>>,
    probes: Vec<tokio::task::JoinHandle<()>>,
    /// Every initial node's client (the probes' way in).
    clients: Arc<Vec<(u64, ApiClient)>>,
}

impl<'a> Runner<'a> {
    fn new(
        cluster: ChaosCluster,
        opts: &'a RunOptions,
        interrupted: Arc<AtomicBool>,
    ) -> Result<Runner<'a>> {
        let start = Instant::now();
        let mut members = Vec::new();
        for id in cluster.ids() {
            members.push((id, cluster.client(id, Duration::from_millis(800))?));
        }
        Ok(Runner {
            cluster,
            opts,
            interrupted,
            start,
            recorder: workload::Recorder::new(start),
            windows: Vec::new(),
            members: Arc::new(Mutex::new(members)),
            samples: Arc::new(Mutex::new(Vec::new())),
            fillers: Vec::new(),
            added: Vec::new(),
            probe_target: None,
            probes: Vec::new(),
            clients: Arc::new(Vec::new()),
        })
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn members(&self) -> Vec<(u64, ApiClient)> {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The node the live members name as leader at the highest term, if any.
    async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for (id, client) in self.members() {
            if !self.cluster.live().contains(&id) {
                continue;
            }
            if let Ok(s) = client.cluster_status().await
                && let Some(l) = s.leader_id
                && best.is_none_or(|(term, _)| s.term > term)
            {
                best = Some((s.term, l));
            }
        }
        best.map(|(_, l)| l)
    }

    async fn resolve(&self, who: Who, pick: u64) -> Option<u64> {
        let live = self.cluster.live();
        let leader = self.leader().await;
        match who {
            Who::Leader => leader.filter(|l| live.contains(l)),
            Who::Follower => {
                let followers: Vec<u64> = live.into_iter().filter(|n| Some(*n) != leader).collect();
                (!followers.is_empty()).then(|| followers[(pick as usize) % followers.len()])
            }
            Who::Random => (!live.is_empty()).then(|| live[(pick as usize) % live.len()]),
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// Sleeps until `at` after the start, or returns early when interrupted.
    async fn sleep_until(&self, at: Duration) {
        while !self.interrupted() {
            let now = self.start.elapsed();
            if now >= at {
                return;
            }
            tokio::time::sleep((at - now).min(Duration::from_millis(100))).await;
        }
    }

    async fn drive(&mut self, steps: &[Step]) -> Result<RunSummary> {
        // The configs, created through the leader.
        let leader =
            tokio::task::block_in_place(|| self.cluster.wait_for_leader(Duration::from_secs(30)))?;
        let admin = self.cluster.client(leader, Duration::from_secs(10))?;
        // One config more than the workload uses: the failover probes' own.
        let mut targets = workload::prepare(&admin, CONFIGS + 1, &self.recorder, leader).await?;
        self.probe_target = targets.pop();
        let mut nodes = Vec::new();
        let mut urls = Vec::new();
        for id in self.cluster.ids() {
            nodes.push((id, self.cluster.client(id, REQUEST_TIMEOUT)?));
            urls.push((id, self.cluster.url(id)));
        }
        let n = nodes.len();
        self.clients = Arc::new(nodes.clone());
        let writers_stop = Arc::new(AtomicBool::new(false));
        let others_stop = Arc::new(AtomicBool::new(false));
        let shared = |stop: &Arc<AtomicBool>| Shared {
            recorder: self.recorder.clone(),
            targets: Arc::new(targets.clone()),
            nodes: Arc::new(nodes.clone()),
            urls: Arc::new(urls.clone()),
            token: self.cluster.token().into(),
            stop: stop.clone(),
        };
        let mut writers = Vec::new();
        let mut others = Vec::new();
        let seed = self.opts.seed;
        for i in 0..n * WRITERS_PER_NODE {
            let task_seed = seed.wrapping_mul(1000).wrapping_add(i as u64);
            writers.push(tokio::spawn(workload::writer(
                shared(&writers_stop),
                format!("w{i}"),
                i % n,
                task_seed,
            )));
        }
        for i in 0..n * READERS_PER_NODE {
            let task_seed = seed.wrapping_mul(1000).wrapping_add(500 + i as u64);
            others.push(tokio::spawn(workload::reader(
                shared(&others_stop),
                format!("r{i}"),
                i % n,
                task_seed,
            )));
        }
        let mut w = 0;
        for (i, _) in nodes.iter().enumerate() {
            for transport in Transport::ALL {
                let target = targets[w % targets.len()].clone();
                others.push(tokio::spawn(workload::watcher(
                    shared(&others_stop),
                    format!("watch{w}-{}", transport.name()),
                    transport,
                    target,
                    i,
                )));
                w += 1;
            }
        }
        let monitor = tokio::spawn(monitor(
            self.members.clone(),
            self.samples.clone(),
            self.start,
            others_stop.clone(),
        ));

        // The schedule: apply each window at its start, heal it at its end.
        let mut events: Vec<(Duration, bool, usize)> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            events.push((s.start, true, i));
            events.push((s.end(), false, i));
        }
        events.sort_by_key(|(at, apply, i)| (*at, *apply, *i));
        let mut applied: BTreeMap<usize, Applied> = BTreeMap::new();
        for (at, apply, i) in events {
            self.sleep_until(at).await;
            if self.interrupted() {
                break;
            }
            if apply {
                let network_busy = applied.values().any(|a| a.network);
                match self.apply(&steps[i], network_busy).await {
                    Ok(a) => {
                        applied.insert(i, a);
                    }
                    Err(reason) => self.windows.push(FaultWindow {
                        label: steps[i].fault.label(),
                        nodes: Vec::new(),
                        start_ns: self.now_ns(),
                        end_ns: self.now_ns(),
                        skipped: Some(reason),
                        loses_leader: false,
                        detail: None,
                    }),
                }
            } else if let Some(a) = applied.remove(&i) {
                let end = self.now_ns();
                let detail = self.heal(&a).await;
                self.windows.push(FaultWindow {
                    label: a.label,
                    nodes: a.nodes,
                    start_ns: a.start_ns,
                    end_ns: end,
                    skipped: None,
                    loses_leader: a.loses_leader,
                    detail,
                });
            }
        }
        self.sleep_until(self.opts.duration).await;
        for p in std::mem::take(&mut self.probes) {
            let _ = p.await;
        }
        if self.interrupted() {
            bail!("interrupted");
        }
        // Heal whatever is left (nothing, unless a heal failed), stop the writers, converge.
        self.heal_everything().await;
        writers_stop.store(true, Ordering::Relaxed);
        for t in writers {
            let _ = t.await;
        }
        let converged = self.converge().await;
        let reader = match self.leader().await {
            Some(l) => l,
            None => self
                .cluster
                .live()
                .first()
                .copied()
                .context("no node runs")?,
        };
        let all_targets: Vec<_> = targets.iter().chain(&self.probe_target).cloned().collect();
        let finals = self
            .finals(
                &self.cluster.client(reader, Duration::from_secs(10))?,
                &all_targets,
            )
            .await?;
        // Give watchers time to reach the final revisions before they stop.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !watchers_done(&self.recorder, &finals.revisions) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        others_stop.store(true, Ordering::Relaxed);
        for t in others {
            let _ = t.await;
        }
        let _ = monitor.await;

        let history = self.recorder.operations();
        let events = self.recorder.watch_events();
        write_jsonl(&self.opts.out.join("history.jsonl"), &history)?;
        write_jsonl(&self.opts.out.join("watch.jsonl"), &events)?;
        write_json(&self.opts.out.join("faults.json"), &self.windows)?;
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        write_json(&self.opts.out.join("leaders.json"), &samples)?;

        let judged = check::judge(&history, &events, &finals, LINEAR_BUDGET);
        let mut anomalies = judged.anomalies;
        let linearizability: BTreeMap<String, String> = judged
            .linearizability
            .iter()
            .map(|v| (v.config.clone(), v.verdict.label()))
            .collect();
        let (converged, digest) = match converged {
            Ok(d) => (true, Some(d)),
            Err(e) => {
                anomalies.push(Anomaly {
                    checker: "convergence",
                    op: None,
                    config: String::new(),
                    message: e,
                });
                (false, None)
            }
        };
        let mut summary = self.summarize(&history, &samples, anomalies);
        summary.watch_events = events.len();
        summary.converged = converged;
        summary.digest = digest;
        summary.linearizability = linearizability;
        report::timeline(
            &self.opts.out.join("timeline.png"),
            &history,
            &self.windows,
            &samples,
            self.opts,
        )?;
        Ok(summary)
    }

    /// Applies one fault window; `Err` says why it was skipped.
    async fn apply(&mut self, step: &Step, network_busy: bool) -> Result<Applied, String> {
        let fault = step.fault;
        if fault.is_network() && network_busy {
            return Err("another network fault is active".into());
        }
        let members = self.cluster.ids();
        let live = self.cluster.live();
        let leader = self.leader().await;
        let need = |who: Option<u64>, what: &str| who.ok_or_else(|| format!("no {what} now"));
        let others =
            |id: u64| -> Vec<u64> { members.iter().copied().filter(|m| *m != id).collect() };
        let mut nodes = Vec::new();
        let undo = match fault {
            Fault::Kill { who } => {
                let id = need(self.resolve(who, step.pick).await, "node to kill")?;
                self.block(|c| c.kill(id))?;
                nodes.push(id);
                Undo::Restart(vec![id])
            }
            Fault::KillTwo => {
                let l = need(leader, "leader")?;
                let followers: Vec<u64> = live.iter().copied().filter(|n| *n != l).collect();
                if followers.is_empty() {
                    return Err("no follower to kill".into());
                }
                let f = followers[(step.pick as usize) % followers.len()];
                self.block(|c| c.kill(l).and_then(|()| c.kill(f)))?;
                nodes.extend([l, f]);
                Undo::Restart(vec![l, f])
            }
            Fault::Pause { who } => {
                let id = need(self.resolve(who, step.pick).await, "node to pause")?;
                self.block(|c| c.pause(id))?;
                nodes.push(id);
                Undo::Resume(id)
            }
            Fault::Isolate { who } => {
                let id = need(self.resolve(who, step.pick).await, "node to isolate")?;
                self.cut(&[id], &others(id))?;
                nodes.push(id);
                Undo::Filters
            }
            Fault::SplitMajority => {
                let l = need(leader, "leader")?;
                // The leader and (for 5 nodes) one more: a minority.
                let mut minority = vec![l];
                let rest = others(l);
                for i in 0..(members.len() - 1) / 2 - 1 {
                    minority.push(rest[(step.pick as usize + i) % rest.len()]);
                }
                minority.dedup();
                let majority: Vec<u64> = members
                    .iter()
                    .copied()
                    .filter(|m| !minority.contains(m))
                    .collect();
                self.cut(&minority, &majority)?;
                nodes = minority;
                Undo::Filters
            }
            Fault::Bridge => {
                let l = need(leader, "leader")?;
                let rest = others(l);
                let bridge = rest[(step.pick as usize) % rest.len()];
                let rest: Vec<u64> = rest.into_iter().filter(|n| *n != bridge).collect();
                // The leader's side gets half of the remaining nodes (rounded down).
                let (side_a, side_b): (Vec<u64>, Vec<u64>) = {
                    let half = rest.len() / 2;
                    let mut a = vec![l];
                    a.extend(&rest[..half]);
                    (a, rest[half..].to_vec())
                };
                self.cut(&side_a, &side_b)?;
                nodes.push(bridge);
                Undo::Filters
            }
            Fault::OneWay => {
                let l = need(leader, "leader")?;
                let rest = others(l);
                let f = rest[(step.pick as usize) % rest.len()];
                let filter = Filter {
                    drop_to: vec![self.cluster.net.ip(f)],
                    ..Filter::default()
                };
                self.cluster
                    .net
                    .set_filter(l, filter)
                    .map_err(|e| format!("{e:#}"))?;
                nodes.extend([l, f]);
                Undo::Filters
            }
            Fault::Loss { percent } => {
                for m in &members {
                    let from: Vec<_> = others(*m).iter().map(|o| self.cluster.net.ip(*o)).collect();
                    let filter = Filter {
                        loss: Some((percent, from)),
                        ..Filter::default()
                    };
                    self.cluster
                        .net
                        .set_filter(*m, filter)
                        .map_err(|e| format!("{e:#}"))?;
                }
                Undo::Filters
            }
            Fault::Slow { who } => {
                let id = need(self.resolve(who, step.pick).await, "node to slow down")?;
                self.cluster
                    .net
                    .set_rate(id, Some(SLOW_KBIT))
                    .map_err(|e| format!("{e:#}"))?;
                nodes.push(id);
                Undo::Rate(id)
            }
            Fault::Delay => {
                for m in &members {
                    let peers: Vec<_> =
                        others(*m).iter().map(|o| self.cluster.net.ip(*o)).collect();
                    let spec = DelaySpec {
                        base_ms: DELAY_BASE_MS,
                        jitter_ms: DELAY_JITTER_MS,
                        // Each node's proxy its own delays.
                        seed: step.pick.wrapping_add(*m),
                    };
                    if let Err(e) = self.cluster.net.start_delay(*m, RAFT_PORT, &peers, spec) {
                        // No half-applied fault: it is skipped, so nothing would heal it.
                        let _ = self.cluster.net.stop_all_delays();
                        return Err(format!("{e:#}"));
                    }
                }
                nodes.clone_from(&members);
                Undo::Delays
            }
            Fault::FullDisk => {
                let id = self
                    .cluster
                    .small_disk()
                    .ok_or("no node has a small disk")?;
                if !live.contains(&id) {
                    return Err(format!("node {id} is down"));
                }
                let dir = self.cluster.data_dir(id).ok_or("no data directory")?;
                let filler = dir.join("chaos-filler");
                tokio::task::block_in_place(|| fill(&filler)).map_err(|e| format!("{e:#}"))?;
                self.fillers.push(filler.clone());
                nodes.push(id);
                Undo::Disk(filler, id)
            }
            Fault::AddRemoveNode => {
                let via = need(leader, "leader")?;
                let id = (1..=250u64)
                    .find(|i| !members.contains(i) && !self.added.contains(i))
                    .ok_or("no free node id")?;
                self.block(|c| c.add_member(id, via))?;
                let client = self
                    .cluster
                    .client(id, Duration::from_millis(800))
                    .map_err(|e| format!("{e:#}"))?;
                self.members
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((id, client));
                self.added.push(id);
                nodes.push(id);
                Undo::RemoveNode(id)
            }
            Fault::TransferLeader => {
                let l = need(leader, "leader")?;
                let client = self
                    .cluster
                    .client(l, Duration::from_secs(5))
                    .map_err(|e| format!("{e:#}"))?;
                client
                    .transfer_leader(None)
                    .await
                    .map_err(|e| e.to_string())?;
                nodes.push(l);
                Undo::Nothing
            }
            Fault::SnapshotInstall => {
                let l = need(leader, "leader")?;
                let f = need(self.resolve(Who::Follower, step.pick).await, "follower")?;
                self.cut(&[f], &others(f))?;
                nodes.push(f);
                // Once writes have gone on for a while, the leader snapshots (and purges).
                let client = self
                    .cluster
                    .client(l, Duration::from_secs(20))
                    .map_err(|e| format!("{e:#}"))?;
                let wait = step.hold / 2;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = client.snapshot().await;
                });
                Undo::Filters
            }
        };
        if fault.loses_leader()
            && let Some(target) = &self.probe_target
        {
            self.probes.push(tokio::spawn(workload::probe(
                self.recorder.clone(),
                target.clone(),
                self.clients.clone(),
                PROBE_GIVE_UP,
            )));
        }
        Ok(Applied {
            label: fault.label(),
            nodes,
            // When it took effect: finding the leader takes a moment of its own.
            start_ns: self.now_ns(),
            loses_leader: fault.loses_leader(),
            network: fault.is_network(),
            undo,
        })
    }

    /// Runs a blocking cluster operation; its error becomes a skip reason.
    fn block(&mut self, f: impl FnOnce(&mut ChaosCluster) -> Result<()>) -> Result<(), String> {
        tokio::task::block_in_place(|| f(&mut self.cluster)).map_err(|e| format!("{e:#}"))
    }

    /// Drops every packet between `a` and `b` (filters on both sides).
    fn cut(&mut self, a: &[u64], b: &[u64]) -> Result<(), String> {
        let ips = |ids: &[u64]| -> Vec<_> { ids.iter().map(|i| self.cluster.net.ip(*i)).collect() };
        let (a_ips, b_ips) = (ips(a), ips(b));
        for (side, other) in [(a, &b_ips), (b, &a_ips)] {
            for id in side {
                let filter = Filter {
                    drop_from: other.clone(),
                    drop_to: other.clone(),
                    loss: None,
                };
                self.cluster
                    .net
                    .set_filter(*id, filter)
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
        Ok(())
    }

    /// Heals one window; returns what it did, where the fault can tell.
    async fn heal(&mut self, a: &Applied) -> Option<String> {
        let mut detail = None;
        let result = match &a.undo {
            Undo::Restart(ids) => {
                let ids = ids.clone();
                self.block(|c| {
                    for id in ids {
                        if c.is_down(id) {
                            c.restart(id)?;
                        }
                    }
                    Ok(())
                })
            }
            Undo::Resume(id) => {
                let id = *id;
                self.block(|c| {
                    if c.is_paused(id) {
                        c.resume(id)
                    } else {
                        Ok(())
                    }
                })
            }
            Undo::Filters => self.cluster.net.heal_all().map_err(|e| format!("{e:#}")),
            Undo::Rate(id) => self
                .cluster
                .net
                .set_rate(*id, None)
                .map_err(|e| format!("{e:#}")),
            Undo::Delays => match self.cluster.net.stop_all_delays() {
                Ok(s) => {
                    detail = Some(format!(
                        "{} connections, {} bytes through the delay proxies",
                        s.connections, s.bytes
                    ));
                    Ok(())
                }
                Err(e) => Err(format!("{e:#}")),
            },
            Undo::Disk(filler, id) => {
                let _ = std::fs::remove_file(filler);
                self.fillers.retain(|f| f != filler);
                self.recover_after_full_disk(*id).await
            }
            Undo::RemoveNode(id) => self.remove_added(*id).await,
            Undo::Nothing => Ok(()),
        };
        if let Err(e) = result {
            eprintln!("healing {} failed: {e}", a.label);
        }
        detail
    }

    /// A node whose disk filled up may have stopped its Raft core (it answers 503
    /// `node_stopped`) or exited; an operator restarts it once the disk has room.
    async fn recover_after_full_disk(&mut self, id: u64) -> Result<(), String> {
        let client = self
            .cluster
            .client(id, Duration::from_secs(2))
            .map_err(|e| format!("{e:#}"))?;
        let healthy = self.cluster.is_running(id)
            && matches!(client.ready().await, Ok(r) if r.ready || r.leader_id.is_some());
        if healthy {
            return Ok(());
        }
        eprintln!("node {id} did not survive its full disk; restarting it");
        // kill -9 also reaps a process that already exited.
        self.block(|c| {
            c.kill(id)?;
            c.restart(id)
        })
    }

    async fn remove_added(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let via = self.leader().await.filter(|l| *l != id);
            let result = match via {
                Some(l) => {
                    let client = self
                        .cluster
                        .client(l, Duration::from_secs(10))
                        .map_err(|e| format!("{e:#}"))?;
                    client.remove_member(id).await.map_err(|e| e.to_string())
                }
                None => Err("no leader".to_owned()),
            };
            match result {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("removing node {id}: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(m, _)| *m != id);
        self.added.retain(|a| *a != id);
        tokio::task::block_in_place(|| self.cluster.forget(id));
        Ok(())
    }

    /// Undoes every fault still in force.
    async fn heal_everything(&mut self) {
        let _ = self.cluster.net.heal_all();
        let _ = self.cluster.net.stop_all_delays();
        for id in self.cluster.ids() {
            let _ = self.cluster.net.set_rate(id, None);
        }
        for filler in std::mem::take(&mut self.fillers) {
            let _ = std::fs::remove_file(filler);
        }
        let result = self.block(|c| {
            for id in c.ids() {
                if c.is_paused(id) {
                    c.resume(id)?;
                }
                if !c.is_down(id) && !c.is_running(id) {
                    // It exited by itself (a fatal storage error): reap it, start it again.
                    eprintln!("node {id} exited by itself; restarting it");
                    c.kill(id)?;
                }
                if c.is_down(id) {
                    c.restart(id)?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            eprintln!("healing the cluster failed: {e}");
        }
        for id in self.added.clone() {
            if let Err(e) = self.remove_added(id).await {
                eprintln!("{e}");
            }
        }
    }

    /// Waits until every member reports the same applied index and state digest; returns
    /// the digest, or why they did not converge.
    async fn converge(&self) -> Result<String, String> {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let mut views = Vec::new();
            for (id, client) in self.members() {
                let view = client
                    .cluster_digest()
                    .await
                    .map(|d| (d.applied_index, d.digest));
                views.push((id, view.map_err(|e| e.to_string())));
            }
            let agreed =
                views.iter().all(|(_, v)| v.is_ok()) && views.windows(2).all(|w| w[0].1 == w[1].1);
            if agreed && let Some((_, Ok((_, digest)))) = views.first() {
                return Ok(digest.clone());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the healed cluster did not converge within {CONVERGE_TIMEOUT:?}: {views:?}"
                ));
            }
            // A late retry may still be applying: look again.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Each config's versions and revision, read from the healed cluster.
    async fn finals(
        &self,
        client: &ApiClient,
        targets: &[Arc<workload::Target>],
    ) -> Result<FinalState> {
        let mut finals = FinalState::default();
        for t in targets {
            let mut list = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = client
                    .list_versions(t.id, Some(500), cursor.as_deref())
                    .await?;
                list.extend(page.versions.into_iter().map(|v| FinalVersion {
                    version: v.version_id,
                    content_hash: v.hash,
                }));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            list.sort_by_key(|v| v.version);
            finals.versions.insert(t.key.clone(), list);
            let revision = client.get_config(t.id).await?.revision;
            finals.revisions.insert(t.key.clone(), revision);
        }
        Ok(finals)
    }

    fn summarize(
        &self,
        history: &[Operation],
        samples: &[LeaderSample],
        anomalies: Vec<Anomaly>,
    ) -> RunSummary {
        let mut summary = self.empty_summary();
        summary.operations = history.len();
        for op in history {
            match &op.outcome {
                Outcome::Ok { .. } => summary.ok += 1,
                Outcome::Fail { code } => {
                    summary.failed += 1;
                    *summary.errors_by_code.entry(code.clone()).or_default() += 1;
                }
                Outcome::Unknown { reason } => {
                    summary.unknown += 1;
                    *summary.errors_by_code.entry(reason.clone()).or_default() += 1;
                }
            }
        }
        summary.faults = self.windows.iter().filter(|w| w.skipped.is_none()).count();
        summary.windows.clone_from(&self.windows);
        summary.failover_ms = failovers(history, &self.windows);
        summary.elections = elections(samples);
        summary.anomalies = anomalies;
        summary
    }

    fn empty_summary(&self) -> RunSummary {
        RunSummary {
            scenario: self.opts.scenario.name.to_owned(),
            seed: self.opts.seed,
            nodes: self.opts.nodes,
            duration_s: self.opts.duration.as_secs_f64(),
            reproduce: self.opts.reproduce(),
            operations: 0,
            ok: 0,
            failed: 0,
            unknown: 0,
            watch_events: 0,
            faults: 0,
            windows: Vec::new(),
            failover_ms: Vec::new(),
            elections: 0,
            errors_by_code: BTreeMap::new(),
            converged: false,
            digest: None,
            linearizability: BTreeMap::new(),
            anomalies: Vec::new(),
            harness_error: None,
        }
    }

    /// The summary of a run the harness could not finish.
    fn broken(&self, error: String) -> RunSummary {
        let mut summary = self.empty_summary();
        summary.harness_error = Some(error);
        summary
    }

    /// Copies the nodes' logs into the run's folder (the nodes' own folders go with them).
    fn save_logs(&self, dir: &Path) {
        let _ = std::fs::create_dir_all(dir);
        for id in self.cluster.ids() {
            let Some(node_dir) = self.cluster.node_dir(id) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(node_dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().ends_with(".log") {
                    let _ = std::fs::copy(e.path(), dir.join(name));
                }
            }
        }
    }
}

/// The Raft-level traffic limit of the slow-link fault, kbit/s.
const SLOW_KBIT: u32 = 256;
/// The delay fault's base delay per connection (ms, each way) and its jitter per chunk (ms).
/// A node gives each Raft RPC one heartbeat interval (100 ms), so round trips of 10-160 ms
/// leave some links working slowly and make others time out with the request delivered all
/// the same; with 20-150 ms each way nothing committed during the windows at all.
const DELAY_BASE_MS: std::ops::Range<u64> = 5..60;
const DELAY_JITTER_MS: u64 = 20;

/// What undoes an applied fault.
#[derive(Debug)]
enum Undo {
    Restart(Vec<u64>),
    Resume(u64),
    Filters,
    Rate(u64),
    Delays,
    Disk(PathBuf, u64),
    RemoveNode(u64),
    Nothing,
}

#[derive(Debug)]
struct Applied {
    label: String,
    nodes: Vec<u64>,
    start_ns: u64,
    loses_leader: bool,
    network: bool,
    undo: Undo,
}

/// Fills the file system holding `path` by writing `path` until it is full.
fn fill(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 1 << 20];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return Ok(()), // ENOSPC
            Err(e) => return Err(e.into()),
        }
    }
}

/// For each leader-loss window, the time from its start to the first failover probe
/// acknowledged (ms). Probes are sent only after the fault took effect, when the old leader
/// can no longer commit (dead, paused, or cut off from the majority), so an acknowledged one
/// was committed by a new leader.
pub fn failovers(history: &[Operation], windows: &[FaultWindow]) -> Vec<f64> {
    windows
        .iter()
        .filter(|w| w.loses_leader && w.skipped.is_none())
        .filter_map(|w| {
            let first = history
                .iter()
                .filter(|o| {
                    o.client.starts_with(workload::PROBE_CLIENT) && o.invoked_ns >= w.start_ns
                })
                .filter(|o| matches!(o.outcome, Outcome::Ok { .. }))
                .filter_map(|o| o.completed_ns)
                .min()?;
            Some((first - w.start_ns) as f64 / 1e6)
        })
        .collect()
}

/// How many times the highest term seen went up.
pub fn elections(samples: &[LeaderSample]) -> u64 {
    let mut highest: Option<u64> = None;
    let mut count = 0;
    let mut sorted: Vec<&LeaderSample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at_ns);
    for s in sorted {
        match highest {
            Some(h) if s.term > h => {
                count += s.term - h;
                highest = Some(s.term);
            }
            None => highest = Some(s.term),
            _ => {}
        }
    }
    count
}

/// Samples every member's view of the leader and term, four times a second.
async fn monitor(
    members: Arc<Mutex<Vec<(u64, ApiClient)>>>,
    samples: Arc<Mutex<Vec<LeaderSample>>>,
    start: Instant,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let current = members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Each node on its own clock: one that hangs (paused, cut off) must not hold up the
        // samples of the others.
        let views = futures::future::join_all(current.iter().map(|(id, c)| async move {
            let status = tokio::time::timeout(Duration::from_millis(600), c.cluster_status()).await;
            (*id, status.ok().and_then(Result::ok))
        }))
        .await;
        let at_ns = start.elapsed().as_nanos() as u64;
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(views.into_iter().filter_map(|(node, view)| {
                let s = view?;
                Some(LeaderSample {
                    at_ns,
                    node,
                    leader: s.leader_id,
                    term: s.term,
                })
            }));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether every watcher's last event is its config's final revision.
fn watchers_done(recorder: &workload::Recorder, finals: &BTreeMap<ConfigKey, u64>) -> bool {
    let mut last: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for e in recorder.watch_events() {
        let entry = last
            .entry(e.watcher.clone())
            .or_insert((e.config.clone(), 0));
        entry.1 = entry.1.max(e.revision);
    }
    last.values()
        .all(|(config, revision)| finals.get(config).is_none_or(|f| revision >= f))
}

fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let mut text = String::new();
    for item in items {
        text += &serde_json::to_string(item)?;
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Call;

    fn change(id: u64, at: (u64, u64), revision: u64) -> Operation {
        Operation {
            id,
            client: "w".into(),
            node: 1,
            invoked_ns: at.0,
            completed_ns: Some(at.1),
            call: Call::Write {
                config: "t/a/e/c".into(),
                content_hash: format!("h{id}"),
                idempotency_key: None,
                publish: true,
            },
            outcome: Outcome::Ok {
                revision,
                version: id,
                content_hash: format!("h{id}"),
            },
        }
    }

    fn window(start_ns: u64, loses_leader: bool) -> FaultWindow {
        FaultWindow {
            label: "kill-leader".into(),
            nodes: vec![1],
            start_ns,
            end_ns: start_ns + 1,
            skipped: None,
            loses_leader,
            detail: None,
        }
    }

    #[test]
    fn failover_ends_at_the_first_probe_acknowledged_after_the_fault() {
        let ms = 1_000_000;
        let probe = |id, at, outcome_ok: bool| {
            let mut op = change(id, at, id);
            op.client = format!("{}{id}", workload::PROBE_CLIENT);
            if !outcome_ok {
                op.outcome = Outcome::Unknown {
                    reason: "timeout".into(),
                };
                op.completed_ns = None;
            }
            op
        };
        let history = [
            // A workload write acknowledged after the fault: it may have been committed
            // before it, so it says nothing about a new leader.
            change(1, (90 * ms, 120 * ms), 6),
            probe(2, (110 * ms, 0), false),
            probe(3, (1_300 * ms, 1_500 * ms), true),
            probe(4, (1_400 * ms, 1_450 * ms), true),
            // A probe of an earlier window.
            probe(5, (10 * ms, 20 * ms), true),
        ];
        let windows = [window(110 * ms, true), window(50 * ms, false)];
        assert_eq!(failovers(&history, &windows), vec![1_340.0]);
    }

    #[test]
    fn elections_count_every_rise_of_the_highest_term_seen() {
        let sample = |at_ns, node, term| LeaderSample {
            at_ns,
            node,
            leader: Some(1),
            term,
        };
        let samples = [
            sample(0, 1, 3),
            sample(0, 2, 3),
            // A cut-off node campaigning: each attempt is a term.
            sample(10, 3, 5),
            sample(20, 1, 4),
            sample(30, 2, 6),
        ];
        assert_eq!(elections(&samples), 3);
        assert_eq!(elections(&[]), 0);
    }
}
