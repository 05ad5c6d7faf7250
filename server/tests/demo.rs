//! The README walkthrough (`scripts/demo.sh`) works against a fresh node.

use std::process::Command;

use conflux_testkit::{NodeSpec, TestNode};

#[test]
fn the_readme_walkthrough_runs_against_a_fresh_node() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/demo.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("CONFLUX_URL", node.api_url())
        .env("CONFLUX_TOKEN", node.token())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ordinary, canary) = stdout
        .split_once("== fetch as a canary")
        .expect("both fetches ran");
    let ordinary = ordinary
        .rsplit_once("== fetch as an ordinary client")
        .unwrap()
        .1;
    assert!(
        ordinary.contains("x-config-version: 1") && ordinary.contains("timeout_ms: 500"),
        "{ordinary}"
    );
    assert!(
        canary.contains("x-config-version: 2") && canary.contains("timeout_ms: 200"),
        "{canary}"
    );
    assert!(
        canary.contains("content-type: application/yaml"),
        "{canary}"
    );
}
