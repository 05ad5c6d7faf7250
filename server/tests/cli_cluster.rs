//! `conflux admin cluster ...` of the real binary against a real 3-node cluster: status,
//! snapshot, backup (and `conflux restore` of what it wrote), leadership transfer and member
//! removal, and how they fail (exit 1 with one `error: <code>: ...` line; exit 2 for usage
//! errors).
//!
//! One cluster for the whole file: the steps run in order on it, so that the suite stays
//! fast on a small machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conflux_api_types::{ClusterChange, ClusterStatus, SnapshotTaken};
use conflux_testkit::{Cluster, NodeSpec, TestNode, TestPostgres, conflux_binary, free_port};
use serde::de::DeserializeOwned;

/// One finished CLI process.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn conflux(args: &[&str]) -> Out {
    conflux_as(args, None)
}

/// `conflux <args>`, sending `token` (through `CONFLUX_TOKEN`) when given.
fn conflux_as(args: &[&str], token: Option<&str>) -> Out {
    let mut cmd = Command::new(conflux_binary().expect("the conflux binary"));
    if let Some(t) = token {
        cmd.env("CONFLUX_TOKEN", t);
    }
    let output = cmd
        .args(args)
        // Nothing from the environment of whoever runs the tests.
        .env_remove("CONFLUX_ENDPOINT")
        .env_remove("CONFLUX_DATA_DIR")
        .env_remove("RUST_LOG")
        .env(
            "CONFLUX_CREDENTIALS",
            "/nonexistent/conflux-test/credentials",
        )
        .stdin(Stdio::null())
        .output()
        .expect("conflux runs");
    Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `conflux <args> --endpoint <node>` with the node's admin token (every node of the
/// cluster bootstrapped with the same one).
fn cli(node: &TestNode, args: &[&str]) -> Out {
    let endpoint = node.api_url();
    let mut all = args.to_vec();
    all.extend(["--endpoint", &endpoint]);
    conflux_as(&all, Some(&node.token()))
}

/// Exit 0 and nothing on stderr; returns stdout.
#[track_caller]
fn ok(node: &TestNode, args: &[&str]) -> String {
    let out = cli(node, args);
    assert_eq!(out.code, Some(0), "conflux {args:?}: {out:?}");
    assert!(out.stderr.is_empty(), "conflux {args:?}: {out:?}");
    out.stdout
}

/// `--output json`, parsed as `T`.
#[track_caller]
fn json<T: DeserializeOwned>(node: &TestNode, args: &[&str]) -> T {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let text = ok(node, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("conflux {all:?}: {e} in\n{text}"))
}

/// Exit 1, nothing on stdout, exactly one line `error: <code>: <message>`; returns it.
#[track_caller]
fn fails(node: &TestNode, args: &[&str], code: &str) -> String {
    let out = cli(node, args);
    assert_eq!(out.code, Some(1), "conflux {args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "conflux {args:?}: {out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "conflux {args:?}: {out:?}");
    assert!(
        lines[0].starts_with(&format!("error: {code}: ")),
        "conflux {args:?}: {:?}",
        lines[0]
    );
    lines[0].to_owned()
}

fn status(node: &TestNode) -> ClusterStatus {
    json(node, &["admin", "cluster", "status"])
}

/// Polls `node`'s status until `done` holds (within 10 s); returns the last status.
#[track_caller]
fn status_until(
    node: &TestNode,
    what: &str,
    done: impl Fn(&ClusterStatus) -> bool,
) -> ClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(node);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: last status {s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn leader_of(s: &ClusterStatus) -> Option<u64> {
    let leaders: Vec<u64> = s
        .members
        .iter()
        .filter(|m| m.role == "leader")
        .map(|m| m.id)
        .collect();
    match leaders[..] {
        [one] if s.leader_id == Some(one) => Some(one),
        _ => None,
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all
}

#[test]
fn cluster_commands_against_a_three_node_cluster() {
    // Usage errors come before any request.
    for args in [
        &[
            "admin",
            "cluster",
            "add",
            "0",
            "--raft-addr",
            "a:1",
            "--api-addr",
            "a:2",
        ][..],
        &[
            "admin",
            "cluster",
            "add",
            "4",
            "--raft-addr",
            "a",
            "--api-addr",
            "a:2",
        ],
        &["admin", "cluster", "remove", "x"],
        &["admin", "cluster", "backup"],
    ] {
        let out = conflux(args);
        assert_eq!(out.code, Some(2), "conflux {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "conflux {args:?}: {out:?}");
    }

    // The metadata DB is named here so that node 4, added later, can share it.
    let metadata_url = TestPostgres::shared()
        .expect("the test PostgreSQL server")
        .fresh_database()
        .expect("a metadata database");
    let mut cluster = Cluster::start_with(3, vec!["--metadata-url".into(), metadata_url.clone()])
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let f = cluster.node(followers[0]);
    ok(f, &["admin", "tenant", "create", "acme"]);

    // ---- status: three reachable members, one leader, as any node sees it -----------------
    let s = status_until(f, "all three reachable and agreeing", |s| {
        s.members.len() == 3
            && s.members.iter().all(|m| m.reachable && m.voter)
            && leader_of(s) == Some(leader)
    });
    assert_eq!(s.node_id, followers[0]);
    let mut ids: Vec<u64> = s.members.iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    for m in &s.members {
        let node = cluster.node(m.id);
        assert_eq!(m.api_addr, node.api_addr().to_string());
        assert!(m.applied_index.is_some_and(|a| a > 0), "{m:?}");
    }
    let table = ok(f, &["admin", "cluster", "status"]);
    let mut lines = table.lines();
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(&format!("leader: node {leader}, term "))
            && first.ends_with(&format!(" (as seen by node {})", followers[0])),
        "{table}"
    );
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["ID", "ROLE", "VOTER"], "{table}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{table}");
    let leader_row = rows
        .iter()
        .find(|r| r[0] == leader.to_string())
        .unwrap_or_else(|| panic!("no row for the leader in\n{table}"));
    assert_eq!(leader_row[1..3], ["leader", "yes"], "{table}");
    assert_eq!(leader_row.last(), Some(&"yes"), "{table}");
    let yaml = ok(f, &["admin", "cluster", "status", "--output", "yaml"]);
    let from_yaml: ClusterStatus = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(from_yaml.members.len(), 3);

    // ---- snapshot ---------------------------------------------------------------------------
    let snap: SnapshotTaken = json(f, &["admin", "cluster", "snapshot"]);
    assert!(snap.snapshot_index > 0, "{snap:?}");

    // ---- backup, and restore of what it wrote ------------------------------------------------
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.snap");
    let file_arg = file.to_str().unwrap();
    let text = ok(f, &["admin", "cluster", "backup", "--out", file_arg]);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("bytes:") && l.ends_with(&format!(" {size}"))),
        "{text}"
    );
    // Only the backup itself: no temporary file is left behind.
    assert_eq!(files_in(dir.path()), std::slice::from_ref(&file));
    let before = std::fs::read(&file).unwrap();
    let line = fails(
        f,
        &["admin", "cluster", "backup", "--out", file_arg],
        "file_exists",
    );
    assert!(line.contains("--force"), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    #[derive(serde::Deserialize)]
    struct Written {
        file: String,
        bytes: u64,
        revision: Option<u64>,
    }
    let w: Written = json(
        f,
        &["admin", "cluster", "backup", "--out", file_arg, "--force"],
    );
    assert_eq!(w.file, file_arg);
    assert_eq!(w.bytes, std::fs::metadata(&file).unwrap().len());
    assert!(w.revision.is_some_and(|r| r > 0));
    assert_eq!(files_in(dir.path()), std::slice::from_ref(&file));

    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let restored = conflux(&["restore", "--from", file_arg, "--data-dir", data_arg]);
    assert_eq!(restored.code, Some(0), "{restored:?}");
    let again = conflux(&["restore", "--from", file_arg, "--data-dir", data_arg]);
    assert_ne!(again.code, Some(0), "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");

    // ---- leadership transfer ------------------------------------------------------------------
    // To a given voter, asked through a node that is not the leader.
    let target = followers[1];
    let change: ClusterChange = json(
        f,
        &[
            "admin",
            "cluster",
            "transfer-leader",
            "--to",
            &target.to_string(),
        ],
    );
    assert!(change.revision > 0, "{change:?}");
    status_until(f, "the target to lead", |s| leader_of(s) == Some(target));
    // Without --to: another voter takes over.
    let text = ok(
        cluster.node(target),
        &["admin", "cluster", "transfer-leader"],
    );
    assert!(text.starts_with("leadership transferred\n"), "{text}");
    let s = status_until(cluster.node(target), "someone else to lead", |s| {
        leader_of(s).is_some_and(|l| l != target)
    });
    let leader = leader_of(&s).unwrap();

    // ---- adding a node -------------------------------------------------------------------------
    // Node 4 starts without a cluster: its --join target does not exist, so it waits (asking
    // in vain) until the CLI adds it.
    let mut spec = NodeSpec::new(4);
    spec.bootstrap_token = Some(cluster.token().to_owned());
    let raft_addr = format!("127.0.0.1:{}", free_port().unwrap());
    let api_addr = format!("127.0.0.1:{}", free_port().unwrap());
    spec.raft_addr = Some(raft_addr.clone());
    spec.api_addr = Some(api_addr.clone());
    let dead = format!("127.0.0.1:{}", free_port().unwrap());
    let mut node4 = TestNode::start(
        spec.arg("--metadata-url")
            .arg(metadata_url.as_str())
            .args(cluster.kms_args())
            .arg("--join")
            .arg(dead),
    )
    .expect("node 4 starts");
    let text = ok(
        cluster.node(leader),
        &[
            "admin",
            "cluster",
            "add",
            "4",
            "--raft-addr",
            &raft_addr,
            "--api-addr",
            &api_addr,
        ],
    );
    assert!(text.starts_with("node 4 added\n"), "{text}");
    let s = status_until(&node4, "node 4 to be a caught-up voter", |s| {
        s.members.len() == 4
            && s.members.iter().all(|m| m.reachable && m.voter)
            && s.members
                .iter()
                .any(|m| m.id == 4 && m.role == "follower" && m.lag == Some(0))
    });
    assert_eq!(s.node_id, 4);
    // Adding it again with the same addresses changes nothing; other addresses are refused.
    ok(
        cluster.node(leader),
        &[
            "admin",
            "cluster",
            "add",
            "4",
            "--raft-addr",
            &raft_addr,
            "--api-addr",
            &api_addr,
        ],
    );
    fails(
        cluster.node(leader),
        &[
            "admin",
            "cluster",
            "add",
            "4",
            "--raft-addr",
            &raft_addr,
            "--api-addr",
            "127.0.0.1:1",
        ],
        "member_conflict",
    );

    // ---- removal ------------------------------------------------------------------------------
    let text = ok(cluster.node(leader), &["admin", "cluster", "remove", "4"]);
    assert!(text.starts_with("node 4 removed\n"), "{text}");
    node4.kill9().unwrap();
    status_until(cluster.node(leader), "node 4 gone", |s| {
        s.members.len() == 3 && s.members.iter().all(|m| m.id != 4)
    });
    let line = fails(
        cluster.node(leader),
        &["admin", "cluster", "remove", "99"],
        "member_not_found",
    );
    assert!(line.contains("99"), "{line}");
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let asked = cluster
        .ids()
        .into_iter()
        .find(|id| *id != follower)
        .unwrap();
    let text = ok(
        cluster.node(asked),
        &["admin", "cluster", "remove", &follower.to_string()],
    );
    assert!(
        text.starts_with(&format!("node {follower} removed\n")),
        "{text}"
    );
    // The removed node's process is no member any more; stop it.
    cluster.node_mut(follower).kill9().unwrap();
    let s = status_until(cluster.node(asked), "two members left", |s| {
        s.members.len() == 2 && s.members.iter().all(|m| m.reachable)
    });
    assert!(s.members.iter().all(|m| m.id != follower), "{s:#?}");
    assert!(leader_of(&s).is_some(), "{s:#?}");
}
