//! `conflux-bench`: starts a cluster of release-build nodes on loopback (data on disk, fsync
//! on) and measures it. Scenarios so far: `write` (1 KiB version creations from N concurrent
//! clients, closed loop).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, QuotasPatch, RetentionPolicy,
};
use conflux_benches::json_doc;
use conflux_benches::stats::{Latencies, cpu_seconds};
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_domain::{RetentionKind, RetentionRule, RetentionStrategy};
use conflux_testkit::Cluster;

#[derive(Debug, Parser)]
#[command(
    name = "conflux-bench",
    about = "Load tests of a Conflux cluster started on this machine"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Version creations of a 1 KiB JSON document from concurrent clients.
    Write(WriteArgs),
}

#[derive(Debug, clap::Args)]
struct WriteArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent clients; give several to measure each (e.g. --clients 64 --clients 256).
    #[arg(long, default_values_t = [64usize, 256])]
    clients: Vec<usize>,
    /// Seconds of measurement per run (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Which nodes the clients talk to: all (spread, followers forward) or the leader.
    #[arg(long, default_value = "all")]
    target: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Write(args) => write(args),
    }
}

struct RunResult {
    clients: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Latencies,
    server_cpu: f64,
    client_cpu: f64,
}

fn write(args: WriteArgs) -> Result<()> {
    let cluster = Cluster::start(args.nodes)
        .context("starting the cluster (is CONFLUX_BIN a release build?)")?;
    let leader = cluster.wait_for_leader(Duration::from_secs(30))?;
    let endpoints: Vec<String> = match args.target.as_str() {
        "leader" => vec![cluster.node(leader).api_url()],
        _ => cluster.nodes().iter().map(|n| n.api_url()).collect(),
    };
    let pids: Vec<String> = cluster
        .nodes()
        .iter()
        .filter_map(|n| n.pid())
        .map(|p| p.to_string())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for (run, &clients) in args.clients.iter().enumerate() {
        let r = rt.block_on(write_run(
            &endpoints,
            &pids,
            clients,
            run,
            Duration::from_secs(args.duration),
        ))?;
        results.push(r);
    }
    println!(
        "write: {} nodes, 1 KiB JSON versions, closed loop, target={}, fsync on; {} cores",
        args.nodes,
        args.target,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| clients | writes/s | p50 | p99 | max | errors | server CPU s | load-gen CPU s |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.1} | {:.1} |",
            r.clients,
            r.ok as f64 / r.elapsed.as_secs_f64(),
            r.latencies.quantile(0.5).as_secs_f64() * 1e3,
            r.latencies.quantile(0.99).as_secs_f64() * 1e3,
            r.latencies.max().as_secs_f64() * 1e3,
            r.errors,
            r.server_cpu,
            r.client_cpu
        );
    }
    Ok(())
}

async fn write_run(
    endpoints: &[String],
    pids: &[String],
    clients: usize,
    run: usize,
    duration: Duration,
) -> Result<RunResult> {
    let admin = ApiClient::new(&endpoints[0])?;
    let w = WriteOptions::default();
    if run == 0 {
        let quotas = QuotasPatch {
            max_versions_per_config: Some(1_000_000),
            max_configs: Some(100_000),
            ..Default::default()
        };
        admin
            .create_tenant(
                &CreateTenant {
                    name: "bench".into(),
                    display_name: None,
                    quotas: Some(quotas),
                },
                &w,
            )
            .await?;
        admin
            .create_app(
                "bench",
                &CreateApp {
                    name: "svc".into(),
                    description: None,
                },
                &w,
            )
            .await?;
        admin
            .create_env(
                "bench",
                "svc",
                &CreateEnvironment {
                    name: "prod".into(),
                    description: None,
                    approval: None,
                },
                &w,
            )
            .await?;
    }
    // One config per client, as many services would have; retention keeps the last 100.
    let retention = RetentionPolicy {
        strategy: RetentionStrategy::Or,
        rules: vec![RetentionRule {
            kind: RetentionKind::Count,
            keep: 100,
        }],
    };
    let mut ids = Vec::new();
    for c in 0..clients {
        let cfg = CreateConfig {
            name: format!("run{run}-c{c}.json"),
            format: Format::Json,
            schema: None,
            retention: Some(retention.clone()),
            description: None,
        };
        ids.push(
            admin
                .create_config("bench", "svc", "prod", &cfg, &w)
                .await?
                .id,
        );
    }
    let body = bytes::Bytes::from(json_doc(1024));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (c, id) in ids.into_iter().enumerate() {
        let client =
            ApiClient::new(&endpoints[c % endpoints.len()])?.with_timeout(Duration::from_secs(10));
        let (stop, measuring, body) = (stop.clone(), measuring.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let (mut ok, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let res = client
                    .create_version(
                        id,
                        NewVersion::new(body.clone(), "application/json"),
                        &WriteOptions::default(),
                    )
                    .await;
                if measuring.load(Ordering::Relaxed) {
                    match res {
                        Ok(_) => {
                            ok += 1;
                            lat.record(started.elapsed());
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            (ok, errors, lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0: f64 = pids.iter().filter_map(|p| cpu_seconds(p)).sum();
    let self0 = cpu_seconds("self").unwrap_or(0.0);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu1: f64 = pids.iter().filter_map(|p| cpu_seconds(p)).sum();
    let self1 = cpu_seconds("self").unwrap_or(0.0);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Latencies::default();
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (o, e, l) = t.await?;
        ok += o;
        errors += e;
        latencies.merge(&l);
    }
    Ok(RunResult {
        clients,
        ok,
        errors,
        elapsed,
        latencies,
        server_cpu: cpu1 - cpu0,
        client_cpu: self1 - self0,
    })
}
