//! The node's link to the metadata DB: connecting (and reconnecting) in the background,
//! inserting the bootstrap token into an empty DB, and keeping the in-memory identity in step
//! with the DB by polling its change counter.
//!
//! Serving never waits on this link: fetch, watch and config writes authenticate against the
//! in-memory identity, which keeps its last good generation while the DB is away.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use conflux_metadata::{MetadataError, MetadataStore, NewToken, PoolSettings};

use super::cache;
use super::identity::{Identity, IdentityCache};
use super::token::{self, SERVICE_PREFIX};
use crate::clock::now_ms;

/// How often a node asks the DB whether identity changed. Revocation reaches every node
/// within this plus one load (the contract allows 2 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// A full reload even without a change: cheap insurance against a missed counter bump.
const FULL_RELOAD_EVERY: Duration = Duration::from_secs(60);
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long start-up waits for the DB before serving with an empty identity.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The id of the token inserted from `--bootstrap-token-file` or `admin.token`.
pub const BOOTSTRAP_TOKEN_ID: &str = "bootstrap";
const ADMIN_TOKEN_FILE: &str = "admin.token";

/// What the link needs from the node's configuration.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub url: String,
    pub data_dir: PathBuf,
    /// The token of `--bootstrap-token-file` (read and checked by the caller), if given.
    pub bootstrap_token: Option<String>,
}

#[derive(Debug)]
pub struct MetadataLink {
    settings: LinkSettings,
    store: ArcSwapOption<MetadataStore>,
    identity: Arc<IdentityCache>,
    reachable: AtomicBool,
}

impl MetadataLink {
    /// Connects (waiting up to [`FIRST_CONNECT_WAIT`]), bootstraps an empty DB and loads the
    /// identity; if the DB cannot be reached in time, the node starts anyway and
    /// [`MetadataLink::run`] keeps trying.
    pub async fn start(settings: LinkSettings) -> anyhow::Result<Arc<MetadataLink>> {
        // SQLite's file and the identity cache live in the data directory.
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let link = Arc::new(MetadataLink {
            settings,
            store: ArcSwapOption::empty(),
            identity: Arc::new(IdentityCache::default()),
            reachable: AtomicBool::new(false),
        });
        let connected = match tokio::time::timeout(FIRST_CONNECT_WAIT, link.connect()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metadata DB not ready at start; retrying in the background");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "metadata DB did not answer within {FIRST_CONNECT_WAIT:?}; retrying in the background"
                );
                false
            }
        };
        if !connected && let Some(snapshot) = cache::load(&link.settings.data_dir) {
            let identity = Identity::from_snapshot(&snapshot);
            tracing::warn!(
                principals = identity.len(),
                "serving with the identity this node last loaded until the metadata DB answers"
            );
            link.identity.replace(identity);
        }
        Ok(link)
    }

    pub fn identity(&self) -> &Arc<IdentityCache> {
        &self.identity
    }

    /// The DB, once connected.
    pub fn store(&self) -> Result<Arc<MetadataStore>, MetadataError> {
        self.store.load_full().ok_or_else(|| {
            MetadataError::Unavailable("not connected to the metadata DB yet".into())
        })
    }

    /// Whether the last call to the DB succeeded.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Whether the metadata DB is a local SQLite file (single node only).
    pub fn is_sqlite(&self) -> bool {
        self.settings.url.starts_with("sqlite:")
    }

    /// Notes the outcome of a DB call, so readiness and logs tell when the DB goes away.
    pub fn observe<T>(&self, result: &Result<T, MetadataError>) {
        let ok = !matches!(result, Err(MetadataError::Unavailable(_)));
        if self.reachable.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!("metadata DB reachable again");
            } else {
                tracing::warn!(
                    "metadata DB unreachable: identity changes answer 503, serving goes on with the identity already loaded"
                );
            }
        }
    }

    async fn connect(&self) -> anyhow::Result<()> {
        let store = MetadataStore::connect(&self.settings.url, &PoolSettings::default())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the metadata DB: {e}"))?;
        if self.is_sqlite() {
            restrict_sqlite_files(&self.settings.data_dir);
        }
        self.bootstrap(&store).await?;
        let store = Arc::new(store);
        self.store.store(Some(store.clone()));
        self.reload(&store).await?;
        self.reachable.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Inserts the bootstrap token if the DB has no principal at all.
    async fn bootstrap(&self, store: &MetadataStore) -> anyhow::Result<()> {
        let admin_file = self.settings.data_dir.join(ADMIN_TOKEN_FILE);
        let (secret, written_now) = match &self.settings.bootstrap_token {
            Some(given) => (given.clone(), false),
            None if admin_file.exists() => (read_bootstrap_token(&admin_file)?, false),
            None => {
                let issued = token::issue(SERVICE_PREFIX);
                write_private(&admin_file, &issued.token)?;
                (issued.token.clone(), true)
            }
        };
        let new = NewToken {
            id: BOOTSTRAP_TOKEN_ID.into(),
            name: "bootstrap".into(),
            secret_hash: token::digest_hex(&secret),
            created_at_ms: now_ms() as i64,
            expires_at_ms: None,
            created_by: "system".into(),
        };
        let inserted = store
            .bootstrap(&new, "bootstrap", now_ms() as i64)
            .await
            .map_err(|e| anyhow::anyhow!("bootstrapping the metadata DB: {e}"))?;
        if inserted {
            match &self.settings.bootstrap_token {
                Some(_) => tracing::info!(
                    "metadata DB was empty: the token in the bootstrap token file is now a cluster_admin"
                ),
                None => tracing::info!(
                    file = %admin_file.display(),
                    "metadata DB was empty: wrote a cluster_admin token to this file (mode 0600)"
                ),
            }
        } else if written_now {
            // Another node bootstrapped the DB first: this file would hold a token nobody
            // accepts.
            let _ = std::fs::remove_file(&admin_file);
        }
        Ok(())
    }

    /// Reloads the identity now (after this node changed it), instead of at the next poll.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let store = self.store().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.reload(&store).await
    }

    async fn reload(&self, store: &MetadataStore) -> anyhow::Result<()> {
        let snapshot = store
            .load_identity(now_ms() as i64)
            .await
            .map_err(|e| anyhow::anyhow!("loading identity: {e}"))?;
        let identity = Identity::from_snapshot(&snapshot);
        tracing::debug!(
            principals = identity.len(),
            counter = identity.counter,
            "identity loaded"
        );
        // The periodic full reload usually finds nothing new: no need to rewrite the copy.
        let changed = self.identity.load().counter != identity.counter;
        self.identity.replace(identity);
        if !changed {
            return Ok(());
        }
        if let Err(e) = cache::save(&self.settings.data_dir, &snapshot) {
            tracing::warn!(error = %e, "cannot keep a copy of the identity in the data directory");
        }
        Ok(())
    }

    /// Keeps the link alive until `stop` resolves: (re)connects, polls the change counter,
    /// reloads the identity on change, purges expired sessions now and then.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_full = tokio::time::Instant::now();
        let mut last_purge = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
            let Some(store) = self.store.load_full() else {
                if let Err(e) = self.connect().await {
                    tracing::debug!(error = %e, "metadata DB still unreachable");
                }
                continue;
            };
            let counter = store.change_counter().await;
            self.observe(&counter);
            let Ok(counter) = counter else { continue };
            if counter != self.identity.load().counter || last_full.elapsed() >= FULL_RELOAD_EVERY {
                match self.reload(&store).await {
                    Ok(()) => last_full = tokio::time::Instant::now(),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading identity failed; keeping the previous one")
                    }
                }
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = store.purge_expired(now_ms() as i64).await {
                    tracing::debug!(error = %e, "purging expired sessions failed");
                }
            }
        }
    }
}

/// Reads a bootstrap token file: its content, trimmed, checked.
pub fn read_bootstrap_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the bootstrap token file {}", path.display()))?;
    let token = text.trim().to_owned();
    token::check_bootstrap_token(&token)
        .map_err(|why| anyhow::anyhow!("bootstrap token file {}: {why}", path.display()))?;
    Ok(token)
}

/// Creates `path` with mode 0600 and writes `content`; refuses to overwrite.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The SQLite files hold password hashes and audit records: owner only.
fn restrict_sqlite_files(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
        let path = data_dir.join(name);
        if path.exists()
            && let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot restrict the metadata DB file to its owner");
        }
    }
}
