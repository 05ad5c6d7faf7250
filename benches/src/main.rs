//! `conflux-bench`: is this build fast enough, and how does it compare?
//!
//! - `conflux-bench check [--duration SECS] [--quick]` runs a short version of every scenario
//!   against a cluster it starts (release build, data on disk, fsync on) or `--target URL`,
//!   prints the targets table and exits non-zero naming each target missed. `--quick` is the
//!   CI smoke run: short, light, thresholds off (it fails only if the tool itself fails).
//! - `conflux-bench compare --against etcd [--nodes 1|3]` runs every scenario against Conflux
//!   and against an etcd cluster of the same size on the same machine, alternating runs.
//! - `conflux-bench fetch|write|mixed|watch|connections` runs one scenario.
//! - `conflux-bench failover [--fault kill|isolate] [--rounds N]` faults the leader of a
//!   cluster under write load N times and reports how long writes stopped and how many
//!   elections it took; with `--quiet-minutes M` it faults nothing and counts elections.
//!
//! Every command prints Markdown and writes `results.json` and PNG charts into a folder
//! under `--results` (default `benches/results`). This file only parses flags and sequences
//! runs; the measuring is in the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use conflux_benches::check;
use conflux_benches::load::Loop;
use conflux_benches::machine::Machine;
use conflux_benches::report::{Report, markdown_compare, markdown_runs, markdown_watch_writers};
use conflux_benches::scenarios::{self, RunRecord, Scenario, Settings};
use conflux_benches::targets::conflux::Conflux;
use conflux_benches::targets::conflux_watch::Transport;
use conflux_benches::targets::etcd::Etcd;
use conflux_benches::targets::{System, Target};

/// Descriptors this process keeps for itself beyond watch connections.
const SPARE_FDS: u64 = 1_500;

#[derive(Debug, Parser)]
#[command(
    name = "conflux-bench",
    about = "Load scenarios, target checks and the etcd comparison for Conflux"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every scenario briefly and checks the targets; exits 1 naming any target missed.
    Check(CheckArgs),
    /// Runs every scenario against Conflux and etcd side by side.
    Compare(CompareArgs),
    /// N keep-alive connections fetching a 1 KiB config through 3 release rules.
    Fetch(ScenarioArgs),
    /// 1 KiB version creations (every 10th a publish) from N concurrent clients.
    Write(ScenarioArgs),
    /// 95 % fetches, 5 % writes.
    Mixed(ScenarioArgs),
    /// W watchers of one config and one writer: write-to-receipt latency.
    Watch(ScenarioArgs),
    /// How many idle watch connections one node holds, and its memory.
    Connections(ScenarioArgs),
    /// Kills or isolates the leader under write load, round after round: time to a new
    /// leader and to the first write acknowledged after the fault, elections per fault.
    Failover(FailoverArgs),
}

#[derive(Debug, clap::Args)]
struct FailoverArgs {
    /// Nodes of the cluster to start (at least 3).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Faults, one per round.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// `kill`: kill -9 the leader (restarted after the round); `isolate`: drop every packet
    /// between it and the others (needs root and nft; healed after the round).
    #[arg(long, value_enum, default_value = "kill")]
    fault: conflux_benches::failover::Fault,
    /// Write clients, spread over the nodes.
    #[arg(long, default_value_t = 6)]
    writers: usize,
    /// Pause of each client after an acknowledged write, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
    /// Fault nothing: run the write load this many minutes and count elections and leader
    /// changes (a healthy cluster has none).
    #[arg(long)]
    quiet_minutes: Option<f64>,
    /// Folder under which results are written.
    #[arg(long, default_value = "benches/results")]
    results: PathBuf,
    /// Copy the nodes' logs into this folder at the end (`CONFLUX_TEST_LOG` sets their
    /// level, e.g. `info,openraft=info` for elections).
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
struct LoadArgs {
    /// Connections of fetch, write and mixed.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open-loop rate of fetch (requests/s).
    #[arg(long)]
    fetch_rate: Option<f64>,
    /// Open-loop rate of write (writes/s).
    #[arg(long)]
    write_rate: Option<f64>,
    /// Open-loop rate of mixed (requests/s).
    #[arg(long)]
    mixed_rate: Option<f64>,
    /// Open-loop rate of the watch writer (writes/s).
    #[arg(long)]
    watch_rate: Option<f64>,
    /// Open-loop rate of new connections (connections/s).
    #[arg(long)]
    connect_rate: Option<f64>,
    /// Watchers of the watch scenario.
    #[arg(long)]
    watchers: Option<usize>,
    /// Connections the connections scenario opens (capped by the open-file limit).
    #[arg(long)]
    connections: Option<usize>,
    /// Seconds of warm-up before each measured window.
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds of each measured window.
    #[arg(long)]
    duration: Option<f64>,
    /// Folder under which results are written.
    #[arg(long, default_value = "benches/results")]
    results: PathBuf,
    /// Start Conflux with its API on TLS (certificates generated for the run), to measure what
    /// TLS costs.
    #[arg(long)]
    api_tls: bool,
    /// PEM CA certificate(s) of an https:// --target (without it, the system trust store).
    #[arg(long, env = "CONFLUX_CACERT", value_name = "PATH")]
    cacert: Option<PathBuf>,
    /// PEM client certificate for a --target that requires one; with --client-key.
    #[arg(
        long,
        env = "CONFLUX_CLIENT_CERT",
        value_name = "PATH",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "CONFLUX_CLIENT_KEY",
        value_name = "PATH",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

impl LoadArgs {
    /// TLS settings for an https:// --target.
    fn tls(&self) -> conflux_client::TlsOptions {
        conflux_client::TlsOptions::from_files(
            self.cacert.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )
    }
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Nodes of the cluster to start (default 3; 1 with --quick).
    #[arg(long)]
    nodes: Option<usize>,
    /// API URLs of an existing deployment instead of starting one (repeat per node).
    #[arg(long)]
    target: Vec<String>,
    /// CI smoke run: short durations, low load, thresholds off.
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// The baseline.
    #[arg(long, value_enum)]
    against: Against,
    /// Nodes of each cluster.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Runs per scenario, loop and system (alternating which system goes first).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Only these scenarios (repeat); default all.
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Against {
    Etcd,
}

#[derive(Debug, clap::Args)]
struct ScenarioArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Nodes of the cluster to start.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// API URLs of an existing Conflux deployment instead of starting one.
    #[arg(long)]
    target: Vec<String>,
    /// Which system to start and load.
    #[arg(long, value_enum, default_value = "conflux")]
    system: System,
    /// Closed loop, open loop or both.
    #[arg(long = "loop", value_enum, default_value = "both")]
    mode: LoopArg,
    /// How Conflux watchers connect.
    #[arg(long, value_enum, default_value = "web-socket")]
    transport: Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum LoopArg {
    Closed,
    Open,
    Both,
}

/// Full-size defaults (`compare` and single scenarios).
fn settings(load: &LoadArgs, duration_s: f64, warmup_s: f64, fds: u64) -> Settings {
    Settings {
        concurrency: load.concurrency.unwrap_or(64),
        fetch_rate: load.fetch_rate.unwrap_or(check::READ_QPS_MIN),
        write_rate: load.write_rate.unwrap_or(check::WRITE_QPS_MIN),
        mixed_rate: load.mixed_rate.unwrap_or(check::READ_QPS_MIN),
        watch_rate: load.watch_rate.unwrap_or(2.0),
        connect_rate: load.connect_rate.unwrap_or(1_000.0),
        watchers: load.watchers.unwrap_or(10_000),
        connections: load
            .connections
            .unwrap_or(10_000)
            .min(fds.saturating_sub(SPARE_FDS) as usize),
        connect_step: 1_000,
        warmup: Duration::from_secs_f64(load.warmup.unwrap_or(warmup_s)),
        duration: Duration::from_secs_f64(load.duration.unwrap_or(duration_s)),
    }
}

/// The CI smoke run's settings: every scenario, a second each, light load.
fn quick_settings(load: &LoadArgs) -> Settings {
    Settings {
        concurrency: load.concurrency.unwrap_or(4),
        fetch_rate: load.fetch_rate.unwrap_or(200.0),
        write_rate: load.write_rate.unwrap_or(50.0),
        mixed_rate: load.mixed_rate.unwrap_or(200.0),
        watch_rate: load.watch_rate.unwrap_or(5.0),
        connect_rate: load.connect_rate.unwrap_or(500.0),
        watchers: load.watchers.unwrap_or(20),
        connections: load.connections.unwrap_or(50),
        connect_step: 25,
        warmup: Duration::from_secs_f64(load.warmup.unwrap_or(0.3)),
        duration: Duration::from_secs_f64(load.duration.unwrap_or(1.0)),
    }
}

fn main() -> Result<()> {
    // The testkit starts `$CONFLUX_BIN`; default to the `conflux` built beside this binary
    // (target/release/conflux for target/release/conflux-bench) by re-running ourselves with
    // the variable set (this process cannot safely change its own environment).
    if std::env::var_os("CONFLUX_BIN").is_none() {
        let exe = std::env::current_exe()?;
        let sibling = exe.with_file_name("conflux");
        if sibling.exists() {
            let status = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .env("CONFLUX_BIN", &sibling)
                .status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
    }
    let cli = Cli::parse();
    let fds = conflux_benches::fdlimit::raise(1 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let command_line = std::iter::once("conflux-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    match cli.command {
        Command::Check(args) => check_cmd(&rt, args, fds, command_line),
        Command::Compare(args) => compare_cmd(&rt, args, fds, command_line),
        Command::Fetch(a) => scenario_cmd(&rt, Scenario::Fetch, a, fds, command_line),
        Command::Write(a) => scenario_cmd(&rt, Scenario::Write, a, fds, command_line),
        Command::Mixed(a) => scenario_cmd(&rt, Scenario::Mixed, a, fds, command_line),
        Command::Watch(a) => scenario_cmd(&rt, Scenario::Watch, a, fds, command_line),
        Command::Connections(a) => scenario_cmd(&rt, Scenario::Connections, a, fds, command_line),
        Command::Failover(a) => failover_cmd(&rt, a, fds, command_line),
    }
}

fn warn_if_debug_build(quick: bool) {
    let bin = std::env::var("CONFLUX_BIN").unwrap_or_default();
    if !quick && bin.contains("/debug/") {
        eprintln!("warning: CONFLUX_BIN={bin} is a debug build; figures will be meaningless");
    }
}

/// A prepared target of `system`: started here with `nodes` nodes, or attached to `urls`.
fn start_target(
    rt: &tokio::runtime::Runtime,
    load: &LoadArgs,
    system: System,
    nodes: usize,
    urls: &[String],
    writers: usize,
) -> Result<Target> {
    match system {
        System::Conflux => {
            let mut c = if urls.is_empty() {
                Conflux::start(nodes, load.api_tls)?
            } else {
                Conflux::attach(urls, load.tls())?
            };
            rt.block_on(c.prepare(writers))
                .context("preparing Conflux")?;
            Ok(Target::Conflux(Box::new(c)))
        }
        System::Etcd => {
            if !urls.is_empty() {
                bail!("--target is for Conflux deployments; etcd is always started here");
            }
            if load.api_tls {
                bail!("--api-tls is for Conflux; etcd is always started without TLS");
            }
            rt.block_on(async {
                let mut e = Etcd::start(nodes).await?;
                e.prepare().await?;
                anyhow::Ok(Target::Etcd(e))
            })
        }
    }
}

/// Runs `scenario` once in `mode` against `target`. `baseline_rss` is the node's memory
/// before any load (connections).
async fn run_one(
    target: &Target,
    scenario: Scenario,
    mode: Loop,
    settings: &Settings,
    baseline_rss: Option<u64>,
    round: usize,
) -> Result<RunRecord> {
    let record = match scenario {
        Scenario::Fetch | Scenario::Write | Scenario::Mixed => {
            scenarios::requests::run(target, scenario, mode, settings, round).await?
        }
        Scenario::Connections => {
            scenarios::connections::run(target, mode, settings, baseline_rss, round).await?
        }
        Scenario::Watch => {
            let mut session = scenarios::watch::open(target, settings.watchers).await?;
            scenarios::watch::run(target, &mut session, mode, settings, round).await?
        }
    };
    eprintln!(
        "  {} {} {}: {} {}, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        record.system,
        record.scenario.name(),
        record.mode,
        scenarios::fmt_count(record.throughput),
        record.unit,
        record.latency.p50_ms,
        record.latency.p99_ms,
        record.errors
    );
    Ok(record)
}

/// Both loops of the watch scenario on one set of watchers (opening 10,000 is slow).
async fn run_watch(
    target: &Target,
    modes: &[Loop],
    settings: &Settings,
    round: usize,
) -> Result<Vec<RunRecord>> {
    let mut session = scenarios::watch::open(target, settings.watchers).await?;
    let mut out = Vec::new();
    for &mode in modes {
        let r = scenarios::watch::run(target, &mut session, mode, settings, round).await?;
        eprintln!(
            "  {} watch {}: {} notifications/s, p50 {:.2} ms, p99 {:.2} ms, {} missed",
            r.system,
            r.mode,
            scenarios::fmt_count(r.throughput),
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.errors
        );
        out.push(r);
    }
    Ok(out)
}

fn save(report: &Report, dir: PathBuf) -> Result<()> {
    let files = report.save(&dir)?;
    println!();
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn check_cmd(
    rt: &tokio::runtime::Runtime,
    args: CheckArgs,
    fds: u64,
    command: String,
) -> Result<()> {
    let s = if args.quick {
        quick_settings(&args.load)
    } else {
        settings(&args.load, 5.0, 1.0, fds)
    };
    warn_if_debug_build(args.quick);
    let nodes = args.nodes.unwrap_or(if args.quick { 1 } else { 3 });
    let thresholds = !args.quick;
    let mut report = Report::new(command, Machine::describe(fds), s.clone());
    eprintln!(
        "check: {} ({} node(s)), {:.0} s windows",
        if args.target.is_empty() {
            "starting Conflux"
        } else {
            "Conflux at --target"
        },
        nodes,
        s.duration.as_secs_f64()
    );
    let target = start_target(
        rt,
        &args.load,
        System::Conflux,
        nodes,
        &args.target,
        s.concurrency,
    )?;
    let baseline = target.first_node_rss();
    let both = |sc| [Loop::Closed, s.open(sc)];
    rt.block_on(async {
        for sc in [
            Scenario::Connections,
            Scenario::Fetch,
            Scenario::Write,
            Scenario::Mixed,
        ] {
            for mode in both(sc) {
                report
                    .runs
                    .push(run_one(&target, sc, mode, &s, baseline, 0).await?);
            }
        }
        report
            .runs
            .extend(run_watch(&target, &both(Scenario::Watch), &s, 0).await?);
        anyhow::Ok(())
    })?;
    drop(target);
    report.summarize();
    report.checks = check::evaluate(&report.summary, s.watchers);
    if !thresholds {
        report
            .notes
            .push("--quick: short and light, thresholds off".into());
    }
    println!("# conflux-bench check\n");
    println!(
        "{}, {nodes} node(s); `{}`\n",
        report.machine.line(),
        report.command
    );
    print!("{}", check::markdown(&report.checks, thresholds));
    println!();
    print!("{}", markdown_runs(&report.summary));
    println!();
    print!("{}", markdown_watch_writers(&report.summary));
    let dir = args.load.results.join(if args.quick {
        "check-quick".to_owned()
    } else {
        format!("check-{nodes}node")
    });
    save(&report, dir)?;
    let idle: Vec<&RunRecord> = report.summary.iter().filter(|r| r.ok == 0).collect();
    if !idle.is_empty() {
        for r in &idle {
            eprintln!(
                "error: {} {} measured nothing ({} errors)",
                r.scenario.name(),
                r.mode,
                r.errors
            );
        }
        std::process::exit(2);
    }
    let missed = check::misses(&report.checks);
    if thresholds && !missed.is_empty() {
        for m in &missed {
            eprintln!("MISSED {m}");
        }
        std::process::exit(1);
    }
    Ok(())
}

fn compare_cmd(
    rt: &tokio::runtime::Runtime,
    args: CompareArgs,
    fds: u64,
    command: String,
) -> Result<()> {
    let Against::Etcd = args.against;
    let s = settings(&args.load, 10.0, 2.0, fds);
    warn_if_debug_build(false);
    let wanted = |sc: Scenario| args.scenario.is_empty() || args.scenario.contains(&sc);
    let mut report = Report::new(command, Machine::describe(fds), s.clone());
    eprintln!(
        "compare: starting Conflux and etcd, {} node(s) each",
        args.nodes
    );
    let conflux = start_target(
        rt,
        &args.load,
        System::Conflux,
        args.nodes,
        &[],
        s.concurrency,
    )?;
    let etcd = start_target(rt, &args.load, System::Etcd, args.nodes, &[], s.concurrency)?;
    let baselines = [conflux.first_node_rss(), etcd.first_node_rss()];
    let targets = [&conflux, &etcd];
    // Alternate which system goes first so drift (other tenants, disk, thermals) hits both.
    let order = |round: usize| {
        if round.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        }
    };
    let rounds = args.rounds.max(1);
    rt.block_on(async {
        if wanted(Scenario::Connections) {
            for (n, i) in order(0).into_iter().enumerate() {
                for mode in [Loop::Closed, s.open(Scenario::Connections)] {
                    let r = run_one(targets[i], Scenario::Connections, mode, &s, baselines[i], n)
                        .await?;
                    report.runs.push(r);
                }
            }
        }
        for sc in [Scenario::Fetch, Scenario::Write, Scenario::Mixed] {
            if !wanted(sc) {
                continue;
            }
            for mode in [Loop::Closed, s.open(sc)] {
                for round in 0..rounds {
                    for i in order(round) {
                        let r = run_one(targets[i], sc, mode, &s, None, round).await?;
                        report.runs.push(r);
                    }
                }
            }
        }
        if wanted(Scenario::Watch) {
            for round in 0..rounds {
                for i in order(round) {
                    let modes = [Loop::Closed, s.open(Scenario::Watch)];
                    report
                        .runs
                        .extend(run_watch(targets[i], &modes, &s, round).await?);
                }
            }
        }
        anyhow::Ok(())
    })?;
    drop(conflux);
    drop(etcd);
    report.summarize();
    report.notes.push(format!(
        "{rounds} round(s) per scenario and loop, alternating which system runs first; \
         etcd reads are serializable (local, like a Conflux fetch), writes linearizable puts"
    ));
    println!(
        "# conflux-bench compare --against etcd --nodes {}\n",
        args.nodes
    );
    println!("{}; `{}`\n", report.machine.line(), report.command);
    print!("{}", markdown_compare(&report.summary));
    println!();
    print!("{}", markdown_watch_writers(&report.summary));
    let dir = args
        .load
        .results
        .join(format!("compare-{}node", args.nodes));
    save(&report, dir)
}

fn scenario_cmd(
    rt: &tokio::runtime::Runtime,
    scenario: Scenario,
    args: ScenarioArgs,
    fds: u64,
    command: String,
) -> Result<()> {
    let s = settings(&args.load, 10.0, 2.0, fds);
    warn_if_debug_build(false);
    let mut report = Report::new(command, Machine::describe(fds), s.clone());
    let mut target = start_target(
        rt,
        &args.load,
        args.system,
        args.nodes,
        &args.target,
        s.concurrency,
    )?;
    if let Target::Conflux(c) = &mut target {
        c.transport = args.transport;
    }
    let baseline = target.first_node_rss();
    let modes: Vec<Loop> = match args.mode {
        LoopArg::Closed => vec![Loop::Closed],
        LoopArg::Open => vec![s.open(scenario)],
        LoopArg::Both => vec![Loop::Closed, s.open(scenario)],
    };
    rt.block_on(async {
        if scenario == Scenario::Watch {
            report.runs = run_watch(&target, &modes, &s, 0).await?;
            return anyhow::Ok(());
        }
        for &mode in &modes {
            report
                .runs
                .push(run_one(&target, scenario, mode, &s, baseline, 0).await?);
        }
        anyhow::Ok(())
    })?;
    let nodes = target.nodes();
    drop(target);
    report.summarize();
    println!("# conflux-bench {}\n", scenario.name());
    println!(
        "{}, {nodes} node(s); `{}`\n",
        report.machine.line(),
        report.command
    );
    print!("{}", markdown_runs(&report.summary));
    let dir = args.load.results.join(format!(
        "{}-{}-{nodes}node",
        scenario.name(),
        args.system.name()
    ));
    save(&report, dir)
}

fn failover_cmd(
    rt: &tokio::runtime::Runtime,
    args: FailoverArgs,
    fds: u64,
    command: String,
) -> Result<()> {
    use conflux_benches::failover;
    warn_if_debug_build(false);
    let load = failover::Load {
        writers: args.writers.max(1),
        pause: Duration::from_millis(args.pause_ms),
    };
    let machine = Machine::describe(fds);
    let nodes = args.nodes;
    let (dir, text, json) = match args.quiet_minutes {
        Some(minutes) => {
            if !(minutes > 0.0 && minutes.is_finite()) {
                bail!("--quiet-minutes takes a positive number of minutes");
            }
            eprintln!(
                "failover: {nodes} nodes, {} writers, no faults for {minutes} min",
                load.writers
            );
            let run = failover::run_quiet(
                rt,
                nodes,
                Duration::from_secs_f64(minutes * 60.0),
                load,
                args.logs.as_deref(),
            )?;
            let text = failover::markdown_quiet(&run);
            let json = serde_json::json!({"command": command, "machine": machine, "quiet": run});
            (format!("failover-quiet-{nodes}node"), text, json)
        }
        None => {
            eprintln!(
                "failover: {nodes} nodes, {} writers, {} rounds of {}",
                load.writers,
                args.rounds,
                args.fault.name()
            );
            let run = failover::run_failover(
                rt,
                nodes,
                args.rounds.max(1),
                args.fault,
                load,
                args.logs.as_deref(),
            )?;
            let text = failover::markdown_failover(&run);
            let json = serde_json::json!({"command": command, "machine": machine, "failover": run});
            (
                format!("failover-{}-{nodes}node", args.fault.name()),
                text,
                json,
            )
        }
    };
    println!("# conflux-bench failover\n");
    println!("{}, {nodes} node(s); `{command}`\n", machine.line());
    print!("{text}");
    let dir = args.results.join(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("results.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&json)?)?;
    println!("\nwrote {}", file.display());
    Ok(())
}
