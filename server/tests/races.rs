//! Races between applying, snapshotting and serving, replayed over real processes: a
//! follower installing snapshots while it serves fetches, watches and backups, and a
//! forwarded write whose entry has not reached the node that took it. (A deletion and a
//! re-creation applied in one call is a unit test of the state machine: from outside, how a
//! follower groups entries into apply calls cannot be controlled.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{applied, client, eventually, metric, push, setup_config};
use conflux_api_types::{CreateConfig, Format, PublishRequest, Strategy, WatchEventKind};
use conflux_client::{ApiClient, ConfigPath, FetchOptions, WatchOptions, WriteOptions};
use conflux_testkit::Cluster;

fn path(name: &str) -> ConfigPath {
    ConfigPath::new("acme", "shop", "prod", name)
}

fn others(cluster: &Cluster, leader: u64) -> Vec<u64> {
    cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect()
}

/// Creates acme/shop/prod/<name> and publishes `content` to every client; returns the id and
/// the revision of the publish.
async fn published(c: &ApiClient, name: &str, content: &str) -> (u64, u64) {
    let id = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                name: name.into(),
                format: Format::Text,
                schema: None,
                retention: None,
                description: None,
                encrypted: false,
            },
            &WriteOptions::default(),
        )
        .await
        .unwrap()
        .id;
    let body = PublishRequest {
        content: content.into(),
        description: None,
        strategy: Strategy::Stable,
    };
    let p = c
        .publish(id, &body, &WriteOptions::default())
        .await
        .unwrap();
    (id, p.revision)
}

/// Writes to `id` through `lc` until the leader has purged its log past `index`, so that a
/// node whose log ends there can only catch up by snapshot.
async fn write_until_purged_past(
    cluster: &Cluster,
    leader: u64,
    lc: &ApiClient,
    id: u64,
    index: f64,
) {
    let mut rounds = 0;
    while metric(cluster.node(leader), "conflux_raft_purged_index")
        .await
        .is_none_or(|purged| purged <= index)
    {
        rounds += 1;
        assert!(rounds <= 30, "the leader never purged past index {index}");
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let lc = lc.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        push(&lc, id, &format!("r{rounds} w{w} i{i}"))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    }
}

/// What the follower's clients saw while it installed snapshots.
#[derive(Default)]
struct Seen {
    fetched: AtomicU64,
    not_found: AtomicU64,
    polls: AtomicU64,
    deleted: AtomicU64,
    backups: AtomicU64,
}

/// Installing a snapshot replaced the fetch index by clearing it and filling it again: in
/// between, fetches of existing configs answered 404 and new watches were told the config was
/// deleted. Snapshot builds (a backup builds one) and installs also raced over the snapshot
/// files, which could leave a node unable to start. A follower now installs snapshots while
/// serving fetches, watches and backups without a single 404 or deletion event, and starts
/// again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_installing_snapshots_keeps_serving_every_config_and_restarts() {
    const CONFIGS: usize = 400;
    let mut cluster = Cluster::start_with(3, vec!["--snapshot-every".into(), "100".into()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = others(&cluster, leader)[0];
    let lc = client(cluster.node(leader));
    let bulk = setup_config(&lc, "bulk.txt").await;
    let creators: Vec<_> = (0..8)
        .map(|w| {
            let lc = lc.clone();
            tokio::spawn(async move {
                let mut made = Vec::new();
                for i in (w..CONFIGS).step_by(8) {
                    let name = format!("c{i}.txt");
                    let (_, revision) = published(&lc, &name, &format!("content {i}")).await;
                    made.push((name, revision));
                }
                made
            })
        })
        .collect();
    let mut configs = Vec::new();
    for c in creators {
        configs.extend(c.await.unwrap());
    }
    let configs = Arc::new(configs);
    let fc = client(cluster.node(follower));
    let target = applied(&lc).await.unwrap();
    eventually(Duration::from_secs(30), "the follower to catch up", || {
        let fc = fc.clone();
        async move { applied(&fc).await.is_some_and(|a| a >= target) }
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut background = Vec::new();
    for t in 0..3 {
        let (fc, configs, stop, seen) = (fc.clone(), configs.clone(), stop.clone(), seen.clone());
        background.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let (name, _) = &configs[i % configs.len()];
                i += 7;
                match fc.fetch(&path(name), &FetchOptions::default()).await {
                    Ok(_) => seen.fetched.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.status() == Some(404) => {
                        eprintln!("fetch of existing {name}: {e}");
                        seen.not_found.fetch_add(1, Ordering::Relaxed)
                    }
                    // A paused node times out; that is not what this test is about.
                    Err(_) => 0,
                };
            }
        }));
    }
    for t in 0..2 {
        let (fc, configs, stop, seen) = (fc.clone(), configs.clone(), stop.clone(), seen.clone());
        background.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let (name, revision) = &configs[i % configs.len()];
                i += 5;
                let opts = WatchOptions {
                    revision: *revision,
                    timeout: Some(Duration::ZERO),
                    ..Default::default()
                };
                if let Ok(event) = fc.watch(&path(name), &opts).await {
                    seen.polls.fetch_add(1, Ordering::Relaxed);
                    if event.is_some_and(|e| e.event == WatchEventKind::Deleted) {
                        eprintln!("watch of existing {name} answered deleted");
                        seen.deleted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    {
        let (stop, seen) = (stop.clone(), seen.clone());
        let backup = common::client(cluster.node(follower)).with_timeout(Duration::from_secs(30));
        background.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if backup.backup().await.is_ok() {
                    seen.backups.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    for round in 1..=2 {
        let follower_log = metric(cluster.node(follower), "conflux_raft_last_log_index")
            .await
            .expect("the follower exports its last log index");
        cluster.node(follower).pause().unwrap();
        write_until_purged_past(&cluster, leader, &lc, bulk, follower_log).await;
        let target = applied(&lc).await.unwrap();
        cluster.node(follower).resume().unwrap();
        eventually(
            Duration::from_secs(60),
            "the follower to catch up by snapshot",
            || {
                let fc = fc.clone();
                async move { applied(&fc).await.is_some_and(|a| a >= target) }
            },
        )
        .await;
        println!("round {round}: the follower caught up to {target}");
    }
    // Let fetches, watches and backups run a little on the caught-up node too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for b in background {
        b.await.unwrap();
    }
    assert!(
        cluster.node(follower).log_contains("installed snapshot"),
        "the follower caught up without a snapshot"
    );
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "fetched {}, 404 {}, watch polls {}, deleted {}, backups {}",
        load(&seen.fetched),
        load(&seen.not_found),
        load(&seen.polls),
        load(&seen.deleted),
        load(&seen.backups)
    );
    assert!(load(&seen.fetched) > 0 && load(&seen.polls) > 0 && load(&seen.backups) > 0);
    assert_eq!(
        load(&seen.not_found),
        0,
        "fetches of existing configs answered 404"
    );
    assert_eq!(
        load(&seen.deleted),
        0,
        "watches of existing configs answered deleted"
    );

    // The follower starts again on what the installs and builds left, and converges.
    let node = cluster.node_mut(follower);
    node.terminate().unwrap();
    node.restart().expect("the follower starts again");
    let target = applied(&lc).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the restarted follower to converge",
        || {
            let fc = fc.clone();
            async move { applied(&fc).await.is_some_and(|a| a >= target) }
        },
    )
    .await;
    for (name, _) in configs.iter().step_by(37) {
        fc.fetch(&path(name), &FetchOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name} after the restart: {e}"));
    }
}

/// A follower that forwards a write waits until it has applied the entry itself before it
/// acknowledges (read-your-writes on that node). When its own replication stream is cut, it
/// used to acknowledge anyway once the wait timed out, and a read on it did not show the
/// acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_write_is_not_acknowledged_before_it_is_visible_on_that_node() {
    let cluster = Cluster::start_partitionable(3, vec!["--write-timeout".into(), "2s".into()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = others(&cluster, leader)[0];
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "forwarded.txt").await;
    let fc = client(cluster.node(follower));
    let before = applied(&lc).await.unwrap();
    eventually(Duration::from_secs(30), "the follower to apply", || {
        let fc = fc.clone();
        async move { applied(&fc).await.is_some_and(|a| a >= before) }
    })
    .await;

    // The leader's connection to the follower is cut; the follower's to the leader works, so
    // the write is forwarded and committed with the other follower.
    let cut = cluster.cut_connections(leader, follower).unwrap();
    let outcome = push(&fc, id, "committed elsewhere").await;
    match outcome {
        Err(e) => assert_eq!(e.code(), "revision_not_reached", "{e}"),
        Ok(version) => {
            let config = fc.get_config(id).await.unwrap();
            assert!(
                config.latest_version >= version,
                "the follower acknowledged version {version} but shows {}",
                config.latest_version
            );
        }
    }
    cut.heal().unwrap();
    let target = applied(&lc).await.unwrap();
    eventually(Duration::from_secs(30), "the follower to catch up", || {
        let fc = fc.clone();
        async move { applied(&fc).await.is_some_and(|a| a >= target) }
    })
    .await;
    assert_eq!(
        fc.get_config(id).await.unwrap().latest_version,
        lc.get_config(id).await.unwrap().latest_version
    );
}
