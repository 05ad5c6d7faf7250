//! The SDK a service embeds: [`ConfluxClient`] over several nodes, with failover, watches
//! that never miss a change, and [`ConfigHandle`]s that keep a config's latest content in
//! memory (and on disk, to start without the cluster).
//!
//! ```no_run
//! # async fn demo() -> Result<(), conflux_client::ClientError> {
//! use conflux_client::{ConfluxClient, StartMode};
//! use futures::StreamExt;
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct Db {
//!     timeout_ms: u64,
//! }
//!
//! let client = ConfluxClient::new(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
//!     .with_token("s3cr3t")
//!     .with_labels([("region", "eu"), ("canary", "false")])
//!     .with_client_id("checkout-7f9c")
//!     .with_fallback_dir("/var/lib/checkout/conflux")
//!     .start_mode(StartMode::FailSafe)
//!     .build()
//!     .await?;
//!
//! // One read, with failover.
//! let value = client.get_config("acme", "checkout", "prod", "db.toml").await?;
//! println!("version {}: {} bytes", value.version, value.content.len());
//!
//! // The latest content, kept up to date in the background.
//! let db = client.handle("acme", "checkout", "prod", "db.toml").await?;
//! db.on_change(|change| println!("now version {:?}", change.version));
//! let timeout_ms = db.get::<Db>()?.timeout_ms;
//! # let _ = timeout_ms;
//!
//! // Or every change as a stream.
//! let mut changes = client.watch_config("acme", "checkout", "prod", "db.toml");
//! while let Some(change) = changes.next().await {
//!     println!("revision {} version {:?} {:?}", change.revision, change.version, change.kind);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! - **Never back in time.** The client remembers the highest revision it has seen of each
//!   config (from fetches, watch events and fallback copies) and sends it as
//!   `?min_revision=` with every fetch, so switching to a node that lags behind makes that
//!   node wait (or answer 503, and the client moves on) rather than serve an older state.
//! - **Failover.** A request goes to the endpoint that last worked, then to the next ones in
//!   order, on transport errors and 503 only. A 4xx is an answer about the request (unknown
//!   config, not published, ...) and is returned as is: another node would say the same.
//! - **Nothing missed.** A watch is resumed, after any failure, from the last revision and
//!   version it reported, and the server compares them with the config's current state: a
//!   change made while the client was reconnecting is reported at once. After a failure the
//!   watch also re-fetches (with `min_revision`) and compares the content hash before it
//!   polls again, which catches what a label-aware poll cannot see (a config deleted and
//!   re-created meanwhile whose new version has the same number). Changes that happen in
//!   quick succession may be reported as one (the latest), never out of order: the
//!   revisions a watch reports are strictly increasing, and each change's content is
//!   fetched with `min_revision` = the event's revision, so it is never older than the
//!   event.
//! - **Label-aware.** Watches send the client's labels and the version it holds, so a change
//!   that does not alter what this client gets (a canary for other clients, a new version
//!   not released to it) does not wake it.
//!
//! Reconnection waits with jittered exponential backoff ([`Backoff`]: full jitter, 100 ms
//! doubling to 10 s) and moves to the next endpoint.
//!
//! # Transport: HTTP long poll
//!
//! Watches use the long poll (`GET /api/v1/watch/config/...`), not the WebSocket or gRPC
//! stream, because:
//!
//! - it is the same plain HTTP request as a fetch, so it goes through the same connection
//!   pool, token, timeouts, proxies and failover code, and needs no extra dependency;
//! - every poll carries the full resume point (revision, version, labels), so there is no
//!   session state to rebuild after a reconnect and no subscription handshake to get wrong;
//!   a dropped connection is simply the next poll, on the next endpoint;
//! - a service watches a handful of configs, so one pending request per watched config and
//!   one request per change or per 30 s of quiet are cheap.
//!
//! A service that watches many configs at once would be better served by the multiplexed
//! WebSocket (one connection for all of them); the semantics are identical, so it can be added
//! behind the same [`ConfigWatch`] without changing callers.
//!
//! A dead node (process killed, connection reset) is noticed at once. A node that hangs with
//! its connections open is noticed when the poll's request timeout (poll timeout + 10 s)
//! passes.
//!
//! # Start modes and the fallback directory
//!
//! With [`ConfluxClientBuilder::with_fallback_dir`], every [`ConfigHandle`] writes each state
//! it receives to a local copy (atomically: temporary file, fsync, rename; see `fallback.rs`),
//! and removes it when the config is deleted. [`StartMode::FailSafe`] (the default) lets
//! [`ConfluxClient::handle`] start from that copy when no node can serve the config (no
//! answer, or 503 everywhere); the handle then converges to the cluster's state as soon as a
//! node answers. [`StartMode::FailFast`] makes [`ConfluxClientBuilder::build`] check that a
//! node answers, and [`ConfluxClient::handle`] fail, instead. A 4xx answer (unknown config)
//! is never replaced by the fallback copy.
//!
//! In either mode the copy's revision counts as seen: the handle's first fetch, and every
//! later one, carries it as `min_revision`, so a node that lags behind the copy cannot move
//! the handle back in time. A fallback directory therefore belongs to one cluster: a cluster
//! rebuilt from scratch (not restored from a backup, which keeps revisions growing) numbers
//! its revisions from 1 again, and handles would wait for it to pass their copies'
//! revisions; empty the directory then.
//!
//! Everything here runs on the caller's tokio runtime (handles spawn one task each).

mod backoff;
mod fallback;
mod handle;
mod value;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conflux_domain::ConfigPath;

pub use backoff::Backoff;
pub use handle::ConfigHandle;
pub use value::{Change, ChangeKind, ConfigValue};
pub use watch::ConfigWatch;

use crate::client::{ApiClient, DEFAULT_WATCH_TIMEOUT};
use crate::error::ClientError;
use crate::options::{FetchOptions, Fetched, identity_headers};
use crate::tls::TlsOptions;
use fallback::FallbackStore;

/// Timeout of each SDK request (a watch's long poll gets its poll timeout on top). It must
/// exceed the server's `min_revision` wait (5 s) so that a lagging node can catch up.
pub const SDK_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of establishing a connection to one endpoint, before moving to the next.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What [`ConfluxClient::handle`] (and [`ConfluxClientBuilder::build`]) do when no node can
/// be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// Fail: `build` checks that a node answers, `handle` returns the error.
    FailFast,
    /// Start from the local fallback copy when there is one (and converge once the cluster
    /// answers); fail only when there is none.
    #[default]
    FailSafe,
}

/// Builds a [`ConfluxClient`]; see [`ConfluxClient::new`]. Its `Debug` output never shows
/// the token.
#[derive(Clone)]
pub struct ConfluxClientBuilder {
    endpoints: Vec<String>,
    token: Option<String>,
    labels: BTreeMap<String, String>,
    client_id: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    poll_timeout: Duration,
    fallback_dir: Option<PathBuf>,
    start_mode: StartMode,
    backoff: Backoff,
    tls: TlsOptions,
}

impl std::fmt::Debug for ConfluxClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfluxClientBuilder")
            .field("endpoints", &self.endpoints)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("labels", &self.labels)
            .field("client_id", &self.client_id)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("poll_timeout", &self.poll_timeout)
            .field("fallback_dir", &self.fallback_dir)
            .field("start_mode", &self.start_mode)
            .field("backoff", &self.backoff)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConfluxClientBuilder {
    /// Sent as `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// This client's labels (`X-Client-Label-*`), which release rules match. Added to any
    /// given before.
    pub fn with_labels<K, V>(mut self, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// This client's id (`X-Client-Id`), which places it in percentage rules.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Timeout of each request to one endpoint (default [`SDK_REQUEST_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout of connecting to one endpoint (default [`SDK_CONNECT_TIMEOUT`]).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server holds a watch's long poll before answering "no change" (default
    /// 30 s, at most 300 s).
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Keeps a local copy of every config a [`ConfigHandle`] holds in `dir` (see
    /// [`StartMode`]).
    pub fn with_fallback_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fallback_dir = Some(dir.into());
        self
    }

    pub fn start_mode(mut self, mode: StartMode) -> Self {
        self.start_mode = mode;
        self
    }

    /// The delays between reconnection attempts (default [`Backoff::DEFAULT`]).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// TLS for `https://` endpoints: the CA bundle to trust and an optional client
    /// certificate (see [`TlsOptions`]).
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Trust exactly the CA certificates in this PEM bundle (the cluster's CA).
    pub fn with_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls = self.tls.ca_cert_pem(pem);
        self
    }

    /// Present this client certificate and key (PEM) to nodes that require one.
    pub fn with_client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls = self.tls.client_identity(cert_pem, key_pem);
        self
    }

    /// Checks the settings and, in [`StartMode::FailFast`], that at least one endpoint
    /// answers `GET /health`.
    pub async fn build(self) -> Result<ConfluxClient, ClientError> {
        if self.endpoints.is_empty() {
            return Err(ClientError::invalid_argument(
                "endpoints",
                "give at least one node URL",
            ));
        }
        // Refuse labels that cannot be sent now rather than at every request.
        identity_headers(&self.labels, self.client_id.as_deref())?;
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| {
                let mut b = ApiClient::builder(e.as_str())
                    .timeout(self.timeout)
                    .connect_timeout(self.connect_timeout)
                    .user_agent(concat!("conflux-sdk/", env!("CARGO_PKG_VERSION")))
                    .tls(self.tls.clone());
                if let Some(token) = &self.token {
                    b = b.bearer_token(token.clone());
                }
                b.build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = ConfluxClient {
            shared: Arc::new(Shared {
                endpoints,
                fetch: FetchOptions {
                    labels: self.labels,
                    client_id: self.client_id,
                    ..FetchOptions::default()
                },
                preferred: AtomicUsize::new(0),
                revisions: Mutex::new(HashMap::new()),
                fallback: self.fallback_dir.map(FallbackStore::new),
                start_mode: self.start_mode,
                poll_timeout: self.poll_timeout,
                backoff: self.backoff,
            }),
        };
        if self.start_mode == StartMode::FailFast {
            client.probe().await?;
        }
        Ok(client)
    }
}

/// A client of a Conflux cluster for services: reads, watches and live handles of configs,
/// over several endpoints. Cloning is cheap and clones share everything (connections, the
/// revisions seen, the preferred endpoint).
#[derive(Debug, Clone)]
pub struct ConfluxClient {
    shared: Arc<Shared>,
}

/// What every clone, watch and handle of one client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    endpoints: Vec<ApiClient>,
    /// Labels and client id; `min_revision` is filled per request.
    fetch: FetchOptions,
    /// The endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    /// The highest revision seen of each config (`tenant/app/env/name`).
    revisions: Mutex<HashMap<String, u64>>,
    fallback: Option<FallbackStore>,
    start_mode: StartMode,
    poll_timeout: Duration,
    backoff: Backoff,
}

/// The endpoint indexes to try, starting at `start` and wrapping around: each once.
pub(crate) fn failover_order(start: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (start + k) % n)
}

/// Whether another endpoint may answer better: no answer at all, or 503 (no leader, not
/// ready, `min_revision` not reached). Never a 4xx.
pub(crate) fn should_fail_over(e: &ClientError) -> bool {
    e.is_retryable()
}

pub(crate) fn config_path(
    tenant: &str,
    app: &str,
    env: &str,
    name: &str,
) -> Result<ConfigPath, ClientError> {
    ConfigPath::parse(&format!("{tenant}/{app}/{env}/{name}"))
        .map_err(|e| ClientError::invalid_argument("path", e.to_string()))
}

impl Shared {
    fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// The highest revision seen of `key`.
    pub(crate) fn seen(&self, key: &str) -> u64 {
        let revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        revisions.get(key).copied().unwrap_or(0)
    }

    /// Remembers that `key` has reached `revision`.
    pub(crate) fn note(&self, key: &str, revision: u64) {
        let mut revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        let seen = revisions.entry(key.to_owned()).or_insert(0);
        *seen = (*seen).max(revision);
    }

    /// Fetches `path` for this client, trying each endpoint once from `start`, never older
    /// than `min_revision` nor than anything seen before. Returns the outcome and the index of
    /// the endpoint that gave it.
    pub(crate) async fn fetch_from(
        &self,
        path: &ConfigPath,
        key: &str,
        start: usize,
        min_revision: u64,
    ) -> (Result<ConfigValue, ClientError>, usize) {
        let min = min_revision.max(self.seen(key));
        let opts = FetchOptions {
            min_revision: (min > 0).then_some(min),
            ..self.fetch.clone()
        };
        let mut last = None;
        for i in failover_order(start, self.endpoints.len()) {
            let endpoint = &self.endpoints[i];
            match endpoint.fetch(path, &opts).await {
                Ok(Fetched::Modified {
                    content,
                    version,
                    hash,
                    revision,
                    content_type,
                    ..
                }) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    self.note(key, revision);
                    let value = ConfigValue {
                        key: key.to_owned(),
                        content,
                        version,
                        revision,
                        hash,
                        content_type,
                    };
                    return (Ok(value), i);
                }
                Ok(Fetched::NotModified) => {
                    let e = ClientError::decode(
                        format!("GET {key}"),
                        "304 to a fetch without If-None-Match",
                    );
                    return (Err(e), i);
                }
                Err(e) if should_fail_over(&e) => {
                    tracing::debug!(endpoint = endpoint.endpoint(), error = %e, "fetch of {key} failed; trying the next endpoint");
                    last = Some((e, i));
                }
                Err(e) => return (Err(e), i),
            }
        }
        let (e, i) = last.expect("a client has at least one endpoint");
        (Err(e), i)
    }
}

impl ConfluxClient {
    /// Starts building a client of the nodes at `endpoints` (`http://host:port`, any node of
    /// the cluster; the order is the failover order).
    #[allow(clippy::new_ret_no_self)]
    pub fn new<I, S>(endpoints: I) -> ConfluxClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConfluxClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            token: None,
            labels: BTreeMap::new(),
            client_id: None,
            timeout: SDK_REQUEST_TIMEOUT,
            connect_timeout: SDK_CONNECT_TIMEOUT,
            poll_timeout: DEFAULT_WATCH_TIMEOUT,
            fallback_dir: None,
            start_mode: StartMode::default(),
            backoff: Backoff::DEFAULT,
            tls: TlsOptions::default(),
        }
    }

    /// The endpoints, normalised, in failover order.
    pub fn endpoints(&self) -> Vec<&str> {
        self.shared
            .endpoints
            .iter()
            .map(ApiClient::endpoint)
            .collect()
    }

    /// The labels this client sends.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.shared.fetch.labels
    }

    /// The highest revision this client has seen of a config (0 if none).
    pub fn revision_seen(&self, tenant: &str, app: &str, env: &str, name: &str) -> u64 {
        self.shared.seen(&format!("{tenant}/{app}/{env}/{name}"))
    }

    /// `GET /health` on each endpoint until one answers.
    async fn probe(&self) -> Result<(), ClientError> {
        let shared = &self.shared;
        let mut last = None;
        for i in failover_order(shared.preferred(), shared.endpoints.len()) {
            match shared.endpoints[i].health().await {
                Ok(_) => {
                    shared.preferred.store(i, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a client has at least one endpoint"))
    }

    /// The content this client's labels resolve to, from the first endpoint that can serve
    /// it, never older than what this client has seen of the config before.
    pub async fn get_config(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
        name: &str,
    ) -> Result<ConfigValue, ClientError> {
        let path = config_path(tenant, app, env, name)?;
        let key = path.to_string();
        let shared = &self.shared;
        shared
            .fetch_from(&path, &key, shared.preferred(), 0)
            .await
            .0
    }

    /// Every change of a config from now on (from the state current when the stream is
    /// first polled; [`ConfigWatch::since`] starts after a known state instead). The stream
    /// reconnects by itself and ends after a deletion, or on an error that retrying cannot
    /// fix (then [`ConfigWatch::error`] says which).
    pub fn watch_config(&self, tenant: &str, app: &str, env: &str, name: &str) -> ConfigWatch {
        ConfigWatch::new(self.shared.clone(), config_path(tenant, app, env, name))
    }

    /// A live copy of a config, updated in the background; see [`ConfigHandle`] and
    /// [`StartMode`].
    pub async fn handle(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
        name: &str,
    ) -> Result<ConfigHandle, ClientError> {
        ConfigHandle::start(self.shared.clone(), config_path(tenant, app, env, name)?).await
    }
}
