//! CPU-heavy requests over real processes: a burst of worst-case version diffs, or of
//! `validate_only` checks of 4 MiB YAML, sent to the leader of a 3-node cluster must not
//! stop it from sending heartbeats (no election: same leader, same term), and every request
//! is still answered.

mod common;

use std::time::{Duration, Instant};

use common::client;
use conflux_api_types::{
    ClusterStatus, CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, QuotasPatch,
};
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_testkit::Cluster;

/// Concurrent heavy requests: four times the cores of the machine the test was written on.
const BURST: usize = 8;
/// Just under the 4 MiB content limit.
const CONTENT_BYTES: usize = 4 * 1024 * 1024 - 1024;
/// Distinct lines of the diffed texts. Lines recur across positions, so the diff cannot take
/// the shortcut for disjoint inputs, and line `i` of one version always differs from line
/// `i` of the other: without a time limit, one diff of these takes seconds of CPU.
const DISTINCT_LINES: u64 = 1000;
/// Long enough for a burst to be answered even when its requests run one after another.
const BURST_TIMEOUT: Duration = Duration::from_secs(300);

/// The two tests measure how one node copes with a burst on a machine they share: they run
/// one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// xorshift64: the same contents on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Two texts of [`CONTENT_BYTES`] at most, differing at every line.
fn worst_case_pair() -> (String, String) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut old, mut new) = (String::new(), String::new());
    loop {
        let a = rng.next() % DISTINCT_LINES;
        let b = (a + 1 + rng.next() % (DISTINCT_LINES - 1)) % DISTINCT_LINES;
        let (la, lb) = (format!("line {a:03}\n"), format!("line {b:03}\n"));
        if old.len() + la.len() > CONTENT_BYTES || new.len() + lb.len() > CONTENT_BYTES {
            return (old, new);
        }
        old.push_str(&la);
        new.push_str(&lb);
    }
}

/// A YAML document of about [`CONTENT_BYTES`] that fits [`item_schema`]: parsing it takes
/// over a second of CPU.
fn big_yaml() -> String {
    let mut s = String::from("items:\n");
    let mut i = 0;
    loop {
        let line = format!("- {{k: v{i}, n: {i}}}\n");
        if s.len() + line.len() > CONTENT_BYTES {
            return s;
        }
        s.push_str(&line);
        i += 1;
    }
}

fn item_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "additionalProperties": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "k": {"type": "string", "pattern": "^v[0-9]+$"},
                    "n": {"type": "integer", "minimum": 0}
                },
                "required": ["k", "n"]
            }
        }
    })
}

/// Starts 3 nodes and creates heavy/app/prod under a tenant whose quota admits 4 MiB
/// versions; returns the cluster, the leader and a client of the leader.
async fn start() -> (Cluster, u64, ApiClient) {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let c = client(cluster.node(leader)).with_timeout(Duration::from_secs(60));
    let w = WriteOptions::default();
    let quotas = QuotasPatch {
        max_config_bytes: Some(4 * 1024 * 1024),
        ..Default::default()
    };
    let tenant = CreateTenant {
        name: "heavy".into(),
        display_name: None,
        quotas: Some(quotas),
    };
    c.create_tenant(&tenant, &w).await.unwrap();
    c.create_app("heavy", &CreateApp::named("app"), &w)
        .await
        .unwrap();
    c.create_env("heavy", "app", &CreateEnvironment::named("prod"), &w)
        .await
        .unwrap();
    (cluster, leader, c)
}

async fn create_config(
    c: &ApiClient,
    name: &str,
    format: Format,
    schema: Option<serde_json::Value>,
) -> u64 {
    let config = CreateConfig {
        name: name.into(),
        format,
        schema,
        retention: None,
        description: None,
        encrypted: false,
    };
    c.create_config("heavy", "app", "prod", &config, &WriteOptions::default())
        .await
        .unwrap()
        .id
}

/// Waits until every node has applied `revision`, so that nothing but the burst is going on,
/// and returns the leader's view of the cluster.
async fn quiet(cluster: &Cluster, leader: u64, revision: u64) -> ClusterStatus {
    for node in cluster.ids() {
        let c = client(cluster.node(node));
        common::eventually(Duration::from_secs(30), "a node to catch up", || {
            let c = c.clone();
            async move { common::applied(&c).await.is_some_and(|i| i >= revision) }
        })
        .await;
    }
    let status = client(cluster.node(leader)).cluster_status().await.unwrap();
    assert_eq!(status.leader_id, Some(leader));
    status
}

fn assert_no_election(what: &str, before: &ClusterStatus, after: &ClusterStatus, took: Duration) {
    assert_eq!(
        (after.leader_id, after.term),
        (before.leader_id, before.term),
        "{what} cost an election (before: leader {:?} term {}; after {took:?}: leader {:?} term {})",
        before.leader_id,
        before.term,
        after.leader_id,
        after.term
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_worst_case_diffs_does_not_cost_the_leader_its_leadership() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (cluster, leader, lc) = start().await;
    let id = create_config(&lc, "big.txt", Format::Text, None).await;
    let (old, new) = worst_case_pair();
    let mut versions = Vec::new();
    let mut revision = 0;
    for content in [old, new] {
        let created = lc
            .create_version(
                id,
                NewVersion::new(content, "text/plain"),
                &WriteOptions::default(),
            )
            .await
            .expect("version created");
        versions.push(created.version_id);
        revision = created.revision;
    }
    let (a, b) = (versions[0], versions[1]);
    let before = quiet(&cluster, leader, revision).await;

    let started = Instant::now();
    let diffs: Vec<_> = (0..BURST)
        .map(|_| {
            let c = lc.clone().with_timeout(BURST_TIMEOUT);
            tokio::spawn(async move { c.diff_versions(id, a, b).await })
        })
        .collect();
    for diff in diffs {
        let text = diff.await.unwrap().expect("the diff is answered");
        assert!(
            text.starts_with(&format!("--- version {a}\n+++ version {b}\n")),
            "{}",
            &text[..text.len().min(200)]
        );
        assert!(text.contains("\n@@ -1,"), "a diff with hunks");
    }
    let took = started.elapsed();
    eprintln!("{BURST} concurrent diffs of two {CONTENT_BYTES}-byte versions took {took:?}");

    let after = lc.cluster_status().await.unwrap();
    assert_no_election("the diffs", &before, &after, took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_validate_only_checks_does_not_cost_the_leader_its_leadership() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (cluster, leader, lc) = start().await;
    let id = create_config(&lc, "big.yaml", Format::Yaml, Some(item_schema())).await;
    let revision = lc.get_config(id).await.unwrap().revision;
    let before = quiet(&cluster, leader, revision).await;

    let yaml = big_yaml();
    let started = Instant::now();
    let checks: Vec<_> = (0..BURST)
        .map(|_| {
            let c = lc.clone().with_timeout(BURST_TIMEOUT);
            let version = NewVersion::new(yaml.clone(), "application/yaml").validate_only(true);
            tokio::spawn(async move {
                c.create_version(id, version, &WriteOptions::default())
                    .await
            })
        })
        .collect();
    for check in checks {
        let checked = check.await.unwrap().expect("the check is answered");
        assert!(checked.validate_only);
        assert_eq!(checked.version_id, 0);
    }
    let took = started.elapsed();
    eprintln!(
        "{BURST} concurrent validate_only checks of {} bytes of YAML took {took:?}",
        yaml.len()
    );

    let after = lc.cluster_status().await.unwrap();
    assert_no_election("the checks", &before, &after, took);
    // Nothing was stored.
    assert!(
        lc.list_versions(id, None, None)
            .await
            .unwrap()
            .versions
            .is_empty()
    );
}
