//! Acceptance tests of the identity resources, with the real `terraform` against a real node
//! that requires a token (the harness passes the node's bootstrap cluster_admin token as
//! CONFLUX_TOKEN). Each lifecycle walks: create (the example from `examples/`) -> check state
//! and server -> the next plan is empty -> import into a separate state and compare -> deleted
//! outside Terraform, the plan creates it again -> destroy removes it from the server. A token
//! Terraform creates is then used for real: its secret, with its bindings, fetches what it may
//! and nothing else. Bad roles and scopes are refused at plan time, at their attribute.

mod common;

use common::{Tf, block_on, client, client_with_token, edit, start_node};
use conflux_client::{ConfigPath, FetchOptions, Fetched};
use serde_json::Value as Json;

/// The terraform output `name` as raw text (sensitive outputs too).
fn raw_output(tf: &Tf, name: &str) -> String {
    tf.ok(&["output", "-raw", name])
}

#[test]
fn service_token_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("service-token", &node);
    let hcl = tf.write_example("conflux_service_token");
    tf.apply();

    let v = tf.values("conflux_service_token.checkout", None);
    let id = v["id"].as_str().unwrap().to_owned();
    let secret = v["token"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty());
    assert_eq!(v["name"], "checkout service (prod)");
    // The user's spelling of the expiry is kept (the server renders milliseconds).
    assert_eq!(v["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(
        v["bindings"],
        serde_json::json!([{"role": "reader", "scope": "acme/checkout"}])
    );
    assert!(v["created_by"].as_str().unwrap().starts_with("token:"));
    let t = block_on(api.get_token(&id)).unwrap();
    assert_eq!(t.name, "checkout service (prod)");
    assert_eq!(t.created_at, v["created_at"].as_str().unwrap());
    let bindings = block_on(api.list_role_bindings(Some(&format!("token:{id}")), None))
        .unwrap()
        .role_bindings;
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        (&*bindings[0].role, &*bindings[0].scope),
        ("reader", "acme/checkout")
    );
    // The secret is in the state and the output, and never in terraform's output.
    assert_eq!(raw_output(&tf, "checkout_token"), secret);
    tf.assert_plan_empty();
    let plan = tf.ok(&["plan", "-no-color"]);
    assert!(!plan.contains(&secret));

    // Import: everything but the secret, which the server shows only once.
    let imported = tf.import_values("conflux_service_token.checkout", &id);
    assert_eq!(imported["token"], Json::Null);
    // Without a configuration to take the spelling from, the server's rendering.
    assert!(
        imported["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-01T00:00:00"),
        "{imported}"
    );
    let mut created = v.clone();
    created["token"] = Json::Null;
    created["expires_at"] = imported["expires_at"].clone();
    assert_eq!(imported, created);

    // A binding removed outside Terraform is drift; restoring it replaces the token.
    block_on(api.delete_role_binding(&bindings[0].id)).unwrap();
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    tf.apply();
    let v = tf.values("conflux_service_token.checkout", None);
    let new_id = v["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_ne!(v["token"].as_str().unwrap(), secret);
    assert!(block_on(api.get_token(&id)).unwrap_err().is_not_found());
    tf.assert_plan_empty();

    // Deleted outside Terraform: the plan creates it again, with a new secret.
    block_on(api.delete_token(&new_id)).unwrap();
    assert!(tf.assert_plan_changes().contains("will be created"));
    tf.apply();
    let v = tf.values("conflux_service_token.checkout", None);
    let newest_id = v["id"].as_str().unwrap().to_owned();
    assert_ne!(newest_id, new_id);
    assert!(block_on(api.get_token(&newest_id)).is_ok());
    tf.assert_plan_empty();

    // A new name is a new token.
    tf.write(&edit(
        &hcl,
        "\"checkout service (prod)\"",
        "\"checkout (prod)\"",
    ));
    assert!(tf.assert_plan_changes().contains("forces replacement"));
    tf.apply();
    assert!(
        block_on(api.get_token(&newest_id))
            .unwrap_err()
            .is_not_found()
    );
    let last_id = tf.values("conflux_service_token.checkout", None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tf.assert_plan_empty();

    tf.destroy();
    assert!(
        block_on(api.get_token(&last_id))
            .unwrap_err()
            .is_not_found()
    );
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn a_token_terraform_creates_works_with_its_binding_and_no_further() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("token-works", &node);
    tf.write_example("conflux_service_token");
    tf.apply();
    let secret = raw_output(&tf, "checkout_token");
    let id = raw_output(&tf, "checkout_token_id");

    // A published config outside the token's scope, made by the admin.
    let elsewhere = ConfigPath::new("acme", "billing", "prod", "app.yaml");
    block_on(async {
        let opts = Default::default();
        let app = conflux_api_types::CreateApp {
            name: "billing".into(),
            description: None,
        };
        api.create_app("acme", &app, &opts).await?;
        let env = conflux_api_types::CreateEnvironment::named("prod");
        api.create_env("acme", "billing", &env, &opts).await?;
        let config = conflux_api_types::CreateConfig {
            name: "app.yaml".into(),
            format: conflux_domain::Format::Yaml,
            schema: None,
            retention: None,
            description: None,
            encrypted: false,
        };
        let id = api
            .create_config("acme", "billing", "prod", &config, &opts)
            .await?
            .id;
        let publish = conflux_api_types::PublishRequest {
            content: "currency: EUR\n".into(),
            description: None,
            strategy: conflux_api_types::Strategy::Stable,
        };
        api.publish(id, &publish, &opts).await?;
        api.fetch(&elsewhere, &FetchOptions::default()).await
    })
    .expect("the admin publishes and fetches acme/billing/prod/app.yaml");

    let service = client_with_token(&node, &secret);
    let who = block_on(service.whoami()).unwrap();
    assert_eq!(who.principal, format!("token:{id}"));
    let path = ConfigPath::new("acme", "checkout", "prod", "app.yaml");
    match block_on(service.fetch(&path, &FetchOptions::default())).unwrap() {
        Fetched::Modified { content, .. } => assert_eq!(&content[..], b"timeout_ms: 500\n"),
        Fetched::NotModified => panic!("a first fetch has no ETag to match"),
    }
    // reader is fetch-only: the management plane answers 403, even inside the scope.
    let e = block_on(service.get_tenant("acme")).unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    // Outside its scope a config looks exactly like one that does not exist.
    let e = block_on(service.fetch(&elsewhere, &FetchOptions::default())).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    block_on(api.delete_app("acme", "billing", true, &Default::default())).unwrap();

    // Destroy revokes it: within the contract's 2 s it stops working.
    tf.destroy();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match block_on(service.whoami()) {
            Err(e) if e.status() == Some(401) => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a revoked token still works: {other:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn role_binding_lifecycle() {
    let node = start_node();
    let api = client(&node);
    let tf = Tf::new("role-binding", &node);
    let hcl = tf.write_example("conflux_role_binding");
    tf.apply();

    let token_id = tf.values("conflux_service_token.ci", None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = tf.values("conflux_role_binding.ci_publisher", None);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["principal"], format!("token:{token_id}"));
    assert_eq!(v["role"], "publisher");
    assert_eq!(v["scope"], "acme/checkout");
    assert!(v["created_by"].as_str().unwrap().starts_with("token:"));
    let b = block_on(api.get_role_binding(&id)).unwrap();
    assert_eq!((&*b.role, &*b.scope), ("publisher", "acme/checkout"));
    assert_eq!(b.principal, format!("token:{token_id}"));
    tf.assert_plan_empty();

    // The binding is what the CI token may do: read the app it is bound on, not the tenant's
    // other apps, and never create tenants.
    let ci = client_with_token(&node, &raw_output(&tf, "ci_token"));
    assert!(block_on(ci.get_app("acme", "checkout")).is_ok());
    let e = block_on(ci.create_tenant(
        &conflux_api_types::CreateTenant {
            name: "other".into(),
            display_name: None,
            quotas: None,
        },
        &Default::default(),
    ))
    .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    assert_eq!(
        tf.import_values("conflux_role_binding.ci_publisher", &id),
        v
    );
    let err = tf.fails(&[
        "import",
        "-no-color",
        "-state",
        "bad-import.tfstate",
        "conflux_role_binding.ci_publisher",
        "0000000000000000",
    ]);
    assert!(
        err.contains("not_found") && err.contains("HTTP 404"),
        "{err}"
    );
    let err = tf.fails(&[
        "import",
        "-no-color",
        "-state",
        "bad-import.tfstate",
        "conflux_role_binding.ci_publisher",
        "no-such-binding",
    ]);
    assert!(err.contains("Invalid import ID"), "{err}");

    // Deleted outside Terraform: the plan creates it again.
    block_on(api.delete_role_binding(&id)).unwrap();
    assert!(tf.assert_plan_changes().contains("will be created"));
    tf.apply();
    let new_id = tf.values("conflux_role_binding.ci_publisher", None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, id);
    assert!(block_on(api.get_role_binding(&new_id)).is_ok());
    tf.assert_plan_empty();

    // Another role replaces the binding.
    tf.write(&edit(&hcl, "\"publisher\"", "\"viewer\""));
    let plan = tf.assert_plan_changes();
    assert!(plan.contains("forces replacement"), "{plan}");
    tf.apply();
    assert!(
        block_on(api.get_role_binding(&new_id))
            .unwrap_err()
            .is_not_found()
    );
    let last = tf.values("conflux_role_binding.ci_publisher", None);
    assert_eq!(last["role"], "viewer");
    tf.assert_plan_empty();

    tf.destroy();
    let last_id = last["id"].as_str().unwrap();
    assert!(
        block_on(api.get_role_binding(last_id))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        block_on(api.get_token(&token_id))
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn bad_roles_scopes_and_expiries_fail_the_plan_at_their_attribute() {
    let node = start_node();
    let tf = Tf::new("identity-errors", &node);
    let base = common::example_text("conflux_role_binding");

    tf.write(&edit(&base, "\"publisher\"", "\"owner\""));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("Invalid role"), "{err}");
    assert!(err.contains("\"owner\" is not a role"), "{err}");
    assert!(
        err.contains("with conflux_role_binding.ci_publisher"),
        "{err}"
    );
    assert!(err.contains("role      = \"owner\""), "{err}");

    tf.write(&edit(
        &base,
        "scope     = \"${conflux_tenant.acme.name}/${conflux_app.checkout.name}\"",
        "scope     = \"acme/checkout/prod/extra\"",
    ));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("Invalid scope"), "{err}");
    assert!(
        err.contains("scope     = \"acme/checkout/prod/extra\""),
        "{err}"
    );

    tf.write(&edit(
        &base,
        "principal = \"token:${conflux_service_token.ci.id}\"",
        "principal = \"alice\"",
    ));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("Invalid principal"), "{err}");

    let token = common::example_text("conflux_service_token");
    tf.write(&edit(&token, "role = \"reader\"", "role = \"readers\""));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("Invalid role"), "{err}");
    assert!(err.contains("with conflux_service_token.checkout"), "{err}");
    assert!(err.contains("bindings"), "{err}");

    tf.write(&edit(&token, "\"2030-01-01T00:00:00Z\"", "\"2030-01-01\""));
    let err = tf.fails(&["plan", "-no-color"]);
    assert!(err.contains("Invalid expires_at"), "{err}");
    assert!(err.contains("RFC 3339"), "{err}");

    // Nothing reached the server.
    let api = client(&node);
    assert!(block_on(api.get_tenant("acme")).unwrap_err().is_not_found());
}

#[test]
fn without_a_token_the_diagnostic_says_how_to_give_one() {
    let node = start_node();
    let mut tf = Tf::new("no-token", &node);
    tf.token = None;
    tf.write_example("conflux_tenant");
    let err = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(err.contains("unauthenticated"), "{err}");
    assert!(err.contains("CONFLUX_TOKEN"), "{err}");
    // A wrong token is refused the same way, and never echoed.
    tf.token = Some("not-a-real-token-but-long-enough-0123456789".into());
    let err = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(err.contains("unauthenticated"), "{err}");
    assert!(!err.contains("not-a-real-token"), "{err}");
}
