//! Watch endpoints: HTTP long poll (`GET /api/v1/watch/config/{t}/{a}/{e}/{n}`) and a
//! multiplexed WebSocket (`GET /api/v1/watch/ws`). Both sit on [`crate::watch`]; the gRPC
//! stream is in `grpc.rs`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conflux_api_types::{
    Subscription, WatchEvent, WatchEventKind, WatchMessage, WatchRequest, headers,
};
use conflux_domain::{ClientLabels, ConfigPath, DomainError, Entity};
use futures::future::ready;
use futures::{SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::StreamMap;

use super::AppState;
use super::access::{Caller, access_lost, unauthenticated_now};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, client_labels};
use crate::watch::Watcher;

/// Long-poll timeout when the client does not say, and the longest it may ask for.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest WebSocket message a client may send (a subscribe of many keys fits easily).
pub const MAX_WS_MESSAGE_BYTES: usize = 256 * 1024;
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;
/// A client that stops reading is disconnected once this much is queued for it.
const WS_MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

pub type EventStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send>>;

/// Subscribes `watcher` to its config and returns its events as a stream, which ends after a
/// deletion event or when the node shuts down.
///
/// A node behind the revision the watcher has seen first catches up with it (bounded, like
/// `?min_revision=`), so it never reports an older state or a config it has not created yet.
/// A config that existed at that revision and is gone now answers one deletion event (at
/// this node's applied revision); a config the watcher never saw is 404. Over the node's
/// limit: 429.
pub async fn subscribe(
    app: &AppState,
    caller: &Caller,
    watcher: Watcher,
) -> Result<EventStream, ApiError> {
    ConfigPath::parse(&watcher.key)?;
    let plane = app.plane();
    if plane.applied_index() < watcher.revision
        && !plane
            .wait_applied(watcher.revision, app.0.min_revision_wait)
            .await
    {
        return Err(ApiError::Unavailable {
            code: "revision_not_reached",
            message: format!(
                "this node has applied revision {} and did not reach the watched revision {} within {:?}",
                plane.applied_index(),
                watcher.revision,
                app.0.min_revision_wait
            ),
            retry_after_secs: 1,
        });
    }
    // A config outside the caller's scope answers exactly like one that does not exist.
    let subscribed = match caller.may_read_path(&watcher.key) {
        true => plane
            .subscribe(&watcher.key)
            .map_err(|e| ApiError::TooMany {
                code: "too_many_watchers",
                message: e.to_string(),
            })?,
        false => None,
    };
    let Some(sub) = subscribed else {
        if watcher.revision == 0 {
            return Err(DomainError::NotFound {
                entity: Entity::Config,
                key: watcher.key.clone(),
            }
            .into());
        }
        let deleted = WatchEvent {
            key: watcher.key.clone(),
            revision: plane.applied_index(),
            version_id: None,
            event: WatchEventKind::Deleted,
        };
        return Ok(Box::pin(futures::stream::iter([deleted])));
    };
    let stream = futures::stream::unfold(
        (watcher, sub, false),
        |(mut watcher, mut sub, done)| async move {
            if done {
                return None;
            }
            let event = watcher.next(&mut sub).await?;
            let done = event.event == WatchEventKind::Deleted;
            Some((event, (watcher, sub, done)))
        },
    );
    Ok(Box::pin(stream.take_until(app.stopping())))
}

#[derive(Debug, Deserialize)]
pub struct PollQuery {
    revision: Option<u64>,
    version: Option<u64>,
    timeout: Option<String>,
}

fn poll_timeout(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_POLL_TIMEOUT);
    };
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(raw).map_err(|_| ()),
    };
    match parsed {
        Ok(d) if d <= MAX_POLL_TIMEOUT => Ok(d),
        _ => Err(ApiError::invalid_request(
            "invalid_query",
            "timeout",
            format!(
                "timeout must be a duration such as 30s, at most {}s; got {raw:?}",
                MAX_POLL_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Long poll: answers the first event after `revision` (or, with `version`, the first change
/// of the version this client's labels resolve to), or 304 when `timeout` passes first.
pub async fn long_poll(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env, name)): ApiPath<(String, String, String, String)>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> Result<Response, ApiError> {
    let key = ConfigPath::parse(&format!("{tenant}/{app_name}/{env}/{name}"))?.to_string();
    let timeout = poll_timeout(q.timeout.as_deref())?;
    let labels = client_labels(&headers, [], None)?;
    let lost = access_lost(&app, &caller, key.clone());
    let watcher = Watcher {
        key,
        revision: q.revision.unwrap_or(0),
        version: q.version.map(Some),
        labels,
        label_aware: q.version.is_some(),
    };
    let mut events = subscribe(&app, &caller, watcher).await?;
    let waited = tokio::select! {
        waited = tokio::time::timeout(timeout, events.next()) => waited,
        // Revoked while waiting: the poll ends at once with the reason.
        why = lost => return Err(why),
    };
    match waited {
        Ok(Some(event)) => {
            let mut r = Json(&event).into_response();
            r.headers_mut()
                .insert(headers::REVISION, HeaderValue::from(event.revision));
            Ok(r)
        }
        Ok(None) => Err(ApiError::Unavailable {
            code: "node_stopping",
            message: "the node is shutting down".into(),
            retry_after_secs: 1,
        }),
        Err(_) => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

pub async fn websocket(
    State(app): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Small buffers: an idle watch connection must cost little, and events are small.
    upgrade
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| ws_session(app, caller, socket))
}

fn ws_error(error: &ApiError, key: Option<String>) -> WatchMessage {
    WatchMessage::Error {
        error: error.detail(),
        key,
    }
}

fn watcher_for(s: &Subscription) -> Result<Watcher, ApiError> {
    let key = ConfigPath::parse(&s.key)?.to_string();
    let labels = ClientLabels::from_pairs(&s.labels, s.client_id.as_deref())?;
    let label_aware = s.version.is_some() || !labels.is_empty() || labels.client_id().is_some();
    Ok(Watcher {
        key,
        revision: s.revision,
        version: s.version.map(Some),
        labels,
        label_aware,
    })
}

async fn send(
    socket: &mut futures::stream::SplitSink<WebSocket, Message>,
    msg: &WatchMessage,
) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// What a WebSocket session's subscriptions produce.
enum SessionItem {
    Event(WatchEvent),
    /// A subscription that had to wait for this node to reach its revision is registered.
    Subscribed,
    /// A subscription that had to wait failed (e.g. `revision_not_reached`); it is gone.
    Failed(ApiError),
}

type SessionStream = Pin<Box<dyn Stream<Item = SessionItem> + Send>>;

/// A subscription that first waits for this node to reach the watcher's revision (bounded,
/// see [`subscribe`]), then yields `Subscribed` and the events, or `Failed` and ends.
fn subscribe_when_reached(app: AppState, caller: Caller, watcher: Watcher) -> SessionStream {
    let subscribed = async move { subscribe(&app, &caller, watcher).await };
    Box::pin(
        futures::stream::once(subscribed).flat_map(|result| -> SessionStream {
            match result {
                Ok(events) => Box::pin(
                    futures::stream::once(ready(SessionItem::Subscribed))
                        .chain(events.map(SessionItem::Event)),
                ),
                Err(e) => Box::pin(futures::stream::once(ready(SessionItem::Failed(e)))),
            }
        }),
    )
}

/// Handles one `subscribe` message: keys this node can subscribe now are subscribed at once;
/// a key at a revision this node has not applied yet waits for it in the background, as a
/// stream of `subs` (its acknowledgement or error comes when the wait ends). A pending key
/// counts against the connection's limit like a subscribed one. Returns the messages to
/// send now, in order: per-key errors, then the keys subscribed.
async fn subscribe_all(
    app: &AppState,
    caller: &Caller,
    subs: &mut StreamMap<String, SessionStream>,
    list: Vec<Subscription>,
) -> Vec<WatchMessage> {
    let limit = app.0.max_subscriptions_per_connection;
    let mut out = Vec::new();
    let mut subscribed = Vec::new();
    for s in list {
        let key = s.key.clone();
        if !subs.contains_key(&key) && subs.len() >= limit {
            let e = ApiError::TooMany {
                code: "too_many_subscriptions",
                message: format!("a connection holds at most {limit} subscriptions"),
            };
            out.push(ws_error(&e, Some(key)));
            continue;
        }
        let watcher = match watcher_for(&s) {
            Ok(w) => w,
            Err(e) => {
                out.push(ws_error(&e, Some(key)));
                continue;
            }
        };
        if app.plane().applied_index() < watcher.revision {
            subs.insert(
                key,
                subscribe_when_reached(app.clone(), caller.clone(), watcher),
            );
            continue;
        }
        // Applied revisions only grow: this does not wait.
        match subscribe(app, caller, watcher).await {
            Ok(events) => {
                subs.insert(key.clone(), Box::pin(events.map(SessionItem::Event)));
                subscribed.push(key);
            }
            Err(e) => out.push(ws_error(&e, Some(key))),
        }
    }
    if !subscribed.is_empty() {
        out.push(WatchMessage::Subscribed { subscribed });
    }
    out
}

/// One WebSocket connection: any number of subscriptions (up to the per-connection limit),
/// events sent as they happen; a slow reader sees coalesced (latest) states. Nothing a
/// subscription waits for holds up the session: it keeps reading messages, delivering events
/// and noticing shutdown.
async fn ws_session(app: AppState, caller: Caller, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut subs: StreamMap<String, SessionStream> = StreamMap::new();
    let stopping = app.stopping();
    tokio::pin!(stopping);
    let mut identity = app.identity().subscribe();
    loop {
        let outgoing: Vec<WatchMessage> = tokio::select! {
            _ = &mut stopping => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            // After every identity reload: a revoked token ends the connection; a key the
            // caller may no longer read ends its subscription, as if the config were gone.
            Ok(()) = identity.changed() => {
                match recheck(&app, &caller, &mut subs) {
                    Ok(ended) => ended,
                    Err(e) => {
                        let _ = send(&mut tx, &ws_error(&e, None)).await;
                        let _ = tx.send(Message::Close(None)).await;
                        break;
                    }
                }
            }
            incoming = rx.next() => {
                let Some(Ok(message)) = incoming else { break };
                let text = match message {
                    Message::Text(t) => t,
                    Message::Close(_) => break,
                    // Pings are answered by the WebSocket layer.
                    Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => continue,
                };
                match super::extract::parse_json(text.as_bytes()) {
                    Err(e) => vec![ws_error(&e, None)],
                    Ok(WatchRequest::Subscribe(list)) => {
                        subscribe_all(&app, &caller, &mut subs, list).await
                    }
                    Ok(WatchRequest::Unsubscribe(keys)) => {
                        for k in keys {
                            subs.remove(&k);
                        }
                        Vec::new()
                    }
                }
            }
            Some((key, item)) = subs.next(), if !subs.is_empty() => match item {
                SessionItem::Event(event) => vec![WatchMessage::Event(event)],
                SessionItem::Subscribed => vec![WatchMessage::Subscribed { subscribed: vec![key] }],
                SessionItem::Failed(e) => vec![ws_error(&e, Some(key))],
            },
        };
        for msg in &outgoing {
            if !send(&mut tx, msg).await {
                return;
            }
        }
    }
}

/// Checks a WebSocket session's caller against the current identity: `Err` when its token no
/// longer authenticates; otherwise ends (and reports) the subscriptions it may no longer read.
fn recheck(
    app: &AppState,
    caller: &Caller,
    subs: &mut StreamMap<String, SessionStream>,
) -> Result<Vec<WatchMessage>, ApiError> {
    let now = crate::clock::now_ms() as i64;
    let Some(subject) = app
        .identity()
        .load()
        .authenticate_digest(&caller.token, now)
    else {
        return Err(unauthenticated_now());
    };
    let lost: Vec<String> = subs
        .keys()
        .filter(|k| !subject.may_read_path(k))
        .cloned()
        .collect();
    Ok(lost
        .into_iter()
        .map(|key| {
            subs.remove(&key);
            let e = ApiError::from(DomainError::NotFound {
                entity: Entity::Config,
                key: key.clone(),
            });
            ws_error(&e, Some(key))
        })
        .collect())
}

/// Labels given as a map (gRPC, WebSocket) rather than headers.
pub fn labels_from_map(
    labels: &BTreeMap<String, String>,
    client_id: Option<&str>,
) -> Result<ClientLabels, ApiError> {
    Ok(ClientLabels::from_pairs(labels, client_id)?)
}
