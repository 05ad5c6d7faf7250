//! The client against a scripted HTTP/1.1 peer on a loopback port: checks what goes on the
//! wire (method, path, query, headers, body) and how each kind of answer is read, without a
//! Conflux server. Tests against a real server live with the process-level suites.

use std::collections::BTreeMap;
use std::time::Duration;

use conflux_api_types::{
    BindingSpec, CreateRoleBinding, CreateTenant, CreateToken, CreateUser, PutReleases,
    ReleaseRule, RollbackMode, RollbackRequest, UpdateConfig, UpdateUser,
};
use conflux_domain::ConfigPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::{ApiClient, AuditQuery, ClientError, FetchOptions, Fetched, NewVersion, WriteOptions};

/// One request as the peer saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn json_answer(status: &str, body: &str) -> Vec<u8> {
    answer(
        status,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

async fn read_request(stream: &mut TcpStream) -> Seen {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request head ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_owned();
    let target = request_line.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }
    Seen {
        method,
        target,
        headers,
        body,
    }
}

/// A peer that answers one request with `reply` and reports what it received.
async fn peer(reply: Vec<u8>) -> (ApiClient, oneshot::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let seen = read_request(&mut stream).await;
        stream.write_all(&reply).await.unwrap();
        stream.shutdown().await.ok();
        let _ = tx.send(seen);
    });
    let client = ApiClient::new(&format!("http://{addr}")).unwrap();
    (client, rx)
}

#[tokio::test]
async fn create_version_sends_raw_body_query_and_write_headers() {
    let (client, seen) = peer(json_answer(
        "201 Created",
        r#"{"version_id": 3, "hash": "sha256:ab", "revision": 41}"#,
    ))
    .await;
    let created = client
        .create_version(
            7,
            NewVersion::new(&b"port = 5\n"[..], "application/toml")
                .description("first one & only")
                .validate_only(true),
            &WriteOptions::default().idempotency_key("k-1").if_match(40),
        )
        .await
        .unwrap();
    assert_eq!(created.version_id, 3);
    assert_eq!(created.revision, 41);
    let seen = seen.await.unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.target,
        "/api/v1/mgt/configs/7/versions?description=first+one+%26+only&validate_only=true"
    );
    assert_eq!(seen.header("content-type"), Some("application/toml"));
    assert_eq!(seen.header("x-idempotency-key"), Some("k-1"));
    assert_eq!(seen.header("if-match"), Some("40"));
    assert_eq!(seen.body, b"port = 5\n");
}

#[tokio::test]
async fn json_writes_send_the_api_types_body() {
    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"config_id": 7, "revision": 50, "releases": [{"labels": {}, "percent": null, "version_id": 2, "priority": 0}], "comment": "go"}"#,
    ))
    .await;
    let body = PutReleases {
        releases: vec![ReleaseRule::default_to(2)],
        comment: Some("go".into()),
    };
    let view = client
        .put_releases(7, &body, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(view.releases, body.releases);
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("PUT", "/api/v1/mgt/configs/7/releases")
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("if-match"), None);
    let sent: PutReleases = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, body);
}

#[tokio::test]
async fn names_are_encoded_in_paths() {
    let (client, seen) = peer(json_answer(
        "404 Not Found",
        r#"{"error": {"code": "config_not_found", "message": "nope"}}"#,
    ))
    .await;
    let path = ConfigPath::new("acme", "a/b", "prod", "x?y#z");
    let err = client.get_config_by_path(&path).await.unwrap_err();
    assert!(err.is_not_found());
    let seen = seen.await.unwrap();
    assert_eq!(
        seen.target,
        "/api/v1/mgt/tenants/acme/apps/a%2Fb/envs/prod/configs/x%3Fy%23z"
    );
}

#[tokio::test]
async fn dot_segments_never_reach_the_wire() {
    let client = ApiClient::new("http://127.0.0.1:9").unwrap();
    let err = client.get_app("acme", "..").await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
    assert_eq!(err.field(), Some("app"));
}

#[tokio::test]
async fn fetch_sends_identity_and_reads_headers() {
    let (client, seen) = peer(answer(
        "200 OK",
        &[
            ("content-type", "application/toml"),
            ("x-config-version", "5"),
            ("x-config-hash", "sha256:00ff"),
            ("x-conflux-revision", "77"),
            ("etag", "\"c-5\""),
        ],
        b"a = 1\n",
    ))
    .await;
    let opts = FetchOptions {
        labels: BTreeMap::from([("canary".into(), "true".into())]),
        client_id: Some("host-1".into()),
        min_revision: Some(70),
        linearizable: true,
        ..FetchOptions::default()
    };
    let got = client
        .fetch(
            &ConfigPath::new("acme", "billing", "prod", "db.toml"),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        Fetched::Modified {
            content: bytes::Bytes::from_static(b"a = 1\n"),
            version: 5,
            hash: "sha256:00ff".into(),
            revision: 77,
            etag: "\"c-5\"".into(),
            content_type: "application/toml".into(),
        }
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.target,
        "/api/v1/fetch/config/acme/billing/prod/db.toml?min_revision=70&consistency=linearizable"
    );
    assert_eq!(seen.header("x-client-label-canary"), Some("true"));
    assert_eq!(seen.header("x-client-id"), Some("host-1"));
    assert_eq!(seen.header("if-none-match"), None);
}

#[tokio::test]
async fn fetch_not_modified() {
    let (client, seen) = peer(answer(
        "304 Not Modified",
        &[("etag", "\"c-5\""), ("x-conflux-revision", "77")],
        b"",
    ))
    .await;
    let opts = FetchOptions {
        if_none_match: Some("\"c-5\"".into()),
        ..FetchOptions::default()
    };
    let got = client
        .fetch(
            &ConfigPath::new("acme", "billing", "prod", "db.toml"),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(got, Fetched::NotModified);
    assert_eq!(seen.await.unwrap().header("if-none-match"), Some("\"c-5\""));
}

#[tokio::test]
async fn fetch_without_version_headers_is_a_decode_error() {
    let (client, _seen) = peer(answer("200 OK", &[("content-type", "text/plain")], b"x")).await;
    let err = client
        .fetch(
            &ConfigPath::new("a", "b", "c", "d"),
            &FetchOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("x-config-version"), "{err}");
}

#[tokio::test]
async fn api_errors_carry_code_field_and_details() {
    let (client, seen) = peer(json_answer(
        "409 Conflict",
        r#"{"error": {"code": "revision_mismatch", "message": "If-Match was 3 but the current revision is 4", "details": [{"expected": 3, "actual": 4}]}}"#,
    ))
    .await;
    let err = client
        .update_config(
            9,
            &UpdateConfig {
                description: Some("d".into()),
                ..UpdateConfig::default()
            },
            &WriteOptions::default().if_match(3),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "revision_mismatch");
    assert_eq!(err.status(), Some(409));
    let ClientError::Api { details, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(details[0]["actual"], 4);
    let seen = seen.await.unwrap();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.body, br#"{"description":"d"}"#);
}

#[tokio::test]
async fn unavailable_is_distinguishable() {
    let (client, _seen) = peer(answer(
        "503 Service Unavailable",
        &[("retry-after", "2"), ("content-type", "application/json")],
        br#"{"error": {"code": "not_leader", "message": "the cluster has no leader at the moment"}}"#,
    ))
    .await;
    let err = client
        .create_tenant(&CreateTenant::named("acme"), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_unavailable());
    assert!(err.is_retryable());
    assert_eq!(err.code(), "not_leader");
    assert_eq!(err.retry_after_secs(), Some(2));
}

#[tokio::test]
async fn delete_with_cascade_and_bodyless_answer() {
    let (client, seen) = peer(answer("200 OK", &[("x-conflux-revision", "12")], b"")).await;
    let deleted = client
        .delete_tenant("acme", true, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted.revision, 12);
    let seen = seen.await.unwrap();
    assert_eq!(seen.method, "DELETE");
    assert_eq!(seen.target, "/api/v1/mgt/tenants/acme?cascade=true");
}

#[tokio::test]
async fn delete_reads_json_body() {
    let (client, seen) = peer(json_answer("200 OK", r#"{"revision": 13}"#)).await;
    let deleted = client
        .delete_env("acme", "billing", "prod", false, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted.revision, 13);
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/mgt/tenants/acme/apps/billing/envs/prod"
    );
}

#[tokio::test]
async fn rollback_and_resolve() {
    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"config_id": 7, "revision": 60, "releases": [], "comment": null}"#,
    ))
    .await;
    client
        .rollback(
            7,
            &RollbackRequest {
                version_id: 3,
                mode: RollbackMode::Emergency,
            },
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&seen.await.unwrap().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"version_id": 3, "mode": "emergency"})
    );

    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"version_id": 2, "rule_index": 0, "rule": {"labels": {}, "percent": null, "version_id": 2, "priority": 0}, "revision": 60}"#,
    ))
    .await;
    let labels = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
    let r = client.resolve(7, &labels, Some("c1")).await.unwrap();
    assert_eq!(r.version_id, 2);
    let seen = seen.await.unwrap();
    assert_eq!(seen.target, "/api/v1/mgt/configs/7/resolve");
    assert_eq!(seen.header("x-client-label-region"), Some("eu"));
    assert_eq!(seen.header("x-client-id"), Some("c1"));
}

#[tokio::test]
async fn versions_list_content_and_diff() {
    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"versions": [], "next_cursor": "abc"}"#,
    ))
    .await;
    let list = client
        .list_versions(7, Some(20), Some("x y"))
        .await
        .unwrap();
    assert_eq!(list.next_cursor.as_deref(), Some("abc"));
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/mgt/configs/7/versions?limit=20&cursor=x+y"
    );

    let (client, seen) = peer(answer(
        "200 OK",
        &[("content-type", "application/octet-stream")],
        b"\x00\xff",
    ))
    .await;
    let content = client.get_version_content(7, 2).await.unwrap();
    assert_eq!(&content[..], b"\x00\xff");
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/mgt/configs/7/versions/2/content"
    );

    let (client, seen) = peer(answer(
        "200 OK",
        &[("content-type", "text/plain")],
        b"-a\n+b\n",
    ))
    .await;
    let diff = client.diff_versions(7, 1, 2).await.unwrap();
    assert_eq!(diff, "-a\n+b\n");
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/mgt/configs/7/versions/1/diff/2"
    );
}

#[tokio::test]
async fn ready_reports_not_ready_bodies() {
    let (client, _seen) = peer(json_answer(
        "503 Service Unavailable",
        r#"{"ready": false, "node_id": 1, "leader_id": null, "applied_index": 0, "reason": "no leader"}"#,
    ))
    .await;
    let r = client.ready().await.unwrap();
    assert!(!r.ready);
    assert_eq!(r.reason.as_deref(), Some("no leader"));

    let (client, _seen) = peer(json_answer(
        "503 Service Unavailable",
        r#"{"error": {"code": "not_ready", "message": "starting"}}"#,
    ))
    .await;
    assert_eq!(client.ready().await.unwrap_err().code(), "not_ready");
}

#[tokio::test]
async fn a_body_that_is_not_the_promised_json_is_a_decode_error() {
    let (client, _seen) = peer(json_answer("200 OK", r#"{"status": 5}"#)).await;
    let err = client.health().await.unwrap_err();
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("GET /health"), "{err}");
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transport_error() {
    // Bind and drop to find a port nobody listens on.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let client = ApiClient::new(&format!("http://{addr}")).unwrap();
    let err = client.list_tenants().await.unwrap_err();
    assert_eq!(err.code(), "unreachable");
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn slow_answers_time_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        // Hold the connection open without answering until the test is over.
        let _ = done_rx.await;
    });
    let client = ApiClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    assert_eq!(client.timeout(), Duration::from_millis(200));
    let err = client.health().await.unwrap_err();
    assert_eq!(err.code(), "timeout", "{err}");
    let _ = done_tx.send(());
}

// ---- identity, access and audit ---------------------------------------------------------

/// [`peer`], with a client that sends `token`.
async fn peer_with_token(reply: Vec<u8>, token: &str) -> (ApiClient, oneshot::Receiver<Seen>) {
    let (client, seen) = peer(reply).await;
    let client = ApiClient::builder(client.endpoint())
        .bearer_token(token)
        .build()
        .unwrap();
    (client, seen)
}

fn no_content() -> Vec<u8> {
    answer("204 No Content", &[], b"")
}

#[tokio::test]
async fn login_posts_credentials_and_reads_the_session() {
    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"token": "sess-abc", "expires_at": "2030-01-01T00:00:00.000Z"}"#,
    ))
    .await;
    let login = client.login("alice", "correct horse").await.unwrap();
    assert_eq!(login.token, "sess-abc");
    assert!(!format!("{login:?}").contains("sess-abc"));
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/auth/login")
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("authorization"), None);
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"username": "alice", "password": "correct horse"})
    );
}

#[tokio::test]
async fn bad_credentials_and_throttling_are_api_errors() {
    let (client, _seen) = peer(answer(
        "401 Unauthorized",
        &[
            ("content-type", "application/json"),
            ("www-authenticate", "Bearer"),
        ],
        br#"{"error": {"code": "invalid_credentials", "message": "wrong username or password"}}"#,
    ))
    .await;
    let err = client.login("alice", "nope").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), "invalid_credentials")
    );
    assert!(!err.is_retryable());

    let (client, _seen) = peer(answer(
        "429 Too Many Requests",
        &[("content-type", "application/json"), ("retry-after", "60")],
        br#"{"error": {"code": "too_many_attempts", "message": "too many failed logins"}}"#,
    ))
    .await;
    let err = client.login("alice", "nope").await.unwrap_err();
    assert_eq!(err.code(), "too_many_attempts");
    assert_eq!(err.retry_after_secs(), Some(60));
}

#[tokio::test]
async fn logout_and_whoami_send_the_token() {
    let (client, seen) = peer_with_token(no_content(), "sess-abc").await;
    client.logout().await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/auth/logout")
    );
    assert_eq!(seen.header("authorization"), Some("Bearer sess-abc"));
    assert!(seen.body.is_empty());

    let (client, seen) = peer_with_token(
        json_answer(
            "200 OK",
            r#"{"principal": "user:alice", "bindings": [{"id": "b1", "role": "viewer", "scope": "acme"}]}"#,
        ),
        "sess-abc",
    )
    .await;
    let me = client.whoami().await.unwrap();
    assert_eq!(me.principal, "user:alice");
    assert_eq!(me.bindings[0].role, "viewer");
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/v1/auth/whoami")
    );
    assert_eq!(seen.header("authorization"), Some("Bearer sess-abc"));
}

const USER: &str = r#"{"username": "alice", "display_name": "Alice", "disabled": false,
    "created_at": "2030-01-01T00:00:00.000Z", "updated_at": "2030-01-01T00:00:00.000Z"}"#;

#[tokio::test]
async fn users_crud_requests() {
    let (client, seen) = peer(json_answer("201 Created", USER)).await;
    let body = CreateUser {
        username: "alice".into(),
        password: "twelve chars!".into(),
        display_name: Some("Alice".into()),
    };
    let user = client.create_user(&body).await.unwrap();
    assert_eq!(user.username, "alice");
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/users")
    );
    let sent: CreateUser = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, body);

    let (client, seen) = peer(json_answer("200 OK", &format!(r#"{{"users": [{USER}]}}"#))).await;
    assert_eq!(client.list_users().await.unwrap().users.len(), 1);
    assert_eq!(seen.await.unwrap().target, "/api/v1/users");

    let (client, seen) = peer(json_answer("200 OK", USER)).await;
    client.get_user("a/b c").await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/v1/users/a%2Fb%20c")
    );

    let (client, seen) = peer(json_answer("200 OK", USER)).await;
    let patch = UpdateUser {
        disabled: Some(true),
        ..UpdateUser::default()
    };
    client.update_user("alice", &patch).await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("PATCH", "/api/v1/users/alice")
    );
    assert_eq!(seen.body, br#"{"disabled":true}"#);

    let (client, seen) = peer(no_content()).await;
    client.delete_user("alice").await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("DELETE", "/api/v1/users/alice")
    );

    let client = ApiClient::new("http://127.0.0.1:9").unwrap();
    let err = client.get_user("..").await.unwrap_err();
    assert_eq!(err.field(), Some("username"));
}

const TOKEN: &str = r#"{"id": "t-1", "name": "billing-reader", "created_at": "2030-01-01T00:00:00.000Z",
    "expires_at": null, "created_by": "user:alice"}"#;

#[tokio::test]
async fn token_requests() {
    let (client, seen) = peer(json_answer(
        "201 Created",
        r#"{"id": "t-1", "name": "billing-reader", "token": "cfx_secret", "expires_at": "2031-01-01T00:00:00Z",
            "bindings": [{"id": "b-9", "principal": "token:t-1", "role": "reader", "scope": "acme/billing",
                          "created_at": "2030-01-01T00:00:00.000Z", "created_by": "user:alice"}]}"#,
    ))
    .await;
    let body = CreateToken {
        name: "billing-reader".into(),
        expires_at: Some("2031-01-01T00:00:00Z".into()),
        bindings: vec![BindingSpec {
            role: "reader".into(),
            scope: "acme/billing".into(),
        }],
    };
    let created = client.create_token(&body).await.unwrap();
    assert_eq!(created.token, "cfx_secret");
    assert_eq!(created.bindings[0].principal, "token:t-1");
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/tokens")
    );
    let sent: CreateToken = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, body);

    let (client, seen) = peer(json_answer(
        "200 OK",
        &format!(r#"{{"tokens": [{TOKEN}]}}"#),
    ))
    .await;
    let list = client.list_tokens().await.unwrap();
    assert_eq!(list.tokens[0].created_by, "user:alice");
    assert_eq!(seen.await.unwrap().target, "/api/v1/tokens");

    let (client, seen) = peer(json_answer("200 OK", TOKEN)).await;
    assert_eq!(client.get_token("t-1").await.unwrap().id, "t-1");
    assert_eq!(seen.await.unwrap().target, "/api/v1/tokens/t-1");

    let (client, seen) = peer(no_content()).await;
    client.delete_token("t/1").await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("DELETE", "/api/v1/tokens/t%2F1")
    );
}

const BINDING: &str = r#"{"id": "b-1", "principal": "user:alice", "role": "viewer", "scope": "acme",
    "created_at": "2030-01-01T00:00:00.000Z", "created_by": "token:admin"}"#;

#[tokio::test]
async fn role_binding_requests() {
    let (client, seen) = peer(json_answer("201 Created", BINDING)).await;
    let body = CreateRoleBinding {
        principal: "user:alice".into(),
        role: "viewer".into(),
        scope: "acme".into(),
    };
    assert_eq!(client.create_role_binding(&body).await.unwrap().id, "b-1");
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/role-bindings")
    );
    let sent: CreateRoleBinding = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent, body);

    let list = format!(r#"{{"role_bindings": [{BINDING}]}}"#);
    let (client, seen) = peer(json_answer("200 OK", &list)).await;
    client
        .list_role_bindings(Some("user:alice"), Some("acme/web"))
        .await
        .unwrap();
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/role-bindings?principal=user%3Aalice&scope=acme%2Fweb"
    );
    let (client, seen) = peer(json_answer("200 OK", &list)).await;
    client.list_role_bindings(None, None).await.unwrap();
    assert_eq!(seen.await.unwrap().target, "/api/v1/role-bindings");

    let (client, seen) = peer(json_answer("200 OK", BINDING)).await;
    client.get_role_binding("b-1").await.unwrap();
    assert_eq!(seen.await.unwrap().target, "/api/v1/role-bindings/b-1");

    let (client, seen) = peer(no_content()).await;
    client.delete_role_binding("b-1").await.unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("DELETE", "/api/v1/role-bindings/b-1")
    );

    let (client, _seen) = peer(json_answer(
        "403 Forbidden",
        r#"{"error": {"code": "forbidden", "message": "create role binding on acme needs tenant_admin"}}"#,
    ))
    .await;
    let err = client.create_role_binding(&body).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), "forbidden"));
}

#[tokio::test]
async fn audit_sends_its_filters_as_query_parameters() {
    let (client, seen) = peer(json_answer(
        "200 OK",
        r#"{"records": [{"id": 7, "time": "2030-01-01T00:00:00.000Z", "actor": "user:alice",
            "action": "login", "resource": "user:alice", "tenant": null, "outcome": "success",
            "request_id": "r-1", "source_ip": "127.0.0.1", "user_agent": "conflux-cli",
            "details": {}}], "next_cursor": "c2"}"#,
    ))
    .await;
    let query = AuditQuery {
        tenant: Some("acme".into()),
        actor: Some("user:alice".into()),
        action: Some("login".into()),
        since: Some("2030-01-01T00:00:00+01:00".into()),
        until: None,
        limit: Some(10),
        cursor: Some("c1".into()),
    };
    let page = client.audit(&query).await.unwrap();
    assert_eq!(page.records[0].id, 7);
    assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    assert_eq!(
        seen.await.unwrap().target,
        "/api/v1/audit?tenant=acme&actor=user%3Aalice&action=login&since=2030-01-01T00%3A00%3A00%2B01%3A00&limit=10&cursor=c1"
    );

    let (client, seen) = peer(json_answer("200 OK", r#"{"records": []}"#)).await;
    let page = client.audit(&AuditQuery::default()).await.unwrap();
    assert!(page.records.is_empty() && page.next_cursor.is_none());
    assert_eq!(seen.await.unwrap().target, "/api/v1/audit");
}

#[tokio::test]
async fn a_missing_or_rejected_token_is_unauthenticated() {
    let (client, _seen) = peer(answer(
        "401 Unauthorized",
        &[
            ("content-type", "application/json"),
            ("www-authenticate", "Bearer"),
        ],
        br#"{"error": {"code": "unauthenticated", "message": "no bearer token"}}"#,
    ))
    .await;
    let err = client.list_tenants().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), "unauthenticated"));
}

#[test]
fn builders_never_show_the_token() {
    let builder = ApiClient::builder("http://127.0.0.1:1").bearer_token("s3cr3t-token");
    let text = format!("{builder:?}");
    assert!(!text.contains("s3cr3t-token"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    let client = builder.build().unwrap();
    let text = format!("{client:?}");
    assert!(!text.contains("s3cr3t-token"), "{text}");
    let sdk = crate::ConfluxClient::new(["http://127.0.0.1:1"]).with_token("s3cr3t-token");
    let text = format!("{sdk:?}");
    assert!(!text.contains("s3cr3t-token"), "{text}");
}
