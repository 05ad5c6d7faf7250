//! `conflux-chaos`: seeded fault-injection runs against a real Conflux cluster, judged by the
//! checkers. See chaos/README.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use conflux_chaos::report::{self, ScenarioRow};
use conflux_chaos::run::{self, RunOptions, RunSummary};
use conflux_chaos::schedule::{SCENARIOS, Scenario, scenario};

#[derive(Debug, Parser)]
#[command(
    name = "conflux-chaos",
    about = "Seeded fault injection against a real Conflux cluster, judged by checkers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One seeded run of one scenario.
    Run {
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Where the run's folder goes.
        #[arg(long, default_value = "chaos-results")]
        out: PathBuf,
    },
    /// Many runs over scenarios, seeds and cluster sizes, with a summary table.
    Campaign {
        #[arg(long, default_value_t = 100)]
        runs: u64,
        /// Comma-separated scenario names (default: all).
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
        /// Run i uses seed `seed_base + i` and scenario number `(seed_base + i) % scenarios`.
        #[arg(long, default_value_t = 1)]
        seed_base: u64,
        /// Cluster sizes, used in turn (a scenario that needs more nodes gets its minimum).
        #[arg(long, value_delimiter = ',', default_value = "3,5")]
        nodes: Vec<u64>,
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "chaos-results")]
        out: PathBuf,
    },
    /// Lists the scenarios.
    Scenarios,
    /// Removes what crashed runs left behind (namespaces, bridges, mounts).
    Cleanup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_async(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Sets the returned flag on Ctrl-C or SIGTERM: the run stops early and cleans up.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let set = flag.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: stopping the run and removing its cluster");
        set.store(true, Ordering::Relaxed);
    });
    Ok(flag)
}

/// `Ok(true)`: every run passed.
async fn main_async(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Scenarios => {
            for s in SCENARIOS {
                println!("{:16} (>= {} nodes) {}", s.name, s.min_nodes, s.about);
            }
            Ok(true)
        }
        Command::Cleanup => {
            for what in conflux_chaos::net::remove_leftovers() {
                println!("removed {what}");
            }
            Ok(true)
        }
        Command::Run {
            scenario: name,
            seed,
            nodes,
            duration,
            out,
        } => {
            let s = scenario(&name).with_context(|| unknown_scenario(&name))?;
            let nodes = nodes.max(s.min_nodes);
            let opts = RunOptions {
                scenario: s,
                seed,
                nodes,
                duration,
                out: out.join(format!("{name}-n{nodes}-s{seed}")),
            };
            let summary = run::run(&opts, interrupt_flag()?).await?;
            print!("{}", report::run_markdown(&summary));
            println!("\nrun folder: {}", opts.out.display());
            Ok(summary.passed())
        }
        Command::Campaign {
            runs,
            scenarios,
            seed_base,
            nodes,
            duration,
            out,
        } => {
            let chosen: Vec<&'static Scenario> = if scenarios.is_empty() {
                SCENARIOS.iter().collect()
            } else {
                scenarios
                    .iter()
                    .map(|n| scenario(n).with_context(|| unknown_scenario(n)))
                    .collect::<Result<_>>()?
            };
            if nodes.is_empty() {
                bail!("--nodes needs at least one cluster size");
            }
            let interrupted = interrupt_flag()?;
            let mut rows: BTreeMap<(String, u64), ScenarioRow> = BTreeMap::new();
            let mut failures = Vec::new();
            std::fs::create_dir_all(&out)?;
            for i in 0..runs {
                if interrupted.load(Ordering::Relaxed) {
                    break;
                }
                let seed = seed_base + i;
                let s = chosen[(seed as usize) % chosen.len()];
                let size = nodes[((seed as usize) / chosen.len()) % nodes.len()].max(s.min_nodes);
                let opts = RunOptions {
                    scenario: s,
                    seed,
                    nodes: size,
                    duration,
                    out: out.join(format!("{}-n{size}-s{seed}", s.name)),
                };
                eprintln!("run {}/{runs}: {}", i + 1, opts.reproduce());
                let summary = match run::run(&opts, interrupted.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        failures.push(format!("`{}`: could not run: {e:#}", opts.reproduce()));
                        continue;
                    }
                };
                eprintln!("  {}", one_line(&summary));
                if !summary.passed() {
                    failures.push(format!(
                        "`{}`: {} (folder {})",
                        opts.reproduce(),
                        one_line(&summary),
                        opts.out.display()
                    ));
                }
                add(&mut rows, &summary);
            }
            let commit = commit();
            let table = report::campaign_markdown(&commit, &rows, &failures);
            std::fs::write(out.join("campaign.md"), &table)?;
            print!("{table}");
            Ok(failures.is_empty())
        }
    }
}

fn unknown_scenario(name: &str) -> String {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    format!(
        "no scenario {name:?}; the scenarios are {}",
        names.join(", ")
    )
}

fn one_line(s: &RunSummary) -> String {
    let verdict = if s.passed() { "pass" } else { "FAIL" };
    let mut line = format!(
        "{verdict}: {} ops ({} unknown), {} faults, {} elections, {} anomalies",
        s.operations,
        s.unknown,
        s.faults,
        s.elections,
        s.anomalies.len()
    );
    if let Some(e) = &s.harness_error {
        line += &format!(", harness error: {e}");
    }
    if !s.converged {
        line += ", not converged";
    }
    line
}

fn add(rows: &mut BTreeMap<(String, u64), ScenarioRow>, s: &RunSummary) {
    let row = rows.entry((s.scenario.clone(), s.nodes)).or_default();
    row.runs += 1;
    row.failed_runs += usize::from(!s.passed());
    row.operations += s.operations;
    row.faults += s.faults;
    row.elections += s.elections;
    row.failover_ms.extend(&s.failover_ms);
    for a in &s.anomalies {
        *row.anomalies.entry(a.checker.to_owned()).or_default() += 1;
    }
    if s.harness_error.is_some() {
        *row.anomalies.entry("harness".to_owned()).or_default() += 1;
    }
}

/// The commit the campaign ran on (with `+dirty` for uncommitted changes).
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+dirty") } else { c }
        }
        None => "unknown".to_owned(),
    }
}
