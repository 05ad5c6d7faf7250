//! Watch over real processes: every transport on every node, revision- and label-aware
//! semantics, deletions, timeouts and limits.

mod common;

use std::time::{Duration, Instant};

use common::{client, eventually, metric, push, setup_config, ws_next};
use conflux_api_types::{PutReleases, WatchEvent, WatchEventKind, WatchMessage};
use conflux_client::{ApiClient, WriteOptions};
use conflux_domain::ReleaseRule;
use conflux_server::api::grpc::pb;
use conflux_testkit::{Cluster, NodeSpec, TestNode};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "acme/shop/prod/w.txt";

async fn set_rules(c: &ApiClient, id: u64, rules: Vec<ReleaseRule>) -> u64 {
    c.put_releases(
        id,
        &PutReleases {
            releases: rules,
            comment: None,
        },
        &WriteOptions::default(),
    )
    .await
    .unwrap()
    .revision
}

fn canary(version: u64) -> ReleaseRule {
    ReleaseRule {
        labels: [("canary".to_owned(), "true".to_owned())].into(),
        percent: None,
        version_id: version,
        priority: 100,
    }
}

/// A node's API URL and a token it accepts; formats as the URL.
#[derive(Debug, Clone)]
struct Base {
    url: String,
    token: String,
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

fn base_of(node: &TestNode) -> Base {
    Base {
        url: node.api_url(),
        token: node.token(),
    }
}

/// GET with the base's token.
async fn get(base: &Base, url: String) -> reqwest::Result<reqwest::Response> {
    conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(url)
        .bearer_auth(&base.token)
        .send()
        .await
}

/// One long poll; `None` for 304.
async fn long_poll(
    base: &Base,
    revision: u64,
    version: Option<u64>,
    labels: &[(&str, &str)],
    timeout: &str,
) -> Option<WatchEvent> {
    let mut url = format!("{base}/api/v1/watch/config/{KEY}?revision={revision}&timeout={timeout}");
    if let Some(v) = version {
        url.push_str(&format!("&version={v}"));
    }
    let mut req = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(url)
        .bearer_auth(&base.token);
    for (k, v) in labels {
        req = req.header(format!("x-client-label-{k}"), *v);
    }
    let resp = req.send().await.unwrap();
    match resp.status().as_u16() {
        200 => Some(resp.json().await.unwrap()),
        304 => None,
        other => panic!("long poll answered {other}: {}", resp.text().await.unwrap()),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(base: &Base) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/v1/watch/ws", base.url.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("a WebSocket request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", base.token)
            .parse()
            .expect("a header value"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connects")
        .0
}

async fn ws_event(ws: &mut Ws) -> WatchEvent {
    loop {
        match ws_next(ws).await {
            WatchMessage::Event(e) => return e,
            WatchMessage::Subscribed { .. } => continue,
            WatchMessage::Error { error, key } => panic!("watch error {error:?} for {key:?}"),
        }
    }
}

async fn grpc_watch(base: &Base, revision: u64) -> tonic::Streaming<pb::WatchEvent> {
    let mut c = pb::watch_client::WatchClient::connect(base.url.clone())
        .await
        .expect("gRPC connects");
    let mut req = tonic::Request::new(pb::WatchRequest {
        key: KEY.into(),
        revision,
        version: None,
        client: None,
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", base.token)
            .parse()
            .expect("metadata value"),
    );
    c.watch(req).await.expect("watch starts").into_inner()
}

async fn grpc_event(s: &mut tonic::Streaming<pb::WatchEvent>) -> pb::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_the_leader_reaches_watchers_on_every_follower_over_every_transport() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "w.txt").await;
    let v1 = push(&lc, id, "one").await.unwrap();
    let rev1 = set_rules(&lc, id, vec![ReleaseRule::default_to(v1)]).await;
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();

    let mut ws_clients = Vec::new();
    let mut grpc_streams = Vec::new();
    let mut polls = Vec::new();
    for f in &followers {
        let base = base_of(cluster.node(*f));
        // Wait until the follower has applied rev1, so every watcher starts from the same state.
        common::eventually(Duration::from_secs(10), "follower applied", || {
            let c = client(cluster.node(*f));
            async move { common::applied(&c).await.is_some_and(|a| a >= rev1) }
        })
        .await;
        let mut ws = ws_connect(&base).await;
        ws.send(Message::Text(
            format!(r#"{{"subscribe": [{{"key": "{KEY}", "revision": {rev1}}}]}}"#).into(),
        ))
        .await
        .unwrap();
        match ws_next(&mut ws).await {
            WatchMessage::Subscribed { subscribed } => assert_eq!(subscribed, vec![KEY.to_owned()]),
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
        ws_clients.push(ws);
        grpc_streams.push(grpc_watch(&base, rev1).await);
        polls.push(tokio::spawn(async move {
            long_poll(&base, rev1, None, &[], "20s").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written_at = Instant::now();
    let v2 = push(&lc, id, "two").await.unwrap();
    let rev2 = set_rules(&lc, id, vec![ReleaseRule::default_to(v2)]).await;

    for ws in &mut ws_clients {
        // The version creation alone changed the config's revision: an event; then the release.
        let mut last = ws_event(ws).await;
        while last.revision < rev2 {
            last = ws_event(ws).await;
        }
        assert_eq!(
            (last.revision, last.version_id, last.event),
            (rev2, Some(v2), WatchEventKind::Updated)
        );
    }
    for s in &mut grpc_streams {
        let mut last = grpc_event(s).await;
        while last.revision < rev2 {
            last = grpc_event(s).await;
        }
        assert_eq!((last.revision, last.version_id), (rev2, Some(v2)));
    }
    for p in polls {
        let event = p
            .await
            .unwrap()
            .expect("the long poll answered before its timeout");
        assert!(
            event.revision > rev1 && event.event == WatchEventKind::Updated,
            "{event:?}"
        );
    }
    println!(
        "all watchers on both followers notified within {:?} of the write",
        written_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn label_aware_watches_wake_only_for_their_own_version_and_see_deletions() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let c = client(&node);
    let base = base_of(&node);
    let id = setup_config(&c, "w.txt").await;
    let v1 = push(&c, id, "one").await.unwrap();
    let v2 = push(&c, id, "two").await.unwrap();
    let rev = set_rules(&c, id, vec![ReleaseRule::default_to(v1)]).await;

    // Long poll that times out: 304.
    let started = Instant::now();
    assert_eq!(long_poll(&base, rev, None, &[], "1s").await, None);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A revision older than the current one: answered at once.
    let e = long_poll(&base, rev - 1, None, &[], "10s").await.unwrap();
    assert_eq!((e.revision, e.version_id), (rev, Some(v1)));

    // A plain client (holding v1) must not wake when a canary rule for others appears; a
    // canary client (holding v1) must.
    let plain_base = base.clone();
    let plain = tokio::spawn(async move {
        long_poll(&plain_base, rev, Some(v1), &[("region", "eu")], "3s").await
    });
    let canary_base = base.clone();
    let canary_watch = tokio::spawn(async move {
        long_poll(&canary_base, rev, Some(v1), &[("canary", "true")], "10s").await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rev_canary = set_rules(&c, id, vec![ReleaseRule::default_to(v1), canary(v2)]).await;
    let e = canary_watch
        .await
        .unwrap()
        .expect("the canary client is told");
    assert_eq!((e.revision, e.version_id), (rev_canary, Some(v2)));
    assert_eq!(
        plain.await.unwrap(),
        None,
        "a change that does not alter this client's version woke it"
    );

    // WebSocket with labels: same filtering, then the deletion event ends the subscription.
    let mut ws = ws_connect(&base).await;
    let sub = format!(
        r#"{{"subscribe": [{{"key": "{KEY}", "revision": {rev_canary}, "version": {v1}, "labels": {{"region": "eu"}}}}]}}"#
    );
    ws.send(Message::Text(sub.into())).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await,
        WatchMessage::Subscribed { .. }
    ));
    let v3 = push(&c, id, "three").await.unwrap(); // a new version alone changes nothing served
    set_rules(&c, id, vec![ReleaseRule::default_to(v1), canary(v3)]).await; // other clients only
    let rev_stable = set_rules(&c, id, vec![ReleaseRule::default_to(v3), canary(v3)]).await;
    let e = ws_event(&mut ws).await;
    assert_eq!(
        (e.revision, e.version_id),
        (rev_stable, Some(v3)),
        "the first event is the one that changed this client's version"
    );
    let deleted = c
        .delete_config(id, &WriteOptions::default())
        .await
        .unwrap()
        .revision;
    let e = ws_event(&mut ws).await;
    assert_eq!(
        (e.event, e.revision, e.version_id),
        (WatchEventKind::Deleted, deleted, None)
    );
    // gRPC too: a watch on a deleted config is refused as not found.
    let mut g = pb::watch_client::WatchClient::connect(base.url.clone())
        .await
        .unwrap();
    let mut req = tonic::Request::new(pb::WatchRequest {
        key: KEY.into(),
        revision: 0,
        version: None,
        client: None,
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", base.token).parse().unwrap(),
    );
    let err = g.watch(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    assert!(err.message().starts_with("config_not_found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_limits_give_documented_errors() {
    let node = TestNode::start(
        NodeSpec::new(1)
            .arg("--max-watchers")
            .arg("3")
            .arg("--max-subscriptions-per-connection")
            .arg("2"),
    )
    .expect("node starts");
    let c = client(&node);
    let base = base_of(&node);
    let id = setup_config(&c, "w.txt").await;
    setup_config(&c, "x.txt").await;
    setup_config(&c, "y.txt").await;
    let v = push(&c, id, "one").await.unwrap();
    let rev = set_rules(&c, id, vec![ReleaseRule::default_to(v)]).await;

    // Per connection: the third subscription on one WebSocket is refused by key.
    let mut ws = ws_connect(&base).await;
    // At the latest revision: no event is due, the subscriptions just stay open.
    let sub = format!(
        r#"{{"subscribe": [{{"key": "acme/shop/prod/w.txt", "revision": {rev}}}, {{"key": "acme/shop/prod/x.txt", "revision": {rev}}}, {{"key": "acme/shop/prod/y.txt", "revision": {rev}}}]}}"#
    );
    ws.send(Message::Text(sub.into())).await.unwrap();
    let mut refused = None;
    let mut subscribed = Vec::new();
    for _ in 0..2 {
        match ws_next(&mut ws).await {
            WatchMessage::Error { error, key } => refused = Some((error.code, key)),
            WatchMessage::Subscribed { subscribed: s } => subscribed = s,
            WatchMessage::Event(e) => panic!("unexpected event {e:?}"),
        }
    }
    assert_eq!(subscribed.len(), 2);
    assert_eq!(
        refused,
        Some((
            "too_many_subscriptions".to_owned(),
            Some("acme/shop/prod/y.txt".to_owned())
        ))
    );

    // Node-wide: 2 WebSocket subscriptions + 1 long poll fill the 3; the next watch is 429.
    let held_url = format!("{base}/api/v1/watch/config/{KEY}?revision={rev}&timeout=20s");
    // Cut off when the node stops at the end of the test; its outcome does not matter.
    let held_base = base.clone();
    let _held = tokio::spawn(async move { get(&held_base, held_url).await.map(|r| r.status()) });
    eventually(
        Duration::from_secs(10),
        "the long poll to be held",
        || async { metric(&node, "conflux_watch_subscriptions").await == Some(3.0) },
    )
    .await;
    let resp = get(
        &base,
        format!("{base}/api/v1/watch/config/{KEY}?revision={rev}&timeout=1s"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_watchers", "{body}");
    // Closing the WebSocket frees its subscriptions.
    ws.close(None).await.unwrap();
    drop(ws);
    common::eventually(
        Duration::from_secs(5),
        "subscriptions to be released",
        || {
            let base = base.clone();
            async move {
                let r = get(
                    &base,
                    format!("{base}/api/v1/watch/config/{KEY}?revision={rev}&timeout=0"),
                )
                .await
                .unwrap();
                r.status().as_u16() == 304
            }
        },
    )
    .await;

    // Bad input: an unparsable timeout, a malformed key, a malformed subscribe message.
    let resp = get(
        &base,
        format!("{base}/api/v1/watch/config/{KEY}?timeout=forever"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = get(
        &base,
        format!("{base}/api/v1/watch/config/{KEY}?timeout=301s"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let mut ws = ws_connect(&base).await;
    ws.send(Message::Text(
        r#"{"subscribe": [{"key": "not a path"}]}"#.into(),
    ))
    .await
    .unwrap();
    match ws_next(&mut ws).await {
        WatchMessage::Error { error, key } => assert_eq!(
            (error.code.as_str(), key.as_deref()),
            ("invalid_argument", Some("not a path"))
        ),
        other => panic!("{other:?}"),
    }
    ws.send(Message::Text("{nonsense".into())).await.unwrap();
    match ws_next(&mut ws).await {
        WatchMessage::Error { error, .. } => assert_eq!(error.code, "invalid_json"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_after_a_delete_or_a_recreate_is_told() {
    let mut node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let c = client(&node);
    let base = base_of(&node);
    let id = setup_config(&c, "w.txt").await;
    let v1 = push(&c, id, "one").await.unwrap();
    let seen = set_rules(&c, id, vec![ReleaseRule::default_to(v1)]).await;

    // While the client was away the config was deleted: told at once, with a revision after
    // the one it saw. A watch that never saw the config is 404.
    let deleted = c
        .delete_config(id, &WriteOptions::default())
        .await
        .unwrap()
        .revision;
    let e = long_poll(&base, seen, Some(v1), &[], "5s")
        .await
        .expect("a deletion event");
    assert_eq!(e.event, WatchEventKind::Deleted);
    assert!(e.revision >= deleted && e.revision > seen, "{e:?}");
    let resp = get(
        &base,
        format!("{base}/api/v1/watch/config/{KEY}?timeout=1s"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // Re-created with the same version number: a label-aware watch holding "version 1" of
    // the old config must still be told.
    let id2 = setup_config(&c, "w.txt").await;
    let v = push(&c, id2, "new one").await.unwrap();
    assert_eq!(v, 1);
    let recreated = set_rules(&c, id2, vec![ReleaseRule::default_to(v)]).await;
    let e = long_poll(&base, seen, Some(v1), &[], "5s")
        .await
        .expect("the re-created config is news");
    assert_eq!(
        (e.event, e.revision, e.version_id),
        (WatchEventKind::Updated, recreated, Some(1))
    );

    // A node shutting down ends pending watches at once instead of waiting for them.
    let poll_base = base.clone();
    let pending = tokio::spawn(async move {
        get(
            &poll_base,
            format!("{poll_base}/api/v1/watch/config/{KEY}?revision={recreated}&timeout=120s"),
        )
        .await
        .map(|r| r.status().as_u16())
    });
    let mut ws = ws_connect(&base).await;
    ws.send(Message::Text(
        format!(r#"{{"subscribe": [{{"key": "{KEY}", "revision": {recreated}}}]}}"#).into(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        ws_next(&mut ws).await,
        WatchMessage::Subscribed { .. }
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = node.terminate().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for watchers",
        started.elapsed()
    );
    assert_eq!(pending.await.unwrap().unwrap(), 503);
}

/// How long a node waits for a revision it has not applied yet (its default
/// `min_revision_wait`).
const MIN_REVISION_WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribe_that_must_wait_holds_up_neither_its_websocket_nor_shutdown() {
    const FAR: &str = "acme/shop/prod/far.txt";
    let mut node = TestNode::start(
        NodeSpec::new(1)
            .arg("--max-subscriptions-per-connection")
            .arg("2"),
    )
    .expect("node starts");
    let c = client(&node);
    let base = base_of(&node);
    let id = setup_config(&c, "w.txt").await;
    let v1 = push(&c, id, "one").await.unwrap();
    let rev = set_rules(&c, id, vec![ReleaseRule::default_to(v1)]).await;
    let unreached = rev + 1_000_000;

    // One message: first a key at a revision this node has not applied (it waits for it, up
    // to MIN_REVISION_WAIT), then a key it can subscribe at once.
    let mut ws = ws_connect(&base).await;
    let sent = Instant::now();
    let sub = format!(
        r#"{{"subscribe": [{{"key": "{FAR}", "revision": {unreached}}}, {{"key": "{KEY}", "revision": {rev}}}]}}"#
    );
    ws.send(Message::Text(sub.into())).await.unwrap();
    match ws_next(&mut ws).await {
        WatchMessage::Subscribed { subscribed } => assert_eq!(subscribed, [KEY]),
        other => panic!("expected the subscribed list, got {other:?}"),
    }
    let acknowledged = sent.elapsed();

    // While the other key waits, the session delivers events.
    push(&c, id, "two").await.unwrap();
    let e = ws_event(&mut ws).await;
    let delivered = sent.elapsed();
    assert_eq!(e.key, KEY);
    assert!(e.revision > rev, "{e:?}");
    eprintln!("subscribed after {acknowledged:?}, event after {delivered:?}");
    assert!(
        delivered < MIN_REVISION_WAIT - Duration::from_secs(1),
        "the event waited {delivered:?} behind the other key's subscribe"
    );

    // It reads messages too; and the waiting key counts against the connection's limit.
    ws.send(Message::Text(
        r#"{"subscribe": [{"key": "acme/shop/prod/third.txt"}]}"#.into(),
    ))
    .await
    .unwrap();
    match ws_next(&mut ws).await {
        WatchMessage::Error { error, key } => assert_eq!(
            (error.code.as_str(), key.as_deref()),
            ("too_many_subscriptions", Some("acme/shop/prod/third.txt"))
        ),
        other => panic!("expected too_many_subscriptions, got {other:?}"),
    }
    assert!(sent.elapsed() < MIN_REVISION_WAIT - Duration::from_secs(1));

    // The waiting key is told, when its wait ends, that the revision was not reached.
    match ws_next(&mut ws).await {
        WatchMessage::Error { error, key } => assert_eq!(
            (error.code.as_str(), key.as_deref()),
            ("revision_not_reached", Some(FAR))
        ),
        other => panic!("expected revision_not_reached for {FAR}, got {other:?}"),
    }
    let refused = sent.elapsed();
    assert!(refused >= MIN_REVISION_WAIT, "told after {refused:?}");

    // A subscribe pending does not hold up the node's shutdown, and the session ends (with a
    // Close frame, unless the process exits first).
    let sub = format!(r#"{{"subscribe": [{{"key": "{FAR}", "revision": {unreached}}}]}}"#);
    ws.send(Message::Text(sub.into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = node.terminate().unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    let stopped = started.elapsed();
    eprintln!("shutdown with a pending subscribe took {stopped:?}");
    assert!(status.success(), "{status}");
    assert!(closed.is_ok(), "the session was not closed");
    assert!(
        stopped < Duration::from_secs(3),
        "shutdown took {stopped:?} with a subscribe pending"
    );
}
