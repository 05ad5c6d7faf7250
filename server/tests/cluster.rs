//! Multi-node behaviour over real processes: replication, forwarding, equal state digests,
//! failover, catch-up by snapshot, membership changes, backup/restore, a paused minority, and
//! mutual TLS.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{applied, client, eventually, metric, push, setup_config};
use conflux_api_types::{ClusterDigest, PutReleases};
use conflux_client::{ApiClient, ConfigPath, FetchOptions, Fetched, WriteOptions};
use conflux_domain::ReleaseRule;
use conflux_testkit::{Cluster, NodeSpec, TestNode};
use sha2::{Digest, Sha256};

fn path(name: &str) -> ConfigPath {
    ConfigPath::new("acme", "shop", "prod", name)
}

async fn fetch_text(
    c: &ApiClient,
    name: &str,
    min_revision: Option<u64>,
    linearizable: bool,
) -> (u64, String) {
    let opts = FetchOptions {
        min_revision,
        linearizable,
        ..Default::default()
    };
    match c.fetch(&path(name), &opts).await.expect("fetch") {
        Fetched::Modified {
            content, version, ..
        } => (version, String::from_utf8(content.to_vec()).unwrap()),
        Fetched::NotModified => panic!("unexpected 304"),
    }
}

async fn release(c: &ApiClient, id: u64, version: u64) -> u64 {
    let body = PutReleases {
        releases: vec![ReleaseRule::default_to(version)],
        comment: None,
    };
    c.put_releases(id, &body, &WriteOptions::default())
        .await
        .expect("release")
        .revision
}

fn others(cluster: &Cluster, leader: u64) -> Vec<u64> {
    cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_replicate_to_followers_and_followers_forward_writes() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let followers = others(&cluster, leader);
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "app.txt").await;

    // A write on the leader is readable from both followers (min_revision makes the read
    // wait for the follower to apply it; no sleeping).
    let v1 = push(&lc, id, "written on the leader").await.unwrap();
    let rev = release(&lc, id, v1).await;
    for f in &followers {
        let (version, text) =
            fetch_text(&client(cluster.node(*f)), "app.txt", Some(rev), false).await;
        assert_eq!(
            (version, text.as_str()),
            (v1, "written on the leader"),
            "node {f}"
        );
    }

    // A write sent to a follower succeeds in one request, and that follower reads it back
    // at once (it waited for its own apply before answering).
    let fc = client(cluster.node(followers[0]));
    let v2 = push(&fc, id, "written through a follower").await.unwrap();
    assert_eq!(v2, v1 + 1);
    let rev = release(&fc, id, v2).await;
    let (version, _) = fetch_text(&fc, "app.txt", None, false).await;
    assert_eq!(
        version, v2,
        "read-your-writes on the follower that took the write"
    );

    // Every node converges; a linearizable read on the other follower sees the change.
    let (version, text) =
        fetch_text(&client(cluster.node(followers[1])), "app.txt", None, true).await;
    assert_eq!((version, text.as_str()), (v2, "written through a follower"));
    for id in cluster.ids() {
        let c = client(cluster.node(id));
        let (version, _) = fetch_text(&c, "app.txt", Some(rev), false).await;
        assert_eq!(version, v2, "node {id}");
    }
}

/// Every node's digest, read once all of them report the same applied index (entries the
/// leader proposes by itself, such as audit trims, may move it between two reads).
async fn digests_at_one_index(clients: &[ApiClient]) -> Vec<ClusterDigest> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut digests = Vec::new();
        for c in clients {
            digests.push(c.cluster_digest().await.expect("digest"));
        }
        if digests
            .iter()
            .all(|d| d.applied_index == digests[0].applied_index)
        {
            return digests;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never reported the same applied index: {digests:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_at_the_same_applied_index_report_the_same_digest() {
    let cluster = Cluster::start(3).expect("cluster starts");
    cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let clients: Vec<ApiClient> = cluster.nodes().iter().map(client).collect();
    // Writes through every node: the followers forward theirs.
    let a = setup_config(&clients[0], "a.txt").await;
    let b = setup_config(&clients[1], "b.txt").await;
    for (i, c) in clients.iter().enumerate() {
        let v = push(c, a, &format!("a from node {i}")).await.unwrap();
        release(c, a, v).await;
        push(c, b, &format!("b from node {i}")).await.unwrap();
    }

    let before = digests_at_one_index(&clients).await;
    let ids: Vec<u64> = before.iter().map(|d| d.node_id).collect();
    assert_eq!(ids, cluster.ids(), "each node answers for itself");
    for d in &before[1..] {
        assert_eq!(d.digest, before[0].digest, "{before:?}");
    }
    assert!(before[0].digest.starts_with("sha256:"), "{before:?}");
    assert_eq!(
        (before[0].tenants, before[0].configs, before[0].versions),
        (1, 2, 6)
    );

    // One more version of one config: every node moves to the same new digest.
    push(&clients[2], b, "one more").await.unwrap();
    let after = digests_at_one_index(&clients).await;
    for d in &after[1..] {
        assert_eq!(d.digest, after[0].digest, "{after:?}");
    }
    assert!(after[0].applied_index > before[0].applied_index);
    assert_ne!(after[0].digest, before[0].digest);
    assert_eq!(after[0].versions, 7);

    // The digest is for cluster admins, like the status.
    let anonymous = ApiClient::builder(cluster.nodes()[0].api_url())
        .build()
        .unwrap();
    let denied = anonymous.cluster_digest().await.unwrap_err();
    assert_eq!(denied.status(), Some(401), "{denied}");
}

/// One acknowledged write.
#[derive(Clone)]
struct Ack {
    version: u64,
    content: String,
    /// When the write was sent, and when its acknowledgement arrived.
    sent: Instant,
    at: Instant,
}

/// Writes until `stop`, switching to the next node whenever the current one fails.
async fn writer(
    clients: Vec<ApiClient>,
    id: u64,
    w: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) {
    let mut target = w % clients.len();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let content = format!("writer {w} seq {seq}");
        let sent = Instant::now();
        match push(&clients[target], id, &content).await {
            Ok(version) => acks.lock().unwrap().push(Ack {
                version,
                content,
                sent,
                at: Instant::now(),
            }),
            Err(_) => {
                target = (target + 1) % clients.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn assert_all_present(c: &ApiClient, node: u64, id: u64, acks: &[Ack]) {
    for a in acks {
        let meta = c
            .get_version(id, a.version)
            .await
            .unwrap_or_else(|e| panic!("node {node}: version {} lost: {e}", a.version));
        let want = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(a.content.as_bytes()))
        );
        assert_eq!(
            meta.hash, want,
            "node {node}: version {} holds other content",
            a.version
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let id = setup_config(&client(cluster.node(leader)), "stream.txt").await;
    let clients: Vec<ApiClient> = cluster
        .ids()
        .iter()
        .map(|i| client(cluster.node(*i)).with_timeout(Duration::from_secs(5)))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(writer(clients.clone(), id, w, stop.clone(), acks.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cluster.node_mut(leader).kill9().unwrap();
    // Keep writing until the new leader has acknowledged a good number of writes (not for a
    // fixed time: an election on a loaded machine can take a few seconds).
    eventually(Duration::from_secs(30), "writes to resume", || {
        let acks = acks.clone();
        async move {
            let acks = acks.lock().unwrap();
            acks.iter().filter(|a| a.sent > killed_at).count() >= 50
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let before = acks.iter().filter(|a| a.at < killed_at).count();
    // Failover time: from the kill to the first acknowledgement of a write sent after it
    // (a write acknowledged just after the kill may have been committed before it).
    let first_after = acks
        .iter()
        .filter(|a| a.sent > killed_at)
        .map(|a| a.at - killed_at)
        .min();
    let after = acks.iter().filter(|a| a.sent > killed_at).count();
    println!(
        "{before} writes acknowledged before kill -9 of leader {leader}, {after} sent after it; the first write sent after the kill was acknowledged {first_after:?} after it"
    );
    assert!(before > 20, "too few writes before the kill: {before}");

    let survivors = others(&cluster, leader);
    let new_leader = cluster
        .wait_for_leader_among(&survivors, Duration::from_secs(30))
        .unwrap();
    assert_ne!(new_leader, leader);
    let lc = client(cluster.node(new_leader));
    let target = applied(&lc).await.unwrap();
    for s in &survivors {
        let c = client(cluster.node(*s));
        eventually(
            Duration::from_secs(20),
            "the survivor to apply everything",
            || {
                let c = c.clone();
                async move { applied(&c).await.is_some_and(|a| a >= target) }
            },
        )
        .await;
        assert_all_present(&c, *s, id, &acks).await;
    }
    // The killed node comes back and catches up too.
    cluster.node_mut(leader).restart().unwrap();
    let c = client(cluster.node(leader));
    eventually(
        Duration::from_secs(30),
        "the old leader to catch up",
        || {
            let c = c.clone();
            async move { applied(&c).await.is_some_and(|a| a >= target) }
        },
    )
    .await;
    assert_all_present(&c, leader, id, &acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_the_purge_point_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(3, vec!["--snapshot-every".into(), "100".into()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = others(&cluster, leader)[0];
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "big.txt").await;
    cluster.node_mut(follower).terminate().unwrap();
    // The follower holds at most the log the leader had when it stopped.
    let follower_log = metric(cluster.node(leader), "conflux_raft_last_log_index")
        .await
        .expect("the leader exports its last log index");

    // Write until the leader has built snapshots and purged its log past everything the
    // follower has; from then on only a snapshot can bring the follower back. (How many
    // entries that takes depends on how writes batch, and the leader postpones a purge while
    // a replication to the stopped follower is still in flight.)
    let leader_node = cluster.node(leader);
    let mut rounds = 0;
    while metric(leader_node, "conflux_raft_purged_index")
        .await
        .is_none_or(|purged| purged <= follower_log)
    {
        rounds += 1;
        assert!(
            rounds <= 20,
            "the leader never purged past index {follower_log}"
        );
        let mut tasks = Vec::new();
        for w in 0..8 {
            let lc = lc.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..30 {
                    push(&lc, id, &format!("r{rounds} w{w} i{i}"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    println!("the leader purged past index {follower_log} after {rounds} rounds of writes");
    let last = push(&lc, id, "the last one").await.unwrap();
    let target = applied(&lc).await.unwrap();

    cluster.node_mut(follower).restart().unwrap();
    let fc = client(cluster.node(follower));
    eventually(Duration::from_secs(30), "the follower to catch up", || {
        let fc = fc.clone();
        async move { applied(&fc).await.is_some_and(|a| a >= target) }
    })
    .await;
    assert!(
        cluster.node(follower).log_contains("installed snapshot"),
        "the follower caught up without a snapshot"
    );
    let content = fc.get_version_content(id, last).await.unwrap();
    assert_eq!(content.as_ref(), b"the last one");
    assert_eq!(fc.get_config(id).await.unwrap().latest_version, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn growing_to_five_and_shrinking_to_three_keeps_serving() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let id = setup_config(&client(cluster.node(leader)), "ring.txt").await;

    // A writer that talks to nodes 1-3 and 4 once it exists, counting every outcome.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<ApiClient> = cluster
        .ids()
        .iter()
        .map(|i| client(cluster.node(*i)))
        .collect();
    let w = tokio::spawn(writer(clients, id, 0, stop.clone(), acks.clone()));
    let count = || acks.lock().unwrap().len();

    let mut progress = Vec::new();
    cluster.join(4, 2).expect("node 4 joins");
    progress.push(("joined 4", count()));
    cluster.join(5, 3).expect("node 5 joins");
    progress.push(("joined 5", count()));
    let status = cluster.status(1).unwrap();
    let voters = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 5, "{status}");

    cluster.remove(5, 1).expect("node 5 leaves");
    progress.push(("removed 5", count()));
    // Remove the current leader: leadership moves first, then it leaves.
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let via = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
    cluster.remove(leader, via).expect("the leader leaves");
    progress.push(("removed the leader", count()));
    let remaining = cluster.ids();
    assert_eq!(remaining.len(), 3);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    assert_ne!(new_leader, leader);

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    println!(
        "writes acknowledged at each step: {progress:?}, total {}",
        count()
    );
    // Writes went through during every phase.
    for pair in progress.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "no write succeeded between {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    let acks = acks.lock().unwrap().clone();
    let lc = client(cluster.node(new_leader));
    let target = applied(&lc).await.unwrap();
    for n in remaining {
        let c = client(cluster.node(n));
        eventually(Duration::from_secs(20), "catch up", || {
            let c = c.clone();
            async move { applied(&c).await.is_some_and(|a| a >= target) }
        })
        .await;
        assert_all_present(&c, n, id, &acks).await;
        let status = c.cluster_status().await.unwrap();
        assert_eq!(status.members.len(), 3, "{status:?}");
    }
}

/// Everything a user can read about the config plane, for comparing two clusters.
async fn dump(c: &ApiClient) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in c.list_tenants().await.unwrap().tenants {
        out.insert(format!("tenant {}", t.name), format!("{t:?}"));
        for a in c.list_apps(&t.name).await.unwrap().apps {
            out.insert(format!("app {}/{}", t.name, a.name), format!("{a:?}"));
            for e in c.list_envs(&t.name, &a.name).await.unwrap().environments {
                out.insert(
                    format!("env {}/{}/{}", t.name, a.name, e.name),
                    format!("{e:?}"),
                );
                for cfg in c
                    .list_configs(&t.name, &a.name, &e.name)
                    .await
                    .unwrap()
                    .configs
                {
                    out.insert(format!("config {}", cfg.path), format!("{cfg:?}"));
                    out.insert(
                        format!("releases {}", cfg.path),
                        format!("{:?}", c.get_releases(cfg.id).await.unwrap()),
                    );
                    for v in c
                        .list_versions(cfg.id, Some(1000), None)
                        .await
                        .unwrap()
                        .versions
                    {
                        let content = c.get_version_content(cfg.id, v.version_id).await.unwrap();
                        out.insert(
                            format!("version {} {}", cfg.path, v.version_id),
                            format!("{v:?} {content:?}"),
                        );
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restores_into_a_new_cluster_with_identical_state() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let a = setup_config(&lc, "a.txt").await;
    let b = setup_config(&lc, "b.txt").await;
    for i in 0..5 {
        push(&lc, a, &format!("a{i}")).await.unwrap();
        push(&lc, b, &format!("b{i}")).await.unwrap();
    }
    let canary = ReleaseRule {
        labels: [("canary".to_owned(), "true".to_owned())].into(),
        percent: None,
        version_id: 5,
        priority: 100,
    };
    let body = PutReleases {
        releases: vec![ReleaseRule::default_to(4), canary],
        comment: Some("canary".into()),
    };
    lc.put_releases(a, &body, &WriteOptions::default())
        .await
        .unwrap();
    let follower = others(&cluster, leader)[0];
    let fc = client(cluster.node(follower));
    let rev = applied(&lc).await.unwrap();
    eventually(Duration::from_secs(10), "the follower to apply", || {
        let fc = fc.clone();
        async move { applied(&fc).await.is_some_and(|x| x >= rev) }
    })
    .await;
    let original = dump(&fc).await;
    let backup = fc.backup().await.expect("backup");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    std::fs::write(&file, &backup).unwrap();
    let raft_addr = format!("127.0.0.1:{}", conflux_testkit::free_port().unwrap());
    let api_addr = format!("127.0.0.1:{}", conflux_testkit::free_port().unwrap());
    // The new cluster has a metadata DB of its own (a backup holds the config plane only).
    let metadata = conflux_testkit::metadata_args().unwrap();
    let mut spec = NodeSpec::new(1);
    spec.api_addr = Some(api_addr.clone());
    spec.raft_addr = Some(raft_addr.clone());
    spec.extra_args = metadata.clone();
    let restored = TestNode::start_prepared(spec, |data_dir| {
        conflux_testkit::restore(&file, data_dir, 1, &raft_addr, &api_addr)?;
        // Restoring again into the now non-empty directory is refused.
        let again = conflux_testkit::restore(&file, data_dir, 1, &raft_addr, &api_addr)
            .expect_err("a second restore is refused");
        assert!(format!("{again:#}").contains("not empty"), "{again:#}");
        Ok(())
    })
    .expect("restored node starts");
    drop(cluster);

    let mut new_cluster = Cluster::adopt(restored, metadata);
    new_cluster
        .wait_for_leader(Duration::from_secs(30))
        .unwrap();
    new_cluster
        .join(2, 1)
        .expect("node 2 joins the restored node");
    new_cluster.join(3, 1).expect("node 3 joins");
    let rc = client(new_cluster.node(1));
    // Revisions keep growing after a restore.
    let v = push(&rc, a, "after restore").await.unwrap();
    assert_eq!(v, 6);
    let after_rev = applied(&rc).await.unwrap();
    assert!(
        after_rev > rev,
        "revision went backwards: {after_rev} <= {rev}"
    );
    for n in [1, 2, 3] {
        let c = client(new_cluster.node(n));
        eventually(Duration::from_secs(20), "catch up", || {
            let c = c.clone();
            async move { applied(&c).await.is_some_and(|x| x >= after_rev) }
        })
        .await;
        let mut state = dump(&c).await;
        state.remove("version acme/shop/prod/a.txt 6");
        let config_a = "config acme/shop/prod/a.txt".to_owned();
        let (mut orig, mut now) = (original.clone(), state);
        // The config record changed with the new version; everything else is identical.
        orig.remove(&config_a);
        now.remove(&config_a);
        orig.remove("releases acme/shop/prod/a.txt");
        let rel_now = now.remove("releases acme/shop/prod/a.txt").unwrap();
        assert!(rel_now.contains("canary"), "{rel_now}");
        assert_eq!(now, orig, "node {n} differs from the original cluster");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_minority_does_not_stop_the_majority_and_catches_up() {
    let cluster = Cluster::start(5).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "p.txt").await;
    let paused: Vec<u64> = others(&cluster, leader).into_iter().take(2).collect();
    for p in &paused {
        cluster.node(*p).pause().unwrap();
    }
    let started = Instant::now();
    let mut last = 0;
    for i in 0..50 {
        last = push(&lc, id, &format!("while paused {i}"))
            .await
            .expect("the majority keeps taking writes");
    }
    println!(
        "50 writes with 2 of 5 nodes paused took {:?}",
        started.elapsed()
    );
    let rev = release(&lc, id, last).await;
    for p in &paused {
        cluster.node(*p).resume().unwrap();
    }
    for p in &paused {
        let c = client(cluster.node(*p));
        eventually(
            Duration::from_secs(30),
            "the paused node to catch up",
            || {
                let c = c.clone();
                async move { applied(&c).await.is_some_and(|a| a >= rev) }
            },
        )
        .await;
        let (version, text) = fetch_text(&c, "p.txt", None, false).await;
        assert_eq!(
            (version, text.as_str()),
            (last, "while paused 49"),
            "node {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_talk_mutual_tls_and_refuse_a_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = conflux_testkit::tls::TestCa::new(dir.path(), "cluster").unwrap();
    let cert = ca.node_cert("node").unwrap();
    let cluster = Cluster::start_with(3, cert.args()).expect("a TLS cluster forms");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "tls.txt").await;
    let v = push(&lc, id, "over mTLS").await.unwrap();
    let rev = release(&lc, id, v).await;
    let follower = others(&cluster, leader)[0];
    let (_, text) = fetch_text(&client(cluster.node(follower)), "tls.txt", Some(rev), false).await;
    assert_eq!(text, "over mTLS");

    // A peer with a certificate from another CA cannot talk to the Raft listener, and
    // neither can one without a certificate.
    let rogue_ca = conflux_testkit::tls::TestCa::new(dir.path(), "rogue").unwrap();
    let rogue = rogue_ca.node_cert("intruder").unwrap();
    let raft_addr = cluster.status(leader).unwrap()["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == follower)
        .unwrap()["raft_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let trust_cluster = tonic::transport::Certificate::from_pem(std::fs::read(&cert.ca).unwrap());
    let intruder = tonic::transport::Identity::from_pem(
        std::fs::read(&rogue.cert).unwrap(),
        std::fs::read(&rogue.key).unwrap(),
    );
    let attempts = [
        (
            "a certificate from another CA",
            Some(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(trust_cluster.clone())
                    .identity(intruder),
            ),
        ),
        (
            "no client certificate",
            Some(tonic::transport::ClientTlsConfig::new().ca_certificate(trust_cluster)),
        ),
        ("plain text", None),
    ];
    for (what, tls) in attempts {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://{raft_addr}"))
                .unwrap()
                .timeout(Duration::from_secs(3));
        if let Some(t) = tls {
            endpoint = endpoint.tls_config(t).unwrap();
        }
        let outcome = async {
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
            let mut rpc = conflux_server::raft::pb::raft_client::RaftClient::new(channel);
            let req = conflux_server::raft::pb::Payload {
                data: conflux_server::storage::codec::encode(
                    &conflux_server::raft::ForwardRequest::LocalStatus,
                ),
            };
            rpc.forward(req).await.map_err(|e| e.to_string())
        }
        .await;
        assert!(
            outcome.is_err(),
            "the Raft listener answered a client with {what}"
        );
    }
    // The cluster is unharmed.
    let v2 = push(&lc, id, "still fine").await.unwrap();
    assert_eq!(v2, v + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_a_node_that_never_answers_is_refused_and_leaves_no_trace() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let c = client(cluster.node(1)).with_timeout(Duration::from_secs(60));
    let ghost = conflux_api_types::JoinRequest {
        node_id: 9,
        raft_addr: format!("127.0.0.1:{}", conflux_testkit::free_port().unwrap()),
        api_addr: format!("127.0.0.1:{}", conflux_testkit::free_port().unwrap()),
    };
    let err = c
        .add_member(&ghost)
        .await
        .expect_err("a node nobody runs cannot join");
    assert_eq!(err.code(), "catch_up_timeout", "{err}");
    let status = c.cluster_status().await.unwrap();
    assert_eq!(
        status.members.len(),
        3,
        "the ghost stayed in the membership: {status:?}"
    );
    // Writes still need only the 2-of-3 quorum.
    let id = setup_config(&c, "after-ghost.txt").await;
    push(&c, id, "fine").await.unwrap();
    let bad = conflux_api_types::JoinRequest {
        node_id: 9,
        raft_addr: "foo:".into(),
        api_addr: "127.0.0.1:1".into(),
    };
    assert_eq!(
        c.add_member(&bad).await.unwrap_err().code(),
        "invalid_argument"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_writes_get_a_prompt_503_and_reads_keep_being_served() {
    let mut cluster = Cluster::start_with(3, vec!["--write-timeout".into(), "2s".into()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "quorum.txt").await;
    let v = push(&lc, id, "before the outage").await.unwrap();
    let rev = release(&lc, id, v).await;
    let followers = others(&cluster, leader);
    let (survivor, lost) = (followers[0], followers[1]);
    let sc = client(cluster.node(survivor));
    fetch_text(&sc, "quorum.txt", Some(rev), false).await;

    // Two of three nodes die: the survivor can neither reach a leader nor elect one.
    cluster.node_mut(leader).kill9().unwrap();
    cluster.node_mut(lost).kill9().unwrap();
    let started = Instant::now();
    let err = push(&sc, id, "during the outage")
        .await
        .expect_err("no write can commit without a quorum");
    let waited = started.elapsed();
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), "not_leader"),
        "{err}"
    );
    assert!(err.retry_after_secs().is_some(), "503 without Retry-After");
    // Bounded by --write-timeout (2 s), not a hang; generous margin for a loaded machine.
    assert!(
        waited < Duration::from_secs(10),
        "the write hung for {waited:?}"
    );
    // A linearizable read needs the leader too; a default read is served from local state.
    let opts = FetchOptions {
        linearizable: true,
        ..Default::default()
    };
    let err = sc
        .fetch(&path("quorum.txt"), &opts)
        .await
        .expect_err("a linearizable read needs a leader");
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), "not_leader"),
        "{err}"
    );
    let (version, text) = fetch_text(&sc, "quorum.txt", None, false).await;
    assert_eq!((version, text.as_str()), (v, "before the outage"));

    // The quorum comes back: writes work again, through the survivor.
    cluster.node_mut(leader).restart().unwrap();
    cluster.node_mut(lost).restart().unwrap();
    cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let mut after = Err(err);
    for _ in 0..50 {
        after = push(&sc, id, "after the outage").await;
        if after.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after.expect("writes resume"), v + 1);
}
