//! The workload of a chaos run and the recording of its history.
//!
//! Clients on every node, all at once:
//! - writers: new versions (`POST .../versions`), publishes (`POST .../publish`, a version
//!   served as the stable release in one command) and release changes (`PUT .../releases`
//!   pointing the stable rule at an older version, half of them guarded by `If-Match`). Half
//!   of the writes carry an idempotency key; a write with a key whose outcome is unknown is
//!   retried with the same key on other nodes, and the retries are one operation of the
//!   history (from the first call to the last answer), as the client sees it;
//! - readers: default, `consistency=linearizable` and `min_revision` fetches (the revision of
//!   the newest change of that config acknowledged to any client so far);
//! - watchers: one per transport (long poll, WebSocket, gRPC) and node, each following one
//!   config and reconnecting, to the next node, with the last revision it saw.
//!
//! Every write has a content of its own, so the final state tells which unknown writes took
//! effect. An operation is `ok` when the server said so, `fail` when it gave a definite
//! refusal (a 4xx, or a 503 the contract defines as "nothing was written"), and `unknown`
//! otherwise (timeouts, lost connections, `write_timeout`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, PublishRequest, PutReleases,
    Strategy, WatchEventKind, WatchMessage,
};
use conflux_client::{
    ApiClient, ClientError, FetchOptions, Fetched, NewVersion, WatchOptions, WriteOptions,
};
use conflux_domain::{ConfigPath, Format, ReleaseRule};
use futures::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::history::{Call, ConfigKey, Operation, Outcome, ReadMode, WatchChange, WatchEvent};

pub const TENANT: &str = "chaos";
pub const APP: &str = "app";
pub const ENV: &str = "prod";
/// How long a client waits for one answer. Longer than the server's write timeout would
/// make every stuck write `unknown` anyway; shorter keeps writers busy across a failover.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts of a write with an idempotency key whose outcome stays unknown.
const WRITE_ATTEMPTS: usize = 3;

/// The history as it is recorded, shared by every client task.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    next_id: AtomicU64,
    ops: Mutex<Vec<Operation>>,
    events: Mutex<Vec<WatchEvent>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Arc<Recorder> {
        Arc::new(Recorder {
            start,
            next_id: AtomicU64::new(1),
            ops: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        })
    }

    /// Nanoseconds since the run started (monotonic).
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn record(&self, mut op: Operation) {
        op.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    fn event(&self, e: WatchEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    pub fn operations(&self) -> Vec<Operation> {
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ops.sort_by_key(|o| (o.invoked_ns, o.id));
        ops
    }

    pub fn watch_events(&self) -> Vec<WatchEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One config the workload writes, with what clients have learnt about it.
#[derive(Debug)]
pub struct Target {
    pub key: ConfigKey,
    pub path: ConfigPath,
    pub id: u64,
    /// The highest revision of a change acknowledged to any client (what `min_revision`
    /// readers ask for).
    acked_revision: AtomicU64,
    /// The highest version number acknowledged (release changes pick among 1..=it).
    acked_version: AtomicU64,
}

impl Target {
    fn acked(&self, revision: u64, version: Option<u64>) {
        self.acked_revision.fetch_max(revision, Ordering::Relaxed);
        if let Some(v) = version {
            self.acked_version.fetch_max(v, Ordering::Relaxed);
        }
    }
}

/// `sha256:<hex>`, as the server reports a content's hash.
pub fn content_hash(content: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(content)))
}

/// A publish of `content` as the stable release.
fn stable(content: &str) -> PublishRequest {
    PublishRequest {
        content: content.to_owned(),
        description: None,
        strategy: Strategy::Stable,
    }
}

/// Creates the tenant, app, environment and `configs` configs through `admin`, each with
/// version 1 published (recorded as the first operation on it).
pub async fn prepare(
    admin: &ApiClient,
    configs: usize,
    recorder: &Recorder,
    node: u64,
) -> Result<Vec<Arc<Target>>> {
    let w = WriteOptions::default();
    admin
        .create_tenant(&CreateTenant::named(TENANT), &w)
        .await?;
    admin.create_app(TENANT, &CreateApp::named(APP), &w).await?;
    admin
        .create_env(TENANT, APP, &CreateEnvironment::named(ENV), &w)
        .await?;
    let mut targets = Vec::new();
    for c in 0..configs {
        let name = format!("c{c}.txt");
        let created = admin
            .create_config(
                TENANT,
                APP,
                ENV,
                &CreateConfig {
                    name: name.clone(),
                    format: Format::Text,
                    schema: None,
                    retention: None,
                    description: None,
                    encrypted: false,
                },
                &w,
            )
            .await?;
        let target = Arc::new(Target {
            key: format!("{TENANT}/{APP}/{ENV}/{name}"),
            path: ConfigPath::new(TENANT, APP, ENV, &name),
            id: created.id,
            acked_revision: AtomicU64::new(0),
            acked_version: AtomicU64::new(0),
        });
        let content = format!("initial content of {}", target.key);
        let invoked = recorder.now();
        let published = admin.publish(target.id, &stable(&content), &w).await?;
        target.acked(published.revision, Some(published.version_id));
        recorder.record(Operation {
            id: 0,
            client: "setup".into(),
            node,
            invoked_ns: invoked,
            completed_ns: Some(recorder.now()),
            call: Call::Write {
                config: target.key.clone(),
                content_hash: content_hash(content.as_bytes()),
                idempotency_key: None,
                publish: true,
            },
            outcome: Outcome::Ok {
                revision: published.revision,
                version: published.version_id,
                content_hash: published.hash,
            },
        });
        targets.push(target);
    }
    Ok(targets)
}

/// What every client task shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub recorder: Arc<Recorder>,
    pub targets: Arc<Vec<Arc<Target>>>,
    /// Node id and its API client, for every node a client may use.
    pub nodes: Arc<Vec<(u64, ApiClient)>>,
    /// The base URLs of the nodes (WebSocket and gRPC clients connect themselves).
    pub urls: Arc<Vec<(u64, String)>>,
    pub token: Arc<str>,
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A write's outcome from the client's error.
fn classify(e: &ClientError) -> Outcome {
    match e.status() {
        Some(s) if (400..500).contains(&s) => Outcome::Fail {
            code: e.code().to_owned(),
        },
        // The contract's 503s that mean "nothing was written".
        Some(503)
            if matches!(
                e.code(),
                "not_leader" | "node_stopped" | "kms_unavailable" | "kms_key_error"
            ) =>
        {
            Outcome::Fail {
                code: e.code().to_owned(),
            }
        }
        _ => Outcome::Unknown {
            reason: e.code().to_owned(),
        },
    }
}

enum WriteKind {
    Version,
    Publish,
    Release { version: u64, if_match: Option<u64> },
}

/// A writer: until stopped, one change at a time on a random config, starting at node
/// `first` (index into `shared.nodes`).
pub async fn writer(shared: Shared, name: String, first: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seq = 0u64;
    let mut node_index = first;
    while !shared.stopped() {
        seq += 1;
        let target = &shared.targets[rng.random_range(0..shared.targets.len())];
        let roll = rng.random_range(0..10);
        let kind = match roll {
            0..=3 => WriteKind::Publish,
            4..=6 => WriteKind::Version,
            _ => {
                let latest = target.acked_version.load(Ordering::Relaxed).max(1);
                let if_match = rng
                    .random_bool(0.5)
                    .then(|| target.acked_revision.load(Ordering::Relaxed));
                WriteKind::Release {
                    version: rng.random_range(1..=latest),
                    if_match,
                }
            }
        };
        let key = rng
            .random_bool(0.5)
            .then(|| format!("{name}-{seq}-{}", rng.random::<u32>()));
        // A content of its own, of a realistic size.
        let content = format!(
            "{name} write {seq} {}\n{}",
            rng.random::<u64>(),
            "x".repeat(200)
        );
        let call = match &kind {
            WriteKind::Release { version, if_match } => Call::Release {
                config: target.key.clone(),
                version: *version,
                if_match: *if_match,
            },
            _ => Call::Write {
                config: target.key.clone(),
                content_hash: content_hash(content.as_bytes()),
                idempotency_key: key.clone(),
                publish: matches!(kind, WriteKind::Publish),
            },
        };
        let invoked = shared.recorder.now();
        let mut attempts = 0;
        let (node, outcome) = loop {
            attempts += 1;
            let (node, client) = &shared.nodes[node_index % shared.nodes.len()];
            let outcome = attempt(client, target, &kind, &content, key.clone()).await;
            // A failed or unknown write goes to the next node next time.
            if !matches!(outcome, Outcome::Ok { .. }) {
                node_index += 1;
            }
            let retry = matches!(outcome, Outcome::Unknown { .. })
                && key.is_some()
                && attempts < WRITE_ATTEMPTS
                && !shared.stopped();
            if !retry {
                break (*node, outcome);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let completed = shared.recorder.now();
        let completed_ns = match outcome {
            Outcome::Unknown { .. } => None,
            _ => Some(completed),
        };
        shared.recorder.record(Operation {
            id: 0,
            client: name.clone(),
            node,
            invoked_ns: invoked,
            completed_ns,
            call,
            outcome,
        });
        if completed_ns.is_none() {
            // Let a failover happen rather than piling up unknown writes.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One attempt of a write, as its outcome (an acknowledged one also raises what clients know
/// of the config).
async fn attempt(
    client: &ApiClient,
    target: &Target,
    kind: &WriteKind,
    content: &str,
    idempotency_key: Option<String>,
) -> Outcome {
    let opts = WriteOptions {
        idempotency_key,
        if_match: match kind {
            WriteKind::Release { if_match, .. } => *if_match,
            _ => None,
        },
    };
    let answer = match kind {
        WriteKind::Version => client
            .create_version(
                target.id,
                NewVersion::new(Bytes::from(content.to_owned()), "text/plain"),
                &opts,
            )
            .await
            .map(|v| (v.revision, v.version_id, v.hash)),
        WriteKind::Publish => client
            .publish(target.id, &stable(content), &opts)
            .await
            .map(|p| (p.revision, p.version_id, p.hash)),
        WriteKind::Release { version, .. } => client
            .put_releases(
                target.id,
                &PutReleases {
                    releases: vec![ReleaseRule {
                        labels: BTreeMap::new(),
                        percent: None,
                        version_id: *version,
                        priority: 0,
                    }],
                    comment: None,
                },
                &opts,
            )
            .await
            // The content hash of an older version is not known to this client; the
            // checkers take it from the version's write.
            .map(|r| (r.revision, *version, String::new())),
    };
    match answer {
        Ok((revision, version, hash)) => {
            let assigned = !matches!(kind, WriteKind::Release { .. });
            target.acked(revision, assigned.then_some(version));
            Outcome::Ok {
                revision,
                version,
                content_hash: hash,
            }
        }
        Err(e) => classify(&e),
    }
}

/// The client name prefix of failover probes in the history.
pub const PROBE_CLIENT: &str = "probe";

/// Failover probes, started when a fault takes the leader away: a publish to `target` every
/// 100 ms, each on its own task and to the next node in turn, until one is acknowledged or
/// `give_up` has passed. They measure the cluster's failover apart from the workload's
/// clients, which may be waiting out a timeout on the lost leader. Recorded like any write.
pub async fn probe(
    recorder: Arc<Recorder>,
    target: Arc<Target>,
    nodes: Arc<Vec<(u64, ApiClient)>>,
    give_up: Duration,
) {
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut n = 0usize;
    let mut sent = Vec::new();
    while !done.load(Ordering::Relaxed) && started.elapsed() < give_up {
        let (recorder, target, done) = (recorder.clone(), target.clone(), done.clone());
        let (node, client) = nodes[n % nodes.len()].clone();
        n += 1;
        let content = format!("failover probe {n} at {}", recorder.now());
        sent.push(tokio::spawn(async move {
            let invoked = recorder.now();
            let outcome = attempt(&client, &target, &WriteKind::Publish, &content, None).await;
            let ok = matches!(outcome, Outcome::Ok { .. });
            let completed_ns = match outcome {
                Outcome::Unknown { .. } => None,
                _ => Some(recorder.now()),
            };
            recorder.record(Operation {
                id: 0,
                client: format!("{PROBE_CLIENT}{n}"),
                node,
                invoked_ns: invoked,
                completed_ns,
                call: Call::Write {
                    config: target.key.clone(),
                    content_hash: content_hash(content.as_bytes()),
                    idempotency_key: None,
                    publish: true,
                },
                outcome,
            });
            if ok {
                done.store(true, Ordering::Relaxed);
            }
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every probe answered (or timed out) before this returns: none is left in flight when
    // the run reads its final state.
    for p in sent {
        let _ = p.await;
    }
}

/// A reader: fetches of random configs in a random mode, starting at node
/// `shared.nodes[first]` and moving to the next node after an error.
pub async fn reader(shared: Shared, name: String, first: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut node_index = first;
    while !shared.stopped() {
        let target = &shared.targets[rng.random_range(0..shared.targets.len())];
        let mode = match rng.random_range(0..3) {
            0 => ReadMode::Default,
            1 => ReadMode::Linearizable,
            _ => ReadMode::MinRevision {
                revision: target.acked_revision.load(Ordering::Relaxed),
            },
        };
        let opts = FetchOptions {
            linearizable: mode == ReadMode::Linearizable,
            min_revision: match mode {
                ReadMode::MinRevision { revision } => Some(revision),
                _ => None,
            },
            ..FetchOptions::default()
        };
        let (node, client) = &shared.nodes[node_index % shared.nodes.len()];
        let invoked = shared.recorder.now();
        let result = client.fetch(&target.path, &opts).await;
        let completed = shared.recorder.now();
        let outcome = match result {
            Ok(Fetched::Modified {
                version,
                hash,
                revision,
                ..
            }) => Outcome::Ok {
                revision,
                version,
                content_hash: hash,
            },
            Ok(Fetched::NotModified) => Outcome::Fail {
                code: "not_modified".into(),
            },
            Err(e) => {
                node_index += 1;
                match e.status() {
                    Some(_) => Outcome::Fail {
                        code: e.code().to_owned(),
                    },
                    None => Outcome::Unknown {
                        reason: e.code().to_owned(),
                    },
                }
            }
        };
        let failed = !matches!(outcome, Outcome::Ok { .. });
        shared.recorder.record(Operation {
            id: 0,
            client: name.clone(),
            node: *node,
            invoked_ns: invoked,
            completed_ns: Some(completed),
            call: Call::Read {
                config: target.key.clone(),
                mode,
            },
            outcome,
        });
        let pause = if failed { 200 } else { rng.random_range(5..30) };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// The transports a watcher can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    LongPoll,
    WebSocket,
    Grpc,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::LongPoll, Transport::WebSocket, Transport::Grpc];

    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "long_poll",
            Transport::WebSocket => "websocket",
            Transport::Grpc => "grpc",
        }
    }
}

/// A watcher's position: the last revision it saw, and where it listens now.
struct WatchState {
    name: String,
    transport: Transport,
    target: Arc<Target>,
    revision: u64,
    node_index: usize,
}

impl WatchState {
    fn seen(&mut self, shared: &Shared, node: u64, revision: u64, change: WatchChange) {
        shared.recorder.event(WatchEvent {
            watcher: self.name.clone(),
            transport: self.transport.name().into(),
            node,
            config: self.target.key.clone(),
            received_ns: shared.recorder.now(),
            revision,
            change,
        });
        self.revision = self.revision.max(revision);
    }
}

fn change_of(kind: WatchEventKind, version: Option<u64>) -> WatchChange {
    match kind {
        WatchEventKind::Deleted => WatchChange::Deleted,
        WatchEventKind::Updated => WatchChange::Changed {
            version: version.unwrap_or(0),
        },
    }
}

/// A watcher: follows one config until stopped, reconnecting (to the next node) with the
/// last revision it saw whenever a connection ends.
pub async fn watcher(
    shared: Shared,
    name: String,
    transport: Transport,
    target: Arc<Target>,
    first: usize,
) {
    let mut state = WatchState {
        name,
        transport,
        target,
        revision: 0,
        node_index: first,
    };
    while !shared.stopped() {
        let (node, url) = shared.urls[state.node_index % shared.urls.len()].clone();
        let result = match transport {
            Transport::LongPoll => long_poll(&shared, &mut state, node).await,
            Transport::WebSocket => websocket(&shared, &mut state, node, &url).await,
            Transport::Grpc => grpc(&shared, &mut state, node, &url).await,
        };
        if result.is_err() && !shared.stopped() {
            state.node_index += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn long_poll(shared: &Shared, state: &mut WatchState, node: u64) -> Result<()> {
    let client = &shared.nodes[state.node_index % shared.nodes.len()].1;
    while !shared.stopped() {
        let opts = WatchOptions {
            revision: state.revision,
            timeout: Some(Duration::from_secs(2)),
            ..WatchOptions::default()
        };
        if let Some(e) = client.watch(&state.target.path, &opts).await? {
            state.seen(shared, node, e.revision, change_of(e.event, e.version_id));
        }
    }
    Ok(())
}

/// Reads the next item of a stream, giving up when the run ends. (A watcher on a paused or
/// cut-off node stays: it must catch up once the node is back, which is part of the check.)
async fn next_or_stop<T>(
    shared: &Shared,
    next: impl std::future::Future<Output = Option<T>>,
) -> Option<T> {
    tokio::pin!(next);
    loop {
        tokio::select! {
            item = &mut next => return item,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if shared.stopped() {
                    return None;
                }
            }
        }
    }
}

async fn websocket(shared: &Shared, state: &mut WatchState, node: u64, url: &str) -> Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws_url = format!("{}/api/v1/watch/ws", url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", shared.token).parse()?);
    let (mut ws, _) =
        tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(request)).await??;
    let subscribe = serde_json::json!({
        "subscribe": [{"key": state.target.key, "revision": state.revision}]
    });
    ws.send(Message::Text(subscribe.to_string().into())).await?;
    while let Some(msg) = next_or_stop(shared, ws.next()).await {
        let Message::Text(text) = msg? else {
            continue;
        };
        match serde_json::from_str::<WatchMessage>(&text)? {
            WatchMessage::Event(e) => {
                state.seen(shared, node, e.revision, change_of(e.event, e.version_id))
            }
            WatchMessage::Subscribed { .. } => {}
            WatchMessage::Error { error, .. } => anyhow::bail!("watch error: {}", error.code),
        }
    }
    if shared.stopped() {
        return Ok(());
    }
    anyhow::bail!("the WebSocket ended")
}

async fn grpc(shared: &Shared, state: &mut WatchState, node: u64, url: &str) -> Result<()> {
    use conflux_server::api::grpc::pb;
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(REQUEST_TIMEOUT)
        .connect()
        .await?;
    let mut client = pb::watch_client::WatchClient::new(channel);
    let mut request = tonic::Request::new(pb::WatchRequest {
        key: state.target.key.clone(),
        revision: state.revision,
        version: None,
        client: None,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {}", shared.token).parse()?);
    let mut stream = client.watch(request).await?.into_inner();
    while let Some(item) = next_or_stop(shared, stream.next()).await {
        let e = item?;
        let kind = match pb::watch_event::Kind::try_from(e.kind) {
            Ok(pb::watch_event::Kind::Deleted) => WatchEventKind::Deleted,
            _ => WatchEventKind::Updated,
        };
        state.seen(shared, node, e.revision, change_of(kind, e.version_id));
    }
    if shared.stopped() {
        return Ok(());
    }
    anyhow::bail!("the gRPC stream ended")
}
