//! Encrypted configs over real processes (contract section 8): plaintext never reaches a
//! node's disk, snapshots, backups or logs; rotation with the local provider and rewrap; the
//! aws provider against a real KMS-compatible server (moto), including a wrong key id, KMS
//! outages and rotation proven by counting KMS calls per key; bad input at start-up.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{applied, client, eventually, push, setup_config, setup_encrypted_config};
use conflux_api_types::{PutReleases, UpdateConfig};
use conflux_client::{ApiClient, ConfigPath, FetchOptions, Fetched, WriteOptions};
use conflux_domain::ReleaseRule;
use conflux_testkit::moto::TestMoto;
use conflux_testkit::{Cluster, NodeSpec, TestNode};
use sha2::{Digest, Sha256};

fn path(name: &str) -> ConfigPath {
    ConfigPath::new("acme", "shop", "prod", name)
}

fn marker(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    format!("{prefix}-{}", hex::encode(bytes))
}

async fn release(c: &ApiClient, id: u64, version: u64) {
    let body = PutReleases {
        releases: vec![ReleaseRule::default_to(version)],
        comment: None,
    };
    c.put_releases(id, &body, &WriteOptions::default())
        .await
        .unwrap();
}

/// Fetches `name` and checks that version, hash and ETag describe the plaintext.
async fn fetch_plain(c: &ApiClient, name: &str) -> (u64, String) {
    match c
        .fetch(&path(name), &FetchOptions::default())
        .await
        .expect("fetch")
    {
        Fetched::Modified {
            content,
            version,
            hash,
            ..
        } => {
            let expected = format!("sha256:{}", hex::encode(Sha256::digest(&content)));
            assert_eq!(hash, expected, "the hash is the plaintext's");
            (version, String::from_utf8(content.to_vec()).unwrap())
        }
        Fetched::NotModified => panic!("unexpected 304"),
    }
}

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(p);
            }
        }
    }
    hits
}

fn restart(node: &mut TestNode, why: &str) {
    node.terminate().expect("the node stops");
    node.restart().expect(why);
}

/// Replaces a node's `--kms*` arguments (restart it afterwards).
fn set_kms_args(node: &mut TestNode, kms: Vec<String>) {
    let mut kept = Vec::new();
    let mut args = std::mem::take(&mut node.spec.extra_args).into_iter();
    while let Some(a) = args.next() {
        if a.starts_with("--kms") {
            args.next();
        } else {
            kept.push(a);
        }
    }
    kept.extend(kms);
    node.spec.extra_args = kept;
}

async fn caught_up(cluster: &Cluster, c: &ApiClient) {
    let target = applied(c).await.unwrap();
    for id in cluster.ids() {
        let nc = client(cluster.node(id));
        eventually(Duration::from_secs(30), "every node to catch up", || {
            let nc = nc.clone();
            async move { applied(&nc).await.is_some_and(|a| a >= target) }
        })
        .await;
    }
}

/// A recognisable secret written into an encrypted config on a 3-node cluster is nowhere on
/// disk afterwards: not in any node's data directory (RocksDB, Raft log, snapshots, audit
/// spool), not in the backup, not in a node restored from it, not in any log. The same scan
/// finds a plain config's marker, so it does look.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plaintext_of_an_encrypted_config_never_reaches_disk() {
    let mut cluster = Cluster::start_with(3, vec!["--snapshot-every".into(), "100".into()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let c = client(cluster.node(leader));
    let plain_id = setup_config(&c, "plain.txt").await;
    let secret_id = setup_encrypted_config(&c, "secret.txt").await;
    assert!(c.get_config(secret_id).await.unwrap().encrypted);

    let secret = marker("S3CRET");
    let visible = marker("VISIBLE");
    push(&c, secret_id, &format!("password={secret}\n"))
        .await
        .unwrap();
    push(&c, secret_id, &format!("password={secret}\nrotated=yes\n"))
        .await
        .unwrap();
    push(&c, plain_id, &format!("note={visible}\n"))
        .await
        .unwrap();
    release(&c, secret_id, 2).await;
    release(&c, plain_id, 1).await;
    // Enough entries for every node to build snapshots and purge its log.
    for i in 0..120 {
        push(&c, plain_id, &format!("filler {i}")).await.unwrap();
    }
    caught_up(&cluster, &c).await;

    // Every node serves the plaintext; management reads see it too (viewer and above).
    for id in cluster.ids() {
        let nc = client(cluster.node(id));
        let (v, text) = fetch_plain(&nc, "secret.txt").await;
        assert_eq!(
            (v, text.as_str()),
            (2, format!("password={secret}\nrotated=yes\n").as_str())
        );
    }
    let v1 = c.get_version_content(secret_id, 1).await.unwrap();
    assert_eq!(v1, format!("password={secret}\n").as_bytes());
    let diff = c.diff_versions(secret_id, 1, 2).await.unwrap();
    assert!(diff.contains("+rotated=yes"), "{diff}");
    let view = c.get_version(secret_id, 1).await.unwrap();
    assert_eq!(view.size, format!("password={secret}\n").len() as u64);

    // Turning encryption off (or on) afterwards is refused.
    let off = UpdateConfig {
        encrypted: Some(false),
        ..UpdateConfig::default()
    };
    let e = c
        .update_config(secret_id, &off, &WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(400), "invalid_argument"),
        "{e}"
    );
    assert!(e.to_string().contains("encrypted"), "{e}");

    // A snapshot on every node, a backup, and a node restored from the backup.
    for id in cluster.ids() {
        client(cluster.node(id)).snapshot().await.expect("snapshot");
    }
    let backups = tempfile::tempdir().unwrap();
    let backup_file = backups.path().join("backup.snap");
    std::fs::write(&backup_file, c.backup().await.expect("backup")).unwrap();
    let mut spec = NodeSpec::new(1);
    spec.extra_args = cluster.kms_args();
    spec.api_addr = Some(format!(
        "127.0.0.1:{}",
        conflux_testkit::free_port().unwrap()
    ));
    spec.raft_addr = Some(format!(
        "127.0.0.1:{}",
        conflux_testkit::free_port().unwrap()
    ));
    let restored = TestNode::start_restored(spec, &backup_file).expect("the restored node starts");
    let (_, text) = fetch_plain(&client(&restored), "secret.txt").await;
    assert!(
        text.contains(&secret),
        "the restored node opens what it restored"
    );

    // Restarted nodes unwrap their keys again from what is on disk.
    for id in cluster.ids() {
        restart(cluster.node_mut(id), "restart");
    }
    cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    for id in cluster.ids() {
        let (_, text) = fetch_plain(&client(cluster.node(id)), "secret.txt").await;
        assert!(text.contains(&secret));
    }

    let mut scanned: Vec<&Path> = cluster.nodes().iter().map(TestNode::dir).collect();
    scanned.push(restored.dir());
    scanned.push(backups.path());
    let leaked: Vec<PathBuf> = scanned
        .iter()
        .flat_map(|d| files_containing(d, secret.as_bytes()))
        .collect();
    assert!(
        leaked.is_empty(),
        "the secret is in plaintext in {leaked:#?}"
    );
    let found: Vec<PathBuf> = scanned
        .iter()
        .flat_map(|d| files_containing(d, visible.as_bytes()))
        .collect();
    assert!(
        found.iter().any(|p| p.starts_with(backups.path())),
        "the scan finds a plain config's content (in the backup at least): {found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(cluster.nodes()[0].dir())),
        "and in a node's data directory: {found:#?}"
    );
}

/// Rotation with the local provider: a new current key file with the old one as previous,
/// a rewrap (idempotent: the second finds nothing), then every node restarted without the
/// old key file still serves every version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_local_key_and_rewrapping_retires_the_old_key() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let c = client(cluster.node(leader));
    let id = setup_encrypted_config(&c, "rotate.txt").await;
    for v in 1..=5 {
        push(&c, id, &format!("version {v}")).await.unwrap();
    }
    release(&c, id, 5).await;
    let old_args = cluster.kms_args();
    let old_status = c.kms_status().await.unwrap();
    assert_eq!(
        old_status.data_keys_by_kek.get(&old_status.current_kek_id),
        Some(&5)
    );

    let new_dir = tempfile::tempdir().unwrap();
    let mut rotated = conflux_testkit::kms_args(new_dir.path()).unwrap();
    rotated.push("--kms-previous-key-file".into());
    rotated.push(old_args[1].clone());
    for id in cluster.ids() {
        set_kms_args(cluster.node_mut(id), rotated.clone());
        restart(cluster.node_mut(id), "restart with the new key");
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let c = client(cluster.node(leader));
    // Before the rewrap: the old versions are still wrapped by the old key, new ones not.
    push(&c, id, "version 6").await.unwrap();
    let status = c.kms_status().await.unwrap();
    assert_ne!(status.current_kek_id, old_status.current_kek_id);
    assert_eq!(
        status.data_keys_by_kek.get(&old_status.current_kek_id),
        Some(&5)
    );
    assert_eq!(
        status.data_keys_by_kek.get(&status.current_kek_id),
        Some(&1)
    );

    // Rewrap through a follower: its batches are forwarded to the leader.
    let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
    let done = client(cluster.node(follower))
        .kms_rewrap()
        .await
        .expect("rewrap");
    assert_eq!((done.rewrapped, done.remaining), (5, 0));
    let again = c.kms_rewrap().await.expect("a second rewrap");
    assert_eq!((again.rewrapped, again.remaining), (0, 0));
    caught_up(&cluster, &c).await;

    let only_new = vec![
        "--kms-key-file".to_owned(),
        new_dir.path().join("kek.key").display().to_string(),
    ];
    for id in cluster.ids() {
        set_kms_args(cluster.node_mut(id), only_new.clone());
        restart(cluster.node_mut(id), "restart without the old key");
    }
    cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    for node in cluster.nodes() {
        let nc = client(node);
        for v in 1..=6 {
            let content = nc.get_version_content(id, v).await.expect("content");
            assert_eq!(content, format!("version {v}").as_bytes());
        }
        assert_eq!(fetch_plain(&nc, "rotate.txt").await.1, "version 5");
    }
}

/// `conflux_kms_requests_total` samples of one operation and KEK, summed over outcomes.
async fn kms_calls(node: &TestNode, operation: &str, kek: &str) -> u64 {
    let body = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(format!("{}/metrics", node.api_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with("conflux_kms_requests_total{"))
        .filter(|l| l.contains(&format!("operation=\"{operation}\"")))
        .filter(|l| l.contains(&format!("kek=\"{kek}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn aws_node(moto: &TestMoto, key: &str) -> NodeSpec {
    let mut spec = NodeSpec::new(1);
    spec.extra_args = moto.node_args(key);
    spec.env = moto.node_env();
    spec
}

/// The aws provider against moto: a wrong key id stops the node with the reason; data keys
/// round-trip; rotation to a new key plus a rewrap leaves nothing that needs the old key
/// (no KMS call names it after a restart); with the KMS down, fetch serves from the cache and
/// new versions get 503 kms_unavailable with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_provider_against_a_real_kms_endpoint() {
    let mut moto = TestMoto::start().expect("moto starts");
    let old_key = moto.create_key().unwrap();
    let new_key = moto.create_key().unwrap();

    let err = TestNode::start(aws_node(&moto, "alias/no-such-key")).expect_err("refused");
    let message = format!("{err:#}");
    assert!(message.contains("alias/no-such-key"), "{message}");

    let mut node = TestNode::start(aws_node(&moto, &old_key)).expect("node starts");
    let c = client(&node);
    let id = setup_encrypted_config(&c, "aws.txt").await;
    push(&c, id, "made under the old key").await.unwrap();
    release(&c, id, 1).await;
    assert_eq!(fetch_plain(&c, "aws.txt").await.1, "made under the old key");
    assert_eq!(kms_calls(&node, "generate_data_key", &old_key).await, 1);
    // The writing node cached the key it generated: no unwrap was needed to serve it.
    assert_eq!(kms_calls(&node, "decrypt", &old_key).await, 0);

    // Rotate: the new key wraps from now on; the old one still unwraps until the rewrap.
    node.spec.extra_args = moto.node_args(&new_key);
    restart(&mut node, "restart with the new key");
    let c = client(&node);
    assert_eq!(fetch_plain(&c, "aws.txt").await.1, "made under the old key");
    assert_eq!(kms_calls(&node, "decrypt", &old_key).await, 1);
    push(&c, id, "made under the new key").await.unwrap();
    let done = c.kms_rewrap().await.expect("rewrap");
    assert_eq!((done.rewrapped, done.remaining), (1, 0));
    assert_eq!(done.status.current_kek_id, new_key);

    // After a restart (empty cache), every version opens with the new key alone.
    restart(&mut node, "restart");
    let c = client(&node);
    for (v, text) in [(1, "made under the old key"), (2, "made under the new key")] {
        assert_eq!(c.get_version_content(id, v).await.unwrap(), text.as_bytes());
    }
    assert_eq!(fetch_plain(&c, "aws.txt").await.1, "made under the old key");
    assert_eq!(
        kms_calls(&node, "decrypt", &old_key).await,
        0,
        "nothing needs the old key"
    );
    assert!(kms_calls(&node, "decrypt", &new_key).await >= 1);

    // The KMS goes away: cached keys keep fetch working; a new version cannot be sealed.
    moto.stop();
    assert_eq!(fetch_plain(&c, "aws.txt").await.1, "made under the old key");
    let e = push(&c, id, "needs a data key").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(503), "kms_unavailable"),
        "{e}"
    );
    assert_eq!(
        c.get_config(id).await.unwrap().latest_version,
        2,
        "nothing was written"
    );
}

/// Start-up refuses a bad KMS configuration with a one-line reason and a failing exit code.
#[test]
fn a_bad_kms_configuration_stops_the_node_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let world_readable = dir.path().join("open.key");
    std::fs::write(&world_readable, "00".repeat(32)).unwrap();
    let cases: [(Vec<String>, &str); 4] = [
        (
            vec!["--kms".into(), "vault".into()],
            "unknown KMS provider \"vault\"",
        ),
        (
            vec!["--kms-key-file".into(), "/nonexistent/kek.key".into()],
            "/nonexistent/kek.key",
        ),
        (
            vec![
                "--kms-key-file".into(),
                world_readable.display().to_string(),
            ],
            "chmod 600",
        ),
        (vec!["--kms".into(), "aws".into()], "--kms-key-id"),
    ];
    for (args, reason) in cases {
        let mut spec = NodeSpec::new(1);
        spec.extra_args = args.clone();
        let err = TestNode::start(spec).expect_err("refused");
        let message = format!("{err:#}");
        assert!(message.contains(reason), "{args:?}: {message}");
    }
}

/// Restarts every node with `current` as the key file and `previous` as earlier ones.
async fn rotate_to(cluster: &mut Cluster, current: &Path, previous: &[PathBuf]) -> ApiClient {
    let mut args = vec!["--kms-key-file".to_owned(), current.display().to_string()];
    for p in previous {
        args.push("--kms-previous-key-file".into());
        args.push(p.display().to_string());
    }
    for id in cluster.ids() {
        set_kms_args(cluster.node_mut(id), args.clone());
        restart(cluster.node_mut(id), "restart with the rotated keys");
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    client(cluster.node(leader))
}

/// A leadership transfer in the middle of a rewrap: the job (running on a follower) carries
/// on with the new leader and finishes, and every data key is rewrapped exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewrap_finishes_across_a_leader_change() {
    const VERSIONS: u64 = 2000;
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let c = client(cluster.node(leader));
    let id = setup_encrypted_config(&c, "many.txt").await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..VERSIONS / 8 {
                    push(&c, id, &format!("writer {w} version {i}"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let keys = tempfile::tempdir().unwrap();
    let mut key_files = vec![PathBuf::from(&cluster.kms_args()[1])];

    // A rewrap of a few thousand keys takes a second or two; if it ever finishes before the
    // transfer lands, rotate once more and try again.
    for attempt in 1..=3 {
        let dir = keys.path().join(format!("k{attempt}"));
        std::fs::create_dir(&dir).unwrap();
        conflux_testkit::kms_args(&dir).unwrap();
        let c = rotate_to(&mut cluster, &dir.join("kek.key"), &key_files).await;
        key_files.push(dir.join("kek.key"));
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
        let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
        let fc = client(cluster.node(follower));
        let job = tokio::spawn(async move { fc.kms_rewrap().await });

        let stale = |s: &conflux_api_types::KmsStatus| -> u64 {
            s.data_keys_by_kek
                .iter()
                .filter(|(k, _)| **k != s.current_kek_id)
                .map(|(_, n)| n)
                .sum()
        };
        // Wait until the job has started, then move leadership away from the leader.
        eventually(Duration::from_secs(30), "the rewrap to start", || {
            let c = c.clone();
            async move { c.kms_status().await.is_ok_and(|s| stale(&s) < VERSIONS) }
        })
        .await;
        c.transfer_leader(None).await.expect("leadership moves");
        let mid_job = stale(&c.kms_status().await.unwrap()) > 0;
        let done = job.await.unwrap().expect("the rewrap finishes");
        assert_eq!(done.remaining, 0);
        assert_eq!(done.rewrapped, VERSIONS, "every key rewrapped exactly once");
        let new_leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
        assert_ne!(new_leader, leader);
        if mid_job {
            eprintln!("leadership moved in the middle of the rewrap (attempt {attempt})");
            // Every version still opens, on every node, with the newest key alone.
            let only_new = rotate_to(&mut cluster, key_files.last().unwrap(), &[]).await;
            for v in [1, VERSIONS / 2, VERSIONS] {
                only_new.get_version_content(id, v).await.expect("content");
            }
            return;
        }
    }
    panic!("the rewrap always finished before the leadership transfer; make it longer");
}
