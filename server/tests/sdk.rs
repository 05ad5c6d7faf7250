//! The Rust SDK (`conflux_client::ConfluxClient`) and `conflux config watch` against real
//! clusters: a handle on a follower follows writes made on the leader; a watcher whose node is
//! killed resumes on another and misses nothing; a fail-safe handle starts from its fallback
//! copy while the whole cluster is down (a fail-fast client refuses to) and converges when it
//! comes back; the CLI prints each change and exits 0 after a deletion.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{applied, blocking, client, eventually, setup_config};
use conflux_client::types::{CreateConfig, Format, PublishRequest, Strategy};
use conflux_client::{
    ApiClient, Backoff, Change, ChangeKind, ConfluxClient, StartMode, WriteOptions,
};
use conflux_testkit::{Cluster, NodeSpec, TestNode, conflux_binary};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Reconnection delays short enough for tests (the default tops out at 10 s).
const FAST: Backoff = Backoff {
    initial: Duration::from_millis(50),
    max: Duration::from_millis(500),
};

#[derive(Debug, PartialEq, Deserialize)]
struct Settings {
    timeout_ms: u64,
}

/// Creates acme/shop/prod/<name> with `format` and returns its id.
async fn create_config(c: &ApiClient, name: &str, format: Format) -> u64 {
    // Creates the tenant, app and environment on first use.
    setup_config(c, &format!("placeholder-{name}")).await;
    let body = CreateConfig {
        name: name.into(),
        format,
        schema: None,
        retention: None,
        description: None,
        encrypted: false,
    };
    c.create_config("acme", "shop", "prod", &body, &WriteOptions::default())
        .await
        .expect("create config")
        .id
}

/// Publishes `content` as a new version released to everyone; returns (version, revision).
async fn publish(c: &ApiClient, id: u64, content: String) -> (u64, u64) {
    let body = PublishRequest {
        content,
        description: None,
        strategy: Strategy::Stable,
    };
    let r = c
        .publish(id, &body, &WriteOptions::default())
        .await
        .expect("publish");
    (r.version_id, r.revision)
}

/// Waits until every node of `cluster` has applied `revision` (a write is acknowledged once
/// the node that took it has applied it; the others follow a moment later).
async fn settle(cluster: &Cluster, revision: u64) {
    for id in cluster.ids() {
        let c = client(cluster.node(id));
        eventually(Duration::from_secs(10), "a node to catch up", || {
            let c = c.clone();
            async move { applied(&c).await.is_some_and(|a| a >= revision) }
        })
        .await;
    }
}

fn urls(cluster: &Cluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| cluster.node(*id).api_url()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handle_on_a_follower_follows_writes_on_the_leader() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let lc = client(cluster.node(leader));
    let id = create_config(&lc, "live.json", Format::Json).await;
    let (v1, rev1) = publish(&lc, id, r#"{"timeout_ms": 100}"#.into()).await;
    settle(&cluster, rev1).await;

    // The SDK knows only the follower.
    let sdk = ConfluxClient::new(urls(&cluster, &[follower]))
        .with_token(cluster.token())
        .with_labels([("region", "eu")])
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let handle = sdk
        .handle("acme", "shop", "prod", "live.json")
        .await
        .unwrap();
    assert_eq!(handle.version(), v1);
    assert_eq!(handle.get::<Settings>().unwrap().timeout_ms, 100);
    assert_eq!(handle.content_type(), "application/json");
    let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
    let log = seen.clone();
    handle.on_change(move |c| log.lock().unwrap().push(c.clone()));

    let written = Instant::now();
    let (v2, rev2) = publish(&lc, id, r#"{"timeout_ms": 250}"#.into()).await;
    eventually(
        Duration::from_secs(10),
        "the handle to see version 2",
        || {
            let v = handle.version();
            async move { v == v2 }
        },
    )
    .await;
    eprintln!(
        "write on the leader -> follower handle: {:?}",
        written.elapsed()
    );
    assert_eq!(
        handle.get::<Settings>().unwrap(),
        Settings { timeout_ms: 250 }
    );
    assert!(handle.revision() >= rev2);
    assert_eq!(handle.raw().as_ref(), br#"{"timeout_ms": 250}"#);
    assert!(!handle.is_from_fallback());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].kind, seen[0].version),
        (ChangeKind::Updated, Some(v2))
    );
    // A plain read never goes back before what the client has seen.
    assert!(sdk.revision_seen("acme", "shop", "prod", "live.json") >= rev2);
    let value = sdk
        .get_config("acme", "shop", "prod", "live.json")
        .await
        .unwrap();
    assert_eq!(
        (value.version, value.get::<Settings>().unwrap().timeout_ms),
        (v2, 250)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_whose_node_is_killed_resumes_elsewhere_and_misses_nothing() {
    const N: u64 = 12;
    const KILL_AFTER: u64 = 6;
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let lc = client(cluster.node(leader));
    let id = create_config(&lc, "seq.json", Format::Json).await;
    let (v1, rev1) = publish(&lc, id, r#"{"n": 1}"#.into()).await;
    assert_eq!(v1, 1);
    settle(&cluster, rev1).await;

    // The watcher's first endpoint is a follower: that is the node it watches on, and the
    // node that is killed. Labels make the watch label-aware (it passes its version).
    let watched = followers[0];
    let sdk = ConfluxClient::new(urls(&cluster, &[watched, followers[1], leader]))
        .with_token(cluster.token())
        .with_labels([("region", "eu")])
        .with_client_id("watcher-1")
        .with_backoff(FAST)
        .build()
        .await
        .unwrap();
    let start = sdk
        .get_config("acme", "shop", "prod", "seq.json")
        .await
        .unwrap();
    assert_eq!(start.version, 1);
    let mut watch = sdk
        .watch_config("acme", "shop", "prod", "seq.json")
        .since(&start);
    let changes: Arc<Mutex<Vec<Change>>> = Arc::default();
    let log = changes.clone();
    let collector = tokio::spawn(async move {
        while let Some(change) = watch.next().await {
            let last = change.version == Some(N);
            log.lock().unwrap().push(change);
            if last {
                break;
            }
        }
        watch.into_error()
    });

    let mut killed_at = None;
    for n in 2..=N {
        let (v, rev) = publish(&lc, id, format!(r#"{{"n": {n}}}"#)).await;
        assert_eq!(v, n);
        if n == KILL_AFTER {
            cluster.node_mut(watched).kill9().unwrap();
            killed_at = Some(rev);
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let error = tokio::time::timeout(Duration::from_secs(15), collector)
        .await
        .expect("the watcher sees version N")
        .unwrap();
    assert!(error.is_none(), "{error:?}");

    let changes = changes.lock().unwrap().clone();
    let summary: Vec<(u64, Option<u64>)> =
        changes.iter().map(|c| (c.revision, c.version)).collect();
    eprintln!("changes seen: {summary:?}");
    assert!(
        changes.iter().all(|c| c.kind == ChangeKind::Updated),
        "{summary:?}"
    );
    assert!(
        summary.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions must strictly increase: {summary:?}"
    );
    // Every change altered this client's version: each one seen is newer than the last, and
    // the last is N (anything not seen was superseded by a later one that was).
    assert!(
        summary.windows(2).all(|w| w[0].1 < w[1].1),
        "versions must strictly increase: {summary:?}"
    );
    assert_eq!(summary.last().unwrap().1, Some(N));
    // The watcher went on after its node died.
    let killed_at = killed_at.unwrap();
    assert!(
        summary.iter().any(|(rev, _)| *rev > killed_at),
        "no change seen after the kill at revision {killed_at}: {summary:?}"
    );
    for c in &changes {
        let n: serde_json::Value = c.value.as_ref().unwrap().get().unwrap();
        assert_eq!(
            Some(n["n"].as_u64().unwrap()),
            c.version,
            "content matches version"
        );
    }
    let end = sdk
        .get_config("acme", "shop", "prod", "seq.json")
        .await
        .unwrap();
    assert_eq!(end.version, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fail_safe_handle_starts_from_its_fallback_copy_and_converges() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let all = cluster.ids();
    let lc = client(cluster.node(leader));
    let id = create_config(&lc, "fb.yaml", Format::Yaml).await;
    let (v1, rev1) = publish(&lc, id, "timeout_ms: 100\n".into()).await;
    settle(&cluster, rev1).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints = urls(&cluster, &all);
    let token = cluster.token().to_owned();
    let fail_safe = || {
        ConfluxClient::new(endpoints.clone())
            .with_token(&token)
            .with_fallback_dir(dir.path())
            .start_mode(StartMode::FailSafe)
            .with_backoff(FAST)
            .with_connect_timeout(Duration::from_millis(500))
    };

    // While the cluster is up, a handle writes its copy.
    {
        let sdk = fail_safe().build().await.unwrap();
        let handle = sdk.handle("acme", "shop", "prod", "fb.yaml").await.unwrap();
        assert_eq!(handle.version(), v1);
    }
    let meta = dir.path().join("acme/shop/prod/fb.yaml/meta.json");
    assert!(meta.exists());

    // The whole cluster goes down.
    for node in &all {
        cluster.node_mut(*node).terminate().unwrap();
    }

    // Fail-fast refuses to start; fail-safe without a copy of this config too.
    let e = ConfluxClient::new(endpoints.clone())
        .with_token(&token)
        .with_fallback_dir(dir.path())
        .start_mode(StartMode::FailFast)
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unreachable", "{e}");
    let sdk = fail_safe().build().await.unwrap();
    let e = sdk
        .handle("acme", "shop", "prod", "other.yaml")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "fallback_unavailable", "{e}");

    // Fail-safe starts from the copy.
    let handle = sdk.handle("acme", "shop", "prod", "fb.yaml").await.unwrap();
    assert!(handle.is_from_fallback());
    assert_eq!(handle.version(), v1);
    assert_eq!(handle.get::<Settings>().unwrap().timeout_ms, 100);

    // The cluster comes back and moves on; the handle converges.
    let cluster = blocking(move || {
        for node in &all {
            cluster.node_mut(*node).restart().unwrap();
        }
        cluster
    })
    .await;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let (v2, _) = publish(&lc, id, "timeout_ms: 300\n".into()).await;
    eventually(Duration::from_secs(15), "the handle to converge", || {
        let v = handle.version();
        async move { v == v2 }
    })
    .await;
    assert!(!handle.is_from_fallback());
    assert_eq!(handle.get::<Settings>().unwrap().timeout_ms, 300);
    // The copy followed (it is written before the handle changes).
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(meta["version"], v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handle_started_from_its_fallback_copy_never_goes_back_before_it() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let c = client(&node);
    let id = create_config(&c, "ahead.json", Format::Json).await;
    let (_, rev1) = publish(&c, id, r#"{"timeout_ms": 100}"#.into()).await;
    let dir = tempfile::tempdir().unwrap();
    let sdk = || {
        ConfluxClient::new([node.api_url()])
            .with_token(node.token())
            .with_fallback_dir(dir.path())
            .with_backoff(FAST)
            .build()
    };
    {
        let handle = sdk()
            .await
            .unwrap()
            .handle("acme", "shop", "prod", "ahead.json")
            .await
            .unwrap();
        assert_eq!(handle.revision(), rev1);
    }
    // The copy a client holds after it saw the cluster at revision `ahead`, which this node
    // has not applied yet (it lags behind the node that served the copy).
    let ahead = rev1 + 10;
    let meta_path = dir.path().join("acme/shop/prod/ahead.json/meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["revision"] = ahead.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();

    // The handle's fetch asks for `ahead`: the node cannot serve it (503 after its wait), so
    // the handle starts from the copy rather than from the node's older state.
    let sdk = sdk().await.unwrap();
    let handle = sdk
        .handle("acme", "shop", "prod", "ahead.json")
        .await
        .unwrap();
    assert!(
        handle.revision() >= ahead,
        "the handle went back to revision {} before its copy's {ahead}",
        handle.revision()
    );
    assert!(handle.is_from_fallback());
    assert_eq!(
        sdk.revision_seen("acme", "shop", "prod", "ahead.json"),
        ahead
    );
    let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
    let log = seen.clone();
    handle.on_change(move |c| log.lock().unwrap().push(c.clone()));

    // The node catches up and moves on: the handle follows, never below `ahead`.
    let mut last = (0, 0);
    while last.1 < ahead {
        last = publish(&c, id, format!(r#"{{"timeout_ms": {}}}"#, last.1)).await;
    }
    eventually(Duration::from_secs(15), "the handle to converge", || {
        let v = handle.version();
        async move { v == last.0 }
    })
    .await;
    assert!(!handle.is_from_fallback());
    assert!(handle.revision() >= ahead);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|c| c.revision >= ahead), "{seen:?}");
}

/// Reads lines of a child's output with a deadline.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<impl tokio::io::AsyncRead + Unpin>>,
    what: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10 s"))
        .expect("read")
        .unwrap_or_else(|| panic!("output ended before {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_prints_each_change_and_exits_after_a_deletion() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let c = client(&node);
    let id = create_config(&c, "cli.json", Format::Json).await;
    let (v1, rev1) = publish(&c, id, r#"{"timeout_ms": 1}"#.into()).await;

    // Two watchers: table output with labels, and JSON lines with the content.
    let spawn = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(conflux_binary().unwrap());
        cmd.args(["config", "watch", "acme/shop/prod/cli.json", "--endpoint"])
            .arg(node.api_url())
            .args(extra)
            .env_remove("CONFLUX_ENDPOINT")
            .env("CONFLUX_TOKEN", node.token())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().expect("conflux starts")
    };
    let mut table = spawn(&["--labels", "region=eu,tier=web", "--client-id", "host-1"]);
    let mut json = spawn(&["--output", "json", "--content"]);
    let mut table_out = BufReader::new(table.stdout.take().unwrap()).lines();
    let mut json_out = BufReader::new(json.stdout.take().unwrap()).lines();
    for child in [&mut table, &mut json] {
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = next_line(&mut err, "the watching line").await;
        assert_eq!(
            line,
            format!("watching acme/shop/prod/cli.json from revision {rev1} (version {v1})")
        );
    }

    let (v2, rev2) = publish(&c, id, r#"{"timeout_ms": 2}"#.into()).await;
    assert_eq!(
        next_line(&mut table_out, "the first change").await,
        format!("revision {rev2} version {v2} updated")
    );
    let event: serde_json::Value =
        serde_json::from_str(&next_line(&mut json_out, "the first change").await).unwrap();
    assert_eq!(event["event"], "updated");
    assert_eq!(event["revision"], rev2);
    assert_eq!(event["version"], v2);
    assert_eq!(event["content"], r#"{"timeout_ms": 2}"#);
    assert_eq!(event["key"], "acme/shop/prod/cli.json");

    let (v3, rev3) = publish(&c, id, r#"{"timeout_ms": 3}"#.into()).await;
    assert_eq!(
        next_line(&mut table_out, "the second change").await,
        format!("revision {rev3} version {v3} updated")
    );
    let event: serde_json::Value =
        serde_json::from_str(&next_line(&mut json_out, "the second change").await).unwrap();
    assert_eq!(
        (event["revision"].as_u64(), event["version"].as_u64()),
        (Some(rev3), Some(v3))
    );

    let deleted = c.delete_config(id, &WriteOptions::default()).await.unwrap();
    assert_eq!(
        next_line(&mut table_out, "the deletion").await,
        format!("revision {} deleted", deleted.revision)
    );
    let event: serde_json::Value =
        serde_json::from_str(&next_line(&mut json_out, "the deletion").await).unwrap();
    assert_eq!(event["event"], "deleted");
    assert_eq!(event["version"], serde_json::Value::Null);
    for (name, mut child) in [("table", table), ("json", json)] {
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap_or_else(|_| panic!("the {name} watcher did not exit after the deletion"))
            .unwrap();
        assert!(status.success(), "{name}: {status}");
    }
    assert_eq!(table_out.next_line().await.unwrap(), None);
}
