//! [`ConfigHandle`]: a config's latest content, kept in memory and updated in the background.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use conflux_domain::ConfigPath;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fallback::FallbackStore;
use super::value::{Change, ChangeKind, ConfigValue};
use super::watch::{Step, WatchLoop};
use super::{Shared, StartMode, should_fail_over};
use crate::error::ClientError;

type Callback = Arc<dyn Fn(&Change) + Send + Sync>;

/// What a handle holds.
#[derive(Debug, Clone)]
struct Held {
    /// The last content received (kept after a deletion or an unpublish).
    value: ConfigValue,
    /// No version is published for this client any more (the content is the last one).
    unpublished: bool,
    deleted: bool,
    /// The content comes from the fallback copy and the cluster has not confirmed it yet.
    from_fallback: bool,
}

struct Inner {
    path: ConfigPath,
    held: watch::Sender<Held>,
    callbacks: Mutex<Vec<Callback>>,
    fallback: Option<FallbackStore>,
}

/// Aborts the background task when the last clone of the handle is dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The latest content of one config for this client, kept up to date by a background task
/// that watches it ([`crate::ConfluxClient::watch_config`]'s loop). Reading never waits for
/// the network.
///
/// With a fallback directory, every new state is written through to a local copy before
/// callbacks run, and the copy is removed when the config is deleted. Clones share the same
/// state and task; dropping the last clone stops the task.
#[derive(Clone)]
pub struct ConfigHandle {
    inner: Arc<Inner>,
    _task: Arc<Task>,
}

impl fmt::Debug for ConfigHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.inner.held.borrow();
        f.debug_struct("ConfigHandle")
            .field("key", &held.value.key)
            .field("version", &held.value.version)
            .field("revision", &held.value.revision)
            .field("unpublished", &held.unpublished)
            .field("deleted", &held.deleted)
            .field("from_fallback", &held.from_fallback)
            .finish_non_exhaustive()
    }
}

impl ConfigHandle {
    /// Gets the config from the cluster (or, in fail-safe mode with no node able to serve it,
    /// from the fallback copy) and starts the background task.
    ///
    /// The fallback copy is what this client held before: its revision is noted as seen
    /// first, so no fetch (this one, or any of the handle's later ones) accepts an older
    /// state from a node that lags behind it.
    pub(crate) async fn start(
        shared: Arc<Shared>,
        path: ConfigPath,
    ) -> Result<ConfigHandle, ClientError> {
        let key = path.to_string();
        let fallback = shared.fallback.clone();
        let copy = match &fallback {
            Some(store) => load_copy(store, &path).await,
            None => Ok(None),
        };
        if let Ok(Some(copy)) = &copy {
            shared.note(&key, copy.revision);
        }
        let (result, _) = shared.fetch_from(&path, &key, shared.preferred(), 0).await;
        let (value, from_fallback) = match result {
            Ok(value) => {
                if let Some(store) = &fallback {
                    write_through(store, &path, Some(&value)).await;
                }
                (value, false)
            }
            Err(e) if should_fail_over(&e) && shared.start_mode == StartMode::FailSafe => {
                let Some(store) = &fallback else {
                    return Err(e);
                };
                match copy? {
                    Some(value) => {
                        tracing::warn!(key = %key, version = value.version, revision = value.revision, error = %e,
                            "no node can serve the config; starting from the fallback copy");
                        (value, true)
                    }
                    None => {
                        return Err(ClientError::Fallback {
                            path: store.dir(&path)?.display().to_string(),
                            message: format!(
                                "no node can serve {key} ({e}) and there is no fallback copy"
                            ),
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let mut watch = WatchLoop::from_now(shared, path.clone());
        watch.resume(&value, from_fallback);
        let inner = Arc::new(Inner {
            path,
            held: watch::Sender::new(Held {
                value,
                unpublished: false,
                deleted: false,
                from_fallback,
            }),
            callbacks: Mutex::new(Vec::new()),
            fallback,
        });
        let task = tokio::spawn(run(inner.clone(), watch));
        Ok(ConfigHandle {
            inner,
            _task: Arc::new(Task(task)),
        })
    }

    fn held(&self) -> watch::Ref<'_, Held> {
        self.inner.held.borrow()
    }

    /// `tenant/app/env/name`.
    pub fn key(&self) -> String {
        self.inner.path.to_string()
    }

    /// The content and its metadata.
    pub fn value(&self) -> ConfigValue {
        self.held().value.clone()
    }

    /// The raw content (a cheap, shared copy).
    pub fn raw(&self) -> Bytes {
        self.held().value.content.clone()
    }

    /// The version the content is.
    pub fn version(&self) -> u64 {
        self.held().value.version
    }

    /// The config's revision when the content was served (or later confirmed).
    pub fn revision(&self) -> u64 {
        self.held().value.revision
    }

    pub fn content_type(&self) -> String {
        self.held().value.content_type.clone()
    }

    /// The content deserialised by its format (json, yaml or toml); see [`ConfigValue::get`].
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        self.held().value.get()
    }

    /// The config was deleted (the content is the last one received; no more updates come).
    pub fn is_deleted(&self) -> bool {
        self.held().deleted
    }

    /// No version is released to this client any more (the content is the last one).
    pub fn is_unpublished(&self) -> bool {
        self.held().unpublished
    }

    /// The content comes from the fallback copy and no node has confirmed it yet.
    pub fn is_from_fallback(&self) -> bool {
        self.held().from_fallback
    }

    /// Calls `callback` with every change from now on, on the handle's background task,
    /// after the new state is in the handle (and in the fallback copy). Keep it short; it
    /// delays the next update.
    pub fn on_change(&self, callback: impl Fn(&Change) + Send + Sync + 'static) {
        let mut callbacks = self
            .inner
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        callbacks.push(Arc::new(callback));
    }

    /// Waits until the handle's state changes after this call (a new content, an unpublish,
    /// a deletion, or the cluster confirming a fallback start). Changes are not queued
    /// between calls: to see every change, use [`ConfigHandle::on_change`].
    pub async fn changed(&self) {
        let mut rx = self.inner.held.subscribe();
        // The sender lives as long as `self`, so this only returns on a change.
        let _ = rx.changed().await;
    }
}

/// Reads the fallback copy of `path` (off the async workers).
async fn load_copy(
    store: &FallbackStore,
    path: &ConfigPath,
) -> Result<Option<ConfigValue>, ClientError> {
    let (store, path) = (store.clone(), path.clone());
    let key = path.to_string();
    tokio::task::spawn_blocking(move || store.load(&path))
        .await
        .map_err(|j| ClientError::Fallback {
            path: key,
            message: j.to_string(),
        })?
}

/// Writes `value` to the fallback copy (or removes it, for `None`); failures are logged, as
/// a full disk must not stop a service from receiving its config.
async fn write_through(store: &FallbackStore, path: &ConfigPath, value: Option<&ConfigValue>) {
    let (store, path, value) = (store.clone(), path.clone(), value.cloned());
    let result = tokio::task::spawn_blocking(move || match &value {
        Some(v) => store.save(&path, v),
        None => store.remove(&path),
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot update the fallback copy"),
        Err(e) => tracing::error!(error = %e, "cannot update the fallback copy"),
    }
}

/// The background task: applies each change of the watch to the handle.
async fn run(inner: Arc<Inner>, mut watch: WatchLoop) {
    loop {
        match watch.next_step().await {
            Ok(Some(Step::Change(change))) => apply(&inner, change).await,
            Ok(Some(Step::Synced(revision))) => {
                inner.held.send_if_modified(|held| {
                    let confirmed = held.from_fallback;
                    held.from_fallback = false;
                    held.value.revision = held.value.revision.max(revision);
                    confirmed
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(key = %inner.path, error = %e, "the config handle stops updating");
                return;
            }
        }
    }
}

async fn apply(inner: &Inner, change: Change) {
    if let Some(store) = &inner.fallback {
        match change.kind {
            ChangeKind::Updated => {
                if let Some(value) = &change.value {
                    write_through(store, &inner.path, Some(value)).await;
                }
            }
            ChangeKind::Deleted => write_through(store, &inner.path, None).await,
        }
    }
    inner.held.send_modify(|held| {
        held.from_fallback = false;
        match (&change.kind, &change.value) {
            (ChangeKind::Updated, Some(value)) => {
                held.value = value.clone();
                held.unpublished = false;
            }
            (ChangeKind::Updated, None) => held.unpublished = true,
            (ChangeKind::Deleted, _) => held.deleted = true,
        }
    });
    let callbacks: Vec<Callback> = inner
        .callbacks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for callback in callbacks {
        callback(&change);
    }
}
