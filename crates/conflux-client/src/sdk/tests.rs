//! The SDK against scripted HTTP peers on loopback ports: failover order, what is (not)
//! failed over, the headers and `min_revision` sent, and a watch that loses its node in the
//! middle and resumes on the next one. Tests against real nodes are in
//! `server/tests/sdk.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::fallback::FallbackStore;
use super::*;
use crate::ChangeKind;

/// The request line and headers a peer received.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a peer does with one request.
#[derive(Debug, Clone)]
enum Reply {
    Send(Vec<u8>),
    /// Close the connection without answering (a node killed mid-request).
    Drop,
}

async fn read_head(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n").take_while(|l| !l.is_empty());
    let target = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Seen { target, headers })
}

/// What a peer received.
#[derive(Debug, Default)]
struct Log {
    requests: Mutex<Vec<Seen>>,
    /// Held requests whose client went away.
    abandoned: AtomicUsize,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.requests.lock().unwrap()
    }
}

/// A peer that answers successive requests with `replies` (one per connection) and records
/// them; once the replies run out it holds requests open (and counts those the client
/// abandons).
async fn peer(replies: Vec<Reply>) -> (String, Arc<Log>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Log::default());
    let log = seen.clone();
    tokio::spawn(async move {
        let mut replies = VecDeque::from(replies);
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let Some(request) = read_head(&mut stream).await else {
                continue;
            };
            log.lock().push(request);
            match replies.pop_front() {
                Some(Reply::Send(bytes)) => {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                }
                Some(Reply::Drop) => drop(stream),
                None => {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 64];
                        // Reads return 0 once the client closes its end.
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                log.abandoned.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    });
                }
            }
        }
    });
    (format!("http://{addr}"), seen)
}

/// A port nothing listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn answer(status: &str, headers: &[(&str, String)], body: &str) -> Reply {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Reply::Send(out.into_bytes())
}

fn content(version: u64, revision: u64) -> Reply {
    let body = format!("{{\"v\": {version}}}");
    answer(
        "200 OK",
        &[
            ("content-type", "application/json".into()),
            ("x-config-version", version.to_string()),
            ("x-config-hash", format!("sha256:{version:064}")),
            ("x-conflux-revision", revision.to_string()),
            ("etag", format!("\"{version}\"")),
        ],
        &body,
    )
}

fn error(status: &str, code: &str) -> Reply {
    answer(
        status,
        &[("content-type", "application/json".into())],
        &format!("{{\"error\": {{\"code\": \"{code}\", \"message\": \"scripted\"}}}}"),
    )
}

fn event(revision: u64, version: Option<u64>, kind: &str) -> Reply {
    let version = version.map_or("null".to_owned(), |v| v.to_string());
    answer(
        "200 OK",
        &[("content-type", "application/json".into())],
        &format!(
            "{{\"key\": \"acme/shop/prod/app.json\", \"revision\": {revision}, \"version_id\": {version}, \"event\": \"{kind}\"}}"
        ),
    )
}

const FAST: Backoff = Backoff {
    initial: Duration::from_millis(5),
    max: Duration::from_millis(20),
};

async fn client(endpoints: Vec<String>) -> ConfluxClient {
    ConfluxClient::new(endpoints)
        .with_timeout(Duration::from_secs(5))
        .with_backoff(FAST)
        .build()
        .await
        .unwrap()
}

fn count(seen: &Log) -> usize {
    seen.lock().len()
}

#[test]
fn failover_order_starts_at_the_preferred_endpoint_and_wraps() {
    assert_eq!(failover_order(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(failover_order(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
    assert_eq!(failover_order(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
    assert_eq!(failover_order(0, 1).collect::<Vec<_>>(), [0]);
}

#[tokio::test]
async fn get_config_fails_over_in_order_and_remembers_what_worked() {
    let (busy, busy_seen) = peer(vec![error("503 Service Unavailable", "not_leader")]).await;
    let (good, good_seen) = peer(vec![content(4, 40), content(4, 41)]).await;
    let c = client(vec![dead_endpoint(), busy, good]).await;
    let v = c
        .get_config("acme", "shop", "prod", "app.json")
        .await
        .unwrap();
    assert_eq!((v.version, v.revision), (4, 40));
    assert_eq!(v.key, "acme/shop/prod/app.json");
    assert_eq!(v.get::<serde_json::Value>().unwrap()["v"], 4);
    assert_eq!((count(&busy_seen), count(&good_seen)), (1, 1));
    // The first fetch sent no min_revision; the next starts at the endpoint that answered
    // and never accepts anything older than revision 40.
    assert_eq!(
        good_seen.lock()[0].target,
        "/api/v1/fetch/config/acme/shop/prod/app.json"
    );
    assert_eq!(c.revision_seen("acme", "shop", "prod", "app.json"), 40);
    let v = c
        .get_config("acme", "shop", "prod", "app.json")
        .await
        .unwrap();
    assert_eq!(v.revision, 41);
    assert_eq!((count(&busy_seen), count(&good_seen)), (1, 2));
    assert_eq!(
        good_seen.lock()[1].target,
        "/api/v1/fetch/config/acme/shop/prod/app.json?min_revision=40"
    );
}

#[tokio::test]
async fn client_errors_are_not_failed_over() {
    let (first, first_seen) = peer(vec![error("404 Not Found", "config_not_found")]).await;
    let (second, second_seen) = peer(vec![content(1, 1)]).await;
    let c = client(vec![first, second]).await;
    let e = c
        .get_config("acme", "shop", "prod", "app.json")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "config_not_found");
    assert_eq!((count(&first_seen), count(&second_seen)), (1, 0));
    // Invalid paths never leave the process.
    let e = c
        .get_config("acme", "shop", "prod", "../x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
}

#[tokio::test]
async fn when_every_endpoint_fails_the_last_error_is_returned() {
    let (busy, _) = peer(vec![error(
        "503 Service Unavailable",
        "revision_not_reached",
    )])
    .await;
    let c = client(vec![busy, dead_endpoint()]).await;
    let e = c
        .get_config("acme", "shop", "prod", "app.json")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unreachable", "{e}");
}

#[tokio::test]
async fn token_labels_and_client_id_go_with_every_request() {
    let (node, seen) = peer(vec![content(1, 1)]).await;
    let c = ConfluxClient::new([node])
        .with_token("t0ken")
        .with_labels([("region", "eu")])
        .with_labels([("canary", "true")])
        .with_client_id("host-7")
        .build()
        .await
        .unwrap();
    c.get_config("acme", "shop", "prod", "app.json")
        .await
        .unwrap();
    let seen = seen.lock()[0].clone();
    assert_eq!(seen.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(seen.header("x-client-label-region"), Some("eu"));
    assert_eq!(seen.header("x-client-label-canary"), Some("true"));
    assert_eq!(seen.header("x-client-id"), Some("host-7"));
    // Settings that cannot be sent are refused when building.
    let e = ConfluxClient::new(["http://127.0.0.1:1"])
        .with_labels([("bad key", "v")])
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    let e = ConfluxClient::new(Vec::<String>::new())
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("endpoints"));
    let e = ConfluxClient::new(["http://127.0.0.1:1"])
        .with_token("two words")
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("token"));
}

#[tokio::test]
async fn fail_fast_needs_a_node_to_answer() {
    let e = ConfluxClient::new([dead_endpoint(), dead_endpoint()])
        .start_mode(StartMode::FailFast)
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unreachable");
    // Fail-safe never contacts the cluster when building.
    ConfluxClient::new([dead_endpoint()])
        .start_mode(StartMode::FailSafe)
        .build()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_watch_resumes_on_the_next_endpoint_after_its_node_dies() {
    // Node A: the starting state (version 1 at revision 10), an event, its fetch, then it
    // dies in the middle of the next poll.
    let (a, a_seen) = peer(vec![
        content(1, 10),
        event(11, Some(2), "updated"),
        content(2, 11),
        Reply::Drop,
    ])
    .await;
    // Node B: was told nothing. The watch first checks the state it holds (unchanged), the
    // resumed poll reports the change made meanwhile, a stale event (a lagging view, older
    // than what the client holds) changes nothing, then the config is deleted.
    let (b, b_seen) = peer(vec![
        content(2, 11),
        event(13, Some(3), "updated"),
        content(3, 13),
        event(12, Some(2), "updated"),
        content(3, 13),
        event(14, None, "deleted"),
    ])
    .await;
    let c = ConfluxClient::new([a, b])
        .with_labels([("region", "eu")])
        .with_backoff(FAST)
        .with_poll_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let mut watch = c.watch_config("acme", "shop", "prod", "app.json");
    let mut changes = Vec::new();
    while let Some(change) = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch goes on")
    {
        changes.push(change);
    }
    assert!(watch.error().is_none(), "{:?}", watch.error());
    let summary: Vec<(ChangeKind, u64, Option<u64>)> = changes
        .iter()
        .map(|c| (c.kind, c.revision, c.version))
        .collect();
    assert_eq!(
        summary,
        [
            (ChangeKind::Updated, 11, Some(2)),
            (ChangeKind::Updated, 13, Some(3)),
            (ChangeKind::Deleted, 14, None),
        ]
    );
    assert_eq!(changes[1].content().unwrap().as_ref(), b"{\"v\": 3}");

    let a_seen = a_seen.lock().clone();
    let targets: Vec<&str> = a_seen.iter().map(|s| s.target.as_str()).collect();
    let watch_path = "/api/v1/watch/config/acme/shop/prod/app.json";
    let fetch_path = "/api/v1/fetch/config/acme/shop/prod/app.json";
    assert_eq!(
        targets,
        [
            fetch_path.to_owned(),
            format!("{watch_path}?revision=10&version=1&timeout=20s"),
            format!("{fetch_path}?min_revision=11"),
            format!("{watch_path}?revision=11&version=2&timeout=20s"),
        ]
    );
    assert!(
        a_seen
            .iter()
            .all(|s| s.header("x-client-label-region") == Some("eu"))
    );
    let b_seen = b_seen.lock().clone();
    let targets: Vec<&str> = b_seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("{fetch_path}?min_revision=11"),
            format!("{watch_path}?revision=11&version=2&timeout=20s"),
            format!("{fetch_path}?min_revision=13"),
            format!("{watch_path}?revision=13&version=3&timeout=20s"),
            format!("{fetch_path}?min_revision=13"),
            format!("{watch_path}?revision=13&version=3&timeout=20s"),
        ]
    );
}

#[tokio::test]
async fn a_watch_reports_a_deletion_it_learns_of_by_reconnecting() {
    // The config was deleted while the watch was away: the node says 404 to the poll, and
    // to the fetch that confirms it at the revision the watch holds.
    let (node, seen) = peer(vec![
        error("404 Not Found", "config_not_found"),
        error("404 Not Found", "config_not_found"),
        answer(
            "200 OK",
            &[("content-type", "application/json".into())],
            r#"{"ready": true, "node_id": 1, "leader_id": 1, "applied_index": 30}"#,
        ),
    ])
    .await;
    let c = client(vec![node]).await;
    let since = ConfigValue {
        key: "acme/shop/prod/app.json".into(),
        content: Bytes::from_static(b"{}"),
        version: 2,
        revision: 20,
        hash: "sha256:00".into(),
        content_type: "application/json".into(),
    };
    let mut watch = c
        .watch_config("acme", "shop", "prod", "app.json")
        .since(&since);
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((change.kind, change.revision), (ChangeKind::Deleted, 30));
    assert!(watch.next().await.is_none());
    let targets: Vec<String> = seen.lock().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        targets[1],
        "/api/v1/fetch/config/acme/shop/prod/app.json?min_revision=20"
    );
    assert_eq!(targets[2], "/ready");
}

#[tokio::test]
async fn a_watch_ends_with_an_error_that_retrying_cannot_fix() {
    let (node, _) = peer(vec![content(1, 1), error("403 Forbidden", "forbidden")]).await;
    let c = client(vec![node]).await;
    let mut watch = c.watch_config("acme", "shop", "prod", "app.json");
    assert!(watch.next().await.is_none());
    assert_eq!(watch.error().unwrap().code(), "forbidden");
    let mut watch = c.watch_config("acme", "shop", "prod", "no/such");
    assert!(watch.next().await.is_none());
    assert_eq!(watch.error().unwrap().code(), "invalid_argument");
}

#[tokio::test]
async fn a_handle_updates_writes_through_calls_back_and_stops_when_dropped() {
    let (node, seen) = peer(vec![
        content(1, 10),
        event(11, Some(2), "updated"),
        content(2, 11),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = ConfluxClient::new([node])
        .with_fallback_dir(dir.path())
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let handle = c.handle("acme", "shop", "prod", "app.json").await.unwrap();
    assert_eq!((handle.version(), handle.revision()), (1, 10));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    handle.on_change(move |change| {
        assert_eq!(change.version, Some(2));
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let clone = handle.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.version() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "no update");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handle.get::<serde_json::Value>().unwrap()["v"], 2);
    assert_eq!(handle.revision(), 11);
    // The copy was written before the handle changed, the callback right after.
    let store = FallbackStore::new(dir.path());
    let path = ConfigPath::new("acme", "shop", "prod", "app.json");
    assert_eq!(store.load(&path).unwrap().unwrap().version, 2);
    while calls.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no callback");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The next poll is pending: version 2 at revision 11 is the resume point.
    while count(&seen) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "no next poll");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.lock()[3].target,
        "/api/v1/watch/config/acme/shop/prod/app.json?revision=11&version=2&timeout=30s"
    );
    // Dropping one clone keeps the task; dropping the last stops it (its poll is abandoned).
    drop(handle);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.abandoned.load(Ordering::SeqCst), 0);
    drop(clone);
    while seen.abandoned.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poll was not abandoned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn handles_start_from_the_fallback_copy_only_when_fail_safe() {
    let dir = tempfile::tempdir().unwrap();
    let store = FallbackStore::new(dir.path());
    let path = ConfigPath::new("acme", "shop", "prod", "app.json");
    let copy = ConfigValue {
        key: path.to_string(),
        content: Bytes::from_static(b"{\"v\": 1}"),
        version: 1,
        revision: 10,
        hash: "sha256:01".into(),
        content_type: "application/json".into(),
    };
    store.save(&path, &copy).unwrap();
    let dead = dead_endpoint();

    let c = ConfluxClient::new([dead.clone()])
        .with_fallback_dir(dir.path())
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let handle = c.handle("acme", "shop", "prod", "app.json").await.unwrap();
    assert!(handle.is_from_fallback());
    assert_eq!(handle.value(), copy);
    // No copy of another config: the error says so.
    let e = c
        .handle("acme", "shop", "prod", "b.json")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "fallback_unavailable");
    assert!(e.to_string().contains("no fallback copy"), "{e}");

    // Fail-fast with a node up that cannot serve (503): the error, not the copy.
    let (busy, _) = peer(vec![
        answer(
            "200 OK",
            &[("content-type", "application/json".into())],
            r#"{"status": "ok", "node_id": 1}"#,
        ),
        error("503 Service Unavailable", "revision_not_reached"),
    ])
    .await;
    let c = ConfluxClient::new([busy])
        .with_fallback_dir(dir.path())
        .start_mode(StartMode::FailFast)
        .build()
        .await
        .unwrap();
    let e = c
        .handle("acme", "shop", "prod", "app.json")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "revision_not_reached");

    // A 4xx is an answer: the copy is never used for it.
    let (gone, _) = peer(vec![error("404 Not Found", "config_not_found")]).await;
    let c = ConfluxClient::new([gone])
        .with_fallback_dir(dir.path())
        .build()
        .await
        .unwrap();
    let e = c
        .handle("acme", "shop", "prod", "app.json")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "config_not_found");
}

#[tokio::test]
async fn a_handle_never_asks_for_a_state_older_than_its_fallback_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = ConfigPath::new("acme", "shop", "prod", "app.json");
    let copy = ConfigValue {
        key: path.to_string(),
        content: Bytes::from_static(b"{\"v\": 1}"),
        version: 1,
        revision: 10,
        hash: "sha256:01".into(),
        content_type: "application/json".into(),
    };
    FallbackStore::new(dir.path()).save(&path, &copy).unwrap();
    // A node behind the copy: it cannot serve revision 10 yet, then it can.
    let (node, seen) = peer(vec![
        error("503 Service Unavailable", "revision_not_reached"),
        content(2, 12),
    ])
    .await;
    let c = ConfluxClient::new([node])
        .with_fallback_dir(dir.path())
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let handle = c.handle("acme", "shop", "prod", "app.json").await.unwrap();
    assert!(handle.is_from_fallback());
    assert_eq!(handle.value(), copy);
    assert_eq!(c.revision_seen("acme", "shop", "prod", "app.json"), 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.version() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "no update");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fetch = "/api/v1/fetch/config/acme/shop/prod/app.json?min_revision=10";
    let targets: Vec<String> = seen.lock().iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets[..2], [fetch, fetch], "{targets:?}");
    assert_eq!(handle.revision(), 12);
}

#[tokio::test]
async fn a_reconnecting_watch_notices_a_re_created_config_with_the_same_version_number() {
    // The client holds version 1 of a config that, while its node was down, was deleted and
    // re-created with a new version 1. A label-aware poll would see "version 1" and wait; the
    // fetch after the reconnect sees other content.
    let (a, _) = peer(vec![Reply::Drop]).await;
    let recreated = answer(
        "200 OK",
        &[
            ("content-type", "application/json".into()),
            ("x-config-version", "1".into()),
            ("x-config-hash", "sha256:ffff".into()),
            ("x-conflux-revision", "9".into()),
            ("etag", "\"1\"".into()),
        ],
        "{\"new\": true}",
    );
    let (b, _) = peer(vec![recreated]).await;
    let c = client(vec![a, b]).await;
    let since = ConfigValue {
        key: "acme/shop/prod/app.json".into(),
        content: Bytes::from_static(b"{\"old\": true}"),
        version: 1,
        revision: 6,
        hash: "sha256:0000".into(),
        content_type: "application/json".into(),
    };
    let mut watch = c
        .watch_config("acme", "shop", "prod", "app.json")
        .since(&since);
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.kind, change.revision, change.version),
        (ChangeKind::Updated, 9, Some(1))
    );
    assert_eq!(change.content().unwrap().as_ref(), b"{\"new\": true}");
}

#[tokio::test]
async fn the_token_goes_with_watch_polls_too() {
    let (node, seen) = peer(vec![
        content(1, 1),
        event(2, Some(2), "updated"),
        content(2, 2),
    ])
    .await;
    let c = ConfluxClient::new([node])
        .with_token("t0ken")
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let mut watch = c.watch_config("acme", "shop", "prod", "app.json");
    // The starting state (fetched, not reported), the poll's event, then its content.
    let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a change")
        .expect("the watch goes on");
    assert_eq!(change.version, Some(2));
    let seen = seen.lock().clone();
    assert!(
        seen.iter()
            .any(|s| s.target.starts_with("/api/v1/watch/config/")),
        "{seen:?}"
    );
    for s in &seen {
        assert_eq!(
            s.header("authorization"),
            Some("Bearer t0ken"),
            "{}",
            s.target
        );
    }
}
