//! Helpers shared by the cluster tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, QuotasPatch,
};
use conflux_client::{ApiClient, NewVersion, WriteOptions};
use conflux_testkit::TestNode;

/// A client of `node` with its cluster_admin token.
pub fn client(node: &TestNode) -> ApiClient {
    ApiClient::builder(node.api_url())
        .bearer_token(node.token())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Creates acme/shop/prod/<name> (text format, generous quotas) and returns the config id.
pub async fn setup_config(client: &ApiClient, name: &str) -> u64 {
    setup_config_with(client, name, false).await
}

/// Like [`setup_config`], with every version's content encrypted at rest.
pub async fn setup_encrypted_config(client: &ApiClient, name: &str) -> u64 {
    setup_config_with(client, name, true).await
}

async fn setup_config_with(client: &ApiClient, name: &str, encrypted: bool) -> u64 {
    let w = WriteOptions::default();
    let quotas = QuotasPatch {
        max_versions_per_config: Some(10_000_000),
        ..Default::default()
    };
    if client.get_tenant("acme").await.is_err() {
        client
            .create_tenant(
                &CreateTenant {
                    name: "acme".into(),
                    display_name: None,
                    quotas: Some(quotas),
                },
                &w,
            )
            .await
            .unwrap();
        client
            .create_app("acme", &CreateApp::named("shop"), &w)
            .await
            .unwrap();
        client
            .create_env("acme", "shop", &CreateEnvironment::named("prod"), &w)
            .await
            .unwrap();
    }
    let config = CreateConfig {
        name: name.into(),
        format: Format::Text,
        schema: None,
        retention: None,
        description: None,
        encrypted,
    };
    client
        .create_config("acme", "shop", "prod", &config, &w)
        .await
        .unwrap()
        .id
}

/// Creates one version; returns its number.
pub async fn push(
    client: &ApiClient,
    id: u64,
    content: &str,
) -> Result<u64, conflux_client::ClientError> {
    client
        .create_version(
            id,
            NewVersion::new(content.to_owned(), "text/plain"),
            &WriteOptions::default(),
        )
        .await
        .map(|c| c.version_id)
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The applied index a node reports.
pub async fn applied(client: &ApiClient) -> Option<u64> {
    client.ready().await.ok().map(|r| r.applied_index)
}

/// One sample of a node's `/metrics` (name without labels), if it is exported.
pub async fn metric(node: &TestNode, name: &str) -> Option<f64> {
    let body = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .ok()?
        .build()
        .ok()?
        .get(format!("{}/metrics", node.api_url()))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// Runs blocking harness code (process control) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The next watch message on a WebSocket (plain or TLS underneath), skipping pings; at most
/// 10 s.
pub async fn ws_next<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> conflux_api_types::WatchMessage
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Raw HTTP as one principal (for what the typed client does not show: exact statuses and
/// bodies). Each test file adds the helpers it needs in its own `impl As` block.
#[derive(Debug, Clone)]
pub struct As {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl As {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        As {
            base: base.to_owned(),
            token: token.map(str::to_owned),
            http: conflux_client::tls::reqwest_builder(&Default::default(), false)
                .unwrap()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn with(&self, token: &str) -> Self {
        As::new(&self.base, Some(token))
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the node");
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}
