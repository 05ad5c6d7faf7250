//! Identity, access control and audit (contract section 6) against real nodes: a single
//! embedded node on SQLite and 3-node clusters on a real PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{As, blocking, eventually};
use conflux_testkit::{Cluster, NodeSpec, TestNode, TestPostgres};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

impl As {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Creates a service token with one binding and returns (id, secret).
    async fn token(&self, role: &str, scope: &str) -> (String, String) {
        let v = self
            .ok(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": format!("{role}@{scope}"), "bindings": [{"role": role, "scope": scope}]})),
            )
            .await;
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }
}

/// Waits until every one of `who` answers GET `path` with `status` (bounded by `within`).
async fn until_status(who: &[As], path: &str, status: u16, within: Duration, what: &str) {
    for w in who {
        eventually(within, what, || {
            let w = w.clone();
            let path = path.to_owned();
            async move { w.get(&path).await.0.as_u16() == status }
        })
        .await;
    }
}

/// The tree every matrix run uses: tenants t1 (app a1: envs e1, e2; app a2: env e1) and t2.
async fn scaffold(admin: &As) {
    for t in ["t1", "t2"] {
        admin
            .ok(
                Method::POST,
                "/api/v1/mgt/tenants",
                Some(json!({"name": t})),
            )
            .await;
    }
    for (t, a) in [("t1", "a1"), ("t1", "a2"), ("t2", "a1")] {
        admin
            .ok(
                Method::POST,
                &format!("/api/v1/mgt/tenants/{t}/apps"),
                Some(json!({"name": a})),
            )
            .await;
    }
    for (t, a, e) in [
        ("t1", "a1", "e1"),
        ("t1", "a1", "e2"),
        ("t1", "a2", "e1"),
        ("t2", "a1", "e1"),
    ] {
        admin
            .ok(
                Method::POST,
                &format!("/api/v1/mgt/tenants/{t}/apps/{a}/envs"),
                Some(json!({"name": e})),
            )
            .await;
        let c = admin
            .ok(
                Method::POST,
                &format!("/api/v1/mgt/tenants/{t}/apps/{a}/envs/{e}/configs"),
                Some(json!({"name": "c.json", "format": "json"})),
            )
            .await;
        let id = c["id"].as_u64().unwrap();
        admin
            .ok(
                Method::POST,
                &format!("/api/v1/mgt/configs/{id}/publish"),
                Some(json!({"content": "{\"v\": 1}", "strategy": {"type": "stable"}})),
            )
            .await;
    }
}

async fn config_id(admin: &As, env: &str) -> u64 {
    admin
        .ok(
            Method::GET,
            &format!("/api/v1/mgt/tenants/{env}/configs/c.json"),
            None,
        )
        .await["id"]
        .as_u64()
        .unwrap()
}

/// Scope levels a binding can have, all covering t1/a1/e1.
const SCOPES: [&str; 4] = ["*", "t1", "t1/a1", "t1/a1/e1"];

/// What a role may do, by endpoint class (the contract's role inclusion).
fn allowed(role: &str, class: &str, scope: &str) -> bool {
    let rank = |r: &str| {
        [
            "reader",
            "viewer",
            "editor",
            "publisher",
            "tenant_admin",
            "cluster_admin",
        ]
        .iter()
        .position(|x| *x == r)
        .unwrap()
    };
    let need = match class {
        "fetch" | "watch" => "reader",
        "read" => "viewer",
        "version" => "editor",
        "publish" => "publisher",
        "env_admin" => "tenant_admin",
        // Creating an app needs tenant_admin on the tenant: an app- or env-scoped admin
        // does not cover it.
        "app_create" => return rank(role) >= rank("tenant_admin") && matches!(scope, "*" | "t1"),
        // Cluster-wide things need cluster_admin on `*` itself.
        "cluster" | "users" | "tenant_create" => return role == "cluster_admin" && scope == "*",
        other => panic!("{other}"),
    };
    rank(role) >= rank(need)
}

/// For every role at every scope level and every endpoint class: allowed calls succeed,
/// the others get exactly 401/403/404 as the contract says.
async fn matrix(admin: &As) {
    scaffold(admin).await;
    let e1 = config_id(admin, "t1/apps/a1/envs/e1").await;
    let other_tenant = config_id(admin, "t2/apps/a1/envs/e1").await;
    let roles = [
        "reader",
        "viewer",
        "editor",
        "publisher",
        "tenant_admin",
        "cluster_admin",
    ];
    let mut n = 0;
    for scope in SCOPES {
        for role in roles {
            n += 1;
            let (_, secret) = admin.token(role, scope).await;
            let me = admin.with(&secret);
            let check = |class: &'static str, got: (StatusCode, Value), denied: u16| {
                let want_ok = allowed(role, class, scope);
                if want_ok {
                    assert!(
                        got.0.is_success(),
                        "{role}@{scope} {class}: {} {}",
                        got.0,
                        got.1
                    );
                } else {
                    assert_eq!(got.0.as_u16(), denied, "{role}@{scope} {class}: {}", got.1);
                }
            };
            // Fetch and watch: out of scope looks like not found.
            check(
                "fetch",
                me.get("/api/v1/fetch/config/t1/a1/e1/c.json").await,
                404,
            );
            check(
                "watch",
                me.get("/api/v1/watch/config/t1/a1/e1/c.json?timeout=0s")
                    .await,
                404,
            );
            // Management reads.
            check(
                "read",
                me.get(&format!("/api/v1/mgt/configs/{e1}/versions")).await,
                403,
            );
            check(
                "read",
                me.get(&format!("/api/v1/mgt/configs/{e1}/releases")).await,
                403,
            );
            // Version write, publish.
            let status = me
                .http
                .post(format!("{}/api/v1/mgt/configs/{e1}/versions", me.base))
                .bearer_auth(&secret)
                .header("content-type", "application/json")
                .body(format!("{{\"n\": {n}}}"))
                .send()
                .await
                .unwrap()
                .status();
            check("version", (status, Value::Null), 403);
            check(
                "publish",
                me.post(
                    &format!("/api/v1/mgt/configs/{e1}/publish"),
                    json!({"content": format!("{{\"p\": {n}}}"), "strategy": {"type": "stable"}}),
                )
                .await,
                403,
            );
            // Environment and app administration (create then delete, so runs do not collide).
            let env = format!("x{n}");
            let created = me
                .post("/api/v1/mgt/tenants/t1/apps/a1/envs", json!({"name": env}))
                .await;
            let env_scope_ok = allowed(role, "env_admin", scope) && scope != "t1/a1/e1";
            if env_scope_ok {
                assert!(
                    created.0.is_success(),
                    "{role}@{scope} env create: {:?}",
                    created
                );
                admin
                    .ok(
                        Method::DELETE,
                        &format!("/api/v1/mgt/tenants/t1/apps/a1/envs/{env}"),
                        None,
                    )
                    .await;
            } else {
                assert_eq!(
                    created.0.as_u16(),
                    403,
                    "{role}@{scope} env create: {:?}",
                    created
                );
            }
            check(
                "app_create",
                me.post(
                    "/api/v1/mgt/tenants/t1/apps",
                    json!({"name": format!("app{n}")}),
                )
                .await,
                403,
            );
            check(
                "tenant_create",
                me.post("/api/v1/mgt/tenants", json!({"name": format!("tenant{n}")}))
                    .await,
                403,
            );
            // Identity and cluster.
            check("users", me.get("/api/v1/users").await, 403);
            check("cluster", me.get("/_cluster/status").await, 403);
            // Audit: viewer and above see their scope; a reader sees none.
            let audit = me.get("/api/v1/audit?limit=5").await;
            if role == "reader" {
                assert_eq!(audit.0.as_u16(), 403, "{role}@{scope} audit");
            } else {
                assert!(audit.0.is_success(), "{role}@{scope} audit: {:?}", audit);
            }
            // Nothing outside its scope, ever (other tenant), unless bound on `*`.
            let outside = me.get(&format!("/api/v1/mgt/configs/{other_tenant}")).await;
            if scope == "*" && role != "reader" {
                assert!(outside.0.is_success());
            } else if role == "reader" || scope != "*" {
                assert_eq!(outside.0.as_u16(), 403, "{role}@{scope} other tenant");
                assert_eq!(
                    me.get("/api/v1/fetch/config/t2/a1/e1/c.json")
                        .await
                        .0
                        .as_u16(),
                    if scope == "*" { 200 } else { 404 }
                );
            }
            // Lists hold only what the caller may see.
            let (status, tenants) = me.get("/api/v1/mgt/tenants").await;
            assert!(status.is_success());
            let names: Vec<&str> = tenants["tenants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            let expect: &[&str] = match (role, scope) {
                ("reader", _) => &[],
                (_, "*") => &["t1", "t2"],
                _ => &["t1"],
            };
            assert!(
                expect.iter().all(|t| names.contains(t)) && names.len() >= expect.len(),
                "{role}@{scope} sees {names:?}"
            );
            if scope != "*" {
                assert!(!names.contains(&"t2"), "{role}@{scope} sees {names:?}");
            }
        }
    }
    // No token, a garbage token, a malformed header: 401 with WWW-Authenticate.
    let anonymous = As::new(&admin.base, None);
    for path in [
        "/api/v1/mgt/tenants",
        "/api/v1/fetch/config/t1/a1/e1/c.json",
        "/_cluster/status",
    ] {
        assert_eq!(anonymous.get(path).await.0.as_u16(), 401, "{path}");
        assert_eq!(admin.with("cfxs_garbage").get(path).await.0.as_u16(), 401);
    }
    // A principal with no binding can only whoami.
    let (_, bare) = admin
        .ok(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "bare"})),
        )
        .await
        .as_object()
        .map(|o| ((), o["token"].as_str().unwrap().to_owned()))
        .unwrap();
    let bare = admin.with(&bare);
    assert!(bare.get("/api/v1/auth/whoami").await.0.is_success());
    assert_eq!(
        bare.get("/api/v1/mgt/tenants").await.1["tenants"],
        json!([])
    );
    assert_eq!(
        bare.get("/api/v1/fetch/config/t1/a1/e1/c.json")
            .await
            .0
            .as_u16(),
        404
    );
    assert_eq!(bare.get("/api/v1/audit").await.0.as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_access_matrix_holds_on_the_embedded_sqlite_node() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    matrix(&As::new(&node.api_url(), Some(&node.token()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_access_matrix_holds_on_a_postgresql_cluster_through_a_follower() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
    matrix(&As::new(
        &cluster.node(follower).api_url(),
        Some(cluster.token()),
    ))
    .await;
}

/// The embedded default with no flags: the node writes its own admin token (mode 0600).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_embedded_node_bootstraps_an_admin_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let mut spec = NodeSpec::new(1);
    spec.bootstrap_token = None;
    let node = TestNode::start(spec).expect("node starts");
    let file = node.data_dir().join("admin.token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = node.token();
    assert!(token.starts_with("cfxs_"), "a recognisable token");
    let me = As::new(&node.api_url(), Some(&token));
    let who = me.ok(Method::GET, "/api/v1/auth/whoami", None).await;
    assert_eq!(who["bindings"][0]["role"], "cluster_admin");
    assert!(
        !node.log_contains(&token),
        "the token never appears in the log"
    );
    let db = node.data_dir().join("metadata.db");
    assert_eq!(
        std::fs::metadata(db).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A node that starts on an empty data directory while its metadata DB is away knows no
/// token yet: it says "retry" (503 `metadata_unavailable`) instead of calling a good token
/// bad, and it is not ready, so load balancers and harnesses wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_never_loaded_identities_answers_503_not_401() {
    let port = conflux_testkit::free_port().unwrap();
    let mut spec = NodeSpec::new(1);
    spec.extra_args = vec![
        "--metadata-url".into(),
        format!("postgres://conflux@127.0.0.1:{port}/nowhere"),
    ];
    let node = TestNode::start(spec).expect("node starts without its metadata DB");
    let anonymous = As::new(&node.api_url(), None);
    // Once it has elected itself, what keeps it from being ready is the identity.
    eventually(
        Duration::from_secs(15),
        "not ready for want of identities",
        || {
            let anonymous = anonymous.clone();
            async move {
                let (status, ready) = anonymous.get("/ready").await;
                status.as_u16() == 503
                    && ready["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("identities"))
            }
        },
    )
    .await;
    let me = As::new(&node.api_url(), Some(&node.token()));
    let (status, body) = me.get("/api/v1/auth/whoami").await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert_eq!(body["error"]["code"], "metadata_unavailable");
}

/// A cluster refuses SQLite metadata at start-up, with a one-line reason.
#[test]
fn a_cluster_node_refuses_sqlite() {
    let mut spec = NodeSpec::new(1);
    spec.api_addr = Some("127.0.0.1:2".into());
    spec.raft_addr = Some("127.0.0.1:1".into());
    spec.extra_args = vec!["--peer".into(), "1=127.0.0.1:1,127.0.0.1:2".into()];
    let err = TestNode::start(spec).expect_err("refused");
    assert!(
        format!("{err:#}").contains("needs a PostgreSQL metadata DB"),
        "{err:#}"
    );
}

/// Login, throttling, sessions, users: bad credentials look alike, SQL-looking names are
/// just names, a tenant admin cannot overreach.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_users_and_grants_refuse_bad_input_and_overreach() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let anon = As::new(&node.api_url(), None);
    admin
        .ok(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "alice", "password": "correct horse battery"})),
        )
        .await;
    // Short password, bad names: 400 naming the field.
    let (s, v) = admin
        .post(
            "/api/v1/users",
            json!({"username": "bob", "password": "short"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["field"].as_str()),
        (400, Some("password"))
    );
    let (s, v) = admin
        .post(
            "/api/v1/users",
            json!({"username": "alice'; DROP TABLE users;--", "password": "long enough pass"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["field"].as_str()),
        (400, Some("username")),
        "{v}"
    );
    // Wrong password and unknown user: the same 401.
    let wrong = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "nope nope nope"}),
        )
        .await;
    let unknown = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "mallory", "password": "nope nope nope"}),
        )
        .await;
    assert_eq!(wrong.0.as_u16(), 401);
    assert_eq!(wrong.1["error"]["code"], "invalid_credentials");
    assert_eq!(wrong.1, unknown.1);
    let sql = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "x' OR '1'='1", "password": "x' OR '1'='1"}),
        )
        .await;
    assert_eq!(sql.0.as_u16(), 401);
    // Login works, whoami names the user, logout ends the session.
    let login = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert!(login.0.is_success(), "{:?}", login);
    let session = login.1["token"].as_str().unwrap().to_owned();
    assert!(session.starts_with("cfxu_"));
    let alice = anon.with(&session);
    assert_eq!(
        alice.get("/api/v1/auth/whoami").await.1["principal"],
        "user:alice"
    );
    assert_eq!(
        alice
            .call(Method::POST, "/api/v1/auth/logout", None)
            .await
            .0
            .as_u16(),
        204
    );
    assert_eq!(alice.get("/api/v1/auth/whoami").await.0.as_u16(), 401);
    // More than 5 failures within a minute: 429, even with the right password.
    for _ in 0..5 {
        anon.post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "wrong wrong wrong"}),
        )
        .await;
    }
    let throttled = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(throttled.0.as_u16(), 429, "{:?}", throttled);
    assert_eq!(throttled.1["error"]["code"], "too_many_attempts");
    // Garbage in the Authorization header, and a huge one: 401 or 431, never 500.
    for header in [
        "Bearer",
        "Bearer ",
        "Basic YWxhZGRpbjpvcGVu",
        "Bearer a b",
        "bearer \u{7f}",
    ] {
        let r = anon
            .http
            .get(format!("{}/api/v1/mgt/tenants", anon.base))
            .header("authorization", header)
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status().as_u16(), 401, "{header:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
    }
    let huge = anon
        .http
        .get(format!("{}/api/v1/mgt/tenants", anon.base))
        .bearer_auth("x".repeat(70_000))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(huge.status().as_u16(), 401 | 431),
        "{}",
        huge.status()
    );
    // A tenant admin cannot grant cluster_admin, nor act outside its tenant.
    for t in ["t1", "t2"] {
        admin
            .ok(
                Method::POST,
                "/api/v1/mgt/tenants",
                Some(json!({"name": t})),
            )
            .await;
    }
    let (_, ta) = admin.token("tenant_admin", "t1").await;
    let ta = admin.with(&ta);
    let (s, v) = ta
        .post(
            "/api/v1/role-bindings",
            json!({"principal": "user:alice", "role": "cluster_admin", "scope": "t1"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (s, _) = ta
        .post(
            "/api/v1/role-bindings",
            json!({"principal": "user:alice", "role": "editor", "scope": "t2"}),
        )
        .await;
    assert_eq!(s.as_u16(), 403);
    let (s, _) = ta
        .post("/api/v1/mgt/tenants/t2/apps", json!({"name": "sneaky"}))
        .await;
    assert_eq!(s.as_u16(), 403);
    let (s, v) = ta
        .post(
            "/api/v1/role-bindings",
            json!({"principal": "user:alice", "role": "editor", "scope": "t1"}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{v}");
    let (s, v) = ta
        .post(
            "/api/v1/role-bindings",
            json!({"principal": "user:alice", "role": "overlord", "scope": "t1"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["field"].as_str()),
        (400, Some("role"))
    );
    // Nothing of the refused requests happened; the node keeps serving.
    let apps = admin
        .ok(Method::GET, "/api/v1/mgt/tenants/t2/apps", None)
        .await;
    assert_eq!(apps["apps"], json!([]));
    let bindings = admin
        .ok(
            Method::GET,
            "/api/v1/role-bindings?principal=user:alice",
            None,
        )
        .await;
    assert_eq!(bindings["role_bindings"].as_array().unwrap().len(), 1);
    // Denials, logins and identity changes are audited; secrets never are.
    eventually(Duration::from_secs(10), "audit rows", || {
        let admin = admin.clone();
        async move {
            let page = admin.get("/api/v1/audit?limit=1000").await.1;
            let records = page["records"].as_array().cloned().unwrap_or_default();
            let has = |action: &str, outcome: &str| {
                records
                    .iter()
                    .any(|r| r["action"] == action && r["outcome"] == outcome)
            };
            has("auth.login", "failed")
                && has("auth.login", "success")
                && has("user.create", "success")
                && has("binding.create", "success")
                && records.iter().any(|r| r["outcome"] == "denied")
        }
    })
    .await;
    let all = admin.get("/api/v1/audit?limit=1000").await.1.to_string();
    assert!(!all.contains("correct horse battery") && !all.contains(&session));
}

/// Revocation reaches every node within 2 s, and ends open long polls and WebSockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_reaches_every_node_and_ends_open_watches() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let admin = As::new(&cluster.node(1).api_url(), Some(cluster.token()));
    scaffold(&admin).await;
    let (id, secret) = admin.token("reader", "t1/a1/e1").await;
    let nodes: Vec<As> = cluster
        .ids()
        .iter()
        .map(|i| As::new(&cluster.node(*i).api_url(), Some(&secret)))
        .collect();
    until_status(
        &nodes,
        "/api/v1/fetch/config/t1/a1/e1/c.json",
        200,
        Duration::from_secs(5),
        "the new token on every node",
    )
    .await;
    let revision: u64 = {
        let r = nodes[2]
            .http
            .get(format!(
                "{}/api/v1/fetch/config/t1/a1/e1/c.json",
                nodes[2].base
            ))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        r.headers()["x-conflux-revision"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // An open long poll on node 3 and a WebSocket on node 2.
    let poll = {
        let n = nodes[2].clone();
        tokio::spawn(async move {
            n.get(&format!(
                "/api/v1/watch/config/t1/a1/e1/c.json?revision={revision}&timeout=60s"
            ))
            .await
        })
    };
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut request = format!(
        "{}/api/v1/watch/ws",
        nodes[1].base.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        format!(r#"{{"subscribe": [{{"key": "t1/a1/e1/c.json", "revision": {revision}}}]}}"#)
            .into(),
    ))
    .await
    .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(format!("{ack:?}").contains("subscribed"), "{ack:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Revoked on node 1.
    let revoked_at = Instant::now();
    assert_eq!(
        admin
            .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
            .await
            .0
            .as_u16(),
        204
    );
    until_status(
        &nodes,
        "/api/v1/fetch/config/t1/a1/e1/c.json",
        401,
        Duration::from_secs(2),
        "the revocation on every node",
    )
    .await;
    let (status, _) = tokio::time::timeout(Duration::from_secs(3), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.as_u16(), 401, "the open long poll ends");
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap();
    assert!(closed);
    assert!(revoked_at.elapsed() < Duration::from_secs(5));

    // A removed binding and a disabled user stop working everywhere too.
    admin
        .ok(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "carol", "password": "carol's long password"})),
        )
        .await;
    let b = admin
        .ok(
            Method::POST,
            "/api/v1/role-bindings",
            Some(json!({"principal": "user:carol", "role": "viewer", "scope": "t1"})),
        )
        .await;
    let login = As::new(&cluster.node(2).api_url(), None)
        .post(
            "/api/v1/auth/login",
            json!({"username": "carol", "password": "carol's long password"}),
        )
        .await;
    let carol_token = login.1["token"].as_str().unwrap().to_owned();
    let carol: Vec<As> = nodes.iter().map(|n| n.with(&carol_token)).collect();
    until_status(
        &carol,
        "/api/v1/mgt/tenants/t1",
        200,
        Duration::from_secs(5),
        "carol's session everywhere",
    )
    .await;
    admin
        .ok(
            Method::DELETE,
            &format!("/api/v1/role-bindings/{}", b["id"].as_str().unwrap()),
            None,
        )
        .await;
    until_status(
        &carol,
        "/api/v1/mgt/tenants/t1",
        403,
        Duration::from_secs(2),
        "the binding removal everywhere",
    )
    .await;
    admin
        .ok(
            Method::PATCH,
            "/api/v1/users/carol",
            Some(json!({"disabled": true})),
        )
        .await;
    until_status(
        &carol,
        "/api/v1/auth/whoami",
        401,
        Duration::from_secs(2),
        "the disabled user everywhere",
    )
    .await;
}

/// Audit rows of config-plane changes, by request id.
async fn audit_by_request(admin: &As) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=1000&cursor={c}"),
            None => "/api/v1/audit?limit=1000".to_owned(),
        };
        let (status, page) = admin.get(&path).await;
        assert!(status.is_success(), "{page}");
        for r in page["records"].as_array().unwrap() {
            if r["action"] == "version.create" && r["outcome"] == "success" {
                *counts
                    .entry(r["request_id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return counts,
        }
    }
}

/// Pushes versions with request ids `prefix-<i>` until told to stop; returns the ids that
/// were acknowledged.
async fn push_versions(
    node: As,
    id: u64,
    prefix: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let rid = format!("{prefix}-{i}");
        let r = node
            .http
            .post(format!("{}/api/v1/mgt/configs/{id}/versions", node.base))
            .bearer_auth(node.token.as_deref().unwrap())
            .header("content-type", "application/json")
            .header("x-request-id", &rid)
            .body(format!("{{\"i\": {i}}}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().as_u16() == 201) {
            acked.push(rid);
        }
    }
    acked
}

/// The metadata DB goes down under a running cluster: serving and config writes go on,
/// identity changes answer 503, and every audit row of the outage arrives exactly once
/// after it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metadata_outage_delays_audit_but_loses_nothing() {
    let pg = blocking(|| TestPostgres::start().expect("PostgreSQL starts")).await;
    let url = pg.fresh_database().unwrap();
    let mut cluster =
        Cluster::start_with(3, vec!["--metadata-url".into(), url]).expect("cluster starts");
    let admin = As::new(&cluster.node(1).api_url(), Some(cluster.token()));
    scaffold(&admin).await;
    let (_, reader) = admin.token("reader", "t1").await;
    let id = config_id(&admin, "t1/apps/a1/envs/e1").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pg = std::sync::Arc::new(pg);
    blocking({
        let pg = pg.clone();
        move || pg.stop().unwrap()
    })
    .await;
    // Serving with known tokens goes on; config writes too.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(push_versions(admin.clone(), id, "outage", stop.clone()));
    for n in cluster.ids() {
        let r = As::new(&cluster.node(n).api_url(), Some(&reader));
        assert!(
            r.get("/api/v1/fetch/config/t1/a1/e1/c.json")
                .await
                .0
                .is_success()
        );
    }
    // Identity changes: 503 metadata_unavailable.
    let (s, v) = admin
        .post(
            "/api/v1/users",
            json!({"username": "dave", "password": "dave's long password"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (503, Some("metadata_unavailable")),
        "{v}"
    );
    // A node restarted during the outage still knows its principals (from the copy of the
    // identity it keeps) and serves them.
    let node3 = cluster.node_mut(3);
    node3.kill9().unwrap();
    node3
        .restart()
        .expect("node 3 restarts without its metadata DB");
    until_status(
        &[As::new(&cluster.node(3).api_url(), Some(&reader))],
        "/api/v1/fetch/config/t1/a1/e1/c.json",
        200,
        Duration::from_secs(10),
        "the restarted node to serve the reader",
    )
    .await;
    // Nodes stay ready (serving does not need the DB) and say the DB is away.
    eventually(
        Duration::from_secs(5),
        "readiness to report the DB away",
        || {
            let n = As::new(&cluster.node(2).api_url(), None);
            async move {
                let (s, r) = n.get("/ready").await;
                s.is_success() && r["metadata_reachable"] == false
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty(), "writes go on during the outage");

    blocking({
        let pg = pg.clone();
        move || pg.start_again().unwrap()
    })
    .await;
    eventually(Duration::from_secs(30), "the outage's audit rows", || {
        let admin = admin.clone();
        let acked = acked.clone();
        async move {
            admin.get("/api/v1/audit?limit=1").await.0.is_success() && {
                let counts = audit_by_request(&admin).await;
                acked.iter().all(|r| counts.contains_key(r))
            }
        }
    })
    .await;
    let counts = audit_by_request(&admin).await;
    for r in &acked {
        assert_eq!(counts[r], 1, "exactly one audit row for {r}");
    }
    let (_, ready) = As::new(&cluster.node(2).api_url(), None)
        .get("/ready")
        .await;
    assert_eq!(ready["metadata_reachable"], true, "{ready}");
}

/// A leader killed during writes: every committed change has exactly one audit row and
/// nothing that did not commit has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_kill_leaves_exactly_one_audit_row_per_committed_change() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
    let admin = As::new(&cluster.node(follower).api_url(), Some(cluster.token()));
    scaffold(&admin).await;
    let id = config_id(&admin, "t1/apps/a1/envs/e1").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(push_versions(admin.clone(), id, "kill", stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.node_mut(leader).kill9().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await.unwrap();
    cluster.node_mut(leader).restart().unwrap();
    cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    // The committed versions: what the config holds now.
    let versions = admin
        .ok(
            Method::GET,
            &format!("/api/v1/mgt/configs/{id}/versions?limit=1000"),
            None,
        )
        .await;
    let committed = versions["versions"].as_array().unwrap().len() - 1; // minus the scaffold publish
    eventually(
        Duration::from_secs(30),
        "every committed change audited",
        || {
            let admin = admin.clone();
            async move {
                let counts = audit_by_request(&admin).await;
                counts.keys().filter(|k| k.starts_with("kill-")).count() >= committed
            }
        },
    )
    .await;
    let counts = audit_by_request(&admin).await;
    let kill: Vec<(&String, &usize)> = counts
        .iter()
        .filter(|(k, _)| k.starts_with("kill-"))
        .collect();
    assert_eq!(
        kill.len(),
        committed,
        "one row per committed version, none for others"
    );
    assert!(kill.iter().all(|(_, n)| **n == 1), "{kill:?}");
    for r in &acked {
        assert_eq!(counts.get(r), Some(&1), "acknowledged {r} is audited once");
    }
}
