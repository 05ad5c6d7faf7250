//! `conflux-bench`: starts a cluster of release-build nodes on loopback (data on disk, fsync
//! on) and measures it. Scenarios so far: `write` (1 KiB version creations from N concurrent
//! clients, closed loop).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, QuotasPatch, RetentionPolicy,
};
use conflux_benches::json_doc;
use conflux_benches::scenarios::watch as watchers;
use conflux_benches::stats::{Latencies, cpu_seconds, rss_bytes};
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_domain::{RetentionKind, RetentionRule, RetentionStrategy};
use conflux_testkit::{Cluster, NodeSpec, TestNode};

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
    /// Latency from a write's acknowledgement to each watcher's receipt, with many watchers
    /// of one config on one node, and the memory per idle watcher.
    Watch(WatchArgs),
    /// How many idle watch connections one node holds within a memory budget.
    Connections(ConnectionsArgs),
}

#[derive(Debug, clap::Args)]
struct WatchArgs {
    /// Concurrent long-poll watchers of one config.
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Writes to measure (each notifies every watcher).
    #[arg(long, default_value_t = 5)]
    writes: usize,
    #[arg(long, value_enum, default_value = "web-socket")]
    transport: watchers::Transport,
}

#[derive(Debug, clap::Args)]
struct ConnectionsArgs {
    /// Stop when the node's resident memory reaches this many MiB.
    #[arg(long, default_value_t = 1024)]
    max_rss_mib: u64,
    /// Stop at this many connections in any case.
    #[arg(long, default_value_t = 60_000)]
    max_connections: usize,
    /// Connections opened per step.
    #[arg(long, default_value_t = 5_000)]
    step: usize,
    #[arg(long, value_enum, default_value = "web-socket")]
    transport: watchers::Transport,
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
        Scenario::Watch(args) => watch(args),
        Scenario::Connections(args) => connections(args),
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

/// Starts one release-build node with a published text config; answers the node, the config
/// id and the config's revision.
fn watch_node(rt: &tokio::runtime::Runtime) -> Result<(TestNode, u64, u64)> {
    let node = TestNode::start(NodeSpec::new(1))
        .context("starting the node (is CONFLUX_BIN a release build?)")?;
    let admin = ApiClient::new(&node.api_url())?;
    let (id, revision) = rt.block_on(async {
        let w = WriteOptions::default();
        admin
            .create_tenant(
                &CreateTenant {
                    name: "bench".into(),
                    display_name: None,
                    quotas: None,
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
        let cfg = CreateConfig {
            name: "watched.txt".into(),
            format: Format::Text,
            schema: None,
            retention: None,
            description: None,
        };
        let id = admin
            .create_config("bench", "svc", "prod", &cfg, &w)
            .await?
            .id;
        let published = admin.publish(id, &publish_body("v0"), &w).await?;
        anyhow::Ok((id, published.revision))
    })?;
    Ok((node, id, revision))
}

fn publish_body(content: &str) -> conflux_api_types::PublishRequest {
    conflux_api_types::PublishRequest {
        content: content.to_owned(),
        description: None,
        strategy: conflux_api_types::Strategy::Stable,
    }
}

fn watch(args: WatchArgs) -> Result<()> {
    let fds = conflux_benches::fdlimit::raise(args.watchers as u64 + 1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (node, id, revision) = watch_node(&rt)?;
    let pid = node.pid().map(|p| p.to_string()).unwrap_or_default();
    let server = node.api_addr();
    let url = node.api_url();
    let rss_before = rss_bytes(&pid).unwrap_or(0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let result = rt.block_on(async {
        watchers::spawn_watchers(
            args.transport,
            server,
            "bench/svc/prod/watched.txt".into(),
            revision,
            0,
            args.watchers,
            tx,
            failures.clone(),
        )
        .await;
        watchers::wait_subscriptions(&url, args.watchers, Duration::from_secs(120)).await?;
        let rss_idle = rss_bytes(&pid).unwrap_or(0);
        let admin = ApiClient::new(&url)?;
        let mut latencies = Latencies::default();
        let (cpu0, self0) = (
            cpu_seconds(&pid).unwrap_or(0.0),
            cpu_seconds("self").unwrap_or(0.0),
        );
        for k in 0..args.writes {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let published = admin
                .publish(
                    id,
                    &publish_body(&format!("v{}", k + 1)),
                    &WriteOptions::default(),
                )
                .await?;
            let acked = Instant::now();
            let mut received = 0;
            let deadline = acked + Duration::from_secs(60);
            while received < args.watchers {
                let Ok(Some((rev, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await
                else {
                    bail!(
                        "write {k}: only {received} of {} watchers were notified within 60 s",
                        args.watchers
                    );
                };
                if rev >= published.revision {
                    // A watcher can be told before the writer reads its own acknowledgement.
                    latencies.record(at.saturating_duration_since(acked));
                    received += 1;
                }
            }
        }
        let (cpu1, self1) = (
            cpu_seconds(&pid).unwrap_or(0.0),
            cpu_seconds("self").unwrap_or(0.0),
        );
        anyhow::Ok((latencies, rss_idle, cpu1 - cpu0, self1 - self0))
    });
    let (latencies, rss_idle, server_cpu, client_cpu) = result?;
    println!(
        "watch: {} {:?} watchers of one config on one node, {} writes; open-file limit {fds}; {} cores",
        args.watchers,
        args.transport,
        args.writes,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| notification latency p50 | p99 | max | memory per idle watcher | server CPU s | load-gen CPU s |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} KiB | {:.2} | {:.2} |",
        latencies.quantile(0.5).as_secs_f64() * 1e3,
        latencies.quantile(0.99).as_secs_f64() * 1e3,
        latencies.max().as_secs_f64() * 1e3,
        rss_idle.saturating_sub(rss_before) as f64 / args.watchers as f64 / 1024.0,
        server_cpu,
        client_cpu
    );
    Ok(())
}

fn connections(args: ConnectionsArgs) -> Result<()> {
    let fds = conflux_benches::fdlimit::raise(args.max_connections as u64 + 4096);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (node, _id, revision) = watch_node(&rt)?;
    let pid = node.pid().map(|p| p.to_string()).unwrap_or_default();
    let server = node.api_addr();
    let url = node.api_url();
    let rss_before = rss_bytes(&pid).unwrap_or(0);
    let limit = args.max_rss_mib * 1024 * 1024;
    // Each connection costs a descriptor in this process and in the node.
    let max_connections = args.max_connections.min((fds as usize).saturating_sub(512));
    println!(
        "connections: idle {:?} watchers on one node until {} MiB RSS or {max_connections} connections (open-file limit {fds})",
        args.transport, args.max_rss_mib
    );
    println!("| connections | node RSS MiB | bytes per connection |");
    println!("|---|---|---|");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut open = 0;
    let mut last = (0usize, rss_before);
    rt.block_on(async {
        while open < max_connections {
            let n = args.step.min(max_connections - open);
            watchers::spawn_watchers(
                args.transport,
                server,
                "bench/svc/prod/watched.txt".into(),
                revision,
                open,
                n,
                tx.clone(),
                failures.clone(),
            )
            .await;
            open += n;
            let registered =
                watchers::wait_subscriptions(&url, open, Duration::from_secs(120)).await;
            let rss = rss_bytes(&pid).unwrap_or(0);
            let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
            match registered {
                Ok(have) => {
                    println!(
                        "| {have} | {:.0} | {:.0} |",
                        rss as f64 / 1048576.0,
                        rss.saturating_sub(rss_before) as f64 / have as f64
                    );
                    last = (have, rss);
                }
                Err(e) => {
                    println!("stopped: {e} ({failed} connections failed)");
                    break;
                }
            }
            if rss >= limit {
                println!("stopped: the node reached {} MiB", rss / 1048576);
                break;
            }
        }
        anyhow::Ok(())
    })?;
    let (count, rss) = last;
    if count > 0 {
        let per = rss.saturating_sub(rss_before) as f64 / count as f64;
        println!(
            "{count} idle watch connections held at {:.0} MiB RSS ({per:.0} bytes each): about {:.0} connections per GiB",
            rss as f64 / 1048576.0,
            (limit.saturating_sub(rss_before)) as f64 / per
        );
    }
    Ok(())
}
