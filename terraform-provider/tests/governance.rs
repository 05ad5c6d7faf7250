//! Acceptance tests of approvals and webhooks (contract section 7), with the real `terraform`
//! against a real node: the environment's `approval` block (create, import, drift, update,
//! removal, and "not managed" without it), the `conflux_webhook` lifecycle (create, empty
//! plan, the secret kept out of plans, import without the secret, drift, replacement,
//! destroy), and a `conflux_release` / `conflux_release_policy` apply in an environment that
//! requires approval: it waits, a second principal approves (or rejects) through the API,
//! and the apply completes (or fails naming the proposal); the next plan is empty.

mod common;

use std::time::{Duration, Instant};

use common::{Tf, block_on, client, client_with_token, edit, newer_terraform, start_node};
use conflux_api_types::{
    ApprovalSettings, BindingSpec, CreateToken, ProposalView, UpdateEnvironment,
};
use conflux_client::{ApiClient, ProposalQuery};
use serde_json::{Value as Json, json};

/// A single nested block as `terraform show -json` renders it (object, or list of one).
fn single(v: &Json) -> &Json {
    v.as_array().and_then(|a| a.first()).unwrap_or(v)
}

/// A single nested block that is not there.
fn absent(v: &Json) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

fn approval_of(api: &ApiClient, env: &str) -> ApprovalSettings {
    block_on(api.get_env("acme", "checkout", env))
        .unwrap()
        .approval
}

fn set_approval(api: &ApiClient, env: &str, a: ApprovalSettings) {
    let patch = UpdateEnvironment {
        description: None,
        approval: Some(a),
    };
    block_on(api.update_env("acme", "checkout", env, &patch, &Default::default())).unwrap();
}

#[test]
fn environment_approval_block() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("env-approval", &node);
    let example = tf.write_example("conflux_environment");
    // A second environment without the block: its settings are not Terraform's.
    let hcl = format!(
        "{example}\nresource \"conflux_environment\" \"dev\" {{\n  tenant = conflux_tenant.acme.name\n  app    = conflux_app.checkout.name\n  name   = \"dev\"\n}}\n"
    );
    tf.write(&hcl);
    tf.apply();

    let on = ApprovalSettings {
        required: true,
        min_approvals: 1,
        allow_self_approval: false,
    };
    assert_eq!(approval_of(&api, "prod"), on);
    assert_eq!(approval_of(&api, "dev"), ApprovalSettings::default());
    let v = tf.values("conflux_environment.prod", None);
    assert_eq!(
        single(&v["approval"]),
        &json!({"required": true, "min_approvals": 1, "allow_self_approval": false})
    );
    let dev = tf.values("conflux_environment.dev", None);
    assert!(
        absent(&dev["approval"]),
        "no block in the state without one in the configuration: {dev}"
    );
    tf.assert_plan_empty();

    // Import: non-default settings come in as the block; the defaults as no block.
    let imported = tf.import_values("conflux_environment.prod", "acme/checkout/prod");
    assert_eq!(imported, v);
    let imported = tf.import_values("conflux_environment.dev", "acme/checkout/dev");
    assert_eq!(imported, tf.values("conflux_environment.dev", None));

    // Drift: a change outside Terraform shows in the plan and the apply puts it back.
    set_approval(
        &api,
        "prod",
        ApprovalSettings {
            required: false,
            min_approvals: 3,
            allow_self_approval: true,
        },
    );
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("min_approvals"), "{plan}");
    assert!(plan.contains("1 to change"), "{plan}");
    tf.apply();
    assert_eq!(approval_of(&api, "prod"), on);
    tf.assert_plan_empty();

    // Without the block, changes made elsewhere are not Terraform's business.
    set_approval(&api, "dev", on);
    tf.assert_plan_empty();

    // Update through the configuration.
    let hcl = edit(&hcl, "min_approvals       = 1", "min_approvals       = 2");
    let hcl = edit(
        &hcl,
        "allow_self_approval = false",
        "allow_self_approval = true",
    );
    tf.write(&hcl);
    tf.apply();
    assert_eq!(
        approval_of(&api, "prod"),
        ApprovalSettings {
            required: true,
            min_approvals: 2,
            allow_self_approval: true,
        }
    );
    tf.assert_plan_empty();

    // Out-of-range values fail the plan at their attribute.
    let bad = edit(&hcl, "min_approvals       = 2", "min_approvals       = 11");
    tf.write(&bad);
    let text = tf.fails(&["plan", "-no-color"]);
    assert!(
        text.contains("min_approvals") && text.contains("between 1 and 10"),
        "{text}"
    );

    // Removing the block switches approval off, visibly in the plan.
    let start = hcl.find("\n  # Release changes").unwrap();
    let end = start + hcl[start..].find("  }\n").unwrap() + 4;
    let without = format!("{}{}", &hcl[..start], &hcl[end..]);
    assert!(!without.contains("approval {"), "{without}");
    // Unless the settings are left to others with ignore_changes.
    tf.write(&edit(
        &without,
        "description = \"Production\"",
        "description = \"Production\"\n  lifecycle {\n    ignore_changes = [approval]\n  }",
    ));
    tf.assert_plan_empty();
    tf.write(&without);
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("- approval {"), "{plan}");
    tf.apply();
    assert_eq!(approval_of(&api, "prod"), ApprovalSettings::default());
    tf.assert_plan_empty();

    tf.destroy();
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn webhook_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("webhook", &node);
    let hcl = tf.write_example("conflux_webhook");
    let secret = "change-me-to-a-long-random-secret";
    tf.apply();

    let v = tf.values("conflux_webhook.chatops", None);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["name"], "chat-ops approvals");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(
        v["events"],
        json!(["proposal.created", "proposal.executed", "release.changed"])
    );
    assert!(v["created_by"].as_str().unwrap().starts_with("token:"));
    let w = block_on(api.get_webhook(&id)).unwrap();
    assert_eq!(w.url, "http://127.0.0.1:9/conflux-events");
    assert_eq!(w.tenant.as_deref(), Some("acme"));
    assert_eq!(w.created_at, v["created_at"].as_str().unwrap());
    // Write-only on the server: the provider keeps what the configuration gave (sensitive,
    // as conflux_service_token keeps its token), and never prints it.
    assert_eq!(v["secret"], secret);
    let shown = tf.ok(&["show", "-no-color"]);
    assert!(!shown.contains(secret), "{shown}");
    tf.assert_plan_empty();
    let plan = tf.ok(&["plan", "-no-color"]);
    assert!(!plan.contains(secret));

    // Import: everything but the secret, which the server never shows.
    let imported = tf.import_values("conflux_webhook.chatops", &id);
    assert_eq!(imported["secret"], Json::Null);
    let mut created = v.clone();
    created["secret"] = Json::Null;
    assert_eq!(imported, created);
    // With that state, the configuration's secret is not known to be the webhook's: the plan
    // replaces it, which re-establishes the secret.
    let out = tf.run(&[
        "plan",
        "-no-color",
        "-detailed-exitcode",
        "-state",
        "import-conflux_webhook-chatops.tfstate",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("forces replacement"), "{text}");

    // Deleted outside Terraform: the plan creates it again.
    block_on(api.delete_webhook(&id)).unwrap();
    assert!(tf.assert_plan_changes().contains("will be created"));
    tf.apply();
    let v = tf.values("conflux_webhook.chatops", None);
    let new_id = v["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert!(block_on(api.get_webhook(&new_id)).is_ok());
    tf.assert_plan_empty();

    // A new secret, or new events, is a new webhook.
    let hcl = edit(
        &hcl,
        "\"change-me-to-a-long-random-secret\"",
        "\"rotated-0123456789abcdef\"",
    );
    tf.write(&hcl);
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    assert!(!plan.contains("rotated-0123456789abcdef"), "{plan}");
    tf.apply();
    let rotated_id = tf.values("conflux_webhook.chatops", None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated_id, new_id);
    assert!(
        block_on(api.get_webhook(&new_id))
            .unwrap_err()
            .is_not_found()
    );
    let hcl = edit(
        &hcl,
        "\"release.changed\"]",
        "\"release.changed\", \"version.created\"]",
    );
    tf.write(&hcl);
    assert!(tf.assert_plan_changes().contains("forces replacement"));
    tf.apply();
    let last_id = tf.values("conflux_webhook.chatops", None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let w = block_on(api.get_webhook(&last_id)).unwrap();
    assert_eq!(w.events.len(), 4);
    tf.assert_plan_empty();

    // Unknown events fail the plan at the attribute.
    tf.write(&edit(&hcl, "\"version.created\"]", "\"version.create\"]"));
    let text = tf.fails(&["plan", "-no-color"]);
    assert!(
        text.contains("\"version.create\" is not one of") && text.contains("events"),
        "{text}"
    );
    tf.write(&hcl);

    tf.destroy();
    assert!(
        block_on(api.get_webhook(&last_id))
            .unwrap_err()
            .is_not_found()
    );
    assert!(block_on(api.list_webhooks()).unwrap().webhooks.is_empty());
}

const APPROVAL_BASE: &str = r#"
terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

provider "conflux" {}

resource "conflux_tenant" "acme" {
  name = "acme"
}

resource "conflux_app" "checkout" {
  tenant = conflux_tenant.acme.name
  name   = "checkout"
}

resource "conflux_environment" "prod" {
  tenant = conflux_tenant.acme.name
  app    = conflux_app.checkout.name
  name   = "prod"
  approval {
    required = true
  }
}

resource "conflux_config" "app" {
  tenant      = conflux_tenant.acme.name
  application = conflux_app.checkout.name
  environment = conflux_environment.prod.name
  name        = "app.yaml"
  format      = "yaml"
}
"#;

fn release(content: &str, timeout: &str) -> String {
    format!(
        r#"
resource "conflux_release" "current" {{
  config_id = conflux_config.app.id
  is_stable = true
  content   = "{content}\n"
  timeouts {{
    create = "{timeout}"
  }}
}}
"#
    )
}

/// The one pending proposal of `config_id`, once it exists.
fn pending_proposal(api: &ApiClient, config_id: u64) -> ProposalView {
    let query = ProposalQuery {
        config_id: Some(config_id),
        status: Some("pending".into()),
        ..ProposalQuery::default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = block_on(api.list_proposals(&query)).unwrap();
        if let Some(p) = list.proposals.into_iter().next() {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no pending proposal of config {config_id} appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn default_version(api: &ApiClient, config_id: u64) -> Option<u64> {
    block_on(api.get_releases(config_id))
        .unwrap()
        .releases
        .iter()
        .find(|r| r.is_default())
        .map(|r| r.version_id)
}

/// Runs `terraform apply` in a thread while `decide` acts on the proposal it creates;
/// returns whether the apply succeeded and its output.
fn apply_while(tf: &Tf, decide: impl FnOnce()) -> (bool, String) {
    std::thread::scope(|s| {
        let apply = s.spawn(|| tf.run(&["apply", "-auto-approve", "-no-color"]));
        decide();
        let out = apply.join().unwrap();
        (
            out.status.success(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
}

#[test]
fn release_in_an_approval_environment_waits_for_the_approval() {
    approval_flow("approval", None);
}

/// The same with a `terraform` on PATH other than the pinned 1.0.3, if there is one.
#[test]
fn a_newer_terraform_waits_for_the_approval_too() {
    let Some(newer) = newer_terraform() else {
        eprintln!("no terraform other than 1.0.3 on PATH: only the pinned one is tested");
        return;
    };
    approval_flow("approval-newer", Some(newer));
}

fn approval_flow(name: &str, bin: Option<std::path::PathBuf>) {
    let node = start_node();
    let api = client(&node);
    // A second principal with publisher on the tenant: self-approval is refused by default,
    // and terraform runs as the node's bootstrap token.
    let approver = block_on(api.create_token(&CreateToken {
        name: "release approver".into(),
        expires_at: None,
        bindings: vec![BindingSpec {
            role: "publisher".into(),
            scope: "acme".into(),
        }],
    }))
    .unwrap();
    let approver = client_with_token(&node, &approver.token);

    let tf = match bin {
        Some(b) => Tf::with_binary(name, &node, b),
        None => Tf::new(name, &node),
    };
    tf.write(APPROVAL_BASE);
    tf.apply();
    let config_id: u64 = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();

    // 1. The stable publish becomes a proposal; apply waits until it is approved.
    tf.write(&format!(
        "{APPROVAL_BASE}{}",
        release("timeout_ms: 500", "10m")
    ));
    let (ok, text) = apply_while(&tf, || {
        let p = pending_proposal(&api, config_id);
        assert_eq!(
            default_version(&api, config_id),
            None,
            "nothing released yet"
        );
        let decided = block_on(approver.approve_proposal(p.id, Some("looks good"))).unwrap();
        assert_eq!(decided.status, "executed", "{decided:?}");
    });
    assert!(ok, "{text}");
    let v = tf.values("conflux_release.current", None);
    let version = v["version_id"].as_u64().unwrap();
    assert_eq!(v["is_stable"], true);
    assert_eq!(default_version(&api, config_id), Some(version));
    tf.assert_plan_empty();

    // 2. A rejected proposal fails the apply, naming the proposal and its end.
    tf.write(&format!(
        "{APPROVAL_BASE}{}",
        release("timeout_ms: 900", "10m")
    ));
    let mut rejected = 0;
    let (ok, text) = apply_while(&tf, || {
        let p = pending_proposal(&api, config_id);
        rejected = p.id;
        block_on(approver.reject_proposal(p.id, Some("not today"))).unwrap();
    });
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("proposal {rejected} rejected")) && text.contains("not today"),
        "{text}"
    );
    assert_eq!(default_version(&api, config_id), Some(version));

    // 3. Not decided in time: the error names the proposal and says it is still pending.
    tf.write(&format!(
        "{APPROVAL_BASE}{}",
        release("timeout_ms: 900", "2s")
    ));
    let text = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    let p = pending_proposal(&api, config_id);
    assert!(
        text.contains(&format!("proposal {} is still pending", p.id)),
        "{text}"
    );
    assert!(text.contains("proposal_pending"), "{text}");
    // The next apply meets that proposal until it is decided.
    let text = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(text.contains("proposal_pending"), "{text}");
    block_on(api.cancel_proposal(p.id, None)).unwrap();

    // 4. Ctrl-C while waiting: Terraform stops the provider, the wait ends with an error
    //    naming the proposal, which stays pending.
    tf.write(&format!(
        "{APPROVAL_BASE}{}",
        release("timeout_ms: 900", "10m")
    ));
    let apply = tf.spawn(&["apply", "-auto-approve", "-no-color"]);
    let p = pending_proposal(&api, config_id);
    common::interrupt(&apply);
    let out = apply.wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("stopped while proposal {} is pending", p.id)),
        "{text}"
    );
    let still = block_on(api.get_proposal(p.id)).unwrap();
    assert_eq!(still.status, "pending");
    block_on(api.cancel_proposal(p.id, Some("interrupted"))).unwrap();

    // 5. After approval, the plan is empty (the failed creates left nothing in the state).
    tf.write(&format!(
        "{APPROVAL_BASE}{}",
        release("timeout_ms: 900", "10m")
    ));
    let (ok, text) = apply_while(&tf, || {
        let p = pending_proposal(&api, config_id);
        block_on(approver.approve_proposal(p.id, None)).unwrap();
    });
    assert!(ok, "{text}");
    let newest = tf.values("conflux_release.current", None)["version_id"]
        .as_u64()
        .unwrap();
    assert!(newest > version);
    assert_eq!(default_version(&api, config_id), Some(newest));
    tf.assert_plan_empty();

    // 6. conflux_release_policy waits the same way (create, then destroy).
    let policy = format!(
        "{APPROVAL_BASE}{}\nresource \"conflux_release_policy\" \"p\" {{\n  config_id = conflux_config.app.id\n  rule {{\n    version_id = {version}\n  }}\n}}\n",
        release("timeout_ms: 900", "10m").replace("is_stable = true", "is_stable = false"),
    );
    tf.write(&policy);
    let (ok, text) = apply_while(&tf, || {
        let p = pending_proposal(&api, config_id);
        block_on(approver.approve_proposal(p.id, None)).unwrap();
    });
    assert!(ok, "{text}");
    assert_eq!(default_version(&api, config_id), Some(version));
    tf.assert_plan_empty();

    let (ok, text) = std::thread::scope(|s| {
        let destroy = s.spawn(|| tf.run(&["destroy", "-auto-approve", "-no-color"]));
        let p = pending_proposal(&api, config_id);
        block_on(approver.approve_proposal(p.id, None)).unwrap();
        let out = destroy.join().unwrap();
        (
            out.status.success(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    });
    assert!(ok, "{text}");
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}
