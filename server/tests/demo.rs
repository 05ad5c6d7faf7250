//! The README walkthrough (`scripts/demo.sh`) works against a fresh node, over plain HTTP and
//! over TLS with client certificates.

use std::process::Command;

use conflux_testkit::tls::TestCa;
use conflux_testkit::{NodeSpec, TestNode};

#[test]
fn the_readme_walkthrough_runs_against_a_fresh_node() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    walkthrough(&node, &[]);
}

#[test]
fn the_readme_walkthrough_runs_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "demo").unwrap();
    let server = ca.node_cert("server").unwrap();
    let client = ca.node_cert("client").unwrap();
    let spec = NodeSpec::new(1)
        .api_tls(&server, client.client_tls())
        .arg("--api-tls-client-ca")
        .arg(ca.ca_path().display().to_string());
    let node = TestNode::start(spec).expect("node starts");
    assert!(node.api_url().starts_with("https://"));
    let path = |p: &std::path::Path| p.display().to_string();
    walkthrough(
        &node,
        &[
            ("CONFLUX_CACERT", path(ca.ca_path())),
            ("CONFLUX_CLIENT_CERT", path(&client.cert)),
            ("CONFLUX_CLIENT_KEY", path(&client.key)),
        ],
    );
}

fn walkthrough(node: &TestNode, env: &[(&str, String)]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/demo.sh");
    let out = Command::new("bash")
        .arg(script)
        .env_remove("CONFLUX_CACERT")
        .env_remove("CONFLUX_CLIENT_CERT")
        .env_remove("CONFLUX_CLIENT_KEY")
        .env("CONFLUX_URL", node.api_url())
        .env("CONFLUX_TOKEN", node.token())
        .envs(env.iter().map(|(k, v)| (*k, v)))
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
