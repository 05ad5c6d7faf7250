//! Running one node: open storage, start Raft, bootstrap a new cluster if this is the first
//! start of a standalone node, serve the HTTP API until shutdown, then stop cleanly.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use conflux_domain::{retention_sweep_needed, Command, Proposal};
use tokio::net::TcpListener;

use crate::api::{self, now_ms, AppInner, AppState};
use crate::config::NodeConfig;
use crate::raft::network::Network;
use crate::raft::{NodeInfo, Raft};
use crate::storage;

/// Raft timing. Loopback and LAN clusters: heartbeats every 100 ms, elections after
/// 400-800 ms of silence.
fn raft_config(config: &NodeConfig) -> anyhow::Result<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "conflux".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        // Keep some log after a snapshot so a briefly lagging follower catches up from the
        // log rather than needing a whole snapshot.
        max_in_snapshot_log_to_keep: 1000,
        max_payload_entries: 256,
        ..Default::default()
    };
    c.validate().context("invalid Raft configuration")
}

/// Runs a node until `shutdown` resolves. `api_listener` is already bound (port 0 works).
pub async fn run(
    config: NodeConfig,
    api_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let api_addr = api_listener.local_addr().context("reading the API listener address")?;
    let storage = storage::open(&config.data_dir, config.node_id)
        .with_context(|| format!("opening storage in {}", config.data_dir.display()))?;
    let plane = storage.state_machine.plane();
    let raft_cfg = Arc::new(raft_config(&config)?);
    let raft = Raft::new(config.node_id, raft_cfg, Network, storage.log, storage.state_machine)
        .await
        .context("starting Raft")?;

    let me = NodeInfo { raft_addr: config.raft_addr.clone(), api_addr: api_addr.to_string() };
    bootstrap(&raft, config.node_id, me).await?;

    let state = AppState::new(AppInner {
        node_id: config.node_id,
        raft: raft.clone(),
        plane: plane.clone(),
        write_timeout: config.write_timeout,
        min_revision_wait: config.min_revision_wait,
    });
    let sweeper = tokio::spawn(retention_sweeper(raft.clone(), plane, config.node_id, config.retention_interval));

    println!(
        "Conflux node {} serving the API on http://{api_addr} (data in {})",
        config.node_id,
        config.data_dir.display()
    );
    let app = api::router(state);
    let served = axum::serve(api_listener, app).with_graceful_shutdown(shutdown).await;

    sweeper.abort();
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "Raft did not shut down cleanly");
    }
    served.context("serving the API")?;
    tracing::info!("node stopped");
    Ok(())
}

/// A standalone node initialises a one-member cluster on its first start. `initialize` is
/// refused by openraft once the node has any log or vote, so a restart never re-initialises.
async fn bootstrap(raft: &Raft, node_id: u64, me: NodeInfo) -> anyhow::Result<()> {
    if raft.is_initialized().await.context("reading Raft state")? {
        return Ok(());
    }
    let members = BTreeMap::from([(node_id, me)]);
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(node_id, "initialised a new single-node cluster");
            Ok(())
        }
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("initialising the cluster: {e}")),
    }
}

/// On the leader, periodically proposes a retention sweep when time-based rules have
/// something to purge. The decision of *what* to purge is taken in apply.
async fn retention_sweeper(raft: Raft, plane: storage::ConfigPlane, node_id: u64, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let is_leader = raft.metrics().borrow().current_leader == Some(node_id);
        if !is_leader || !plane.read(|s| retention_sweep_needed(s, now_ms())) {
            continue;
        }
        match raft.client_write(Proposal::new(now_ms(), Command::SweepRetention)).await {
            Ok(r) => tracing::info!(revision = r.data.revision, "retention sweep applied"),
            Err(e) => tracing::warn!(error = %e, "retention sweep not applied"),
        }
    }
}
