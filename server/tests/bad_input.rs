//! Bad input against a real node: every malformed request gets its documented 4xx status and
//! stable error code with a message (and the field, where there is one), and the node keeps
//! serving afterwards.

use conflux_testkit::{NodeSpec, TestNode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    /// Sends every request with the node's admin token, so that what is tested is the
    /// request's shape, not its authorization.
    fn new(node: &TestNode) -> Self {
        let token = node.token();
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        Api {
            http: conflux_client::tls::reqwest_builder(&Default::default(), false)
                .unwrap()
                .default_headers(headers)
                .build()
                .unwrap(),
            base: node.api_url(),
            token,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: HeaderMap,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(headers)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.expect("request reaches the node");
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn json(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        self.send(
            method,
            path,
            Some("application/json"),
            body.as_bytes().to_vec(),
            HeaderMap::new(),
        )
        .await
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, v) = self.json(method, path, &body.to_string()).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Asserts a documented error, then that the node still answers.
    async fn expect_error(
        &self,
        got: (StatusCode, Value),
        status: u16,
        code: &str,
        field: Option<&str>,
    ) {
        let (s, body) = got;
        assert_eq!(
            s.as_u16(),
            status,
            "expected {status} {code}, got {s} {body}"
        );
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], f, "{body}");
        }
        let health = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .expect("node still up");
        assert_eq!(health.status(), StatusCode::OK);
    }
}

const M: &str = "/api/v1/mgt";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_documented_errors_and_the_node_keeps_serving() {
    let mut node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let api = Api::new(&node);
    api.ok(
        Method::POST,
        &format!("{M}/tenants"),
        json!({"name": "acme"}),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{M}/tenants/acme/apps"),
        json!({"name": "shop"}),
    )
    .await;
    api.ok(
        Method::POST,
        &format!("{M}/tenants/acme/apps/shop/envs"),
        json!({"name": "prod"}),
    )
    .await;
    let cfg = api
        .ok(
            Method::POST,
            &format!("{M}/tenants/acme/apps/shop/envs/prod/configs"),
            json!({"name": "app.json", "format": "json"}),
        )
        .await;
    let id = cfg["id"].as_u64().unwrap();
    let versions = format!("{M}/configs/{id}/versions");
    let (s, v) = api
        .send(
            Method::POST,
            &versions,
            Some("application/json"),
            br#"{"a": 1}"#.to_vec(),
            HeaderMap::new(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Malformed JSON bodies.
    api.expect_error(
        api.json(Method::POST, &format!("{M}/tenants"), r#"{"name": "#)
            .await,
        400,
        "invalid_json",
        None,
    )
    .await;
    api.expect_error(
        api.json(Method::POST, &format!("{M}/tenants"), r#"{"name": 5}"#)
            .await,
        400,
        "invalid_json",
        Some("name"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::POST,
            &format!("{M}/tenants"),
            r#"{"name": "a", "colour": 1}"#,
        )
        .await,
        400,
        "invalid_json",
        None,
    )
    .await;
    api.expect_error(
        api.json(Method::POST, &format!("{M}/tenants"), "").await,
        400,
        "invalid_json",
        None,
    )
    .await;
    api.expect_error(
        api.json(
            Method::PUT,
            &format!("{M}/configs/{id}/releases"),
            r#"{"releases": [{"version_id": 1, "percent": 300}]}"#,
        )
        .await,
        400,
        "invalid_json",
        Some("releases[0].percent"),
    )
    .await;

    // Wrong or missing Content-Type.
    api.expect_error(
        api.send(
            Method::POST,
            &format!("{M}/tenants"),
            Some("text/plain"),
            br#"{"name":"x"}"#.to_vec(),
            HeaderMap::new(),
        )
        .await,
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    api.expect_error(
        api.send(
            Method::POST,
            &versions,
            Some("text/yaml"),
            b"a: 1".to_vec(),
            HeaderMap::new(),
        )
        .await,
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    api.expect_error(
        api.send(
            Method::POST,
            &versions,
            None,
            b"{}".to_vec(),
            HeaderMap::new(),
        )
        .await,
        415,
        "unsupported_media_type",
        None,
    )
    .await;

    // Oversized bodies: over the 4 MiB hard cap, and over the tenant's content quota.
    let huge = vec![b' '; 5 * 1024 * 1024];
    api.expect_error(
        api.send(
            Method::POST,
            &versions,
            Some("application/json"),
            huge,
            HeaderMap::new(),
        )
        .await,
        413,
        "payload_too_large",
        None,
    )
    .await;
    // The node reads a rejected body to its end, so the connection stays usable for the
    // next request (a keep-alive client would otherwise hit a closing connection).
    for (headers, size, status) in [
        (vec![], 5 << 20, StatusCode::PAYLOAD_TOO_LARGE),
        (
            vec![("if-match", "not-a-revision")],
            3 << 20,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let mut req = api
            .http
            .post(format!("{}{versions}", api.base))
            .header("content-type", "application/json")
            .body(vec![b' '; size]);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status);
        assert!(
            resp.headers()
                .get("connection")
                .is_none_or(|v| v != "close"),
            "{:?}",
            resp.headers()
        );
    }
    // A body declared far too large is refused before it is sent, and that connection closes.
    let mut raw = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {versions} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        api.token,
        1u64 << 30
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let mut big = b"[".to_vec();
    big.extend(std::iter::repeat_n(b"1,".as_slice(), 60_000).flatten());
    big.extend_from_slice(b"1]");
    api.expect_error(
        api.send(
            Method::POST,
            &versions,
            Some("application/json"),
            big,
            HeaderMap::new(),
        )
        .await,
        413,
        "quota_exceeded",
        Some("max_config_bytes"),
    )
    .await;

    // Invalid names, in bodies and in paths.
    api.expect_error(
        api.json(
            Method::POST,
            &format!("{M}/tenants"),
            r#"{"name": "Bad_Name"}"#,
        )
        .await,
        400,
        "invalid_name",
        Some("name"),
    )
    .await;
    api.expect_error(
        api.json(Method::GET, &format!("{M}/tenants/Bad_Name"), "")
            .await,
        400,
        "invalid_name",
        Some("tenant"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::POST,
            &format!("{M}/tenants/acme/apps/shop/envs/prod/configs"),
            r#"{"name": "../etc", "format": "json"}"#,
        )
        .await,
        400,
        "invalid_name",
        Some("name"),
    )
    .await;
    api.expect_error(
        api.send(
            Method::GET,
            "/api/v1/fetch/config/acme/shop/prod/bad%20name",
            None,
            vec![],
            HeaderMap::new(),
        )
        .await,
        400,
        "invalid_name",
        Some("name"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::POST,
            &format!("{M}/tenants/acme/apps/shop/envs/prod/configs"),
            r#"{"name": "x", "format": "hcl"}"#,
        )
        .await,
        400,
        "invalid_json",
        Some("format"),
    )
    .await;

    // Release rules: unknown versions, two defaults, no default.
    let releases = format!("{M}/configs/{id}/releases");
    api.expect_error(
        api.json(
            Method::PUT,
            &releases,
            r#"{"releases": [{"version_id": 1}, {"labels": {"a": "b"}, "version_id": 42}]}"#,
        )
        .await,
        400,
        "unknown_version",
        Some("releases[1].version_id"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::PUT,
            &releases,
            r#"{"releases": [{"version_id": 1}, {"version_id": 1, "priority": 5}]}"#,
        )
        .await,
        400,
        "invalid_release_rules",
        Some("releases"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::PUT,
            &releases,
            r#"{"releases": [{"labels": {"a": "b"}, "version_id": 1}]}"#,
        )
        .await,
        400,
        "invalid_release_rules",
        Some("releases"),
    )
    .await;
    api.expect_error(
        api.json(
            Method::POST,
            &format!("{M}/configs/{id}/rollback"),
            r#"{"version_id": 9}"#,
        )
        .await,
        400,
        "unknown_version",
        Some("version_id"),
    )
    .await;

    // Content that does not parse: 422 with the position.
    let (s, body) = api
        .send(
            Method::POST,
            &versions,
            Some("application/json"),
            b"{\n  \"a\": 1,\n  oops\n}".to_vec(),
            HeaderMap::new(),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "content_invalid");
    assert_eq!(body["error"]["details"][0]["line"], 3, "{body}");

    // Invalid UTF-8 in paths and headers.
    api.expect_error(
        api.send(
            Method::GET,
            "/api/v1/fetch/config/acme/shop/prod/%FF%FE",
            None,
            vec![],
            HeaderMap::new(),
        )
        .await,
        400,
        "invalid_path",
        None,
    )
    .await;
    api.expect_error(
        api.send(
            Method::GET,
            &format!("{M}/tenants/%C3%28"),
            None,
            vec![],
            HeaderMap::new(),
        )
        .await,
        400,
        "invalid_path",
        None,
    )
    .await;
    let mut bad_header = HeaderMap::new();
    bad_header.insert(
        HeaderName::from_static("x-client-label-region"),
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    api.expect_error(
        api.send(
            Method::GET,
            "/api/v1/fetch/config/acme/shop/prod/app.json",
            None,
            vec![],
            bad_header,
        )
        .await,
        400,
        "invalid_header",
        Some("x-client-label-region"),
    )
    .await;
    let mut many = HeaderMap::new();
    for i in 0..33 {
        many.insert(
            HeaderName::try_from(format!("x-client-label-k{i}")).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    api.expect_error(
        api.send(
            Method::GET,
            "/api/v1/fetch/config/acme/shop/prod/app.json",
            None,
            vec![],
            many,
        )
        .await,
        400,
        "invalid_label",
        None,
    )
    .await;
    let mut if_match = HeaderMap::new();
    if_match.insert("if-match", HeaderValue::from_static("yesterday"));
    api.expect_error(
        api.send(
            Method::POST,
            &versions,
            Some("application/json"),
            b"{}".to_vec(),
            if_match,
        )
        .await,
        400,
        "invalid_header",
        Some("If-Match"),
    )
    .await;

    // Not found, wrong methods, unknown routes: JSON errors too.
    api.expect_error(
        api.json(Method::GET, &format!("{M}/configs/999"), "").await,
        404,
        "config_not_found",
        None,
    )
    .await;
    api.expect_error(
        api.json(Method::GET, &format!("{M}/configs/abc"), "").await,
        400,
        "invalid_path",
        None,
    )
    .await;
    api.expect_error(
        api.json(
            Method::GET,
            "/api/v1/fetch/config/acme/shop/prod/app.json",
            "",
        )
        .await,
        404,
        "not_published",
        None,
    )
    .await;
    api.expect_error(
        api.json(Method::DELETE, "/health", "").await,
        405,
        "method_not_allowed",
        None,
    )
    .await;
    api.expect_error(
        api.json(Method::GET, "/api/v2/anything", "").await,
        404,
        "not_found",
        None,
    )
    .await;

    assert!(node.is_running(), "the node survived every bad request");
}
