//! The watch loop: long polls, reconnection with backoff and failover, and the fetch that
//! follows each event.
//!
//! A [`WatchLoop`] holds the resume point of one watched config: the last revision it
//! reported, and the version and hash this client holds. Every poll sends that point; the
//! server answers as soon as the config's state differs from it (label-aware: as soon as the
//! version these labels resolve to differs), so whatever happened while no poll was pending
//! is reported by the next one. An event is followed by a fetch with `min_revision` = the
//! event's revision (or the loop's, if higher): the content reported is never older than the
//! event, and an event that turns out to change nothing for this client (a lagging node's
//! view, or an intermediate state already superseded) is not reported.
//!
//! The resume point only advances once the fetch has succeeded, so a failure between the
//! event and the fetch makes the next poll report the same change again.
//!
//! After a failed poll the loop also fetches before polling again, and compares the content
//! hash as well as the version: whatever happened while it was disconnected (a deletion, or a
//! deletion and re-creation whose new version has the same number as the one held, which a
//! label-aware poll cannot tell apart) is then reported from the fetch.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use conflux_domain::ConfigPath;
use futures::stream::{BoxStream, Stream, StreamExt};

use super::value::{Change, ConfigValue};
use super::{Shared, should_fail_over};
use crate::error::ClientError;
use crate::options::WatchOptions;
use conflux_api_types::WatchEventKind;

/// Work to do before the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Learn the current state, without reporting it (a watch that starts now).
    Baseline,
    /// Fetch the state at or after this revision and report it if it differs from the one
    /// held.
    Fetch(u64),
}

/// What one step of the loop produced.
#[derive(Debug)]
pub(crate) enum Step {
    Change(Change),
    /// The cluster confirmed the state held, at this revision (nothing changed for us).
    Synced(u64),
}

pub(crate) struct WatchLoop {
    shared: Arc<Shared>,
    path: ConfigPath,
    key: String,
    /// The last revision reported (or confirmed).
    revision: u64,
    /// The version held; `None` when the config is not published for this client.
    version: Option<u64>,
    hash: Option<String>,
    pending: Option<Pending>,
    /// The endpoint polled.
    endpoint: usize,
    /// Consecutive failures, for the backoff.
    failures: u32,
    finished: bool,
}

impl fmt::Debug for WatchLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchLoop")
            .field("key", &self.key)
            .field("revision", &self.revision)
            .field("version", &self.version)
            .field("pending", &self.pending)
            .field("endpoint", &self.endpoint)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

fn is_code(e: &ClientError, status: u16, code: &str) -> bool {
    e.status() == Some(status) && e.code() == code
}

impl WatchLoop {
    /// A loop that first learns the current state and reports what comes after it.
    pub(crate) fn from_now(shared: Arc<Shared>, path: ConfigPath) -> WatchLoop {
        let endpoint = shared.preferred();
        WatchLoop {
            key: path.to_string(),
            shared,
            path,
            revision: 0,
            version: None,
            hash: None,
            pending: Some(Pending::Baseline),
            endpoint,
            failures: 0,
            finished: false,
        }
    }

    /// Resumes after `value`, which becomes the oldest state any later fetch accepts; with
    /// `verify`, first fetches the current state and reports it if it differs (`value` came
    /// from somewhere else than the cluster, e.g. a fallback copy).
    pub(crate) fn resume(&mut self, value: &ConfigValue, verify: bool) {
        self.revision = value.revision;
        self.version = Some(value.version);
        self.hash = Some(value.hash.clone());
        self.pending = verify.then_some(Pending::Fetch(value.revision));
        self.shared.note(&self.key, value.revision);
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The next change (or confirmation) of the config: `Ok(None)` once it has been deleted,
    /// an error only when retrying cannot help (the loop is then finished). Transient
    /// failures are retried here, forever.
    pub(crate) async fn next_step(&mut self) -> Result<Option<Step>, ClientError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some(pending) = self.pending {
                match self.resolve(pending).await {
                    Ok(step) => {
                        self.pending = None;
                        if let Some(step) = step {
                            return Ok(Some(step));
                        }
                    }
                    // Every endpoint was tried: wait, then try again.
                    Err(e) if should_fail_over(&e) => self.pause(&e, false).await,
                    Err(e) => {
                        self.finished = true;
                        return Err(e);
                    }
                }
                continue;
            }
            if let Some(step) = self.poll().await? {
                return Ok(Some(step));
            }
        }
    }

    /// The next change; confirmations are skipped.
    pub(crate) async fn next_change(&mut self) -> Result<Option<Change>, ClientError> {
        loop {
            match self.next_step().await? {
                Some(Step::Change(c)) => return Ok(Some(c)),
                Some(Step::Synced(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// One long poll. A deletion is reported at once; an update leaves a fetch pending.
    async fn poll(&mut self) -> Result<Option<Step>, ClientError> {
        let shared = self.shared.clone();
        let opts = WatchOptions {
            revision: self.revision,
            version: self.version,
            labels: shared.fetch.labels.clone(),
            client_id: shared.fetch.client_id.clone(),
            timeout: Some(shared.poll_timeout),
        };
        let endpoint = &shared.endpoints[self.endpoint];
        match endpoint.watch(&self.path, &opts).await {
            Ok(None) => self.failures = 0,
            Ok(Some(event)) => {
                self.failures = 0;
                shared.note(&self.key, event.revision);
                match event.event {
                    WatchEventKind::Deleted if event.revision > self.revision => {
                        self.finished = true;
                        return Ok(Some(Step::Change(Change::deleted(
                            &self.key,
                            event.revision,
                        ))));
                    }
                    // A deletion older than the state held (a lagging node's view of a
                    // config since re-created): check with a fetch.
                    WatchEventKind::Deleted => {
                        self.pending = Some(Pending::Fetch(self.revision));
                    }
                    WatchEventKind::Updated => {
                        self.pending = Some(Pending::Fetch(event.revision.max(self.revision)));
                    }
                }
            }
            // The config is gone from this node's view (or the node has not applied its
            // creation yet): confirm with a fetch that cannot be answered from a state older
            // than the one held.
            Err(e) if is_code(&e, 404, "config_not_found") => {
                self.pending = Some(Pending::Fetch(self.revision));
                self.pause(&e, false).await;
            }
            Err(e) if should_fail_over(&e) || e.status() == Some(429) => {
                // Before polling again (on the next endpoint), check the state held against a
                // fetch: the server's label-aware comparison looks at the version number
                // only, so a config deleted and re-created while we were away, whose new
                // version has the same number, would never be reported by a poll.
                if self.pending.is_none() && self.version.is_some() {
                    self.pending = Some(Pending::Fetch(self.revision));
                }
                self.pause(&e, true).await;
            }
            Err(e) => {
                self.finished = true;
                return Err(e);
            }
        }
        Ok(None)
    }

    /// Fetches what `pending` asks for and compares it with the state held.
    async fn resolve(&mut self, pending: Pending) -> Result<Option<Step>, ClientError> {
        let shared = self.shared.clone();
        let min_revision = match pending {
            Pending::Baseline => 0,
            Pending::Fetch(r) => r,
        };
        let (result, endpoint) = shared
            .fetch_from(&self.path, &self.key, self.endpoint, min_revision)
            .await;
        match result {
            Ok(value) => {
                self.endpoint = endpoint;
                let changed =
                    Some(value.version) != self.version || Some(&value.hash) != self.hash.as_ref();
                self.revision = self.revision.max(value.revision);
                self.version = Some(value.version);
                self.hash = Some(value.hash.clone());
                Ok(match pending {
                    Pending::Baseline => None,
                    Pending::Fetch(_) if changed => Some(Step::Change(Change::updated(value))),
                    Pending::Fetch(_) => Some(Step::Synced(self.revision)),
                })
            }
            Err(e) if is_code(&e, 404, "not_published") => {
                self.endpoint = endpoint;
                let had = self.version.take().is_some();
                self.hash = None;
                self.revision = self.revision.max(min_revision);
                Ok(match pending {
                    Pending::Fetch(_) if had => {
                        Some(Step::Change(Change::unpublished(&self.key, self.revision)))
                    }
                    _ => None,
                })
            }
            Err(e) if is_code(&e, 404, "config_not_found") && pending != Pending::Baseline => {
                // The node has applied at least `min_revision` and has no such config: it was
                // deleted after the state held. Its revision is not in the answer; the node's
                // applied index is a revision at which it no longer exists.
                self.finished = true;
                let applied = shared.endpoints[endpoint]
                    .ready()
                    .await
                    .map(|r| r.applied_index)
                    .unwrap_or(0);
                let revision = applied.max(min_revision);
                shared.note(&self.key, revision);
                Ok(Some(Step::Change(Change::deleted(&self.key, revision))))
            }
            Err(e) => Err(e),
        }
    }

    /// Waits before the next attempt after a failure; with `rotate`, moves to the next
    /// endpoint.
    async fn pause(&mut self, e: &ClientError, rotate: bool) {
        let delay = self.shared.backoff.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        let endpoint = self.shared.endpoints[self.endpoint].endpoint();
        if rotate {
            self.endpoint = (self.endpoint + 1) % self.shared.endpoints.len();
        }
        tracing::warn!(
            key = %self.key,
            endpoint,
            error = %e,
            attempt = self.failures,
            "watch interrupted; retrying in {delay:?}"
        );
        tokio::time::sleep(delay).await;
    }
}

/// The changes of one config, as a [`Stream`]; see [`crate::ConfluxClient::watch_config`].
///
/// It reconnects by itself (backoff, next endpoint, resuming from the last change reported)
/// and ends after a [`crate::ChangeKind::Deleted`] change, or when an error that retrying
/// cannot fix occurs (a 4xx other than "not found": e.g. a refused token once authentication
/// exists); [`ConfigWatch::error`] then tells which.
pub struct ConfigWatch {
    state: State,
    key: String,
    error: Option<ClientError>,
}

enum State {
    Idle(Box<WatchLoop>),
    Running(BoxStream<'static, Result<Change, ClientError>>),
    Done,
}

impl fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle(_) => "idle",
            State::Running(_) => "running",
            State::Done => "done",
        };
        f.debug_struct("ConfigWatch")
            .field("key", &self.key)
            .field("state", &state)
            .field("error", &self.error)
            .finish()
    }
}

impl ConfigWatch {
    pub(crate) fn new(shared: Arc<Shared>, path: Result<ConfigPath, ClientError>) -> ConfigWatch {
        match path {
            Ok(path) => {
                let watch = WatchLoop::from_now(shared, path);
                ConfigWatch {
                    key: watch.key().to_owned(),
                    state: State::Idle(Box::new(watch)),
                    error: None,
                }
            }
            Err(e) => ConfigWatch {
                key: String::new(),
                state: State::Done,
                error: Some(e),
            },
        }
    }

    /// Reports the changes after `value` (a state this client got before, e.g. from
    /// [`crate::ConfluxClient::get_config`]) instead of after the state current when the
    /// stream is first polled: nothing between the two is missed. Only before the first
    /// poll; later it changes nothing.
    pub fn since(mut self, value: &ConfigValue) -> Self {
        if let State::Idle(watch) = &mut self.state {
            watch.resume(value, false);
        }
        self
    }

    /// `tenant/app/env/name`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Why the stream ended, when it was not a deletion.
    pub fn error(&self) -> Option<&ClientError> {
        self.error.as_ref()
    }

    /// [`ConfigWatch::error`], by value.
    pub fn into_error(self) -> Option<ClientError> {
        self.error
    }
}

impl Stream for ConfigWatch {
    type Item = Change;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle(_) => {
                    let State::Idle(watch) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("matched Idle above")
                    };
                    let stream = futures::stream::unfold(watch, |mut watch| async move {
                        match watch.next_change().await {
                            Ok(Some(change)) => Some((Ok(change), watch)),
                            Ok(None) => None,
                            Err(e) => Some((Err(e), watch)),
                        }
                    });
                    this.state = State::Running(stream.boxed());
                }
                State::Running(stream) => {
                    return match stream.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(change))) => Poll::Ready(Some(change)),
                        Poll::Ready(Some(Err(e))) => {
                            this.error = Some(e);
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Poll::Ready(None) => {
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}
