//! Running one node: open storage, start Raft and its listener, form or join the cluster,
//! serve the HTTP API until shutdown, then stop cleanly.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use conflux_api_types::JoinRequest;
use conflux_domain::{Command, Proposal, retention_sweep_needed};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::heavy::HeavyJobs;
use crate::api::tls::{ApiTls, TlsListener};
use crate::api::{self, AppInner, AppState};
use crate::audit::Auditor;
use crate::auth::link::read_bootstrap_token;
use crate::auth::{LinkSettings, MetadataLink};
use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::raft::election::{self, ElectionAssist};
use crate::raft::network::Network;
use crate::raft::peers::Peers;
use crate::raft::service::RaftService;
use crate::raft::{NodeInfo, Raft, tls};
use crate::storage;

/// Raft timing for loopback and LAN clusters: heartbeats every 100 ms; a follower
/// campaigns when it has heard from no leader for openraft's leader lease (the longest
/// election timeout, 600 ms) plus its own random election timeout (300-600 ms), checked on
/// openraft's tick (every 150 ms, 1.5 heartbeats). That is 9 heartbeats missed in a row at
/// the least: a 10-minute fault-free run under write load holds no election
/// (`conflux-bench failover --quiet-minutes 10`), and a leader loss costs 0.9-1.35 s
/// before the first vote (see `raft/election.rs` for what makes that the common case).
pub const HEARTBEAT_MS: u64 = 100;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 600;

fn raft_config(config: &NodeConfig) -> anyhow::Result<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "conflux".into(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        // Snapshot RPCs carry bounded chunks.
        snapshot_max_chunk_size: 1024 * 1024,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        // Keep some log after a snapshot so a briefly lagging follower catches up from the
        // log rather than needing a whole snapshot.
        max_in_snapshot_log_to_keep: (config.snapshot_every / 10).min(1000),
        max_payload_entries: 256,
        ..Default::default()
    };
    c.validate().context("invalid Raft configuration")
}

/// Runs a node until `shutdown` resolves. `api_listener` is already bound (port 0 works);
/// the Raft listener is bound here from `config.raft_addr` (port 0 works too).
pub async fn run(
    config: NodeConfig,
    api_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let api_addr = api_listener
        .local_addr()
        .context("reading the API listener address")?;
    // TLS files first: a bad one stops the node before it touches anything.
    let api_tls = config
        .api_tls
        .as_ref()
        .map(ApiTls::load)
        .transpose()
        .map_err(|e| anyhow::anyhow!("API TLS: {e}"))?;
    raise_fd_limit();
    // Reads the clock once, so a skew set for tests is logged at start.
    crate::clock::now_ms();
    let raft_listener = listen(&config.raft_addr)
        .await
        .with_context(|| format!("cannot listen on the Raft address {}", config.raft_addr))?;
    let raft_addr = raft_listener
        .local_addr()
        .context("reading the Raft listener address")?;
    let node_tls = config
        .tls
        .as_ref()
        .map(tls::load)
        .transpose()
        .context("Raft TLS")?;

    // The KMS before anything else that can fail later: a node that cannot open encrypted
    // configs must not join the cluster.
    let metrics = Arc::new(Metrics::new());
    let kms = crate::kms::start(&config, metrics.clone())
        .await
        .context("setting up the KMS for encrypted configs")?;

    // The metadata DB first: a bad bootstrap token file should stop the node before it
    // touches its data. The file is read once: the DB's bootstrap and a join both use it.
    let bootstrap_token = config
        .bootstrap_token_file
        .as_deref()
        .map(read_bootstrap_token)
        .transpose()?;
    let metadata = MetadataLink::start(LinkSettings {
        url: config.metadata_url(),
        data_dir: config.data_dir.clone(),
        bootstrap_token: bootstrap_token.clone(),
    })
    .await?;
    let auditor = Auditor::new(config.node_id, &config.data_dir);

    let storage = storage::open(&config.data_dir, config.node_id)
        .with_context(|| format!("opening storage in {}", config.data_dir.display()))?;
    let plane = storage.state_machine.plane();
    plane.watch_hub().set_max_subscriptions(config.max_watchers);
    let peers = Peers::new(
        node_tls.as_ref().map(|t| t.client.clone()),
        Some(raft_addr.ip()),
    );
    let raft_cfg = Arc::new(raft_config(&config)?);
    let raft = Raft::new(
        config.node_id,
        raft_cfg,
        Network::new(config.node_id, peers.clone()),
        storage.log,
        storage.state_machine,
    )
    .await
    .context("starting Raft")?;
    let elections = ElectionAssist::new(
        raft.clone(),
        config.node_id,
        election::Timing {
            // openraft's leader lease is its longest election timeout.
            lease: Duration::from_millis(ELECTION_TIMEOUT_MAX_MS),
            election_min: Duration::from_millis(ELECTION_TIMEOUT_MIN_MS),
            election_max: Duration::from_millis(ELECTION_TIMEOUT_MAX_MS),
        },
    );
    let cluster = Cluster::new(
        config.node_id,
        raft.clone(),
        peers,
        plane.clone(),
        config.write_timeout,
        elections.clone(),
        metrics.clone(),
    );

    // Before this node answers any Raft message: a static member that starts with an empty
    // data directory although the cluster knows it held data has lost its disk. Voting with
    // an empty log could elect a leader missing committed entries; refuse to start.
    if !config.peers.is_empty() && !raft.is_initialized().await.context("reading Raft state")? {
        let members: Vec<(u64, NodeInfo)> = config
            .peers
            .iter()
            .map(|p| {
                (
                    p.node_id,
                    NodeInfo {
                        raft_addr: p.raft_addr.clone(),
                        api_addr: p.api_addr.clone(),
                    },
                )
            })
            .collect();
        if let Some(witness) = cluster.started_before(&members).await {
            let _ = raft.shutdown().await;
            anyhow::bail!(
                "node {id} was already a member of this cluster and held data (node {witness} \
                 says so), but its data directory {dir} is empty: its disk was lost or replaced. \
                 Starting it as a static member could elect a leader that misses committed \
                 writes. Remove it from the cluster (DELETE /_cluster/members/{id}) and start it \
                 with --join instead of --peer, or restore it from a backup",
                id = config.node_id,
                dir = config.data_dir.display(),
            );
        }
    }

    // Everything stops when the caller's shutdown resolves or Raft hits a fatal error.
    let (stop_tx, stop_rx) = watch::channel(false);
    let failed = Arc::new(AtomicBool::new(false));
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
    }
    tokio::spawn(watch_fatal(raft.clone(), stop_tx.clone(), failed.clone()));
    tokio::spawn(elections.run_backstop(stop_rx.clone()));

    let mut grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .concurrency_limit_per_connection(256);
    if let Some(t) = &node_tls {
        grpc = grpc
            .tls_config(t.server.clone())
            .context("configuring TLS on the Raft listener")?;
    }
    let service = RaftService::new(raft.clone(), cluster.clone()).into_server();
    let grpc_stop = stopped(stop_rx.clone());
    let grpc_task = tokio::spawn(async move {
        let incoming =
            tonic::transport::server::TcpIncoming::from(raft_listener).with_nodelay(Some(true));
        grpc.add_service(service)
            .serve_with_incoming_shutdown(incoming, grpc_stop)
            .await
    });

    let me = NodeInfo {
        raft_addr: raft_addr.to_string(),
        api_addr: api_addr.to_string(),
    };
    form_cluster(&raft, &config, me.clone(), bootstrap_token).await?;

    let state = AppState::new(AppInner {
        node_id: config.node_id,
        raft: raft.clone(),
        plane: plane.clone(),
        cluster: cluster.clone(),
        metrics,
        min_revision_wait: config.min_revision_wait,
        max_subscriptions_per_connection: config.max_subscriptions_per_connection,
        heavy_jobs: HeavyJobs::per_cpu(),
        stop: stop_rx.clone(),
        metadata: metadata.clone(),
        auditor: auditor.clone(),
        kms: kms.clone(),
    });
    let metadata_task = tokio::spawn(metadata.clone().run(stopped(stop_rx.clone())));
    let spool_task = tokio::spawn(auditor.run(metadata.clone(), stopped(stop_rx.clone())));
    let outbox_task = tokio::spawn(audit_outbox_drainer(
        raft.clone(),
        cluster.clone(),
        plane.clone(),
        metadata.clone(),
        config.node_id,
    ));
    let webhook_task = tokio::spawn(crate::webhooks::run(
        raft.clone(),
        config.node_id,
        metadata.clone(),
        kms,
        stopped(stop_rx.clone()),
    ));
    let recorder = tokio::spawn(cluster.clone().record_started());
    let sweeper = tokio::spawn(retention_sweeper(
        raft.clone(),
        cluster.clone(),
        plane,
        config.node_id,
        config.retention_interval,
    ));

    println!(
        "Conflux node {} serving the API on {}://{api_addr}{} (Raft on {raft_addr}{}, data in {})",
        config.node_id,
        if api_tls.is_some() { "https" } else { "http" },
        match &api_tls {
            Some(t) if t.requires_client_certs() => " with client certificates",
            _ => "",
        },
        if node_tls.is_some() { " with mTLS" } else { "" },
        config.data_dir.display()
    );
    let app = api::router(state);
    let served = match api_tls {
        None => {
            axum::serve(
                api_listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx))
            .await
        }
        Some(tls) => {
            use axum::serve::ListenerExt;
            // `tap_io` only for its `ConnectInfo<SocketAddr>` support of any listener.
            let listener = TlsListener::new(api_listener, tls)
                .context("serving the API")?
                .tap_io(|_| {});
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx))
            .await
        }
    };

    sweeper.abort();
    outbox_task.abort();
    webhook_task.abort();
    let _ = tokio::join!(metadata_task, spool_task);
    recorder.abort();
    let _ = stop_tx.send(true);
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "Raft did not shut down cleanly");
    }
    match grpc_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "the Raft listener stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the Raft listener task failed"),
        Ok(Ok(())) => {}
    }
    served.context("serving the API")?;
    if failed.load(Ordering::SeqCst) {
        anyhow::bail!("the node stopped after a fatal Raft error (see the log above)");
    }
    tracing::info!("node stopped");
    Ok(())
}

/// Pending connections a listener queues before accepting them. The kernel default (128)
/// overflows when thousands of watchers reconnect at once, and each dropped attempt costs the
/// client a one-second SYN retry.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` (`host:port`, port 0 picks one) with [`LISTEN_BACKLOG`].
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for candidate in tokio::net::lookup_host(addr).await? {
        let socket = if candidate.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(candidate) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr} resolves to no address"))))
}

/// Every watch connection is a file descriptor: raise the limit as far as allowed (a
/// privileged process raises the hard limit too; others get their hard limit).
fn raise_fd_limit() {
    const WANT: u64 = 1 << 20;
    let raised = rlimit::Resource::NOFILE
        .set(WANT, WANT)
        .map(|()| WANT)
        .or_else(|_| rlimit::increase_nofile_limit(u64::MAX));
    match raised {
        Ok(n) => tracing::debug!(limit = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
}

/// Resolves when the stop flag is raised.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A failed storage write stops the Raft core; the node then stops too (with a non-zero
/// exit) instead of serving ever-staler data, so its supervisor can restart it.
async fn watch_fatal(raft: Raft, stop: watch::Sender<bool>, failed: Arc<AtomicBool>) {
    let mut metrics = raft.metrics();
    let mut stopping = stop.subscribe();
    let requested = stop.subscribe();
    tokio::select! {
        // A requested shutdown also ends the Raft core; that is not a failure.
        _ = stopping.wait_for(|s| *s) => {}
        m = metrics.wait_for(|m| m.running_state.is_err()) => {
            if *requested.borrow() {
                return;
            }
            if let Ok(m) = m
                && let Err(e) = &m.running_state
            {
                tracing::error!(error = %e, "Raft stopped with a fatal error; shutting the node down");
            }
            failed.store(true, Ordering::SeqCst);
            let _ = stop.send(true);
        }
    }
}

/// Forms the cluster on a node's first start; a node that has any log or vote is already
/// part of one and does nothing (a restart never re-initialises).
///
/// - static peers: every member initialises with the same full membership, which openraft
///   allows; whichever starts first, one cluster forms;
/// - `--join`: asks a member to add this node (the leader adds it as a learner and promotes it
///   once it has caught up); retried until it succeeds;
/// - neither: a standalone node bootstraps a one-member cluster.
async fn form_cluster(
    raft: &Raft,
    config: &NodeConfig,
    me: NodeInfo,
    bootstrap_token: Option<String>,
) -> anyhow::Result<()> {
    if raft.is_initialized().await.context("reading Raft state")? {
        return Ok(());
    }
    if let Some(join) = &config.join {
        let request = JoinRequest {
            node_id: config.node_id,
            raft_addr: me.raft_addr,
            api_addr: me.api_addr,
        };
        let token = match bootstrap_token {
            Some(token) => token,
            None => anyhow::bail!(
                "--join needs --bootstrap-token-file: the cluster_admin token this node asks \
                 for membership with"
            ),
        };
        let (endpoint, tls) = join_endpoint(config, join);
        tokio::spawn(join_cluster(endpoint, tls, request, token));
        return Ok(());
    }
    let members: BTreeMap<u64, NodeInfo> = if config.peers.is_empty() {
        BTreeMap::from([(config.node_id, me)])
    } else {
        config
            .peers
            .iter()
            .map(|p| {
                (
                    p.node_id,
                    NodeInfo {
                        raft_addr: p.raft_addr.clone(),
                        api_addr: p.api_addr.clone(),
                    },
                )
            })
            .collect()
    };
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(
                node_id = config.node_id,
                members = config.peers.len().max(1),
                "initialised a new cluster"
            );
            Ok(())
        }
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("initialising the cluster: {e}")),
    }
}

/// Where and how a joining node asks for membership. A `--join` address without a scheme is
/// https when this node's own API is on TLS (a cluster's nodes are configured alike). Over
/// https the member's API certificate is verified against the cluster CA (`--tls-ca`; without
/// it, the system trust store), and this node presents its Raft certificate, so a member whose
/// `--api-tls-client-ca` is the cluster CA accepts it.
fn join_endpoint(config: &NodeConfig, join: &str) -> (String, conflux_client::TlsOptions) {
    let endpoint = if join.contains("://") {
        join.to_owned()
    } else if config.api_tls.is_some() {
        format!("https://{join}")
    } else {
        format!("http://{join}")
    };
    let mut tls = conflux_client::TlsOptions::new();
    if let Some(files) = &config.tls {
        tls = tls
            .ca_cert_file(&files.ca)
            .client_identity_files(&files.cert, &files.key);
    }
    (endpoint, tls)
}

/// Asks the member at `endpoint` to add this node, until it succeeds or is refused.
async fn join_cluster(
    endpoint: String,
    tls: conflux_client::TlsOptions,
    request: JoinRequest,
    token: String,
) {
    let client = match conflux_client::ApiClient::builder(endpoint)
        .bearer_token(token)
        .tls(tls)
        .timeout(Duration::from_secs(600))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot join: bad --join address or TLS files");
            return;
        }
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match client.add_member(&request).await {
            Ok(change) => {
                tracing::info!(revision = change.revision, "joined the cluster");
                return;
            }
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                tracing::error!(error = %e, "the cluster refused to add this node");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "joining the cluster failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How often the leader copies applied changes' audit records into the metadata DB.
const OUTBOX_DRAIN_EVERY: Duration = Duration::from_millis(500);

/// On the leader: drains the audit outbox into the metadata DB, then trims what was drained
/// on every node through Raft. Inserting is idempotent, so a leader change between the two
/// steps only means the next leader inserts the same records again, harmlessly.
async fn audit_outbox_drainer(
    raft: Raft,
    cluster: Cluster,
    plane: storage::ConfigPlane,
    metadata: Arc<MetadataLink>,
    node_id: u64,
) {
    let mut tick = tokio::time::interval(OUTBOX_DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if raft.metrics().borrow().current_leader != Some(node_id) {
            continue;
        }
        let Ok(Some((index, position))) = crate::audit::drain_outbox(&plane, &metadata).await
        else {
            continue;
        };
        // One trim entry per round, whatever the write load.
        let trim = Proposal::new(now_ms(), Command::TrimAuditOutbox { index, position });
        if let Err(e) = cluster.propose(trim).await {
            tracing::debug!(error = %e, "audit outbox not trimmed this round");
        }
    }
}

/// On the leader, periodically proposes a retention sweep when time-based rules have
/// something to purge. The decision of *what* to purge is taken in apply. The sweep goes
/// through the batcher like every write, so it is stamped and bounded in time like them.
async fn retention_sweeper(
    raft: Raft,
    cluster: Cluster,
    plane: storage::ConfigPlane,
    node_id: u64,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let is_leader = raft.metrics().borrow().current_leader == Some(node_id);
        if !is_leader || !plane.read(|s| retention_sweep_needed(s, now_ms())) {
            continue;
        }
        match cluster
            .propose(Proposal::new(now_ms(), Command::SweepRetention))
            .await
        {
            Ok(r) => tracing::info!(revision = r.revision, "retention sweep applied"),
            Err(e) => tracing::warn!(error = %e, "retention sweep not applied"),
        }
    }
}
