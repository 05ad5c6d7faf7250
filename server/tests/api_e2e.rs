//! The HTTP API of contract section 4 (minus watch and `/_cluster`) driven end to end through
//! `conflux_client::ApiClient` against real `conflux server` processes: what a user of the
//! management and fetch planes relies on, and that all of it survives a clean restart.
//!
//! Every test starts its own single node (port 0, its own temporary data directory).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conflux_client::types::{
    ApprovalSettings, ConfigView, CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format,
    PublishRequest, PublishResponse, PutReleases, Quotas, QuotasPatch, ReleaseRule,
    RetentionPolicy, RollbackMode, RollbackRequest, Strategy, TenantStatus, UpdateApp,
    UpdateConfig, UpdateEnvironment, UpdateTenant, VersionCreated,
};
use conflux_client::{
    ApiClient, ClientError, ConfigPath, FetchOptions, Fetched, NewVersion, WriteOptions,
};
use conflux_testkit::{NodeSpec, TestNode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---- harness ------------------------------------------------------------------------------

/// Starts a node and returns it with a client, once the node has a leader (a single node
/// elects itself right after bootstrapping; writes before that would get a 503).
async fn start_node() -> (TestNode, ApiClient) {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let client = connect(&node).await;
    (node, client)
}

async fn connect(node: &TestNode) -> ApiClient {
    let client = ApiClient::builder(node.api_url())
        .bearer_token(node.token())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client for the node's URL");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.ready().await
            && r.ready
        {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "node did not become ready within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (bounded) until the node has applied `index`; returns either way.
async fn common_wait_for_index(c: &ApiClient, index: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && c.ready().await.map(|r| r.applied_index).unwrap_or(0) < index
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

fn key(k: &str) -> WriteOptions {
    WriteOptions::default().idempotency_key(k)
}

/// Asserts that `r` failed with this HTTP status and stable code, with a message.
#[track_caller]
fn api_err<T: std::fmt::Debug>(r: Result<T, ClientError>, status: u16, code: &str) -> ClientError {
    match r {
        Ok(v) => panic!("expected {status} {code}, got a success: {v:?}"),
        Err(e) => {
            assert_eq!(
                (e.status(), e.code()),
                (Some(status), code),
                "expected {status} {code}, got: {e:?}"
            );
            assert!(
                !e.message().trim().is_empty(),
                "error without a message: {e:?}"
            );
            e
        }
    }
}

fn details(e: &ClientError) -> Vec<Value> {
    match e {
        ClientError::Api { details, .. } => details.clone(),
        other => panic!("not an API error: {other:?}"),
    }
}

fn sha(bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    format!("sha256:{}", hex::encode(digest))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn rule(
    pairs: &[(&str, &str)],
    percent: Option<u8>,
    version_id: u64,
    priority: i32,
) -> ReleaseRule {
    ReleaseRule {
        labels: labels(pairs),
        percent,
        version_id,
        priority,
    }
}

/// A client to resolve for: labels, client id, the version and rule index it must get.
type Probe<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, u64, usize);

fn fetch_opts(pairs: &[(&str, &str)], client_id: Option<&str>) -> FetchOptions {
    FetchOptions {
        labels: labels(pairs),
        client_id: client_id.map(str::to_owned),
        ..FetchOptions::default()
    }
}

/// A fetch that returned content.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    content: Bytes,
    version: u64,
    hash: String,
    revision: u64,
    etag: String,
    content_type: String,
}

async fn fetch(c: &ApiClient, path: &ConfigPath, opts: &FetchOptions) -> Got {
    match c.fetch(path, opts).await {
        Ok(Fetched::Modified {
            content,
            version,
            hash,
            revision,
            etag,
            content_type,
        }) => Got {
            content,
            version,
            hash,
            revision,
            etag,
            content_type,
        },
        other => panic!("fetch {path} with {opts:?}: {other:?}"),
    }
}

async fn scaffold(c: &ApiClient, tenant: &str, app: &str, env: &str) {
    let t = CreateTenant::named(tenant);
    c.create_tenant(&t, &w()).await.expect("create tenant");
    app_and_env(c, tenant, app, env).await;
}

/// Creates `app` in an existing tenant, and `env` in it.
async fn app_and_env(c: &ApiClient, tenant: &str, app: &str, env: &str) {
    let a = CreateApp::named(app);
    c.create_app(tenant, &a, &w()).await.expect("create app");
    let e = CreateEnvironment::named(env);
    c.create_env(tenant, app, &e, &w())
        .await
        .expect("create env");
}

fn create_config_body(name: &str, format: Format) -> CreateConfig {
    CreateConfig {
        name: name.into(),
        format,
        schema: None,
        retention: None,
        description: None,
        encrypted: false,
    }
}

async fn new_config(c: &ApiClient, path: &ConfigPath, format: Format) -> ConfigView {
    let body = create_config_body(&path.name, format);
    c.create_config(&path.tenant, &path.app, &path.env, &body, &w())
        .await
        .unwrap_or_else(|e| panic!("create config {path}: {e}"))
}

async fn push(c: &ApiClient, id: u64, content: &[u8], content_type: &str) -> VersionCreated {
    c.create_version(id, NewVersion::new(content.to_vec(), content_type), &w())
        .await
        .unwrap_or_else(|e| panic!("push to config {id} as {content_type}: {e}"))
}

async fn set_rules(c: &ApiClient, id: u64, rules: Vec<ReleaseRule>) -> u64 {
    let body = PutReleases {
        releases: rules,
        comment: None,
    };
    c.put_releases(id, &body, &w())
        .await
        .expect("put releases")
        .revision
}

fn publish_body(content: &str, strategy: Strategy) -> PublishRequest {
    PublishRequest {
        content: content.into(),
        description: None,
        strategy,
    }
}

fn canary(pairs: &[(&str, &str)], percent: Option<u8>, priority: Option<i32>) -> Strategy {
    Strategy::Canary {
        labels: labels(pairs),
        percent,
        priority,
    }
}

async fn version_ids(c: &ApiClient, id: u64) -> Vec<u64> {
    let list = c
        .list_versions(id, Some(1000), None)
        .await
        .expect("list versions");
    assert!(list.next_cursor.is_none());
    list.versions.iter().map(|v| v.version_id).collect()
}

/// A tiny deterministic PRNG (xorshift64*), seeded from the clock so every run uses other ids;
/// the seed is part of every assertion message.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// ---- tenants, apps, environments ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_apps_and_envs_support_crud_patch_list_and_cascading_deletes() {
    let (_node, c) = start_node().await;

    // Tenants: create (with the contract's default quotas), get, list, patch.
    let acme = c
        .create_tenant(
            &CreateTenant {
                name: "acme".into(),
                display_name: Some("Acme Corp".into()),
                quotas: None,
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.display_name, "Acme Corp");
    assert_eq!(acme.status, TenantStatus::Active);
    assert_eq!(
        acme.quotas,
        Quotas {
            max_apps: 100,
            max_configs: 1000,
            max_config_bytes: 102_400,
            max_versions_per_config: 1000
        }
    );
    assert!(acme.revision > 0);
    for ts in [&acme.created_at, &acme.updated_at] {
        // RFC 3339 with milliseconds, UTC: 2026-01-01T00:00:00.000Z
        let b = ts.as_bytes();
        let shape_ok = b.len() == 24
            && b.iter().enumerate().all(|(i, ch)| match i {
                4 | 7 => *ch == b'-',
                10 => *ch == b'T',
                13 | 16 => *ch == b':',
                19 => *ch == b'.',
                23 => *ch == b'Z',
                _ => ch.is_ascii_digit(),
            });
        assert!(shape_ok, "timestamp {ts:?}");
    }
    let beta = c
        .create_tenant(&CreateTenant::named("beta-2"), &w())
        .await
        .unwrap();
    assert!(beta.revision > acme.revision, "revisions only grow");
    assert_eq!(c.get_tenant("acme").await.unwrap(), acme);
    let names: BTreeSet<String> = c
        .list_tenants()
        .await
        .unwrap()
        .tenants
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["acme".to_owned(), "beta-2".to_owned()])
    );

    let dup = CreateTenant::named("acme");
    api_err(
        c.create_tenant(&dup, &w()).await,
        409,
        "tenant_already_exists",
    );
    let too_long = "a".repeat(64);
    for bad in ["Acme", "acme_corp", "-acme", "", too_long.as_str()] {
        let body = CreateTenant::named(bad);
        let e = api_err(c.create_tenant(&body, &w()).await, 400, "invalid_name");
        assert_eq!(e.field(), Some("name"), "{bad:?}");
    }
    api_err(c.get_tenant("nope").await, 404, "tenant_not_found");

    let patched = c
        .update_tenant(
            "acme",
            &UpdateTenant {
                display_name: Some("ACME Corporation".into()),
                ..UpdateTenant::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(patched.display_name, "ACME Corporation");
    assert_eq!(patched.created_at, acme.created_at);
    assert_eq!(patched.quotas, acme.quotas);
    assert!(patched.revision > beta.revision);
    let patched = c
        .update_tenant(
            "acme",
            &UpdateTenant {
                quotas: Some(QuotasPatch {
                    max_configs: Some(50),
                    ..QuotasPatch::default()
                }),
                ..UpdateTenant::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.quotas,
        Quotas {
            max_configs: 50,
            ..acme.quotas
        },
        "a quota patch changes only the quotas it names"
    );
    assert_eq!(patched.display_name, "ACME Corporation");
    assert_eq!(c.get_tenant("acme").await.unwrap(), patched);
    let e = api_err(
        c.update_tenant(
            "acme",
            &UpdateTenant {
                display_name: Some("stale".into()),
                ..UpdateTenant::default()
            },
            &w().if_match(acme.revision),
        )
        .await,
        409,
        "revision_mismatch",
    );
    assert_eq!(
        details(&e),
        vec![json!({"expected": acme.revision, "actual": patched.revision})]
    );
    assert_eq!(c.get_tenant("acme").await.unwrap(), patched);

    // A suspended tenant refuses changes; reactivating it allows them again.
    let suspended = c
        .update_tenant(
            "beta-2",
            &UpdateTenant {
                status: Some(TenantStatus::Suspended),
                ..UpdateTenant::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    let app = CreateApp::named("web");
    api_err(
        c.create_app("beta-2", &app, &w()).await,
        403,
        "tenant_suspended",
    );
    c.update_tenant(
        "beta-2",
        &UpdateTenant {
            status: Some(TenantStatus::Active),
            ..UpdateTenant::default()
        },
        &w(),
    )
    .await
    .unwrap();
    c.create_app("beta-2", &app, &w()).await.unwrap();

    // Apps.
    let shop = c
        .create_app(
            "acme",
            &CreateApp {
                name: "shop".into(),
                description: Some("The web shop".into()),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!((shop.tenant.as_str(), shop.name.as_str()), ("acme", "shop"));
    assert_eq!(shop.description, "The web shop");
    let api_app = c
        .create_app("acme", &CreateApp::named("api"), &w())
        .await
        .unwrap();
    assert_eq!(api_app.description, "");
    let mut app_names: Vec<String> = c
        .list_apps("acme")
        .await
        .unwrap()
        .apps
        .into_iter()
        .map(|a| a.name)
        .collect();
    app_names.sort();
    assert_eq!(app_names, ["api", "shop"]);
    assert_eq!(c.get_app("acme", "shop").await.unwrap(), shop);
    let shop2 = c
        .update_app(
            "acme",
            "shop",
            &UpdateApp {
                description: Some("Shop v2".into()),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(shop2.description, "Shop v2");
    assert_eq!(shop2.created_at, shop.created_at);
    assert!(shop2.revision > shop.revision);
    assert_eq!(c.get_app("acme", "shop").await.unwrap(), shop2);
    api_err(
        c.create_app("acme", &CreateApp::named("shop"), &w()).await,
        409,
        "app_already_exists",
    );
    api_err(c.get_app("acme", "nope").await, 404, "app_not_found");
    api_err(c.list_apps("nope").await, 404, "tenant_not_found");
    api_err(
        c.create_app("nope", &app, &w()).await,
        404,
        "tenant_not_found",
    );
    let e = api_err(
        c.create_app("acme", &CreateApp::named("Shop!"), &w()).await,
        400,
        "invalid_name",
    );
    assert_eq!(e.field(), Some("name"));

    // Environments, with approval settings.
    let approval = ApprovalSettings {
        required: true,
        min_approvals: 2,
        allow_self_approval: false,
    };
    let prod = c
        .create_env(
            "acme",
            "shop",
            &CreateEnvironment {
                name: "prod".into(),
                description: Some("Production".into()),
                approval: Some(approval),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(prod.approval, approval);
    assert_eq!(prod.description, "Production");
    let dev = c
        .create_env("acme", "shop", &CreateEnvironment::named("dev"), &w())
        .await
        .unwrap();
    assert_eq!(dev.approval, ApprovalSettings::default());
    let mut env_names: Vec<String> = c
        .list_envs("acme", "shop")
        .await
        .unwrap()
        .environments
        .into_iter()
        .map(|e| e.name)
        .collect();
    env_names.sort();
    assert_eq!(env_names, ["dev", "prod"]);
    assert_eq!(c.get_env("acme", "shop", "prod").await.unwrap(), prod);
    // Approval off again (the configs published below would otherwise become proposals;
    // approvals.rs covers those), with the other settings kept as given.
    let looser = ApprovalSettings {
        required: false,
        min_approvals: 1,
        allow_self_approval: true,
    };
    let prod2 = c
        .update_env(
            "acme",
            "shop",
            "prod",
            &UpdateEnvironment {
                description: Some("Live".into()),
                approval: Some(looser),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        (prod2.description.as_str(), prod2.approval),
        ("Live", looser)
    );
    assert_eq!(c.get_env("acme", "shop", "prod").await.unwrap(), prod2);
    api_err(
        c.create_env("acme", "shop", &CreateEnvironment::named("prod"), &w())
            .await,
        409,
        "environment_already_exists",
    );
    api_err(
        c.get_env("acme", "shop", "qa").await,
        404,
        "environment_not_found",
    );
    api_err(c.list_envs("acme", "nope").await, 404, "app_not_found");
    let e = api_err(
        c.create_env(
            "acme",
            "shop",
            &CreateEnvironment {
                name: "qa".into(),
                description: None,
                approval: Some(ApprovalSettings {
                    min_approvals: 0,
                    ..ApprovalSettings::default()
                }),
            },
            &w(),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_eq!(e.field(), Some("approval.min_approvals"));
    let e = api_err(
        c.update_app(
            "acme",
            "shop",
            &UpdateApp {
                description: Some("x".repeat(1025)),
            },
            &w(),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_eq!(e.field(), Some("description"));

    // Deletes: an empty parent goes without cascade; a parent with children needs it.
    let path = ConfigPath::new("acme", "shop", "prod", "db.toml");
    let config = new_config(&c, &path, Format::Toml).await;
    c.publish(config.id, &publish_body("a = 1\n", Strategy::Stable), &w())
        .await
        .unwrap();
    let d = c
        .delete_env("acme", "shop", "dev", false, &w())
        .await
        .unwrap();
    assert!(d.revision > config.revision);
    api_err(
        c.get_env("acme", "shop", "dev").await,
        404,
        "environment_not_found",
    );
    for e in [
        c.delete_env("acme", "shop", "prod", false, &w()).await,
        c.delete_app("acme", "shop", false, &w()).await,
        c.delete_tenant("acme", false, &w()).await,
    ] {
        api_err(e, 409, "has_children");
    }
    assert_eq!(
        c.get_config(config.id).await.unwrap().id,
        config.id,
        "a refused delete removes nothing"
    );
    c.delete_app("acme", "api", false, &w()).await.unwrap();
    api_err(c.get_app("acme", "api").await, 404, "app_not_found");
    let d2 = c
        .delete_env("acme", "shop", "prod", true, &w())
        .await
        .unwrap();
    assert!(d2.revision > d.revision);
    api_err(c.get_config(config.id).await, 404, "config_not_found");
    api_err(
        c.get_env("acme", "shop", "prod").await,
        404,
        "environment_not_found",
    );
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "config_not_found",
    );

    // Cascade from the app.
    c.create_env("acme", "shop", &CreateEnvironment::named("prod"), &w())
        .await
        .unwrap();
    let config = new_config(&c, &path, Format::Toml).await;
    c.publish(config.id, &publish_body("a = 2\n", Strategy::Stable), &w())
        .await
        .unwrap();
    assert_eq!(fetch(&c, &path, &FetchOptions::default()).await.version, 1);
    c.delete_app("acme", "shop", true, &w()).await.unwrap();
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "config_not_found",
    );
    api_err(c.get_config(config.id).await, 404, "config_not_found");
    api_err(
        c.get_env("acme", "shop", "prod").await,
        404,
        "environment_not_found",
    );
    api_err(c.get_app("acme", "shop").await, 404, "app_not_found");

    // Cascade from the tenant removes the whole tree.
    app_and_env(&c, "acme", "shop", "prod").await;
    let config = new_config(&c, &path, Format::Toml).await;
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "not_published",
    );
    c.delete_tenant("acme", true, &w()).await.unwrap();
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "config_not_found",
    );
    api_err(c.get_tenant("acme").await, 404, "tenant_not_found");
    api_err(c.get_app("acme", "shop").await, 404, "app_not_found");
    api_err(c.get_config(config.id).await, 404, "config_not_found");
    api_err(c.get_config_by_path(&path).await, 404, "config_not_found");
    let names: Vec<String> = c
        .list_tenants()
        .await
        .unwrap()
        .tenants
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["beta-2"]);
    // The name is free again, and the new tenant starts empty.
    c.create_tenant(&CreateTenant::named("acme"), &w())
        .await
        .unwrap();
    assert!(c.list_apps("acme").await.unwrap().apps.is_empty());
}

// ---- quotas -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_quotas_are_enforced_and_can_be_raised() {
    let (_node, c) = start_node().await;
    let small = QuotasPatch {
        max_apps: Some(2),
        max_configs: Some(2),
        max_config_bytes: Some(64),
        max_versions_per_config: Some(3),
    };
    let t = c
        .create_tenant(
            &CreateTenant {
                name: "tiny".into(),
                display_name: None,
                quotas: Some(small),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        t.quotas,
        Quotas {
            max_apps: 2,
            max_configs: 2,
            max_config_bytes: 64,
            max_versions_per_config: 3
        }
    );
    // A partial quota object keeps the defaults for the rest.
    let partial = c
        .create_tenant(
            &CreateTenant {
                name: "partial".into(),
                display_name: None,
                quotas: Some(QuotasPatch {
                    max_apps: Some(7),
                    ..QuotasPatch::default()
                }),
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        partial.quotas,
        Quotas {
            max_apps: 7,
            max_configs: 1000,
            max_config_bytes: 102_400,
            max_versions_per_config: 1000
        }
    );
    let e = api_err(
        c.create_tenant(
            &CreateTenant {
                name: "zero".into(),
                display_name: None,
                quotas: Some(QuotasPatch {
                    max_apps: Some(0),
                    ..QuotasPatch::default()
                }),
            },
            &w(),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_eq!(e.field(), Some("quotas.max_apps"));

    // max_apps: 429 naming the quota.
    for name in ["a1", "a2"] {
        let body = CreateApp::named(name);
        c.create_app("tiny", &body, &w()).await.unwrap();
    }
    let a3 = CreateApp::named("a3");
    let e = api_err(c.create_app("tiny", &a3, &w()).await, 429, "quota_exceeded");
    assert_eq!(e.field(), Some("max_apps"));
    assert!(e.message().contains("max_apps"), "{e}");
    assert_eq!(
        details(&e),
        vec![json!({"quota": "max_apps", "limit": 2, "requested": 3})]
    );
    api_err(c.get_app("tiny", "a3").await, 404, "app_not_found");

    // max_configs: 429.
    let env = CreateEnvironment::named("prod");
    c.create_env("tiny", "a1", &env, &w()).await.unwrap();
    let p1 = ConfigPath::new("tiny", "a1", "prod", "one.txt");
    let cfg = new_config(&c, &p1, Format::Text).await;
    new_config(
        &c,
        &ConfigPath::new("tiny", "a1", "prod", "two.txt"),
        Format::Text,
    )
    .await;
    let e = api_err(
        c.create_config(
            "tiny",
            "a1",
            "prod",
            &create_config_body("three.txt", Format::Text),
            &w(),
        )
        .await,
        429,
        "quota_exceeded",
    );
    assert_eq!(e.field(), Some("max_configs"));

    // max_config_bytes: 413, also for validate_only; exactly the limit is fine.
    let at_limit = vec![b'x'; 64];
    let over = vec![b'x'; 65];
    let e = api_err(
        c.create_version(cfg.id, NewVersion::new(over.clone(), "text/plain"), &w())
            .await,
        413,
        "quota_exceeded",
    );
    assert_eq!(e.field(), Some("max_config_bytes"));
    assert_eq!(
        details(&e),
        vec![json!({"quota": "max_config_bytes", "limit": 64, "requested": 65})]
    );
    let e = api_err(
        c.create_version(
            cfg.id,
            NewVersion::new(over.clone(), "text/plain").validate_only(true),
            &w(),
        )
        .await,
        413,
        "quota_exceeded",
    );
    assert_eq!(e.field(), Some("max_config_bytes"));
    let e = api_err(
        c.publish(
            cfg.id,
            &publish_body(&String::from_utf8(over.clone()).unwrap(), Strategy::Stable),
            &w(),
        )
        .await,
        413,
        "quota_exceeded",
    );
    assert_eq!(e.field(), Some("max_config_bytes"));

    // max_versions_per_config: 429 on the fourth version.
    for _ in 0..3 {
        push(&c, cfg.id, &at_limit, "text/plain").await;
    }
    let e = api_err(
        c.create_version(cfg.id, NewVersion::new(&b"four"[..], "text/plain"), &w())
            .await,
        429,
        "quota_exceeded",
    );
    assert_eq!(e.field(), Some("max_versions_per_config"));
    assert_eq!(version_ids(&c, cfg.id).await, [3, 2, 1]);

    // Raising quotas with PATCH lifts each limit; the others stay as they were.
    let raised = c
        .update_tenant(
            "tiny",
            &UpdateTenant {
                quotas: Some(QuotasPatch {
                    max_apps: Some(3),
                    max_versions_per_config: Some(4),
                    max_config_bytes: Some(65),
                    ..QuotasPatch::default()
                }),
                ..UpdateTenant::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(raised.quotas.max_configs, 2);
    c.create_app("tiny", &a3, &w()).await.unwrap();
    let v = push(&c, cfg.id, &over, "text/plain").await;
    assert_eq!(v.version_id, 4);
    // Retention runs before the version quota is checked: a config whose policy keeps it
    // under max_versions_per_config never gets stuck.
    let retention: RetentionPolicy =
        serde_json::from_value(json!({"strategy": "or", "rules": [{"type": "count", "keep": 2}]}))
            .unwrap();
    let rolling = c
        .update_config(
            cfg.id,
            &UpdateConfig {
                retention: Some(Some(retention)),
                ..UpdateConfig::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(version_ids(&c, rolling.id).await, [4, 3]);
    for i in 5..=12 {
        assert_eq!(
            push(&c, cfg.id, b"rolling", "text/plain").await.version_id,
            i
        );
    }
    assert_eq!(version_ids(&c, cfg.id).await, [12, 11]);
    // Deleting frees quota: one config less makes room for another.
    c.delete_config(cfg.id, &w()).await.unwrap();
    c.create_config(
        "tiny",
        "a1",
        "prod",
        &create_config_body("three.txt", Format::Text),
        &w(),
    )
    .await
    .unwrap();
}

// ---- formats, content types, parsing and schemas ------------------------------------------

struct FormatCase {
    format: Format,
    name: &'static str,
    /// The request types the contract lists for this format (fetch answers with the first).
    types: &'static [&'static str],
    /// A type another format uses, which this one must refuse with 415.
    foreign_type: &'static str,
    /// Valid content; `{n}` is replaced by a number so every version differs.
    valid: &'static str,
    invalid: &'static [u8],
    line: u64,
    column: Option<u64>,
}

const FORMATS: &[FormatCase] = &[
    FormatCase {
        format: Format::Json,
        name: "app.json",
        types: &["application/json"],
        foreign_type: "text/plain",
        valid: "{\"db\": {\"host\": \"db-{n}.internal\", \"port\": 5432},\n \"city\": \"Zürich\", \"tags\": []}\n",
        invalid: b"{\n  \"a\": 1,\n  oops\n}",
        line: 3,
        column: Some(3),
    },
    FormatCase {
        format: Format::Yaml,
        name: "app.yaml",
        types: &["application/yaml", "application/x-yaml", "text/yaml"],
        foreign_type: "application/json",
        valid: "# version {n}\ndb:\n  host: db.internal\n  port: 5432\nlist:\n  - a\n  - \"b: c\"\n",
        invalid: b"a: 1\n  b: 2\n",
        line: 2,
        column: Some(4),
    },
    FormatCase {
        format: Format::Toml,
        name: "app.toml",
        types: &["application/toml"],
        foreign_type: "application/yaml",
        valid: "title = \"v{n}\"\n\n[db]\nhost = \"db.internal\"\nport = 5432\n",
        invalid: b"a = 1\nb = = 2\n",
        line: 2,
        column: Some(5),
    },
    FormatCase {
        format: Format::Xml,
        name: "app.xml",
        types: &["application/xml", "text/xml"],
        foreign_type: "text/plain",
        valid: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config v=\"{n}\">\n  <db host=\"db.internal\" port=\"5432\"/>\n</config>\n",
        invalid: b"<a>\n  <b></c>\n</a>",
        line: 2,
        column: Some(6),
    },
    FormatCase {
        format: Format::Ini,
        name: "app.ini",
        types: &["text/plain"],
        foreign_type: "application/toml",
        valid: "; version {n}\n[db]\nhost = db.internal\nport = 5432\n\n[cache]\nttl=30\n",
        invalid: b"[db]\nhost = x\n=orphan\n",
        line: 3,
        column: Some(1),
    },
    FormatCase {
        format: Format::Properties,
        name: "app.properties",
        types: &["text/plain"],
        foreign_type: "application/xml",
        valid: "# version {n}\ndb.host = db.internal\ndb.port=5432\ngreeting = h\\u00e9llo\n",
        invalid: b"ok = 1\nbad = \\uZZZZ\n",
        // java-properties reports the line only.
        line: 2,
        column: None,
    },
    FormatCase {
        format: Format::Text,
        name: "motd.txt",
        types: &["text/plain"],
        foreign_type: "application/json",
        valid: "Welcome {n}!\r\nTabs\tand trailing spaces   \n\n  no final newline",
        invalid: b"ok\nbad \xff",
        line: 2,
        column: Some(5),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_seven_formats_parse_store_and_serve_their_content() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    for case in FORMATS {
        let f = case.format;
        let path = ConfigPath::new("acme", "shop", "prod", case.name);
        let config = new_config(&c, &path, f).await;
        assert_eq!((config.format, config.latest_version), (f, 0));
        assert_eq!(config.path, format!("acme/shop/prod/{}", case.name));
        assert_eq!(c.get_config_by_path(&path).await.unwrap(), config);

        // A valid version with each type the format accepts (parameters ignored), and with
        // application/octet-stream.
        let mut request_types: Vec<String> = case.types.iter().map(|t| (*t).to_owned()).collect();
        request_types.push(format!("{}; charset=utf-8", case.types[0]));
        request_types.push("application/octet-stream".to_owned());
        let mut contents = Vec::new();
        for (i, ct) in request_types.iter().enumerate() {
            let content = case.valid.replace("{n}", &i.to_string());
            let created = push(&c, config.id, content.as_bytes(), ct).await;
            assert_eq!(created.version_id, i as u64 + 1, "{f} as {ct}");
            assert_eq!(created.hash, sha(content.as_bytes()), "{f}");
            assert!(!created.validate_only);
            contents.push(content);
        }
        let n = contents.len() as u64;

        // Wrong type: 415. Content that does not parse: 422 with the position. Neither uses
        // up a version number.
        let e = api_err(
            c.create_version(
                config.id,
                NewVersion::new(case.valid.as_bytes().to_vec(), case.foreign_type),
                &w(),
            )
            .await,
            415,
            "unsupported_media_type",
        );
        assert!(e.message().contains(case.types[0]), "{f}: {e}");
        let e = api_err(
            c.create_version(
                config.id,
                NewVersion::new(case.invalid.to_vec(), case.types[0]),
                &w(),
            )
            .await,
            422,
            "content_invalid",
        );
        assert_eq!(e.field(), Some("content"), "{f}");
        let d = details(&e);
        assert_eq!(d.len(), 1, "{f}: {d:?}");
        assert_eq!(d[0]["format"], f.as_str(), "{f}: {d:?}");
        assert_eq!(d[0]["line"], case.line, "{f}: {d:?}");
        match case.column {
            Some(col) => assert_eq!(d[0]["column"], col, "{f}: {d:?}"),
            None => assert!(d[0]["column"].is_null(), "{f}: {d:?}"),
        }
        assert_eq!(
            c.get_config(config.id).await.unwrap().latest_version,
            n,
            "{f}"
        );

        // Every version reads back byte for byte, with its metadata.
        for (i, content) in contents.iter().enumerate() {
            let v = i as u64 + 1;
            let stored = c.get_version_content(config.id, v).await.unwrap();
            assert_eq!(stored.as_ref(), content.as_bytes(), "{f} v{v}");
            let meta = c.get_version(config.id, v).await.unwrap();
            assert_eq!(meta.hash, sha(content.as_bytes()), "{f} v{v}");
            assert_eq!(meta.size, content.len() as u64, "{f} v{v}");
            assert_eq!(meta.format, f);
        }

        // Released, the latest is served with the format's first type.
        set_rules(&c, config.id, vec![ReleaseRule::default_to(n)]).await;
        let got = fetch(&c, &path, &FetchOptions::default()).await;
        let latest = contents.last().unwrap();
        assert_eq!(got.content.as_ref(), latest.as_bytes(), "{f}");
        let essence = got.content_type.split(';').next().unwrap().trim();
        assert_eq!(
            essence, case.types[0],
            "{f}: Content-Type {}",
            got.content_type
        );
        assert_eq!(got.version, n);
        assert_eq!(got.hash, sha(latest.as_bytes()));
        assert_eq!(
            got.revision,
            c.get_config(config.id).await.unwrap().revision
        );
    }
    let list = c.list_configs("acme", "shop", "prod").await.unwrap();
    let mut names: Vec<&str> = list.configs.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = FORMATS.iter().map(|f| f.name).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schemas_reject_violations_with_json_pointers() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let schema = json!({
        "type": "object",
        "required": ["port"],
        "properties": {
            "port": {"type": "integer", "minimum": 1},
            "host": {"type": "string"}
        }
    });
    let mut configs = Vec::new();
    for (name, format) in [
        ("svc.json", Format::Json),
        ("svc.yaml", Format::Yaml),
        ("svc.toml", Format::Toml),
    ] {
        let body = CreateConfig {
            schema: Some(schema.clone()),
            ..create_config_body(name, format)
        };
        let view = c
            .create_config("acme", "shop", "prod", &body, &w())
            .await
            .unwrap();
        assert_eq!(
            view.schema.as_ref(),
            Some(&schema),
            "the schema is returned as sent"
        );
        configs.push(view);
    }
    let bad: [(&str, &str); 3] = [
        ("application/json", "{\"port\": 0, \"host\": 5}"),
        ("application/yaml", "port: 0\nhost: 5\n"),
        ("application/toml", "port = 0\nhost = 5\n"),
    ];
    let good: [&str; 3] = [
        "{\"port\": 8080, \"host\": \"a\"}",
        "port: 8080\nhost: a\n",
        "port = 8080\nhost = \"a\"\n",
    ];
    for ((config, (ct, bad)), good) in configs.iter().zip(bad).zip(good) {
        let e = api_err(
            c.create_version(
                config.id,
                NewVersion::new(bad.as_bytes().to_vec(), ct),
                &w(),
            )
            .await,
            422,
            "schema_violation",
        );
        assert_eq!(e.field(), Some("content"));
        let pointers: BTreeSet<String> = details(&e)
            .iter()
            .map(|d| {
                assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
                d["pointer"].as_str().expect("pointer").to_owned()
            })
            .collect();
        assert_eq!(
            pointers,
            BTreeSet::from(["/host".to_owned(), "/port".to_owned()]),
            "{}",
            config.name
        );
        // validate_only checks the schema too.
        api_err(
            c.create_version(
                config.id,
                NewVersion::new(bad.as_bytes().to_vec(), ct).validate_only(true),
                &w(),
            )
            .await,
            422,
            "schema_violation",
        );
        assert_eq!(
            push(&c, config.id, good.as_bytes(), ct).await.version_id,
            1,
            "{}",
            config.name
        );
    }
    // A missing required property points at the root.
    let e = api_err(
        c.create_version(
            configs[0].id,
            NewVersion::new(&b"{\"host\": \"a\"}"[..], "application/json"),
            &w(),
        )
        .await,
        422,
        "schema_violation",
    );
    assert_eq!(details(&e).len(), 1);
    assert_eq!(details(&e)[0]["pointer"], "");

    // ini and properties validate as objects of strings.
    let props_schema = json!({"type": "object", "required": ["db.port"], "properties": {"db.port": {"pattern": "^[0-9]+$"}}});
    let props = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                schema: Some(props_schema),
                ..create_config_body("db.properties", Format::Properties)
            },
            &w(),
        )
        .await
        .unwrap();
    let e = api_err(
        c.create_version(
            props.id,
            NewVersion::new(&b"db.port = fast\n"[..], "text/plain"),
            &w(),
        )
        .await,
        422,
        "schema_violation",
    );
    assert_eq!(details(&e)[0]["pointer"], "/db.port");
    push(&c, props.id, b"db.port = 5432\n", "text/plain").await;
    let ini_schema =
        json!({"type": "object", "properties": {"db": {"type": "object", "required": ["host"]}}});
    let ini = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                schema: Some(ini_schema),
                ..create_config_body("db.ini", Format::Ini)
            },
            &w(),
        )
        .await
        .unwrap();
    let e = api_err(
        c.create_version(
            ini.id,
            NewVersion::new(&b"[db]\nport = 1\n"[..], "text/plain"),
            &w(),
        )
        .await,
        422,
        "schema_violation",
    );
    assert_eq!(details(&e)[0]["pointer"], "/db");
    push(&c, ini.id, b"[db]\nhost = x\n", "text/plain").await;

    // Formats without a JSON shape cannot carry a schema; a schema must be a schema.
    let e = api_err(
        c.create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                schema: Some(json!({"type": "object"})),
                ..create_config_body("page.xml", Format::Xml)
            },
            &w(),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_eq!(e.field(), Some("schema"));
    api_err(
        c.create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                schema: Some(json!({"type": 5})),
                ..create_config_body("broken.json", Format::Json)
            },
            &w(),
        )
        .await,
        400,
        "invalid_schema",
    );

    // PATCH: clearing the schema lifts the check; setting another one enforces it.
    let cleared = c
        .update_config(
            configs[0].id,
            &UpdateConfig {
                schema: Some(None),
                ..UpdateConfig::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(cleared.schema, None);
    assert_eq!(
        push(
            &c,
            configs[0].id,
            b"{\"port\": \"any\"}",
            "application/json"
        )
        .await
        .version_id,
        2
    );
    let strict = json!({"type": "object", "additionalProperties": false});
    let patched = c
        .update_config(
            configs[0].id,
            &UpdateConfig {
                schema: Some(Some(strict.clone())),
                description: Some("strict now".into()),
                ..UpdateConfig::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.schema.as_ref(), patched.description.as_str()),
        (Some(&strict), "strict now")
    );
    let e = api_err(
        c.create_version(
            configs[0].id,
            NewVersion::new(&b"{\"x\": 1}"[..], "application/json"),
            &w(),
        )
        .await,
        422,
        "schema_violation",
    );
    assert!(!details(&e).is_empty());
    assert_eq!(c.get_config(configs[0].id).await.unwrap().latest_version, 2);
}

// ---- versions -----------------------------------------------------------------------------

fn toml_version(i: u64) -> String {
    format!("# revision {i}\nn = {i}\nname = \"v{i}\"\nconstant = true\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_page_newest_first_and_read_back_exactly() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let config = new_config(
        &c,
        &ConfigPath::new("acme", "shop", "prod", "db.toml"),
        Format::Toml,
    )
    .await;
    let mut revisions = Vec::new();
    for i in 1..=7u64 {
        let v = c
            .create_version(
                config.id,
                NewVersion::new(toml_version(i), "application/toml")
                    .description(format!("rev {i} ✓")),
                &w(),
            )
            .await
            .unwrap();
        assert_eq!(v.version_id, i);
        revisions.push(v.revision);
    }
    assert!(revisions.windows(2).all(|p| p[0] < p[1]), "{revisions:?}");
    let after = c.get_config(config.id).await.unwrap();
    assert_eq!(after.latest_version, 7);
    assert_eq!(
        after.revision, revisions[6],
        "the config's revision is that of its last change"
    );

    // Newest first; paging with limit and cursor.
    let all = c.list_versions(config.id, None, None).await.unwrap();
    assert_eq!(
        all.versions
            .iter()
            .map(|v| v.version_id)
            .collect::<Vec<_>>(),
        [7, 6, 5, 4, 3, 2, 1]
    );
    assert_eq!(all.next_cursor, None);
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = c
            .list_versions(config.id, Some(3), cursor.as_deref())
            .await
            .unwrap();
        pages.push(
            page.versions
                .iter()
                .map(|v| v.version_id)
                .collect::<Vec<_>>(),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, [vec![7, 6, 5], vec![4, 3, 2], vec![1]]);
    let exact = c.list_versions(config.id, Some(7), None).await.unwrap();
    assert_eq!(exact.versions.len(), 7);
    assert_eq!(exact.next_cursor, None, "no cursor when nothing is left");
    for bad in [Some(0), Some(1001)] {
        let e = api_err(
            c.list_versions(config.id, bad, None).await,
            400,
            "invalid_query",
        );
        assert_eq!(e.field(), Some("limit"));
    }
    api_err(
        c.list_versions(config.id, Some(2), Some("not-a-cursor"))
            .await,
        400,
        "invalid_query",
    );
    api_err(
        c.list_versions(9999, None, None).await,
        404,
        "config_not_found",
    );

    // Metadata and content of each version.
    for (i, listed) in all.versions.iter().rev().enumerate() {
        let v = i as u64 + 1;
        let meta = c.get_version(config.id, v).await.unwrap();
        assert_eq!(&meta, listed, "list and get agree");
        let content = toml_version(v);
        assert_eq!(meta.config_id, config.id);
        assert_eq!(meta.version_id, v);
        assert_eq!(meta.hash, sha(content.as_bytes()));
        assert_eq!(meta.size, content.len() as u64);
        assert_eq!(meta.format, Format::Toml);
        assert_eq!(meta.description, format!("rev {v} ✓"));
        assert_eq!(meta.revision, revisions[i]);
        assert!(!meta.created_at.is_empty());
        let stored = c.get_version_content(config.id, v).await.unwrap();
        assert_eq!(stored.as_ref(), content.as_bytes());
    }
    api_err(c.get_version(config.id, 8).await, 404, "version_not_found");
    api_err(
        c.get_version_content(config.id, 0).await,
        404,
        "version_not_found",
    );

    // Diff: a unified diff from a to b.
    let diff = c.diff_versions(config.id, 2, 5).await.unwrap();
    assert!(diff.starts_with("--- version 2\n+++ version 5\n"), "{diff}");
    for line in [
        "-n = 2",
        "+n = 5",
        "-name = \"v2\"",
        "+name = \"v5\"",
        " constant = true",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "missing {line:?} in\n{diff}"
        );
    }
    let same = c.diff_versions(config.id, 4, 4).await.unwrap();
    assert!(
        !same
            .lines()
            .any(|l| l.starts_with('+') && !l.starts_with("+++")),
        "{same}"
    );
    api_err(
        c.diff_versions(config.id, 2, 99).await,
        404,
        "version_not_found",
    );

    // validate_only: checked, answered with the hash, and nothing is stored.
    let candidate = toml_version(100);
    let checked = c
        .create_version(
            config.id,
            NewVersion::new(candidate.clone(), "application/toml").validate_only(true),
            &w(),
        )
        .await
        .unwrap();
    assert!(checked.validate_only);
    assert_eq!(checked.version_id, 0);
    assert_eq!(checked.hash, sha(candidate.as_bytes()));
    api_err(
        c.create_version(
            config.id,
            NewVersion::new(&b"n = = 1"[..], "application/toml").validate_only(true),
            &w(),
        )
        .await,
        422,
        "content_invalid",
    );
    api_err(
        c.create_version(
            config.id,
            NewVersion::new(candidate.clone(), "application/json").validate_only(true),
            &w(),
        )
        .await,
        415,
        "unsupported_media_type",
    );
    let unchanged = c.get_config(config.id).await.unwrap();
    assert_eq!(unchanged, after, "validate_only changes nothing");
    assert_eq!(version_ids(&c, config.id).await, [7, 6, 5, 4, 3, 2, 1]);
    let next = push(&c, config.id, candidate.as_bytes(), "application/toml").await;
    assert_eq!(next.version_id, 8, "the next real version is n+1");
    assert_eq!(next.hash, checked.hash);
    // A rejected version does not use up a number either.
    api_err(
        c.create_version(
            config.id,
            NewVersion::new(&b"[[["[..], "application/toml"),
            &w(),
        )
        .await,
        422,
        "content_invalid",
    );
    assert_eq!(
        push(&c, config.id, b"n = 9\n", "application/toml")
            .await
            .version_id,
        9
    );

    // Concurrent writers, some of them rejected: the numbers stay 1..n without gaps or
    // duplicates.
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let content = if i % 4 == 3 {
                "broken = = 1".to_owned()
            } else {
                format!("n = {}\n", 100 + i)
            };
            c.create_version(
                config.id,
                NewVersion::new(content, "application/toml"),
                &w(),
            )
            .await
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => created.push(v.version_id),
            Err(e) => assert_eq!(e.code(), "content_invalid", "{e}"),
        }
    }
    created.sort_unstable();
    assert_eq!(created, (10..=21).collect::<Vec<u64>>());
    assert_eq!(
        version_ids(&c, config.id).await,
        (1..=21).rev().collect::<Vec<u64>>()
    );

    // Concurrent retries with one idempotency key: one version, one answer.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let v = NewVersion::new(&b"n = 500\n"[..], "application/toml");
            c.create_version(config.id, v, &key("same-retry"))
                .await
                .unwrap()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].version_id, 22);
    assert_eq!(c.get_config(config.id).await.unwrap().latest_version, 22);
}

// ---- releases, publish, rollback, resolve -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_publish_rollback_and_resolve_follow_the_rules() {
    let (node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let path = ConfigPath::new("acme", "shop", "prod", "flags.json");
    let config = new_config(&c, &path, Format::Json).await;
    let content = |i: u64| format!("{{\"version\": {i}}}");
    for i in 1..=3 {
        push(&c, config.id, content(i).as_bytes(), "application/json").await;
    }

    // Nothing released yet: versions alone change nothing clients see.
    let initial = c.get_releases(config.id).await.unwrap();
    assert!(initial.releases.is_empty());
    assert_eq!(initial.config_id, config.id);
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "not_published",
    );
    api_err(
        c.resolve(config.id, &BTreeMap::new(), None).await,
        404,
        "not_published",
    );
    // A canary needs a default rule to fall back to.
    api_err(
        c.publish(
            config.id,
            &publish_body("{}", canary(&[("canary", "true")], None, None)),
            &w(),
        )
        .await,
        400,
        "invalid_release_rules",
    );

    // PUT with If-Match: the current revision works, a stale one is refused.
    let stale = initial.revision;
    let put = c
        .put_releases(
            config.id,
            &PutReleases {
                releases: vec![ReleaseRule::default_to(1)],
                comment: Some("first release".into()),
            },
            &w().if_match(stale),
        )
        .await
        .unwrap();
    assert_eq!(put.releases, [ReleaseRule::default_to(1)]);
    assert_eq!(put.comment.as_deref(), Some("first release"));
    assert!(put.revision > stale);
    let e = api_err(
        c.put_releases(
            config.id,
            &PutReleases {
                releases: vec![ReleaseRule::default_to(2)],
                comment: None,
            },
            &w().if_match(stale),
        )
        .await,
        409,
        "revision_mismatch",
    );
    assert_eq!(
        details(&e),
        vec![json!({"expected": stale, "actual": put.revision})]
    );
    assert_eq!(
        c.get_releases(config.id).await.unwrap(),
        put,
        "a refused PUT changes nothing"
    );
    assert_eq!(fetch(&c, &path, &FetchOptions::default()).await.version, 1);
    // If-Match on other writes too.
    api_err(
        c.publish(
            config.id,
            &publish_body("{}", Strategy::Stable),
            &w().if_match(stale),
        )
        .await,
        409,
        "revision_mismatch",
    );
    api_err(
        c.create_version(
            config.id,
            NewVersion::new(&b"{}"[..], "application/json"),
            &w().if_match(stale),
        )
        .await,
        409,
        "revision_mismatch",
    );

    // Invalid rule lists: 400.
    for (rules, code) in [
        (
            vec![rule(&[("a", "b")], None, 1, 0)],
            "invalid_release_rules",
        ),
        (
            vec![ReleaseRule::default_to(1), ReleaseRule::default_to(2)],
            "invalid_release_rules",
        ),
        (vec![ReleaseRule::default_to(42)], "unknown_version"),
    ] {
        api_err(
            c.put_releases(
                config.id,
                &PutReleases {
                    releases: rules,
                    comment: None,
                },
                &w(),
            )
            .await,
            400,
            code,
        );
    }

    // Publish stable: the default rule moves to the new version, other rules stay.
    let with_pin = set_rules(
        &c,
        config.id,
        vec![
            ReleaseRule::default_to(1),
            rule(&[("ip", "10.0.0.7")], None, 2, 0),
        ],
    )
    .await;
    let p4: PublishResponse = c
        .publish(
            config.id,
            &PublishRequest {
                content: content(4),
                description: Some("four".into()),
                strategy: Strategy::Stable,
            },
            &w().if_match(with_pin),
        )
        .await
        .unwrap();
    assert_eq!(p4.version_id, 4);
    assert_eq!(p4.hash, sha(content(4).as_bytes()));
    assert_eq!(
        p4.releases,
        [
            ReleaseRule::default_to(4),
            rule(&[("ip", "10.0.0.7")], None, 2, 0)
        ]
    );
    assert_eq!(
        c.get_version(config.id, 4).await.unwrap().description,
        "four"
    );
    assert_eq!(
        c.get_releases(config.id).await.unwrap().releases,
        p4.releases
    );
    assert_eq!(
        c.get_releases(config.id).await.unwrap().revision,
        p4.revision
    );

    // Publish canary: a labelled rule at priority 100 by default; a percent rule at the given
    // priority; the same labels and percent again replace their rule.
    let p5 = c
        .publish(
            config.id,
            &publish_body(&content(5), canary(&[("canary", "true")], None, None)),
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(p5.version_id, 5);
    assert_eq!(p5.releases.len(), 3);
    assert_eq!(p5.releases[2], rule(&[("canary", "true")], None, 5, 100));
    let p6 = c
        .publish(
            config.id,
            &publish_body(&content(6), canary(&[], Some(30), Some(50))),
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(p6.releases[3], rule(&[], Some(30), 6, 50));
    let p7 = c
        .publish(
            config.id,
            &publish_body(&content(7), canary(&[("canary", "true")], None, Some(200))),
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(
        p7.releases,
        [
            ReleaseRule::default_to(4),
            rule(&[("ip", "10.0.0.7")], None, 2, 0),
            rule(&[("canary", "true")], None, 7, 200),
            rule(&[], Some(30), 6, 50),
        ]
    );
    assert_eq!(
        c.get_releases(config.id).await.unwrap().comment,
        None,
        "publish clears the comment"
    );
    // Same labels with another percent is another rule.
    let p8 = c
        .publish(
            config.id,
            &publish_body(&content(8), canary(&[("canary", "true")], Some(10), None)),
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(p8.releases.len(), 5);
    assert_eq!(p8.releases[..4], p7.releases[..]);
    assert_eq!(
        p8.releases[4],
        rule(&[("canary", "true")], Some(10), 8, 100)
    );
    let p7 = c
        .put_releases(
            config.id,
            &PutReleases {
                releases: p7.releases.clone(),
                comment: Some("drop the 10 % canary".into()),
            },
            &w().if_match(p8.revision),
        )
        .await
        .unwrap();
    // Invalid content in a publish uses up nothing.
    api_err(
        c.publish(config.id, &publish_body("{nope", Strategy::Stable), &w())
            .await,
        422,
        "content_invalid",
    );
    assert_eq!(c.get_config(config.id).await.unwrap().latest_version, 8);

    // The resolve simulator: labels and client ids, as headers.
    let inside = (0..)
        .map(|i| format!("client-{i}"))
        .find(|id| conflux_domain::bucket(config.id, id) < 30)
        .unwrap();
    let outside = (0..)
        .map(|i| format!("client-{i}"))
        .find(|id| conflux_domain::bucket(config.id, id) >= 30)
        .unwrap();
    // (labels, client id, expected version, expected rule index)
    let cases: [Probe<'_>; 7] = [
        (&[], None, 4, 0),
        (&[("ip", "10.0.0.7")], None, 2, 1),
        (&[("canary", "true")], None, 7, 2),
        (&[("canary", "false")], None, 4, 0),
        (&[], Some(inside.as_str()), 6, 3),
        (&[], Some(outside.as_str()), 4, 0),
        // Priority 200 beats 50, and extra labels are ignored.
        (
            &[("canary", "true"), ("region", "eu")],
            Some(inside.as_str()),
            7,
            2,
        ),
    ];
    for (pairs, id, version, index) in cases {
        let r = c.resolve(config.id, &labels(pairs), id).await.unwrap();
        assert_eq!(
            (r.version_id, r.rule_index),
            (version, index),
            "{pairs:?} {id:?}"
        );
        assert_eq!(r.rule, p7.releases[index]);
        assert_eq!(r.revision, p7.revision);
        let got = fetch(&c, &path, &fetch_opts(pairs, id)).await;
        assert_eq!(
            got.version, version,
            "fetch agrees with resolve for {pairs:?} {id:?}"
        );
        assert_eq!(got.content.as_ref(), content(version).as_bytes());
    }
    // ... and as `?label.<k>=<v>` query parameters.
    let raw: Value = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/mgt/configs/{}/resolve?label.canary=true&label.region=eu",
            node.api_url(),
            config.id
        ))
        .bearer_auth(node.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (raw["version_id"].as_u64(), raw["rule_index"].as_u64()),
        (Some(7), Some(2)),
        "{raw}"
    );

    // ... and the client id as `?client_id=`.
    let raw: Value = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/mgt/configs/{}/resolve?client_id={inside}",
            node.api_url(),
            config.id
        ))
        .bearer_auth(node.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (raw["version_id"].as_u64(), raw["rule_index"].as_u64()),
        (Some(6), Some(3)),
        "{raw}"
    );

    // Concurrent rule changes guarded by the same If-Match: exactly one wins.
    let current = c.get_releases(config.id).await.unwrap();
    let mut tasks = Vec::new();
    for v in 1..=5u64 {
        let c = c.clone();
        let mut rules = current.releases.clone();
        rules[0] = ReleaseRule::default_to(v);
        tasks.push(tokio::spawn(async move {
            let body = PutReleases {
                releases: rules,
                comment: None,
            };
            c.put_releases(config.id, &body, &w().if_match(current.revision))
                .await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(view) => winners.push(view),
            Err(e) => assert_eq!(e.code(), "revision_mismatch", "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(c.get_releases(config.id).await.unwrap(), winners[0]);
    let p7 = c
        .put_releases(
            config.id,
            &PutReleases {
                releases: p7.releases.clone(),
                comment: None,
            },
            &w().if_match(winners[0].revision),
        )
        .await
        .unwrap();

    // Rollback stable_only: the default rule points back, every other rule stays.
    let rb = c
        .rollback(
            config.id,
            &RollbackRequest {
                version_id: 3,
                mode: RollbackMode::StableOnly,
            },
            &w(),
        )
        .await
        .unwrap();
    let mut expected = p7.releases.clone();
    expected[0] = ReleaseRule::default_to(3);
    assert_eq!(rb.releases, expected);
    assert!(rb.revision > p7.revision);
    assert_eq!(rb.comment.as_deref(), Some("rollback to version 3"));
    assert_eq!(fetch(&c, &path, &FetchOptions::default()).await.version, 3);
    assert_eq!(
        fetch(&c, &path, &fetch_opts(&[("canary", "true")], None))
            .await
            .version,
        7
    );
    assert_eq!(
        c.get_config(config.id).await.unwrap().latest_version,
        8,
        "a rollback creates no version"
    );

    // Rollback emergency: one default rule, nothing else.
    let rb = c
        .rollback(
            config.id,
            &RollbackRequest {
                version_id: 2,
                mode: RollbackMode::Emergency,
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(rb.releases, [ReleaseRule::default_to(2)]);
    assert_eq!(
        c.get_releases(config.id).await.unwrap().releases,
        rb.releases
    );
    for (pairs, id) in [
        (&[("canary", "true")][..], None),
        (&[][..], Some(inside.as_str())),
    ] {
        assert_eq!(fetch(&c, &path, &fetch_opts(pairs, id)).await.version, 2);
    }
    let e = api_err(
        c.rollback(
            config.id,
            &RollbackRequest {
                version_id: 99,
                mode: RollbackMode::Emergency,
            },
            &w(),
        )
        .await,
        400,
        "unknown_version",
    );
    assert_eq!(e.field(), Some("version_id"));
    api_err(
        c.rollback(
            config.id,
            &RollbackRequest {
                version_id: 1,
                mode: RollbackMode::StableOnly,
            },
            &w().if_match(p7.revision),
        )
        .await,
        409,
        "revision_mismatch",
    );
    // Emptying the rule list unpublishes.
    set_rules(&c, config.id, vec![]).await;
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "not_published",
    );
}

// ---- fetch --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_serves_headers_etags_canaries_percentages_and_fresh_reads() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let path = ConfigPath::new("acme", "shop", "prod", "app.yaml");
    let config = new_config(&c, &path, Format::Yaml).await;

    // A read that waits for a revision this node will never reach in time: 503, retryable.
    let far = c.ready().await.unwrap().applied_index + 10_000;
    let far_fetch = {
        let (c, path) = (c.clone(), path.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let opts = FetchOptions {
                min_revision: Some(far),
                ..FetchOptions::default()
            };
            (c.fetch(&path, &opts).await, start.elapsed())
        })
    };

    let stable = "# stable\nfeature: off\nlimit: 10\n";
    let canary_content = "# canary\nfeature: on\nlimit: 10\n";
    let percent_content = "# percent\nfeature: on\nlimit: 20\n";
    c.publish(config.id, &publish_body(stable, Strategy::Stable), &w())
        .await
        .unwrap();
    c.publish(
        config.id,
        &publish_body(canary_content, canary(&[("canary", "true")], None, None)),
        &w(),
    )
    .await
    .unwrap();
    let last = c
        .publish(
            config.id,
            &publish_body(percent_content, canary(&[], Some(25), Some(50))),
            &w(),
        )
        .await
        .unwrap();

    // Headers: type of the format, version, hash of the exact bytes, revision, ETag.
    let got = fetch(&c, &path, &FetchOptions::default()).await;
    assert_eq!(got.content.as_ref(), stable.as_bytes());
    assert_eq!(
        got.content_type.split(';').next().unwrap().trim(),
        "application/yaml"
    );
    assert_eq!(got.version, 1);
    assert_eq!(got.hash, sha(&got.content));
    assert_eq!(got.revision, last.revision);
    assert_eq!(
        got.revision,
        c.get_config(config.id).await.unwrap().revision
    );
    assert!(!got.etag.is_empty());

    // If-None-Match with the current ETag: 304; with another version's ETag: the content.
    let inm = |etag: &str, pairs: &[(&str, &str)]| FetchOptions {
        if_none_match: Some(etag.to_owned()),
        ..fetch_opts(pairs, None)
    };
    assert_eq!(
        c.fetch(&path, &inm(&got.etag, &[])).await.unwrap(),
        Fetched::NotModified
    );
    let canary_got = fetch(&c, &path, &fetch_opts(&[("canary", "true")], None)).await;
    assert_eq!(canary_got.version, 2);
    assert_eq!(canary_got.content.as_ref(), canary_content.as_bytes());
    assert_eq!(canary_got.hash, sha(canary_content.as_bytes()));
    assert_ne!(canary_got.etag, got.etag);
    let back = fetch(&c, &path, &inm(&canary_got.etag, &[])).await;
    assert_eq!(
        back, got,
        "a non-canary client holding the canary's ETag gets the stable content"
    );
    assert_eq!(
        c.fetch(&path, &inm(&canary_got.etag, &[("canary", "true")]))
            .await
            .unwrap(),
        Fetched::NotModified
    );
    // Non-canary clients: other values of the label, other labels.
    for pairs in [
        &[("canary", "false")][..],
        &[("region", "eu")][..],
        &[("canary", "TRUE")][..],
    ] {
        assert_eq!(
            fetch(&c, &path, &fetch_opts(pairs, None)).await.version,
            1,
            "{pairs:?}"
        );
    }

    // Percentage rule: 400 random client ids; each lands where its bucket says, every time,
    // and the share is plausible for 25 %.
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let mut in_canary = 0;
    for _ in 0..400 {
        let id = format!("host-{:016x}", rng.next());
        let expected = if conflux_domain::bucket(config.id, &id) < 25 {
            3
        } else {
            1
        };
        let first = fetch(&c, &path, &fetch_opts(&[], Some(&id))).await;
        let second = fetch(&c, &path, &fetch_opts(&[], Some(&id))).await;
        assert_eq!(first.version, expected, "client {id} (seed {seed})");
        assert_eq!(first, second, "client {id} must be stable (seed {seed})");
        // The `client_id` label identifies a client like X-Client-Id.
        let by_label = fetch(&c, &path, &fetch_opts(&[("client_id", &id)], None)).await;
        assert_eq!(
            by_label.version, expected,
            "client {id} by label (seed {seed})"
        );
        if first.version == 3 {
            assert_eq!(first.content.as_ref(), percent_content.as_bytes());
            in_canary += 1;
        }
    }
    assert!(
        (60..=140).contains(&in_canary),
        "{in_canary} of 400 clients got the 25 % canary (seed {seed})"
    );
    // A canary client in the percentage still gets the higher-priority labelled canary.
    let inside = (0..)
        .map(|i| format!("c{i}"))
        .find(|id| conflux_domain::bucket(config.id, id) < 25)
        .unwrap();
    assert_eq!(
        fetch(&c, &path, &fetch_opts(&[("canary", "true")], Some(&inside)))
            .await
            .version,
        2
    );

    // min_revision already applied: answered at once.
    let start = Instant::now();
    let fresh = fetch(
        &c,
        &path,
        &FetchOptions {
            min_revision: Some(got.revision),
            ..FetchOptions::default()
        },
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(fresh, got);
    // min_revision one ahead: the read waits for the write that reaches it. The leader trims
    // the audit outbox of the writes above through Raft (an entry of its own, within a
    // second); wait until that is applied, so the next entry is the write below.
    let settled = c.ready().await.unwrap().applied_index;
    common_wait_for_index(&c, settled + 1, Duration::from_secs(3)).await;
    let target = c.ready().await.unwrap().applied_index + 1;
    let waiting = {
        let (c, path) = (c.clone(), path.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let opts = FetchOptions {
                min_revision: Some(target),
                ..FetchOptions::default()
            };
            (c.fetch(&path, &opts).await, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newer = "# stable 2\nfeature: off\nlimit: 11\n";
    let p4 = c
        .publish(config.id, &publish_body(newer, Strategy::Stable), &w())
        .await
        .unwrap();
    assert!(p4.revision >= target);
    let (answer, waited) = waiting.await.unwrap();
    let (version, revision, content) = match answer {
        Ok(Fetched::Modified {
            version,
            revision,
            content,
            ..
        }) => (version, revision, content),
        other => panic!("min_revision read: {other:?}"),
    };
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}, before the write"
    );
    assert!(
        revision >= target,
        "revision {revision} < min_revision {target}"
    );
    assert_eq!((version, content.as_ref()), (4, newer.as_bytes()));
    // The old ETag no longer matches once the default moved.
    let moved = fetch(&c, &path, &inm(&got.etag, &[])).await;
    assert_eq!((moved.version, moved.revision), (4, p4.revision));

    // A new version or a metadata change changes nothing clients get, but it is a change of
    // the config: X-Conflux-Revision follows the config's revision.
    let draft = push(
        &c,
        config.id,
        b"# draft\nfeature: maybe\n",
        "application/yaml",
    )
    .await;
    assert_eq!(draft.version_id, 5);
    let after_push = fetch(&c, &path, &FetchOptions::default()).await;
    assert_eq!(
        (after_push.version, &after_push.content, &after_push.etag),
        (4, &moved.content, &moved.etag)
    );
    assert_eq!(
        after_push.revision, draft.revision,
        "X-Conflux-Revision after a new version"
    );
    assert_eq!(
        c.fetch(&path, &inm(&moved.etag, &[])).await.unwrap(),
        Fetched::NotModified
    );
    let described = c
        .update_config(
            config.id,
            &UpdateConfig {
                description: Some("served to the shop".into()),
                ..UpdateConfig::default()
            },
            &w(),
        )
        .await
        .unwrap();
    let after_patch = fetch(&c, &path, &FetchOptions::default()).await;
    assert_eq!((after_patch.version, &after_patch.etag), (4, &moved.etag));
    assert_eq!(
        after_patch.revision, described.revision,
        "X-Conflux-Revision after a PATCH"
    );
    let moved = after_patch;

    // Linearizable reads work on a single node and agree with local ones.
    let lin = fetch(
        &c,
        &path,
        &FetchOptions {
            linearizable: true,
            ..FetchOptions::default()
        },
    )
    .await;
    assert_eq!(lin, moved);

    // Unknown configs: 404 config_not_found.
    api_err(
        c.fetch(
            &ConfigPath::new("acme", "shop", "prod", "nope.yaml"),
            &FetchOptions::default(),
        )
        .await,
        404,
        "config_not_found",
    );

    let (answer, waited) = far_fetch.await.unwrap();
    let e = api_err(answer, 503, "revision_not_reached");
    assert!(e.is_retryable());
    assert!(
        e.retry_after_secs().is_some(),
        "503 without Retry-After: {e:?}"
    );
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
}

// ---- idempotency --------------------------------------------------------------------------

fn json_version(content: &'static [u8]) -> NewVersion {
    NewVersion::new(content, "application/json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_apply_once_and_refuse_reuse() {
    let (_node, c) = start_node().await;
    let body = CreateTenant::named("acme");
    let first = c.create_tenant(&body, &key("tenant-1")).await.unwrap();
    let again = c.create_tenant(&body, &key("tenant-1")).await.unwrap();
    assert_eq!(again, first, "a replay returns the first result");
    api_err(
        c.create_tenant(&body, &w()).await,
        409,
        "tenant_already_exists",
    );
    app_and_env(&c, "acme", "shop", "prod").await;
    let config = new_config(
        &c,
        &ConfigPath::new("acme", "shop", "prod", "a.json"),
        Format::Json,
    )
    .await;

    let v = json_version;
    let one = c
        .create_version(config.id, v(b"{\"a\": 1}"), &key("push-1"))
        .await
        .unwrap();
    let replay = c
        .create_version(config.id, v(b"{\"a\": 1}"), &key("push-1"))
        .await
        .unwrap();
    assert_eq!(replay, one);
    assert_eq!(one.version_id, 1);
    assert_eq!(
        version_ids(&c, config.id).await,
        [1],
        "one version for two requests"
    );
    // Same key, other body: refused, nothing created.
    let e = api_err(
        c.create_version(config.id, v(b"{\"a\": 2}"), &key("push-1"))
            .await,
        422,
        "idempotency_key_reused",
    );
    assert!(e.message().contains("push-1"), "{e}");
    assert_eq!(c.get_config(config.id).await.unwrap().latest_version, 1);

    // A rejected write is remembered too: its retry gets the same rejection, and the
    // rejection used up no version number.
    let bad = api_err(
        c.create_version(config.id, v(b"{oops"), &key("push-bad"))
            .await,
        422,
        "content_invalid",
    );
    let bad_again = api_err(
        c.create_version(config.id, v(b"{oops"), &key("push-bad"))
            .await,
        422,
        "content_invalid",
    );
    assert_eq!(details(&bad), details(&bad_again));
    let two = c
        .create_version(config.id, v(b"{\"a\": 2}"), &key("push-2"))
        .await
        .unwrap();
    assert_eq!(two.version_id, 2);

    // Publish is idempotent as a whole: one version, one rule change.
    let req = publish_body("{\"a\": 3}", Strategy::Stable);
    let p = c.publish(config.id, &req, &key("publish-1")).await.unwrap();
    let p_again = c.publish(config.id, &req, &key("publish-1")).await.unwrap();
    assert_eq!(p_again, p);
    assert_eq!(p.version_id, 3);
    assert_eq!(version_ids(&c, config.id).await, [3, 2, 1]);
    assert_eq!(
        c.get_releases(config.id).await.unwrap().revision,
        p.revision
    );
    // Deletes too: the replay answers the first result instead of 404.
    let d = c.delete_config(config.id, &key("delete-1")).await.unwrap();
    let d_again = c.delete_config(config.id, &key("delete-1")).await.unwrap();
    assert_eq!(d_again, d);
    api_err(c.get_config(config.id).await, 404, "config_not_found");
}

// ---- retention ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_versions_and_every_released_one() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let retention: RetentionPolicy =
        serde_json::from_value(json!({"strategy": "or", "rules": [{"type": "count", "keep": 3}]}))
            .unwrap();
    let path = ConfigPath::new("acme", "shop", "prod", "notes.txt");
    let config = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                retention: Some(retention.clone()),
                ..create_config_body("notes.txt", Format::Text)
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(config.retention.as_ref(), Some(&retention));
    let text = |i: u64| format!("notes {i}\n");
    push(&c, config.id, text(1).as_bytes(), "text/plain").await;
    set_rules(&c, config.id, vec![ReleaseRule::default_to(1)]).await;
    for i in 2..=8 {
        assert_eq!(
            push(&c, config.id, text(i).as_bytes(), "text/plain")
                .await
                .version_id,
            i
        );
    }
    // The newest 3, plus version 1, which the default rule still serves.
    assert_eq!(version_ids(&c, config.id).await, [8, 7, 6, 1]);
    for gone in 2..=5 {
        api_err(
            c.get_version(config.id, gone).await,
            404,
            "version_not_found",
        );
        api_err(
            c.get_version_content(config.id, gone).await,
            404,
            "version_not_found",
        );
    }
    assert_eq!(
        c.get_version_content(config.id, 1).await.unwrap().as_ref(),
        text(1).as_bytes()
    );
    assert_eq!(
        fetch(&c, &path, &FetchOptions::default())
            .await
            .content
            .as_ref(),
        text(1).as_bytes()
    );
    // A purged version cannot be released any more.
    api_err(
        c.put_releases(
            config.id,
            &PutReleases {
                releases: vec![ReleaseRule::default_to(3)],
                comment: None,
            },
            &w(),
        )
        .await,
        400,
        "unknown_version",
    );

    // Once no rule references version 1, it goes too.
    set_rules(
        &c,
        config.id,
        vec![
            ReleaseRule::default_to(8),
            rule(&[("pin", "old")], None, 6, 10),
        ],
    )
    .await;
    assert_eq!(version_ids(&c, config.id).await, [8, 7, 6]);
    // Version numbers keep counting; a pinned version outlives the count rule.
    for i in 9..=11 {
        assert_eq!(
            push(&c, config.id, text(i).as_bytes(), "text/plain")
                .await
                .version_id,
            i
        );
    }
    assert_eq!(version_ids(&c, config.id).await, [11, 10, 9, 8, 6]);
    assert_eq!(
        fetch(&c, &path, &fetch_opts(&[("pin", "old")], None))
            .await
            .content
            .as_ref(),
        text(6).as_bytes()
    );
    // Publish applies retention in the same step.
    let p = c
        .publish(config.id, &publish_body(&text(12), Strategy::Stable), &w())
        .await
        .unwrap();
    assert_eq!(p.version_id, 12);
    assert_eq!(version_ids(&c, config.id).await, [12, 11, 10, 6]);

    // Tightening the policy with PATCH purges right away.
    let keep_one: RetentionPolicy =
        serde_json::from_value(json!({"strategy": "and", "rules": [{"type": "count", "keep": 1}, {"type": "days", "keep": 30}]}))
            .unwrap();
    let patched = c
        .update_config(
            config.id,
            &UpdateConfig {
                retention: Some(Some(keep_one.clone())),
                ..UpdateConfig::default()
            },
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(patched.retention, Some(keep_one));
    assert_eq!(version_ids(&c, config.id).await, [12, 6]);
}

// ---- delete -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_config_makes_fetch_answer_config_not_found() {
    let (_node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let path = ConfigPath::new("acme", "shop", "prod", "gone.json");
    let config = new_config(&c, &path, Format::Json).await;
    c.publish(
        config.id,
        &publish_body("{\"x\": 1}", Strategy::Stable),
        &w(),
    )
    .await
    .unwrap();
    let before = fetch(&c, &path, &FetchOptions::default()).await;
    assert_eq!(before.version, 1);

    // If-Match guards deletes too.
    api_err(
        c.delete_config(config.id, &w().if_match(config.revision))
            .await,
        409,
        "revision_mismatch",
    );
    let d = c
        .delete_config(config.id, &w().if_match(before.revision))
        .await
        .unwrap();
    assert!(d.revision > before.revision);
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "config_not_found",
    );
    api_err(
        c.fetch(
            &path,
            &FetchOptions {
                if_none_match: Some(before.etag.clone()),
                ..FetchOptions::default()
            },
        )
        .await,
        404,
        "config_not_found",
    );
    api_err(c.get_config(config.id).await, 404, "config_not_found");
    api_err(c.get_config_by_path(&path).await, 404, "config_not_found");
    api_err(c.get_releases(config.id).await, 404, "config_not_found");
    api_err(c.get_version(config.id, 1).await, 404, "config_not_found");
    api_err(
        c.get_version_content(config.id, 1).await,
        404,
        "config_not_found",
    );
    api_err(
        c.delete_config(config.id, &w()).await,
        404,
        "config_not_found",
    );
    assert!(
        c.list_configs("acme", "shop", "prod")
            .await
            .unwrap()
            .configs
            .is_empty()
    );

    // The path can be used again: a new config with a new id, not published yet.
    let again = new_config(&c, &path, Format::Json).await;
    assert_ne!(again.id, config.id);
    assert_eq!(again.latest_version, 0);
    api_err(
        c.fetch(&path, &FetchOptions::default()).await,
        404,
        "not_published",
    );
}

// ---- health, readiness, metrics -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let (_node, c) = start_node().await;
    let health = c.health().await.unwrap();
    assert_eq!((health.status.as_str(), health.node_id), ("ok", 1));
    scaffold(&c, "acme", "shop", "prod").await;
    let ready = c.ready().await.unwrap();
    assert!(ready.ready, "{ready:?}");
    assert_eq!(
        (ready.node_id, ready.leader_id, ready.reason.as_deref()),
        (1, Some(1), None)
    );
    let tenant = c.get_tenant("acme").await.unwrap();
    assert!(
        ready.applied_index >= tenant.revision,
        "{ready:?} vs revision {}",
        tenant.revision
    );
}

/// `GET /metrics` (contract section 4, "Cluster and operations"): Prometheus text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_prometheus_text() {
    let (node, c) = start_node().await;
    scaffold(&c, "acme", "shop", "prod").await;
    let resp = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap()
        .get(format!("{}/metrics", node.api_url()))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.text().await.unwrap();
    assert_eq!(status.as_u16(), 200, "GET /metrics: {status} {body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let samples: Vec<&str> = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!samples.is_empty(), "no samples in\n{body}");
    for line in samples {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "not a sample: {line:?}"
        );
    }
}

// ---- restart ------------------------------------------------------------------------------

/// Everything the API shows, as one JSON document: every tenant, app, environment and config
/// (by list and by get), every version's metadata and content (paged), rules, resolutions and
/// fetch answers for a set of clients.
async fn snapshot(c: &ApiClient) -> Value {
    let probes: Vec<(BTreeMap<String, String>, Option<String>)> = {
        let mut p = vec![
            (labels(&[]), None),
            (labels(&[("canary", "true")]), None),
            (labels(&[("ip", "10.1.2.3")]), None),
        ];
        p.extend((0..12).map(|i| (labels(&[]), Some(format!("client-{i}")))));
        p
    };
    let mut snap = serde_json::Map::new();
    let mut put = |k: String, v: Value| {
        assert!(snap.insert(k.clone(), v).is_none(), "duplicate key {k}");
    };
    let tenants = c.list_tenants().await.unwrap();
    put("tenants".into(), json!(tenants));
    for t in &tenants.tenants {
        put(
            format!("tenant {}", t.name),
            json!(c.get_tenant(&t.name).await.unwrap()),
        );
        let apps = c.list_apps(&t.name).await.unwrap();
        put(format!("apps {}", t.name), json!(apps));
        for a in &apps.apps {
            put(
                format!("app {}/{}", t.name, a.name),
                json!(c.get_app(&t.name, &a.name).await.unwrap()),
            );
            let envs = c.list_envs(&t.name, &a.name).await.unwrap();
            put(format!("envs {}/{}", t.name, a.name), json!(envs));
            for e in &envs.environments {
                let env_key = format!("{}/{}/{}", t.name, a.name, e.name);
                put(
                    format!("env {env_key}"),
                    json!(c.get_env(&t.name, &a.name, &e.name).await.unwrap()),
                );
                let configs = c.list_configs(&t.name, &a.name, &e.name).await.unwrap();
                put(format!("configs {env_key}"), json!(configs));
                for cfg in &configs.configs {
                    let path = ConfigPath::new(&t.name, &a.name, &e.name, &cfg.name);
                    let id = cfg.id;
                    put(
                        format!("config {id}"),
                        json!(c.get_config(id).await.unwrap()),
                    );
                    put(
                        format!("config {path}"),
                        json!(c.get_config_by_path(&path).await.unwrap()),
                    );
                    let mut pages = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let page = c
                            .list_versions(id, Some(2), cursor.as_deref())
                            .await
                            .unwrap();
                        cursor = page.next_cursor.clone();
                        pages.push(json!(page));
                        if cursor.is_none() {
                            break;
                        }
                    }
                    put(format!("versions {id}"), Value::Array(pages));
                    let all = c.list_versions(id, None, None).await.unwrap();
                    for v in &all.versions {
                        let n = v.version_id;
                        put(
                            format!("version {id}/{n}"),
                            json!(c.get_version(id, n).await.unwrap()),
                        );
                        let content = c.get_version_content(id, n).await.unwrap();
                        put(format!("content {id}/{n}"), json!(hex::encode(&content)));
                    }
                    if let (Some(newest), Some(oldest)) =
                        (all.versions.first(), all.versions.last())
                    {
                        let diff = c
                            .diff_versions(id, oldest.version_id, newest.version_id)
                            .await
                            .unwrap();
                        put(format!("diff {id}"), json!(diff));
                    }
                    put(
                        format!("releases {id}"),
                        json!(c.get_releases(id).await.unwrap()),
                    );
                    for (i, (l, client)) in probes.iter().enumerate() {
                        let resolved = match c.resolve(id, l, client.as_deref()).await {
                            Ok(r) => json!(r),
                            Err(e) => json!({"error": e.code(), "status": e.status()}),
                        };
                        put(format!("resolve {id} #{i}"), resolved);
                        let opts = FetchOptions {
                            labels: l.clone(),
                            client_id: client.clone(),
                            ..FetchOptions::default()
                        };
                        let fetched = match c.fetch(&path, &opts).await {
                            Ok(Fetched::Modified {
                                content,
                                version,
                                hash,
                                revision,
                                etag,
                                content_type,
                            }) => json!({
                                "content": hex::encode(&content), "version": version, "hash": hash,
                                "revision": revision, "etag": etag, "content_type": content_type,
                            }),
                            Ok(Fetched::NotModified) => panic!("304 without If-None-Match"),
                            Err(e) => json!({"error": e.code(), "status": e.status()}),
                        };
                        put(format!("fetch {path} #{i}"), fetched);
                    }
                }
            }
        }
    }
    Value::Object(snap)
}

/// Paths (JSON-pointer style) where `a` and `b` differ.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => differences(va, vb, &format!("{at}/{k}"), out),
                    (va, vb) => out.push(format!("{at}/{k}: {va:?} vs {vb:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(va, vb, &format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

fn max_revision(v: &Value) -> u64 {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("revision", Value::Number(n)) => n.as_u64().unwrap_or(0),
                _ => max_revision(v),
            })
            .max()
            .unwrap_or(0),
        Value::Array(a) => a.iter().map(max_revision).max().unwrap_or(0),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_clean_restart() {
    let (mut node, c) = start_node().await;

    // A varied state: quotas, a suspended tenant, approval settings, several formats, a
    // schema, retention, canary and percent rules, a deleted config, an unpublished one.
    c.create_tenant(
        &CreateTenant {
            name: "acme".into(),
            display_name: Some("Acme".into()),
            quotas: Some(QuotasPatch {
                max_apps: Some(5),
                max_config_bytes: Some(4096),
                ..QuotasPatch::default()
            }),
        },
        &w(),
    )
    .await
    .unwrap();
    c.create_app(
        "acme",
        &CreateApp {
            name: "shop".into(),
            description: Some("web shop".into()),
        },
        &w(),
    )
    .await
    .unwrap();
    for (env, approval) in [
        (
            // Settings that differ from the defaults, without requiring approval (releases
            // below apply at once).
            "prod",
            Some(ApprovalSettings {
                required: false,
                min_approvals: 2,
                allow_self_approval: true,
            }),
        ),
        ("staging", None),
    ] {
        c.create_env(
            "acme",
            "shop",
            &CreateEnvironment {
                name: env.into(),
                description: Some(format!("{env} env")),
                approval,
            },
            &w(),
        )
        .await
        .unwrap();
    }
    scaffold(&c, "beta", "api", "dev").await;

    let app_json = ConfigPath::new("acme", "shop", "prod", "app.json");
    let schema = json!({"type": "object", "required": ["port"]});
    let cfg = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                schema: Some(schema),
                description: Some("main settings".into()),
                ..create_config_body("app.json", Format::Json)
            },
            &w(),
        )
        .await
        .unwrap();
    c.publish(
        cfg.id,
        &publish_body("{\"port\": 1}", Strategy::Stable),
        &w(),
    )
    .await
    .unwrap();
    c.publish(
        cfg.id,
        &publish_body("{\"port\": 2}", canary(&[("canary", "true")], None, None)),
        &w(),
    )
    .await
    .unwrap();
    let idem_req = publish_body("{\"port\": 3}", canary(&[], Some(40), Some(50)));
    let idem_first = c
        .publish(cfg.id, &idem_req, &key("restart-publish"))
        .await
        .unwrap();
    push(
        &c,
        cfg.id,
        b"{\"port\": 4, \"draft\": true}",
        "application/json",
    )
    .await;

    let retention: RetentionPolicy =
        serde_json::from_value(json!({"strategy": "or", "rules": [{"type": "count", "keep": 2}]}))
            .unwrap();
    let db = c
        .create_config(
            "acme",
            "shop",
            "prod",
            &CreateConfig {
                retention: Some(retention),
                ..create_config_body("db.toml", Format::Toml)
            },
            &w(),
        )
        .await
        .unwrap();
    for i in 1..=5 {
        push(
            &c,
            db.id,
            format!("pool = {i}\n").as_bytes(),
            "application/toml",
        )
        .await;
        if i == 2 {
            set_rules(
                &c,
                db.id,
                vec![
                    ReleaseRule::default_to(2),
                    rule(&[("ip", "10.1.2.3")], None, 1, 5),
                ],
            )
            .await;
        }
    }
    for (name, format, ct, content) in [
        ("motd.txt", Format::Text, "text/plain", "hello\r\nworld  \n"),
        (
            "site.xml",
            Format::Xml,
            "application/xml",
            "<site name=\"a\"/>",
        ),
        ("app.ini", Format::Ini, "text/plain", "[a]\nb = c\n"),
        (
            "app.properties",
            Format::Properties,
            "text/plain",
            "a.b = c\n",
        ),
        ("app.yaml", Format::Yaml, "application/yaml", "a: [1, 2]\n"),
    ] {
        let p = ConfigPath::new("acme", "shop", "staging", name);
        let view = new_config(&c, &p, format).await;
        push(&c, view.id, content.as_bytes(), ct).await;
        if name != "app.yaml" {
            set_rules(&c, view.id, vec![ReleaseRule::default_to(1)]).await;
        }
    }
    let doomed = new_config(
        &c,
        &ConfigPath::new("beta", "api", "dev", "doomed.json"),
        Format::Json,
    )
    .await;
    c.publish(doomed.id, &publish_body("{}", Strategy::Stable), &w())
        .await
        .unwrap();
    c.delete_config(doomed.id, &w()).await.unwrap();
    c.update_tenant(
        "beta",
        &UpdateTenant {
            status: Some(TenantStatus::Suspended),
            ..UpdateTenant::default()
        },
        &w(),
    )
    .await
    .unwrap();
    let etag_before = fetch(&c, &app_json, &FetchOptions::default()).await.etag;

    let before = snapshot(&c).await;
    let before_max = max_revision(&before);
    assert!(before_max > 0);

    // SIGTERM: a clean exit with status 0 (asserted at the end, so that a wrong status does
    // not hide what the restart shows).
    let status = node.terminate().expect("node stops on SIGTERM");
    let stop_log = node.log_tail(20);
    node.restart().expect("node restarts on its data directory");
    let c = connect(&node).await;

    let after = snapshot(&c).await;
    let mut diff = Vec::new();
    differences(&before, &after, "", &mut diff);
    assert!(
        diff.is_empty(),
        "the API shows another state after the restart:\n{}",
        diff.join("\n")
    );

    // ETags are stable across restarts.
    let inm = FetchOptions {
        if_none_match: Some(etag_before),
        ..FetchOptions::default()
    };
    assert_eq!(
        c.fetch(&app_json, &inm).await.unwrap(),
        Fetched::NotModified
    );
    // Idempotency records survived: the replay returns the first result and applies nothing.
    let replay = c
        .publish(cfg.id, &idem_req, &key("restart-publish"))
        .await
        .unwrap();
    assert_eq!(replay, idem_first);
    api_err(
        c.publish(
            cfg.id,
            &publish_body("{\"port\": 9}", Strategy::Stable),
            &key("restart-publish"),
        )
        .await,
        422,
        "idempotency_key_reused",
    );
    assert_eq!(c.get_config(cfg.id).await.unwrap().latest_version, 4);
    // Quotas and suspension survived, and revisions keep growing.
    api_err(
        c.create_app("beta", &CreateApp::named("x"), &w()).await,
        403,
        "tenant_suspended",
    );
    let big = format!("{{\"port\": 1, \"pad\": \"{}\"}}", "x".repeat(4096));
    api_err(
        c.create_version(cfg.id, NewVersion::new(big, "application/json"), &w())
            .await,
        413,
        "quota_exceeded",
    );
    let v = push(&c, cfg.id, b"{\"port\": 5}", "application/json").await;
    assert_eq!(v.version_id, 5);
    assert!(
        v.revision > before_max,
        "revision {} after restart <= {before_max}",
        v.revision
    );

    assert!(
        status.success(),
        "SIGTERM must stop the node with exit status 0, got {status}; its log:\n{stop_log}"
    );
}
