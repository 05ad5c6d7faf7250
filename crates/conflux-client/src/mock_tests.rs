//! The client against a scripted HTTP/1.1 peer on a loopback port: checks what goes on the
//! wire (method, path, query, headers, body) and how each kind of answer is read, without a
//! Conflux server. Tests against a real server live with the process-level suites.

use std::collections::BTreeMap;
use std::time::Duration;

use conflux_api_types::{
    CreateTenant, PutReleases, ReleaseRule, RollbackMode, RollbackRequest, UpdateConfig,
};
use conflux_domain::ConfigPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::{ApiClient, ClientError, FetchOptions, Fetched, NewVersion, WriteOptions};

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
