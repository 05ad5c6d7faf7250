//! A realistic rollout, all by editing HCL and re-applying: a tenant with two apps and three
//! environments, configs in three formats, stable releases, a canary release policy (10
//! percent, and clients labelled canary=true), then promotion of the canary to stable. The
//! data sources report what clients receive at each step. Also: errors become diagnostics
//! naming the attribute, and a newer terraform on PATH (when there is one) works too.

mod common;

use std::collections::BTreeMap;

use common::{Tf, block_on, client, edit, newer_terraform, start_node};

const SHOP: &str = r#"
terraform {
  required_providers {
    conflux = { source = "conflux/conflux" }
  }
}

provider "conflux" {
  timeout     = "20s"
  max_retries = 3
}

resource "conflux_tenant" "shop" {
  name         = "shop"
  display_name = "Shop"
  quotas {
    max_configs = 50
  }
}

resource "conflux_app" "web" {
  tenant = conflux_tenant.shop.name
  name   = "web"
}

resource "conflux_app" "api" {
  tenant      = conflux_tenant.shop.name
  name        = "api"
  description = "Public API"
}

resource "conflux_environment" "web_prod" {
  tenant = conflux_tenant.shop.name
  app    = conflux_app.web.name
  name   = "prod"
}

resource "conflux_environment" "web_staging" {
  tenant = conflux_tenant.shop.name
  app    = conflux_app.web.name
  name   = "staging"
}

resource "conflux_environment" "api_prod" {
  tenant = conflux_tenant.shop.name
  app    = conflux_app.api.name
  name   = "prod"
}

# yaml, with a canary rollout managed by a release policy.
resource "conflux_config" "web" {
  tenant      = conflux_tenant.shop.name
  application = conflux_app.web.name
  environment = conflux_environment.web_prod.name
  name        = "web.yaml"
  format      = "yaml"
  schema      = jsonencode({ type = "object", required = ["workers"] })
  retention_policy {
    strategy = "and"
    rule {
      type = "count"
      keep = 5
    }
  }
}

resource "conflux_release" "web_v1" {
  config_id   = conflux_config.web.id
  description = "baseline"
  content     = "workers: 4\ncache: true\n"
}

resource "conflux_release" "web_v2" {
  config_id   = conflux_config.web.id
  description = "more workers"
  content     = "workers: 8\ncache: true\n"
}

resource "conflux_release_policy" "web" {
  config_id = conflux_config.web.id
  rule {
    version_id = conflux_release.web_v1.version_id
  }
  rule {
    labels     = { canary = "true" }
    version_id = conflux_release.web_v2.version_id
    priority   = 100
  }
  rule {
    percent    = 10
    version_id = conflux_release.web_v2.version_id
    priority   = 50
  }
}

# toml in staging, json for the api: plain stable releases.
resource "conflux_config" "web_staging" {
  tenant      = conflux_tenant.shop.name
  application = conflux_app.web.name
  environment = conflux_environment.web_staging.name
  name        = "web.toml"
  format      = "toml"
}

resource "conflux_release" "web_staging" {
  config_id = conflux_config.web_staging.id
  is_stable = true
  content   = "workers = 2\n[cache]\nenabled = false\n"
}

resource "conflux_config" "api" {
  tenant      = conflux_tenant.shop.name
  application = conflux_app.api.name
  environment = conflux_environment.api_prod.name
  name        = "api.json"
  format      = "json"
}

resource "conflux_release" "api" {
  config_id = conflux_config.api.id
  is_stable = true
  content   = jsonencode({ rate_limit = 100 })
}

data "conflux_config" "web" {
  tenant      = "shop"
  application = "web"
  environment = "prod"
  name        = "web.yaml"
  depends_on  = [conflux_config.web]
}

data "conflux_release_policy" "web" {
  config_id  = data.conflux_config.web.id
  depends_on = [conflux_release_policy.web]
}

data "conflux_resolved_version" "web_canary" {
  config_id  = conflux_config.web.id
  labels     = { canary = "true" }
  depends_on = [conflux_release_policy.web]
}

data "conflux_resolved_version" "web_everyone" {
  config_id  = conflux_config.web.id
  client_id  = "host-without-luck"
  depends_on = [conflux_release_policy.web]
}

output "web_id" {
  value = data.conflux_config.web.id
}
output "web_rules" {
  value = length(data.conflux_release_policy.web.rules)
}
output "canary_gets" {
  value = data.conflux_resolved_version.web_canary.version_id
}
output "everyone_gets" {
  value = data.conflux_resolved_version.web_everyone.version_id
}
"#;

/// The web release policy after promotion: the canary version is the default for everyone.
const PROMOTED_POLICY: &str = r#"resource "conflux_release_policy" "web" {
  config_id = conflux_config.web.id
  rule {
    version_id = conflux_release.web_v2.version_id
  }
}"#;

fn policy_block(hcl: &str) -> &str {
    let start = hcl
        .find("resource \"conflux_release_policy\" \"web\"")
        .unwrap();
    let end = start + hcl[start..].find("\n}\n").unwrap() + 2;
    &hcl[start..end]
}

#[test]
fn canary_rollout_and_promotion() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("scenario", &node);
    tf.write(SHOP);
    tf.apply();
    tf.assert_plan_empty();

    let version = |r: &str| tf.values(r, None)["version_id"].as_u64().unwrap();
    let (v1, v2) = (
        version("conflux_release.web_v1"),
        version("conflux_release.web_v2"),
    );
    let web_id = tf.values("conflux_config.web", None)["id"]
        .as_u64()
        .unwrap();
    let out = tf.outputs();
    assert_eq!(out["web_id"]["value"], web_id);
    assert_eq!(out["web_rules"]["value"], 3);
    assert_eq!(out["canary_gets"]["value"], v2);

    // What clients really get, through the resolve endpoint.
    let canary = BTreeMap::from([("canary".to_owned(), "true".to_owned())]);
    let r = block_on(api.resolve(web_id, &canary, None)).unwrap();
    assert_eq!(r.version_id, v2);
    let r = block_on(api.resolve(web_id, &BTreeMap::new(), None)).unwrap();
    assert_eq!(r.version_id, v1);
    // Roughly 10 percent of client ids land on the canary.
    let on_canary = (0..400)
        .filter(|i| {
            block_on(api.resolve(web_id, &BTreeMap::new(), Some(&format!("host-{i}"))))
                .unwrap()
                .version_id
                == v2
        })
        .count();
    assert!(
        (15..=70).contains(&on_canary),
        "{on_canary} of 400 on canary"
    );

    // The other configs, one per format, each with a stable release.
    let tenants = block_on(api.list_apps("shop")).unwrap();
    assert_eq!(tenants.apps.len(), 2);
    assert_eq!(
        block_on(api.list_envs("shop", "web"))
            .unwrap()
            .environments
            .len(),
        2
    );
    for (addr, format) in [
        ("conflux_config.web_staging", "toml"),
        ("conflux_config.api", "json"),
    ] {
        let id = tf.values(addr, None)["id"].as_u64().unwrap();
        let c = block_on(api.get_config(id)).unwrap();
        assert_eq!(c.format.as_str(), format);
        let rules = block_on(api.get_releases(id)).unwrap().releases;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].version_id, 1);
    }

    // Promotion: edit the policy so everyone gets the canary version.
    let promoted = edit(SHOP, policy_block(SHOP), PROMOTED_POLICY);
    tf.write(&promoted);
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("1 to change"), "{plan}");
    tf.apply();
    tf.assert_plan_empty();
    let rules = block_on(api.get_releases(web_id)).unwrap().releases;
    assert_eq!(rules, vec![conflux_domain::ReleaseRule::default_to(v2)]);
    let r = block_on(api.resolve(web_id, &BTreeMap::new(), Some("host-1"))).unwrap();
    assert_eq!(r.version_id, v2);
    let out = tf.outputs();
    assert_eq!(out["everyone_gets"]["value"], v2);
    assert_eq!(out["web_rules"]["value"], 1);

    tf.destroy();
    assert!(block_on(api.get_tenant("shop")).unwrap_err().is_not_found());
}

#[test]
fn errors_become_diagnostics_naming_the_attribute() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("errors", &node);
    let header = r#"
terraform {
  required_providers {
    conflux = { source = "conflux/conflux" }
  }
}
"#;

    // Plan-time validation: a bad name and a percent out of range, each at its line.
    tf.write(&format!(
        "{header}\nresource \"conflux_tenant\" \"bad\" {{\n  name = \"Not_Valid\"\n}}\n\
         resource \"conflux_release_policy\" \"bad\" {{\n  config_id = 1\n  rule {{\n    version_id = 1\n  }}\n  rule {{\n    percent    = 150\n    version_id = 1\n  }}\n}}\n"
    ));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(
        err.contains("Invalid name") && err.contains("with conflux_tenant.bad"),
        "{err}"
    );
    assert!(err.contains("name = \"Not_Valid\""), "{err}");
    assert!(
        err.contains("Invalid percent") && err.contains("percent    = 150"),
        "{err}"
    );

    // Server-side: the tenant exists already; the diagnostic says how to adopt it.
    block_on(api.create_tenant(
        &conflux_api_types::CreateTenant {
            name: "taken".into(),
            ..Default::default()
        },
        &Default::default(),
    ))
    .unwrap();
    tf.write(&format!(
        "{header}\nresource \"conflux_tenant\" \"taken\" {{\n  name = \"taken\"\n}}\n"
    ));
    let err = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        err.contains("tenant_already_exists") && err.contains("terraform import"),
        "{err}"
    );
    assert!(err.contains("with conflux_tenant.taken"), "{err}");
    // ... and after an import, the same configuration plans no change.
    tf.ok(&["import", "-no-color", "conflux_tenant.taken", "taken"]);
    tf.assert_plan_empty();

    // A schema error names the schema attribute; a missing parent names its attribute.
    let taken = "resource \"conflux_tenant\" \"taken\" {\n  name = \"taken\"\n}\n";
    tf.write(&format!(
        "{header}{taken}\nresource \"conflux_config\" \"c\" {{\n  tenant = \"taken\"\n  application = \"nope\"\n  environment = \"prod\"\n  name = \"x.xml\"\n  format = \"xml\"\n}}\n\
         resource \"conflux_config\" \"s\" {{\n  tenant = \"taken\"\n  application = \"nope\"\n  environment = \"prod\"\n  name = \"x.txt\"\n  format = \"text\"\n  schema = jsonencode({{ type = \"object\" }})\n}}\n"
    ));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(
        err.contains("text configs cannot have a JSON Schema"),
        "{err}"
    );
    tf.write(&format!(
        "{header}{taken}\nresource \"conflux_config\" \"c\" {{\n  tenant = \"taken\"\n  application = \"nope\"\n  environment = \"prod\"\n  name = \"x.xml\"\n  format = \"xml\"\n}}\n"
    ));
    let err = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        err.contains("app_not_found") && err.contains("application = \"nope\""),
        "{err}"
    );

    // An unreachable endpoint is an error, not a crash.
    tf.write(&format!(
        "{header}\nprovider \"conflux\" {{\n  endpoint = \"http://127.0.0.1:9\"\n  max_retries = 0\n}}\nresource \"conflux_tenant\" \"t\" {{\n  name = \"t\"\n}}\n"
    ));
    let err = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        err.contains("unreachable") && err.contains("endpoint"),
        "{err}"
    );
    assert!(
        !err.contains("plugin crashed") && !err.contains("panic"),
        "{err}"
    );
}

#[test]
fn a_newer_terraform_on_path_works_too() {
    let Some(newer) = newer_terraform() else {
        eprintln!("no terraform other than 1.0.3 on PATH: only the pinned one is tested");
        return;
    };
    let node = start_node();
    let api = client(&node);
    let tf = Tf::with_binary("newer-terraform", &node, newer);
    tf.write_example("conflux_release_policy");
    tf.apply();
    tf.assert_plan_empty();
    let id = tf.values("conflux_config.app", None)["id"]
        .as_u64()
        .unwrap();
    assert_eq!(block_on(api.get_releases(id)).unwrap().releases.len(), 2);
    tf.destroy();
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}
