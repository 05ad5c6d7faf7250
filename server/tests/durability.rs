//! No acknowledged write is ever lost: `kill -9` a node in the middle of a stream of
//! concurrent writes, restart it, and find every write that was answered with a 2xx.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::setup_config;
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_testkit::{NodeSpec, TestNode};
use sha2::{Digest, Sha256};

const WRITERS: usize = 8;

/// One acknowledged write: the version the node said it created, and what was sent.
struct Acked {
    version: u64,
    content: String,
}

async fn writer(client: ApiClient, id: u64, writer: usize, stop: Arc<AtomicBool>) -> Vec<Acked> {
    let mut acked = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let content = format!("writer {writer} write {seq}\n{}", "x".repeat(200));
        match client
            .create_version(
                id,
                NewVersion::new(content.clone(), "text/plain"),
                &WriteOptions::default(),
            )
            .await
        {
            Ok(created) => acked.push(Acked {
                version: created.version_id,
                content,
            }),
            // The node died under us: this write may or may not have committed, which is
            // fine; only acknowledged writes must survive.
            Err(_) => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_writes_loses_no_acknowledged_write() {
    let mut node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let client = common::client(&node)
        .with_timeout(Duration::from_secs(5));
    let id = setup_config(&client, "stream.txt").await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(client.clone(), id, w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill9().expect("kill -9");
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() >= 50,
        "only {} writes were acknowledged before the kill",
        acked.len()
    );

    node.restart()
        .expect("node restarts on the same data directory");
    let client = common::client(&node);
    let config = client.get_config(id).await.unwrap();
    let max_acked = acked.iter().map(|a| a.version).max().unwrap();
    assert!(
        config.latest_version >= max_acked,
        "latest {} < acknowledged {max_acked}",
        config.latest_version
    );
    for a in &acked {
        let meta = client
            .get_version(id, a.version)
            .await
            .unwrap_or_else(|e| panic!("version {} lost: {e}", a.version));
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(a.content.as_bytes()))
        );
        assert_eq!(
            meta.hash, expected,
            "version {} has other content",
            a.version
        );
        let content = client.get_version_content(id, a.version).await.unwrap();
        assert_eq!(content.as_ref(), a.content.as_bytes());
    }
    // Versions are dense: every number up to the latest exists, acknowledged or not.
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .list_versions(id, Some(1000), cursor.as_deref())
            .await
            .unwrap();
        seen += page.versions.len() as u64;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen, config.latest_version,
        "versions 1..={} without gaps",
        config.latest_version
    );
    println!(
        "{} acknowledged writes before kill -9, all present after restart ({} versions in all)",
        acked.len(),
        seen
    );
}
