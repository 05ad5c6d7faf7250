//! Webhooks against real nodes and a real HTTP receiver (contract section 7): deliveries
//! retried through a receiver outage until every one arrives, signed, each id once after the
//! receiver's dedupe; a leader killed between the commit of a change and the delivery of its
//! event (the event still arrives); registration checks and access; the secret never
//! returned and never stored in the clear; the CLI.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{As, blocking, eventually};
use conflux_testkit::{Cluster, NodeSpec, TestNode, TestPostgres, conflux_binary};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "a-webhook-secret-0123456789";

// ---- the receiver --------------------------------------------------------------------------

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    signature: String,
    content_type: String,
    body: Bytes,
}

#[derive(Debug, Default)]
struct ReceiverState {
    /// While false, every POST is answered 503 (the receiver is "down").
    up: AtomicBool,
    /// POSTs refused while down.
    refused: AtomicUsize,
    /// POSTs accepted (2xx), in arrival order, duplicates included.
    accepted: Mutex<Vec<Received>>,
    /// Where `/away` redirects (307).
    away: Mutex<String>,
}

/// A real HTTP server on 127.0.0.1:0, stopped when dropped.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(s): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !s.up.load(Ordering::SeqCst) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    s.accepted.lock().unwrap().push(Received {
        delivery: h("x-conflux-delivery"),
        event: h("x-conflux-event"),
        signature: h("x-conflux-signature-256"),
        content_type: h("content-type"),
        body,
    });
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start(up: bool) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        state.up.store(up, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .route(
                "/same",
                axum::routing::post(|| async {
                    (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook")])
                }),
            )
            .route(
                "/away",
                axum::routing::post(|State(s): State<Arc<ReceiverState>>| async move {
                    let to = s.away.lock().unwrap().clone();
                    (StatusCode::TEMPORARY_REDIRECT, [("location", to)])
                }),
            )
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, state, task }
    }

    fn url(&self) -> String {
        self.at("/hook")
    }

    fn at(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> Vec<Received> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// What the receiver's dedupe by delivery id keeps: the first accepted POST of each id.
    fn deduped(&self) -> BTreeMap<String, Received> {
        let mut out = BTreeMap::new();
        for r in self.accepted() {
            out.entry(r.delivery.clone()).or_insert(r);
        }
        out
    }
}

/// The receiver's check of a delivery: the signature over the raw body, the headers, and
/// the body's shape.
fn check_delivery(r: &Received) -> Value {
    let expected = conflux_server::webhooks::sign(SECRET.as_bytes(), &r.body);
    assert_eq!(
        r.signature, expected,
        "signature of delivery {}",
        r.delivery
    );
    let raw = conflux_server::webhooks::parse_signature(&r.signature).unwrap();
    assert!(conflux_server::webhooks::verify(
        SECRET.as_bytes(),
        &r.body,
        &raw
    ));
    assert_eq!(r.content_type, "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], r.delivery.as_str());
    assert_eq!(body["event"], r.event.as_str());
    for key in ["time", "tenant", "config", "revision", "data"] {
        assert!(body.get(key).is_some(), "{key} missing from {body}");
    }
    body
}

// ---- raw HTTP as one principal ---------------------------------------------------------------

impl As {
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body)).await
    }

    /// Creates acme/shop/prod/app.txt (and the tree above it when missing); returns its id.
    async fn config(&self) -> u64 {
        let (s, _) = self
            .call(Method::GET, "/api/v1/mgt/tenants/acme", None)
            .await;
        if s == StatusCode::NOT_FOUND {
            self.post("/api/v1/mgt/tenants", json!({"name": "acme"}))
                .await;
            self.post("/api/v1/mgt/tenants/acme/apps", json!({"name": "shop"}))
                .await;
            self.post(
                "/api/v1/mgt/tenants/acme/apps/shop/envs",
                json!({"name": "prod"}),
            )
            .await;
        }
        let c = self
            .post(
                "/api/v1/mgt/tenants/acme/apps/shop/envs/prod/configs",
                json!({"name": "app.txt", "format": "text"}),
            )
            .await;
        c["id"].as_u64().unwrap()
    }

    async fn publish(&self, config: u64, content: &str) -> Value {
        self.post(
            &format!("/api/v1/mgt/configs/{config}/publish"),
            json!({"content": content, "strategy": {"type": "stable"}}),
        )
        .await
    }

    async fn register(&self, url: &str, events: &[&str], tenant: Option<&str>) -> String {
        let mut body = json!({"name": "receiver", "url": url, "events": events, "secret": SECRET});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let (status, v) = self
            .call(Method::POST, "/api/v1/webhooks", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/webhooks/{webhook}/deliveries"))
            .await["deliveries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// A single embedded node (SQLite metadata DB, local KMS key) whose webhook retries start at
/// 100 ms instead of 1 s.
fn fast_retry_node() -> TestNode {
    let mut spec = NodeSpec::new(1);
    spec.env.push((
        conflux_server::webhooks::RETRY_BASE_ENV.to_owned(),
        "100".to_owned(),
    ));
    TestNode::start(spec).expect("node starts")
}

// ---- tests ---------------------------------------------------------------------------------

/// The receiver answers 503 for a while: every delivery is retried (with its id and body
/// unchanged) and arrives once it is back; the receiver's dedupe by delivery id sees each
/// event once; every signature verifies; the attempts show the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_retried_through_an_outage_and_all_arrive() {
    let node = blocking(fast_retry_node).await;
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let receiver = Receiver::start(false).await;
    let hook = admin
        .register(
            &receiver.url(),
            &["version.created", "release.changed"],
            Some("acme"),
        )
        .await;
    // A webhook of another tenant hears nothing of acme.
    let other = admin
        .register(&receiver.url(), &["version.created"], Some("other"))
        .await;

    let config = admin.config().await;
    let mut revisions = BTreeSet::new();
    for i in 0..3 {
        let v = admin.publish(config, &format!("content {i}")).await;
        revisions.insert(v["revision"].as_u64().unwrap_or_default());
    }
    // Three publishes: a version and a release change each.
    let expected = 6;

    // The receiver is down: attempts pile up, several per delivery.
    eventually(
        Duration::from_secs(30),
        "retries while the receiver is down",
        || {
            let admin = admin.clone();
            let hook = hook.clone();
            async move {
                let list = admin.deliveries(&hook).await;
                list.len() == expected
                    && list
                        .iter()
                        .all(|d| d["attempts"].as_array().is_some_and(|a| a.len() >= 2))
            }
        },
    )
    .await;
    assert!(receiver.refused() >= 2 * expected);
    assert!(receiver.accepted().is_empty());
    let pending = admin.deliveries(&hook).await;
    for d in &pending {
        assert_eq!(d["status"], "pending", "{d}");
        assert!(d["next_attempt_at"].is_string(), "{d}");
        let attempts = d["attempts"].as_array().unwrap();
        assert!(!attempts.is_empty(), "{d}");
        assert_eq!(attempts[0]["status_code"], 503, "{d}");
        assert!(
            attempts[0]["error"].as_str().unwrap().contains("503"),
            "{d}"
        );
    }

    receiver.set_up(true);
    eventually(Duration::from_secs(30), "every delivery delivered", || {
        let admin = admin.clone();
        let hook = hook.clone();
        async move {
            let list = admin.deliveries(&hook).await;
            list.len() == expected && list.iter().all(|d| d["status"] == "delivered")
        }
    })
    .await;

    let deduped = receiver.deduped();
    let listed: BTreeSet<String> = admin
        .deliveries(&hook)
        .await
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        deduped.keys().cloned().collect::<BTreeSet<_>>(),
        listed,
        "the receiver saw exactly the listed deliveries"
    );
    let mut events = BTreeMap::<String, usize>::new();
    for r in deduped.values() {
        let body = check_delivery(r);
        *events.entry(r.event.clone()).or_default() += 1;
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["config"], "acme/shop/prod/app.txt");
    }
    assert_eq!(
        events,
        BTreeMap::from([
            ("release.changed".to_owned(), 3),
            ("version.created".to_owned(), 3)
        ])
    );
    // A duplicate POST (allowed: at least once) carries the same body as the first.
    for r in receiver.accepted() {
        assert_eq!(r.body, deduped[&r.delivery].body);
    }
    for d in admin.deliveries(&hook).await {
        assert!(d["delivered_at"].is_string(), "{d}");
        assert!(d.get("next_attempt_at").is_none(), "{d}");
        let attempts = d["attempts"].as_array().unwrap();
        assert!(attempts.len() >= 2, "{d}");
        assert!(attempts.last().unwrap()["status_code"] == 204, "{d}");
    }
    assert!(admin.deliveries(&other).await.is_empty());

    // Registrations are audited.
    eventually(Duration::from_secs(10), "webhook.create audited", || {
        let admin = admin.clone();
        async move {
            let page = admin.get("/api/v1/audit?action=webhook.create").await;
            page["records"].as_array().map(Vec::len) == Some(2)
        }
    })
    .await;
}

/// The leader commits a change and is killed at once, before it delivered the event (the
/// receiver refuses until after the kill): a new leader delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_commit_and_delivery_loses_no_event() {
    let (cluster, leader) = blocking(|| {
        let cluster = Cluster::start(3).expect("cluster");
        let leader = cluster
            .wait_for_leader(Duration::from_secs(20))
            .expect("a leader");
        (cluster, leader)
    })
    .await;
    let token = cluster.token().to_owned();
    let on_leader = As::new(&cluster.node(leader).api_url(), Some(&token));
    let receiver = Receiver::start(false).await;
    // The webhook API needs the node's metadata DB link, which connects in the background.
    eventually(Duration::from_secs(20), "the leader's webhook API", || {
        let on_leader = on_leader.clone();
        async move {
            let (s, v) = on_leader.call(Method::GET, "/api/v1/webhooks", None).await;
            if s != StatusCode::OK {
                eprintln!("webhook API not usable yet: {s} {v}");
            }
            s == StatusCode::OK
        }
    })
    .await;
    let hook = on_leader
        .register(
            &receiver.url(),
            &["version.created", "release.changed"],
            None,
        )
        .await;
    let config = on_leader.config().await;

    // Committed and acknowledged by the leader, which dies right away: the audit drain
    // runs every 500 ms, so the event is most likely still only in the outbox.
    let published = on_leader.publish(config, "survives the leader").await;
    let version = published["version_id"].as_u64().unwrap();
    let mut cluster = cluster;
    let _cluster = blocking(move || {
        cluster.node_mut(leader).kill9().unwrap();
        cluster
    })
    .await;
    receiver.set_up(true);

    eventually(
        Duration::from_secs(90),
        "the event delivered by the new leader",
        || {
            let got = receiver
                .deduped()
                .values()
                .any(|r| r.event == "version.created");
            async move { got }
        },
    )
    .await;
    let deduped = receiver.deduped();
    let created: Vec<Value> = deduped
        .values()
        .filter(|r| r.event == "version.created")
        .map(check_delivery)
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["data"]["version_id"], version);
    assert_eq!(created[0]["config"], "acme/shop/prod/app.txt");
    eventually(
        Duration::from_secs(30),
        "release.changed delivered too",
        || {
            let got = receiver
                .deduped()
                .values()
                .any(|r| r.event == "release.changed");
            async move { got }
        },
    )
    .await;
    // Exactly one delivery per event, whoever enqueued it.
    let ids: BTreeSet<String> = receiver.deduped().keys().cloned().collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let listed = on_survivor_deliveries(&_cluster, leader, &token, &hook).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// The deliveries of `hook` as a surviving node lists them, once they are all delivered.
async fn on_survivor_deliveries(
    cluster: &Cluster,
    dead: u64,
    token: &str,
    hook: &str,
) -> Vec<Value> {
    let survivor = cluster.ids().into_iter().find(|id| *id != dead).unwrap();
    let client = As::new(&cluster.node(survivor).api_url(), Some(token));
    eventually(
        Duration::from_secs(30),
        "deliveries recorded as delivered",
        || {
            let client = client.clone();
            let hook = hook.to_owned();
            async move {
                client
                    .deliveries(&hook)
                    .await
                    .iter()
                    .all(|d| d["status"] == "delivered")
            }
        },
    )
    .await;
    client.deliveries(hook).await
}

/// Attempts that fail say why: a port nobody listens on (cannot connect, no status), a
/// receiver that accepts and never answers (timed out after the 10 s total timeout), a
/// redirect to another origin (not followed: the 307 is the attempt's status); a 307 to the
/// same origin is followed and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_say_why_and_redirects_stay_on_their_origin() {
    let node = blocking(fast_retry_node).await;
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let receiver = Receiver::start(true).await;
    let elsewhere = Receiver::start(true).await;
    *receiver.state.away.lock().unwrap() = elsewhere.url();
    // Bound but not listening: connections to it are refused, and no one else gets the port
    // while the test holds it.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });

    let refused = admin
        .register(&closed_url, &["version.created"], None)
        .await;
    let hung = admin
        .register(&silent_url, &["version.created"], None)
        .await;
    let away = admin
        .register(&receiver.at("/away"), &["version.created"], None)
        .await;
    let same = admin
        .register(&receiver.at("/same"), &["version.created"], None)
        .await;
    let config = admin.config().await;
    admin.publish(config, "one").await;

    let first_attempt = |hook: String| {
        let admin = admin.clone();
        async move {
            let list = admin.deliveries(&hook).await;
            list.first()
                .and_then(|d| d["attempts"].as_array()?.first().cloned())
        }
    };
    eventually(
        Duration::from_secs(30),
        "the same-origin redirect delivers",
        || {
            let admin = admin.clone();
            let same = same.clone();
            async move {
                admin
                    .deliveries(&same)
                    .await
                    .first()
                    .is_some_and(|d| d["status"] == "delivered")
            }
        },
    )
    .await;
    let got = receiver.deduped();
    assert_eq!(got.len(), 1, "{got:?}");
    check_delivery(got.values().next().unwrap());

    eventually(
        Duration::from_secs(30),
        "an attempt on the closed port",
        || {
            let f = first_attempt(refused.clone());
            async { f.await.is_some() }
        },
    )
    .await;
    let attempt = first_attempt(refused.clone()).await.unwrap();
    assert!(attempt.get("status_code").is_none(), "{attempt}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{attempt}"
    );

    eventually(
        Duration::from_secs(30),
        "an attempt redirected away",
        || {
            let f = first_attempt(away.clone());
            async { f.await.is_some() }
        },
    )
    .await;
    let attempt = first_attempt(away.clone()).await.unwrap();
    assert_eq!(attempt["status_code"], 307, "{attempt}");
    assert!(
        elsewhere.accepted().is_empty(),
        "followed a redirect to another origin"
    );

    eventually(Duration::from_secs(40), "an attempt timed out", || {
        let f = first_attempt(hung.clone());
        async { f.await.is_some() }
    })
    .await;
    let attempt = first_attempt(hung.clone()).await.unwrap();
    assert!(
        attempt["error"].as_str().unwrap().starts_with("timed out"),
        "{attempt}"
    );
    let took = attempt["duration_ms"].as_u64().unwrap();
    assert!((9_000..20_000).contains(&took), "{attempt}");
    for hook in [&refused, &hung, &away] {
        let list = admin.deliveries(hook).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["status"], "pending", "retried, not given up");
    }
    silent_task.abort();
    drop(closed);
}

/// The metadata DB (PostgreSQL) goes away while the receiver is down too: the webhook API
/// answers 503 `metadata_unavailable`, config writes go on, and once both are back every
/// event arrives, those committed during the outage included (they waited in the outbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_outage_delays_deliveries_but_loses_none() {
    let pg = Arc::new(blocking(|| TestPostgres::start().expect("PostgreSQL starts")).await);
    let url = pg.fresh_database().unwrap();
    let node = blocking(move || {
        let mut spec = NodeSpec::new(1);
        spec.extra_args = vec!["--metadata-url".into(), url];
        spec.env.push((
            conflux_server::webhooks::RETRY_BASE_ENV.to_owned(),
            "100".to_owned(),
        ));
        TestNode::start(spec).expect("node starts")
    })
    .await;
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let receiver = Receiver::start(false).await;
    let hook = admin
        .register(&receiver.url(), &["version.created"], None)
        .await;
    let config = admin.config().await;
    admin.publish(config, "before").await;
    eventually(Duration::from_secs(20), "a refused attempt", || {
        let n = receiver.refused();
        async move { n >= 1 }
    })
    .await;

    blocking({
        let pg = pg.clone();
        move || pg.stop().unwrap()
    })
    .await;
    let (s, v) = admin
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{hook}/deliveries"),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["code"].as_str()),
        (503, Some("metadata_unavailable")),
        "{v}"
    );
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"name": "n", "url": receiver.url(), "events": ["version.created"], "secret": SECRET})),
        )
        .await;
    assert_eq!(s.as_u16(), 503, "{v}");
    assert_eq!(v["error"]["code"], "metadata_unavailable");
    for i in 0..3 {
        admin.publish(config, &format!("during {i}")).await;
    }
    receiver.set_up(true);
    // Let the drain and the worker fail against the missing DB for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    blocking({
        let pg = pg.clone();
        move || pg.start_again().unwrap()
    })
    .await;

    eventually(
        Duration::from_secs(60),
        "all four versions delivered",
        || {
            let n = receiver.deduped().len();
            async move { n >= 4 }
        },
    )
    .await;
    let versions: BTreeSet<u64> = receiver
        .deduped()
        .values()
        .map(|r| check_delivery(r)["data"]["version_id"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, BTreeSet::from([1, 2, 3, 4]));
    eventually(Duration::from_secs(20), "recorded as delivered", || {
        let admin = admin.clone();
        let hook = hook.clone();
        async move {
            let list = admin.deliveries(&hook).await;
            list.len() == 4 && list.iter().all(|d| d["status"] == "delivered")
        }
    })
    .await;
}

/// Registration checks (400 naming the field), who may register and see what, 404 for what
/// the caller may not manage, delete, and the secret: never in an answer, never in the
/// metadata DB's files in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_checked_and_the_secret_never_comes_back() {
    let node = blocking(fast_retry_node).await;
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let anonymous = As::new(&node.api_url(), None);
    admin.config().await;
    let good = json!({
        "name": "chat",
        "url": "https://hooks.example.com/conflux",
        "events": ["version.created"],
        "secret": SECRET,
        "tenant": "acme",
    });
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let cases = [
        (with("name", json!("")), 400, "invalid_argument", "name"),
        (
            with("url", json!("ftp://x/")),
            400,
            "invalid_argument",
            "url",
        ),
        // The cloud metadata service, and the same behind an IPv4-mapped IPv6 literal.
        (
            with("url", json!("http://169.254.169.254/latest/meta-data/")),
            400,
            "invalid_argument",
            "url",
        ),
        (
            with("url", json!("http://[::ffff:169.254.169.254]/")),
            400,
            "invalid_argument",
            "url",
        ),
        (
            with("url", json!("not a url")),
            400,
            "invalid_argument",
            "url",
        ),
        (with("events", json!([])), 400, "invalid_argument", "events"),
        (
            with("events", json!(["version.created", "config.exploded"])),
            400,
            "invalid_argument",
            "events[1]",
        ),
        (
            with("secret", json!("short")),
            400,
            "invalid_argument",
            "secret",
        ),
        (
            with("secret", json!("x".repeat(257))),
            400,
            "invalid_argument",
            "secret",
        ),
        (
            with("tenant", json!("Not_A_Name")),
            400,
            "invalid_name",
            "tenant",
        ),
        (with("colour", json!("red")), 400, "invalid_json", "colour"),
        (
            with("events", json!("version.created")),
            400,
            "invalid_json",
            "events",
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, v) = admin
            .call(Method::POST, "/api/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(s.as_u16(), status, "{body} -> {v}");
        assert_eq!(v["error"]["code"], code, "{body} -> {v}");
        assert_eq!(v["error"]["field"], field, "{body} -> {v}");
    }
    let (s, _) = anonymous
        .call(Method::POST, "/api/v1/webhooks", Some(good.clone()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A tenant admin of acme registers for acme, not for every tenant, and sees only its own.
    let t = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "acme admin", "bindings": [{"role": "tenant_admin", "scope": "acme"}]}),
        )
        .await;
    let acme_admin = admin.with(t["token"].as_str().unwrap());
    let (s, created) = acme_admin
        .call(Method::POST, "/api/v1/webhooks", Some(good.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let acme_hook = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["events"], json!(["version.created"]));
    assert!(
        created["created_by"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    let mut global = good.clone();
    global.as_object_mut().unwrap().remove("tenant");
    let (s, v) = acme_admin
        .call(Method::POST, "/api/v1/webhooks", Some(global.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let global_hook = admin
        .register("http://127.0.0.1:9/x", &["release.changed"], None)
        .await;

    let listed = |v: Value| -> BTreeSet<String> {
        v["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        listed(acme_admin.get("/api/v1/webhooks").await),
        BTreeSet::from([acme_hook.clone()])
    );
    assert_eq!(
        listed(admin.get("/api/v1/webhooks").await),
        BTreeSet::from([acme_hook.clone(), global_hook.clone()])
    );
    for path in [
        format!("/api/v1/webhooks/{global_hook}"),
        format!("/api/v1/webhooks/{global_hook}/deliveries"),
        "/api/v1/webhooks/0123456789abcdef".to_owned(),
    ] {
        let (s, v) = acme_admin.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found");
    }
    let (s, v) = admin
        .call(Method::GET, "/api/v1/webhooks/NOT-AN-ID", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "id");
    let (s, v) = admin
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{acme_hook}/deliveries?limit=0"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "limit");

    // The secret is never returned.
    let mut answers = vec![created.clone()];
    answers.push(admin.get("/api/v1/webhooks").await);
    answers.push(admin.get(&format!("/api/v1/webhooks/{acme_hook}")).await);
    answers.push(
        admin
            .get(&format!("/api/v1/webhooks/{acme_hook}/deliveries"))
            .await,
    );
    for a in &answers {
        let text = a.to_string();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
    // ...and not stored in the clear: no file of the node's data directory (SQLite DB and
    // WAL, RocksDB, the audit spool) holds it.
    let data_dir = node.data_dir();
    let leaked = blocking(move || find_in_dir(&data_dir, SECRET.as_bytes())).await;
    assert!(leaked.is_empty(), "the secret in the clear in {leaked:?}");

    // Delete: 204, then gone; a tenant admin may not delete the global one.
    let (s, _) = acme_admin
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{global_hook}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = acme_admin
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{acme_hook}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = admin
        .call(Method::GET, &format!("/api/v1/webhooks/{acme_hook}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{acme_hook}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    eventually(Duration::from_secs(10), "webhook.delete audited", || {
        let admin = admin.clone();
        async move {
            let page = admin.get("/api/v1/audit?action=webhook.delete").await;
            page["records"].as_array().map(Vec::len) == Some(1)
        }
    })
    .await;
}

/// Files under `dir` whose bytes contain `needle`.
fn find_in_dir(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// `conflux admin webhook create|list|deliveries|delete` through the real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_webhooks() {
    let node = blocking(fast_retry_node).await;
    let admin = As::new(&node.api_url(), Some(&node.token()));
    let receiver = Receiver::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let cli = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(conflux_binary().unwrap());
        cmd.args(&args)
            .arg("--endpoint")
            .arg(node.api_url())
            .arg("--token")
            .arg(node.token())
            .env_remove("CONFLUX_TOKEN")
            .env_remove("CONFLUX_ENDPOINT")
            .env("CONFLUX_CREDENTIALS", dir.path().join("credentials"))
            .env("HOOK_SECRET", SECRET);
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, out, err) = cli(s(&[
        "admin",
        "webhook",
        "create",
        "--name",
        "ci",
        "--url",
        &receiver.url(),
        "--event",
        "version.created",
        "--secret-file",
        &secret_file.display().to_string(),
        "--tenant",
        "acme",
        "--output",
        "json",
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(s(&[
        "admin",
        "webhook",
        "create",
        "--name",
        "env",
        "--url",
        &receiver.url(),
        "--event",
        "release.changed",
        "--event",
        "version.created",
        "--secret-env",
        "HOOK_SECRET",
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(all)"), "{out}");
    assert!(!out.contains(SECRET), "{out}");

    // A bad event: one error line naming the field, exit 1.
    let (code, out, err) = cli(s(&[
        "admin",
        "webhook",
        "create",
        "--name",
        "x",
        "--url",
        &receiver.url(),
        "--event",
        "nope",
        "--secret-env",
        "HOOK_SECRET",
    ]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("invalid_argument"), "{err}");
    assert!(err.contains("events[0]"), "{err}");

    let (code, out, err) = cli(s(&["admin", "webhook", "list"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("ID"), "{out}");
    assert!(out.contains(&id) && out.contains("acme"), "{out}");

    let config = admin.config().await;
    admin.publish(config, "hello").await;
    eventually(Duration::from_secs(20), "the delivery arrives", || {
        let n = receiver.deduped().len();
        async move { n >= 3 }
    })
    .await;
    eventually(Duration::from_secs(20), "the delivery recorded", || {
        let admin = admin.clone();
        let id = id.clone();
        async move {
            let list = admin.deliveries(&id).await;
            !list.is_empty() && list.iter().all(|d| d["status"] == "delivered")
        }
    })
    .await;
    let (code, out, err) = cli(s(&["admin", "webhook", "deliveries", &id]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("version.created") && out.contains("delivered"),
        "{out}"
    );
    assert!(out.contains("HTTP 204"), "{out}");

    let (code, out, err) = cli(s(&["admin", "webhook", "delete", &id]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, format!("webhook {id} deleted\n"));
    let (code, _, err) = cli(s(&["admin", "webhook", "deliveries", &id]));
    assert_eq!(code, Some(1));
    assert!(err.contains("not_found"), "{err}");
}
