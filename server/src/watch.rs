//! The watch hub: tells subscribed clients when a config changes, on every node.
//!
//! The state machine publishes every config it touches (after updating the fetch index), so
//! followers notify their own watchers as they apply. Each watched config has one
//! `tokio::sync::watch` channel holding only its latest state: a slow consumer never makes the
//! node buffer history, it just sees the newest state when it gets to it (coalescing).
//!
//! Watching compares revisions, so no event history is needed: a subscription carries the
//! last revision its client saw, and if the config changed after it the client is told at
//! once; reconnecting with the last revision seen can never miss a change. A label-aware
//! subscription (one that carries labels or a version) is only told when the version its
//! labels resolve to changes, or when the config is deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use conflux_api_types::{WatchEvent, WatchEventKind};
use conflux_domain::{ClientLabels, Revision, VersionId, resolve_ordered};
use tokio::sync::watch;

use crate::serving::ServedConfig;

/// The state of one watched config, as watchers see it.
#[derive(Debug, Clone)]
pub struct WatchState {
    /// The config's revision, or the revision of its deletion.
    pub revision: Revision,
    /// `None` once the config is deleted.
    pub served: Option<Arc<ServedConfig>>,
}

impl WatchState {
    pub fn present(served: Arc<ServedConfig>) -> Self {
        WatchState {
            revision: served.revision,
            served: Some(served),
        }
    }

    pub fn deleted(revision: Revision) -> Self {
        WatchState {
            revision,
            served: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("this node already serves {limit} watch subscriptions")]
pub struct TooManyWatchers {
    pub limit: usize,
}

/// Every watched config's channel, and the node-wide subscription count.
#[derive(Debug)]
pub struct WatchHub {
    channels: papaya::HashMap<String, watch::Sender<WatchState>>,
    subscriptions: AtomicUsize,
    max_subscriptions: AtomicUsize,
}

/// Replaces the channel's state if `state` is newer (revisions only grow, so concurrent
/// publishers converge on the newest state whatever their order).
fn advance(tx: &watch::Sender<WatchState>, state: WatchState) -> bool {
    tx.send_if_modified(|current| {
        if state.revision > current.revision
            || (state.revision == current.revision
                && current.served.is_some() != state.served.is_some())
        {
            *current = state;
            true
        } else {
            false
        }
    })
}

impl WatchHub {
    pub fn new(max_subscriptions: usize) -> Self {
        WatchHub {
            channels: papaya::HashMap::new(),
            subscriptions: AtomicUsize::new(0),
            max_subscriptions: AtomicUsize::new(max_subscriptions),
        }
    }

    /// Sets the node-wide limit of concurrent subscriptions (all transports together).
    pub fn set_max_subscriptions(&self, max: usize) {
        self.max_subscriptions.store(max, Ordering::SeqCst);
    }

    /// Called by the state machine after it changed a config (or deleted it).
    pub fn publish(&self, path: &str, state: WatchState) {
        let channels = self.channels.pin();
        if let Some(tx) = channels.get(path) {
            let deleted = state.served.is_none();
            advance(tx, state);
            // Nobody waits on a deleted config: forget its channel.
            if deleted && tx.receiver_count() == 0 {
                channels.remove(path);
            }
        }
    }

    /// Subscribes to a config whose current state is `current`. The caller reads `current`
    /// from the fetch index and subscribes while no apply can publish (see
    /// `ConfigPlane::subscribe`); otherwise a change published before the channel existed
    /// would be lost.
    pub fn subscribe(
        self: &Arc<Self>,
        path: &str,
        current: WatchState,
    ) -> Result<Subscription, TooManyWatchers> {
        let limit = self.max_subscriptions.load(Ordering::SeqCst);
        let n = self.subscriptions.fetch_add(1, Ordering::SeqCst);
        if n >= limit {
            self.subscriptions.fetch_sub(1, Ordering::SeqCst);
            return Err(TooManyWatchers { limit });
        }
        let channels = self.channels.pin();
        let tx = channels.get_or_insert_with(path.to_owned(), || watch::channel(current.clone()).0);
        // An existing channel may already hold `current`, or something newer.
        advance(tx, current);
        Ok(Subscription {
            rx: tx.subscribe(),
            hub: self.clone(),
        })
    }

    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::SeqCst)
    }
}

/// One subscription's receiver; counts against the node's limit until dropped.
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<WatchState>,
    hub: Arc<WatchHub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscriptions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a watcher has seen and who it is: decides which state changes are events for it.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub key: String,
    /// The last revision this watcher was told about (or said it saw).
    pub revision: Revision,
    /// The version the watcher holds, when known; only used when label-aware.
    pub version: Option<Option<VersionId>>,
    pub labels: ClientLabels,
    /// Only a change of the resolved version (or a deletion) is an event.
    pub label_aware: bool,
}

impl Watcher {
    fn resolved(&self, served: &ServedConfig) -> Option<VersionId> {
        resolve_ordered(served.config_id, &served.rules, &served.order, &self.labels)
            .map(|r| r.rule.version_id)
    }

    /// The event `state` is for this watcher, if it is one; advances what it has seen.
    pub fn observe(&mut self, state: &WatchState) -> Option<WatchEvent> {
        // Nothing at or before the revision the watcher has seen is news to it (a lagging
        // node's older state included).
        if state.revision <= self.revision {
            return None;
        }
        let event = match &state.served {
            None => Some((None, WatchEventKind::Deleted)),
            Some(served) => {
                let resolved = self.resolved(served);
                let changed = match (self.label_aware, self.version) {
                    // Label-aware: only a different version for these labels, or a config
                    // re-created since (its version numbers start again).
                    (true, Some(known)) => {
                        resolved != known || served.created_revision > self.revision
                    }
                    _ => true,
                };
                changed.then_some((resolved, WatchEventKind::Updated))
            }
        };
        let (version_id, kind) = event?;
        self.revision = self.revision.max(state.revision);
        self.version = Some(version_id);
        Some(WatchEvent {
            key: self.key.clone(),
            revision: state.revision,
            version_id,
            event: kind,
        })
    }

    /// Waits for the next event of this watcher. `None` when the hub is gone (node stopping).
    pub async fn next(&mut self, sub: &mut Subscription) -> Option<WatchEvent> {
        loop {
            let state = sub.rx.borrow_and_update().clone();
            if let Some(event) = self.observe(&state) {
                return Some(event);
            }
            // A deleted config has no further events.
            if state.served.is_none() {
                std::future::pending::<()>().await;
            }
            sub.rx.changed().await.ok()?;
        }
    }
}
