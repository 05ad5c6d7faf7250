//! Acceptance tests, one per resource, with the real `terraform` against a real node. Each
//! walks: create (the resource's example from `examples/`) -> check state and server ->
//! import into a separate state and compare -> update by editing the HCL -> the next plan is
//! empty -> a change made through the API shows as drift and apply corrects it -> destroy
//! removes it from the server.

mod common;

use common::{Tf, block_on, client, edit, start_node};
use serde_json::{Value as Json, json};

/// A single nested block as `terraform show -json` renders it (object, or list of one).
fn single(v: &Json) -> &Json {
    v.as_array().and_then(|a| a.first()).unwrap_or(v)
}

fn assert_same_import(tf: &Tf, address: &str, id: &str) {
    let created = tf.values(address, None);
    let imported = tf.import_values(address, id);
    assert_eq!(imported, created, "[{}] import of {id} differs", tf.name);
}

#[test]
fn tenant_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("tenant", &node);
    let hcl = tf.write_example("conflux_tenant");
    tf.apply();

    let v = tf.values("conflux_tenant.acme", None);
    assert_eq!(v["id"], "acme");
    assert_eq!(v["display_name"], "Acme Corp");
    assert_eq!(v["status"], "active");
    assert_eq!(
        single(&v["quotas"]),
        &json!({"max_apps": 20, "max_configs": 200, "max_config_bytes": 102400, "max_versions_per_config": 1000})
    );
    let t = block_on(api.get_tenant("acme")).unwrap();
    assert_eq!(t.display_name, "Acme Corp");
    assert_eq!((t.quotas.max_apps, t.quotas.max_configs), (20, 200));

    assert_same_import(&tf, "conflux_tenant.acme", "acme");

    let hcl = edit(&hcl, "\"Acme Corp\"", "\"Acme Inc\"");
    let hcl = edit(&hcl, "max_apps    = 20", "max_apps    = 30");
    tf.write(&hcl);
    tf.apply();
    let t = block_on(api.get_tenant("acme")).unwrap();
    assert_eq!(t.display_name, "Acme Inc");
    assert_eq!(t.quotas.max_apps, 30);
    tf.assert_plan_empty();

    // Drift: a quota the block leaves at its default, and the display name.
    let patch = conflux_api_types::UpdateTenant {
        display_name: Some("Renamed outside".into()),
        quotas: Some(conflux_api_types::QuotasPatch {
            max_versions_per_config: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    block_on(api.update_tenant("acme", &patch, &Default::default())).unwrap();
    let plan = tf.assert_plan_changes();
    assert!(
        plan.contains("Renamed outside") && plan.contains("max_versions_per_config"),
        "{plan}"
    );
    tf.apply();
    let t = block_on(api.get_tenant("acme")).unwrap();
    assert_eq!(t.display_name, "Acme Inc");
    assert_eq!(t.quotas.max_versions_per_config, 1000);
    tf.assert_plan_empty();

    tf.destroy();
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn app_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("app", &node);
    let hcl = tf.write_example("conflux_app");
    tf.apply();

    let v = tf.values("conflux_app.checkout", None);
    assert_eq!(v["id"], "acme/checkout");
    assert_eq!(v["description"], "Checkout service");
    let a = block_on(api.get_app("acme", "checkout")).unwrap();
    assert_eq!(a.description, "Checkout service");

    assert_same_import(&tf, "conflux_app.checkout", "acme/checkout");

    tf.write(&edit(&hcl, "\"Checkout service\"", "\"Checkout, v2\""));
    tf.apply();
    assert_eq!(
        block_on(api.get_app("acme", "checkout"))
            .unwrap()
            .description,
        "Checkout, v2"
    );
    tf.assert_plan_empty();

    let patch = conflux_api_types::UpdateApp {
        description: Some("edited by hand".into()),
    };
    block_on(api.update_app("acme", "checkout", &patch, &Default::default())).unwrap();
    assert!(tf.assert_plan_changes().contains("edited by hand"));
    tf.apply();
    assert_eq!(
        block_on(api.get_app("acme", "checkout"))
            .unwrap()
            .description,
        "Checkout, v2"
    );
    tf.assert_plan_empty();

    // Deleted outside Terraform: the plan creates it again.
    block_on(api.delete_app("acme", "checkout", true, &Default::default())).unwrap();
    assert!(tf.assert_plan_changes().contains("will be created"));
    tf.apply();
    assert!(block_on(api.get_app("acme", "checkout")).is_ok());

    tf.destroy();
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn environment_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("environment", &node);
    let hcl = tf.write_example("conflux_environment");
    tf.apply();

    let v = tf.values("conflux_environment.prod", None);
    assert_eq!(v["id"], "acme/checkout/prod");
    assert_eq!(v["app"], "checkout");
    let e = block_on(api.get_env("acme", "checkout", "prod")).unwrap();
    assert_eq!(e.description, "Production");

    assert_same_import(&tf, "conflux_environment.prod", "acme/checkout/prod");

    tf.write(&edit(&hcl, "\"Production\"", "\"Production (EU)\""));
    tf.apply();
    assert_eq!(
        block_on(api.get_env("acme", "checkout", "prod"))
            .unwrap()
            .description,
        "Production (EU)"
    );
    tf.assert_plan_empty();

    let patch = conflux_api_types::UpdateEnvironment {
        description: Some("drifted".into()),
        approval: None,
    };
    block_on(api.update_env("acme", "checkout", "prod", &patch, &Default::default())).unwrap();
    assert!(tf.assert_plan_changes().contains("drifted"));
    tf.apply();
    assert_eq!(
        block_on(api.get_env("acme", "checkout", "prod"))
            .unwrap()
            .description,
        "Production (EU)"
    );
    tf.assert_plan_empty();

    tf.destroy();
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn config_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("config", &node);
    let hcl = tf.write_example("conflux_config");
    tf.apply();

    let v = tf.values("conflux_config.app", None);
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["path"], "acme/checkout/prod/app.yaml");
    assert_eq!(v["format"], "yaml");
    let c = block_on(api.get_config(id)).unwrap();
    assert_eq!(c.path, "acme/checkout/prod/app.yaml");
    assert_eq!(
        c.schema.as_ref().unwrap()["required"],
        json!(["timeout_ms"])
    );
    assert_eq!(c.retention.as_ref().unwrap().rules.len(), 2);
    assert_eq!(c.description, "Checkout settings");

    // The schema's text comes back as the server renders it: compare it semantically.
    let created = tf.values("conflux_config.app", None);
    let mut imported = tf.import_values("conflux_config.app", "acme/checkout/prod/app.yaml");
    let parse = |v: &Json| serde_json::from_str::<Json>(v.as_str().unwrap()).unwrap();
    assert_eq!(parse(&imported["schema"]), parse(&created["schema"]));
    imported["schema"] = created["schema"].clone();
    assert_eq!(imported, created);

    let hcl = edit(&hcl, "\"Checkout settings\"", "\"Checkout settings v2\"");
    let hcl = edit(&hcl, "keep = 10", "keep = 20");
    let hcl = edit(&hcl, "required = [\"timeout_ms\"]", "required = []");
    tf.write(&hcl);
    tf.apply();
    let c = block_on(api.get_config(id)).unwrap();
    assert_eq!(c.id, id, "an in-place update keeps the id");
    assert_eq!(c.description, "Checkout settings v2");
    assert_eq!(c.retention.as_ref().unwrap().rules[0].keep, 20);
    assert_eq!(c.schema.as_ref().unwrap()["required"], json!([]));
    tf.assert_plan_empty();

    // Drift: schema removed and retention changed through the API.
    let patch = conflux_api_types::UpdateConfig {
        schema: Some(None),
        retention: Some(None),
        description: None,
        encrypted: None,
    };
    block_on(api.update_config(id, &patch, &Default::default())).unwrap();
    let plan = tf.assert_plan_changes();
    assert!(
        plan.contains("schema") && plan.contains("retention_policy"),
        "{plan}"
    );
    tf.apply();
    let c = block_on(api.get_config(id)).unwrap();
    assert!(c.schema.is_some() && c.retention.is_some());
    tf.assert_plan_empty();

    // Changing the format replaces the config.
    tf.write(&edit(
        &hcl,
        "format      = \"yaml\"",
        "format      = \"json\"",
    ));
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    tf.apply();
    assert!(block_on(api.get_config(id)).unwrap_err().is_not_found());
    let new_id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        block_on(api.get_config(new_id)).unwrap().format.as_str(),
        "json"
    );

    tf.destroy();
    assert!(block_on(api.get_config(new_id)).unwrap_err().is_not_found());
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn release_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("release", &node);
    let hcl = tf.write_example("conflux_release");
    tf.apply();

    let v = tf.values("conflux_release.current", None);
    let config_id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    assert_eq!(v["version_id"], 1);
    assert_eq!(v["is_stable"], true);
    assert!(v["hash"].as_str().unwrap().starts_with("sha256:"));
    let version = block_on(api.get_version(config_id, 1)).unwrap();
    assert_eq!(version.hash, v["hash"].as_str().unwrap());
    assert_eq!(version.description, "first");
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].version_id, 1);

    assert_same_import(
        &tf,
        "conflux_release.current",
        "acme/checkout/prod/app.yaml/1",
    );

    // New content: a new version, which becomes the stable one.
    tf.write(&edit(&hcl, "timeout_ms: 500", "timeout_ms: 250"));
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    tf.apply();
    let v = tf.values("conflux_release.current", None);
    assert_eq!(v["version_id"], 2);
    let content = block_on(api.get_version_content(config_id, 2)).unwrap();
    assert_eq!(&content[..], b"timeout_ms: 250\nretries: 3\n");
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules[0].version_id, 2);
    // Version 1 is forgotten, not deleted.
    assert!(block_on(api.get_version(config_id, 1)).is_ok());
    tf.assert_plan_empty();

    // Drift: someone rolls the default rule back to version 1.
    let rollback = conflux_api_types::RollbackRequest {
        version_id: 1,
        mode: conflux_domain::RollbackMode::StableOnly,
    };
    block_on(api.rollback(config_id, &rollback, &Default::default())).unwrap();
    assert!(tf.assert_plan_changes().contains("is_stable"));
    tf.apply();
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules[0].version_id, 2);
    tf.assert_plan_empty();

    // A version that does not parse is refused at plan time, naming the attribute.
    tf.write(&edit(&hcl, "retries: 3", "retries: [3"));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("content_invalid"), "{err}");
    assert!(err.contains("with conflux_release.current"), "{err}");
    tf.write(&edit(&hcl, "timeout_ms: 500", "timeout_ms: 250"));

    tf.destroy();
    assert!(
        block_on(api.get_config(config_id))
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn release_policy_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("release-policy", &node);
    let hcl = tf.write_example("conflux_release_policy");
    tf.apply();

    let config_id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    // The two versions are created in parallel: their numbers are 1 and 2 in either order.
    let version_of = |r: &str| tf.values(r, None)["version_id"].as_u64().unwrap();
    let (stable, canary) = (
        version_of("conflux_release.stable"),
        version_of("conflux_release.canary"),
    );
    let v = tf.values("conflux_release_policy.app", None);
    assert_eq!(v["rule"].as_array().unwrap().len(), 2);
    assert_eq!(tf.outputs()["canary_gets"]["value"], canary);
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules.len(), 2);
    assert!(rules[0].is_default() && rules[0].version_id == stable);
    assert_eq!(rules[1].labels["canary"], "true");
    assert_eq!((rules[1].version_id, rules[1].priority), (canary, 100));

    assert_same_import(
        &tf,
        "conflux_release_policy.app",
        "acme/checkout/prod/app.json",
    );

    // Update: the canary rule moves to 10 percent of the labelled clients, lower priority.
    let hcl = edit(
        &hcl,
        "priority   = 100",
        "priority   = 50\n    percent    = 10",
    );
    tf.write(&hcl);
    tf.apply();
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!((rules[1].priority, rules[1].percent), (50, Some(10)));
    tf.assert_plan_empty();

    // Drift: rules replaced through the API.
    let put = conflux_api_types::PutReleases {
        releases: vec![conflux_domain::ReleaseRule::default_to(canary)],
        comment: Some("hotfix by hand".into()),
    };
    block_on(api.put_releases(config_id, &put, &Default::default())).unwrap();
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("rule"), "{plan}");
    tf.apply();
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].version_id, stable);
    tf.assert_plan_empty();

    // A change made between plan and apply is not overwritten: the saved plan fails.
    tf.write(&edit(&hcl, "priority   = 50", "priority   = 60"));
    tf.ok(&["plan", "-no-color", "-out", "saved.tfplan"]);
    block_on(api.put_releases(config_id, &put, &Default::default())).unwrap();
    let err = tf.fails(&["apply", "-no-color", "saved.tfplan"]);
    assert!(err.contains("changed outside Terraform"), "{err}");
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules, put.releases, "the outside change must survive");
    tf.apply();
    let rules = block_on(api.get_releases(config_id)).unwrap().releases;
    assert_eq!(rules[1].priority, 60);
    tf.assert_plan_empty();

    tf.destroy();
    assert!(
        block_on(api.get_config(config_id))
            .unwrap_err()
            .is_not_found()
    );
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

/// An encrypted config through Terraform: the content is stored sealed and served in
/// plaintext, plans hide it (sensitive), and flipping `encrypted` replaces the config.
#[test]
fn encrypted_config_and_sensitive_content() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("encrypted", &node);
    let hcl = edit(
        &common::example_text("conflux_release"),
        "format      = \"yaml\"",
        "format      = \"yaml\"\n  encrypted   = true",
    );
    tf.write(&hcl);
    tf.apply();
    let config_id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    assert_eq!(tf.values("conflux_config.app", None)["encrypted"], true);
    assert!(block_on(api.get_config(config_id)).unwrap().encrypted);
    let content = block_on(api.get_version_content(config_id, 1)).unwrap();
    assert_eq!(&content[..], b"timeout_ms: 500\nretries: 3\n");

    tf.write(&edit(&hcl, "timeout_ms: 500", "timeout_ms: 250"));
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("(sensitive value)"), "{plan}");
    assert!(
        !plan.contains("timeout_ms"),
        "the content is hidden: {plan}"
    );

    tf.write(&edit(&hcl, "encrypted   = true", "encrypted   = false"));
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    tf.apply();
    assert!(
        block_on(api.get_config(config_id))
            .unwrap_err()
            .is_not_found()
    );
    let new_id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    assert!(!block_on(api.get_config(new_id)).unwrap().encrypted);
    tf.destroy();
}
