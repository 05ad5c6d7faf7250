//! The provider against a node whose API is on TLS and requires client certificates: the CA
//! and the client certificate from the provider block (a path and PEM text), then from
//! `CONFLUX_CACERT`, `CONFLUX_CLIENT_CERT` and `CONFLUX_CLIENT_KEY`, and an unreadable CA
//! file reported at its attribute.

mod common;

use common::{Tf, block_on};
use conflux_client::ApiClient;
use conflux_testkit::tls::TestCa;
use conflux_testkit::{NodeSpec, TestNode};

const TENANT: &str = r#"
terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

resource "conflux_tenant" "acme" {
  name = "acme"
}
"#;

#[test]
fn the_provider_applies_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "api").unwrap();
    let server = ca.node_cert("server").unwrap();
    let client_cert = ca.node_cert("terraform").unwrap();
    let tls = client_cert.client_tls();
    let spec = NodeSpec::new(1)
        .api_tls(&server, tls.clone())
        .arg("--api-tls-client-ca")
        .arg(ca.ca_path().display().to_string());
    let node = TestNode::start(spec).expect("a node with API TLS");
    assert!(node.api_url().starts_with("https://"));
    let api = ApiClient::builder(node.api_url())
        .bearer_token(node.token())
        .ca_cert_file(&tls.ca)
        .client_identity_files(&client_cert.cert, &client_cert.key)
        .build()
        .unwrap();

    // From the provider block: the CA as a path, the client certificate and key as PEM text.
    let tf = Tf::new("tls", &node);
    let provider = format!(
        "provider \"conflux\" {{\n  ca_cert     = \"{}\"\n  client_cert = file(\"{}\")\n  client_key  = file(\"{}\")\n}}\n",
        tls.ca.display(),
        client_cert.cert.display(),
        client_cert.key.display()
    );
    tf.write(&format!("{provider}{TENANT}"));
    tf.apply();
    assert_eq!(block_on(api.get_tenant("acme")).unwrap().name, "acme");

    // From the environment.
    let mut tf_env = Tf::new("tls-env", &node);
    tf_env.env = vec![
        ("CONFLUX_CACERT".into(), tls.ca.display().to_string()),
        (
            "CONFLUX_CLIENT_CERT".into(),
            client_cert.cert.display().to_string(),
        ),
        (
            "CONFLUX_CLIENT_KEY".into(),
            client_cert.key.display().to_string(),
        ),
    ];
    tf_env.write(&TENANT.replace(
        "\"acme\" {\n  name = \"acme\"",
        "\"beta\" {\n  name = \"beta\"",
    ));
    tf_env.apply();
    assert_eq!(block_on(api.get_tenant("beta")).unwrap().name, "beta");

    // Without the client certificate the node refuses the connection.
    let mut no_cert = Tf::new("tls-no-cert", &node);
    no_cert.env = vec![("CONFLUX_CACERT".into(), tls.ca.display().to_string())];
    no_cert.write(&TENANT.replace(
        "\"acme\" {\n  name = \"acme\"",
        "\"gamma\" {\n  name = \"gamma\"",
    ));
    let out = no_cert.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(out.contains("unreachable"), "{out}");
    assert!(block_on(api.get_tenant("gamma")).is_err());

    // An unreadable CA file is a diagnostic naming the attribute and the file.
    let bad = Tf::new("tls-bad-ca", &node);
    bad.write(&format!(
        "provider \"conflux\" {{\n  ca_cert = \"/nonexistent/ca.pem\"\n}}\n{TENANT}"
    ));
    let out = bad.fails(&["plan", "-no-color"]);
    assert!(out.contains("/nonexistent/ca.pem"), "{out}");
    assert!(out.contains("ca_cert"), "{out}");
}
