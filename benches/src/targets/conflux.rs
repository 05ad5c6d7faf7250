//! Conflux as a load target: a release-build cluster started through `conflux-testkit` (data
//! on disk in temp dirs, fsync on, as every node runs) or an existing deployment given by URL,
//! the data every scenario needs, and the request workers.
//!
//! Workers speak HTTP/1.1 over one keep-alive connection each, written and parsed by hand
//! ([`HttpConn`]), so the load generator spends as little CPU per request as it can: on two
//! shared cores every cycle it spends is one the server does not get. Management setup goes
//! through the typed `ApiClient`. A target whose API is on TLS (`https://` URLs, or a cluster
//! started with `--api-tls`) gets the same workers over tokio-rustls ([`crate::tls`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use conflux_api_types::{
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Format, PublishRequest, PutReleases,
    QuotasPatch, ReleaseRule, RetentionPolicy, Strategy,
};
use conflux_client::{ApiClient, NewVersion, TlsOptions, WriteOptions};
use conflux_domain::{RetentionKind, RetentionRule, RetentionStrategy};
use conflux_testkit::Cluster;

use super::conflux_watch::{Transport, spawn_watchers};
use super::{WatchSet, Workload};
use crate::load::OpKind;
use crate::tls::{BenchTls, Io};

const APP: &str = "svc";
const ENV: &str = "prod";
/// The config fetches read: 3 versions, 3 release rules.
const FETCHED: &str = "app.json";
/// The config watchers watch.
const WATCHED: &str = "watched.txt";
/// Versions kept per write config (count retention), as a service's config would.
const KEEP_VERSIONS: u64 = 100;
/// One write in this many is a publish (a version and a rule change in one command).
const PUBLISH_EVERY: u64 = 10;
/// Region labels fetches cycle through (none of them is in a rule: the default matches).
const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "eu-central"];

/// A Conflux cluster prepared for the scenarios.
#[derive(Debug)]
pub struct Conflux {
    /// Nodes this tool started (stopped when dropped); `None` for `--target`.
    cluster: Option<Cluster>,
    pub addrs: Vec<SocketAddr>,
    tenant: String,
    /// Config ids, one per writer.
    write_ids: Vec<u64>,
    watched_id: u64,
    /// The watched config's latest revision: new watchers subscribe from it.
    watched_revision: AtomicU64,
    pub transport: Transport,
    content: Bytes,
    publish_body: Bytes,
    /// The watch scenario's writer (a pooled connection to the first node), once prepared.
    writer: Option<ApiClient>,
    /// A cluster_admin token: management setup and the write workers use it.
    admin_token: String,
    /// A reader token on the bench tenant, made by `prepare`: fetch workers and watchers use
    /// it, as a service would.
    reader_token: String,
    /// TLS to an https target; `None`: plain HTTP. Boxed: most runs go without.
    tls: Option<Box<TargetTls>>,
}

/// How the tool reaches a target whose API is on TLS.
#[derive(Debug)]
struct TargetTls {
    /// The typed client's settings.
    options: TlsOptions,
    /// The raw connections'.
    raw: BenchTls,
    /// The certificates of a cluster started here with its API on TLS.
    _certs: Option<tempfile::TempDir>,
}

impl Conflux {
    /// Starts `nodes` release-build nodes on loopback (`CONFLUX_BIN` selects the binary).
    /// With `api_tls`, their API is on TLS (certificates generated for the run).
    pub fn start(nodes: usize, api_tls: bool) -> Result<Conflux> {
        let (cluster, certs, tls_options) = if api_tls {
            let dir = tempfile::Builder::new()
                .prefix("conflux-bench-tls-")
                .tempdir()?;
            let ca = conflux_testkit::tls::TestCa::new(dir.path(), "bench")?;
            let cert = ca.node_cert("node")?;
            let cluster = Cluster::start_tls(nodes, cert.api_args(), ca.client_tls())
                .context("starting Conflux with API TLS (is CONFLUX_BIN a release build?)")?;
            let options = TlsOptions::new().ca_cert_file(ca.ca_path());
            (cluster, Some(dir), options)
        } else {
            let cluster = Cluster::start(nodes)
                .context("starting Conflux (is CONFLUX_BIN a release build?)")?;
            (cluster, None, TlsOptions::new())
        };
        cluster.wait_for_leader(Duration::from_secs(30))?;
        let addrs = cluster.nodes().iter().map(|n| n.api_addr()).collect();
        let token = cluster.token().to_owned();
        let mut c = Conflux::new(Some(cluster), addrs, "bench".into(), token);
        if api_tls {
            c.tls = Some(Box::new(TargetTls {
                raw: BenchTls::new(&tls_options, "127.0.0.1")?,
                options: tls_options,
                _certs: certs,
            }));
        }
        Ok(c)
    }

    /// An existing deployment: its nodes' API URLs (`http://host:port`, or `https://host:port`
    /// verified with `tls`) and a cluster_admin token (`CONFLUX_TOKEN`). Data goes into a new
    /// tenant named after the current time, so runs never collide.
    pub fn attach(urls: &[String], tls_options: TlsOptions) -> Result<Conflux> {
        let token = std::env::var("CONFLUX_TOKEN").map_err(|_| {
            anyhow!("--target needs CONFLUX_TOKEN: a cluster_admin token of that deployment")
        })?;
        let https = urls.first().is_some_and(|u| u.starts_with("https://"));
        let mut addrs = Vec::new();
        let mut host = String::new();
        for u in urls {
            let hostport = u
                .strip_prefix(if https { "https://" } else { "http://" })
                .ok_or_else(|| {
                    anyhow!("--target {u}: http:// or https:// URLs, all with the same scheme")
                })?
                .trim_end_matches('/');
            host = hostport
                .rsplit_once(':')
                .map_or(hostport, |(h, _)| h)
                .trim_matches(['[', ']'])
                .to_owned();
            addrs.push(
                hostport
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| anyhow!("--target {u}: no address"))?,
            );
        }
        // One certificate name for every node: the raw workers check the last URL's host.
        let tls = if https {
            Some(Box::new(TargetTls {
                raw: BenchTls::new(&tls_options, &host)?,
                options: tls_options,
                _certs: None,
            }))
        } else {
            None
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut c = Conflux::new(None, addrs, format!("bench-{secs}"), token);
        c.tls = tls;
        Ok(c)
    }

    fn new(
        cluster: Option<Cluster>,
        addrs: Vec<SocketAddr>,
        tenant: String,
        admin_token: String,
    ) -> Conflux {
        let content = Bytes::from(crate::json_doc(1024));
        let publish = PublishRequest {
            content: String::from_utf8(content.to_vec()).expect("json_doc is UTF-8"),
            description: None,
            strategy: Strategy::Stable,
        };
        let publish_body = Bytes::from(serde_json::to_vec(&publish).expect("serialisable"));
        Conflux {
            cluster,
            addrs,
            tenant,
            write_ids: Vec::new(),
            watched_id: 0,
            watched_revision: AtomicU64::new(0),
            transport: Transport::WebSocket,
            content,
            publish_body,
            writer: None,
            admin_token,
            reader_token: String::new(),
            tls: None,
        }
    }

    fn client(&self, node: usize, token: &str) -> Result<ApiClient> {
        Ok(ApiClient::builder(self.url(node))
            .bearer_token(token)
            .timeout(Duration::from_secs(10))
            .tls(
                self.tls
                    .as_ref()
                    .map(|t| t.options.clone())
                    .unwrap_or_default(),
            )
            .build()?)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.cluster
            .as_ref()
            .map(|c| c.nodes().iter().filter_map(|n| n.pid()).collect())
            .unwrap_or_default()
    }

    pub fn max_writers(&self) -> usize {
        self.write_ids.len()
    }

    fn url(&self, node: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addrs[node % self.addrs.len()])
    }

    /// Creates the tenant, the fetched config (3 versions, 3 rules), `writers` write configs
    /// and the watched config, then waits until every node serves the fetched config.
    pub async fn prepare(&mut self, writers: usize) -> Result<()> {
        let admin = self.client(0, &self.admin_token)?;
        self.writer = Some(admin.clone());
        let w = WriteOptions::default();
        let t = self.tenant.clone();
        let quotas = QuotasPatch {
            max_configs: Some(100_000),
            ..Default::default()
        };
        admin
            .create_tenant(
                &CreateTenant {
                    name: t.clone(),
                    display_name: None,
                    quotas: Some(quotas),
                },
                &w,
            )
            .await?;
        let app = CreateApp::named(APP);
        admin.create_app(&t, &app, &w).await?;
        let env = CreateEnvironment::named(ENV);
        admin.create_env(&t, APP, &env, &w).await?;
        // Services read with a reader token of their tenant, never with an admin's.
        let reader = admin
            .create_token(&conflux_api_types::CreateToken {
                name: format!("{t}-reader"),
                expires_at: None,
                bindings: vec![conflux_api_types::BindingSpec {
                    role: "reader".into(),
                    scope: t.clone(),
                }],
            })
            .await?;
        self.reader_token = reader.token;
        let config = |name: &str, format, retention| CreateConfig {
            name: name.into(),
            format,
            schema: None,
            retention,
            description: None,
            encrypted: false,
        };
        // The fetched config: everyone gets v1, canaries v2, 10 % of client ids v3.
        let fetched = admin
            .create_config(&t, APP, ENV, &config(FETCHED, Format::Json, None), &w)
            .await?
            .id;
        for _ in 0..3 {
            let v = NewVersion::new(self.content.clone(), "application/json");
            admin.create_version(fetched, v, &w).await?;
        }
        let rule = |labels: &[(&str, &str)], percent, version_id, priority| ReleaseRule {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            percent,
            version_id,
            priority,
        };
        let rules = PutReleases {
            releases: vec![
                rule(&[], None, 1, 0),
                rule(&[("canary", "true")], None, 2, 100),
                rule(&[], Some(10), 3, 50),
            ],
            comment: None,
        };
        let released = admin.put_releases(fetched, &rules, &w).await?;
        // One config per writer, as many services would have; retention keeps the last 100.
        let retention = RetentionPolicy {
            strategy: RetentionStrategy::Or,
            rules: vec![RetentionRule {
                kind: RetentionKind::Count,
                keep: KEEP_VERSIONS,
            }],
        };
        for c in 0..writers {
            let cfg = config(&format!("w{c}.json"), Format::Json, Some(retention.clone()));
            self.write_ids
                .push(admin.create_config(&t, APP, ENV, &cfg, &w).await?.id);
        }
        let watched = config(WATCHED, Format::Text, Some(retention));
        self.watched_id = admin.create_config(&t, APP, ENV, &watched, &w).await?.id;
        let watched_revision = self.write_watched(0).await?;
        // Followers serve what they have applied: wait until each one has the rules.
        let min_revision = released.revision.max(watched_revision);
        for node in 0..self.addrs.len() {
            // Each node learns of the new reader token within its identity poll: retried
            // below like a lagging apply.
            let client = self.client(node, &self.reader_token)?;
            let opts = conflux_client::FetchOptions {
                min_revision: Some(min_revision),
                ..Default::default()
            };
            let path = conflux_client::ConfigPath::new(&t, APP, ENV, FETCHED);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match client.fetch(&path, &opts).await {
                    Ok(_) => break,
                    Err(e) if e.status() == Some(401) && std::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("node {} serves the fetched config", node + 1)
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Worker `k`: a connection to node `k mod n`; writes go to config `k`.
    pub async fn worker(&self, k: usize, workload: Workload) -> Result<ConfluxWorker> {
        let addr = self.addrs[k % self.addrs.len()];
        let write_id = match workload {
            Workload::Fetch => 0,
            _ => *self.write_ids.get(k).ok_or_else(|| {
                anyhow!("only {} write configs were prepared", self.write_ids.len())
            })?,
        };
        let mut conn = HttpConn::new(addr, self.tls.as_ref().map(|t| t.raw.clone()));
        conn.connect().await?;
        let token = match workload {
            Workload::Fetch => &self.reader_token,
            _ => &self.admin_token,
        };
        Ok(ConfluxWorker {
            conn,
            workload,
            auth: format!("Authorization: Bearer {token}"),
            fetch_path: format!("/api/v1/fetch/config/{}/{APP}/{ENV}/{FETCHED}", self.tenant),
            versions_path: format!("/api/v1/mgt/configs/{write_id}/versions"),
            publish_path: format!("/api/v1/mgt/configs/{write_id}/publish"),
            content: self.content.clone(),
            publish_body: self.publish_body.clone(),
            writes: 0,
        })
    }

    pub async fn open_watchers(
        &self,
        first: usize,
        count: usize,
        first_node_only: bool,
        due: Option<std::time::Instant>,
        set: &WatchSet,
    ) {
        let servers = if first_node_only {
            &self.addrs[..1]
        } else {
            &self.addrs[..]
        };
        let key = format!("{}/{APP}/{ENV}/{WATCHED}", self.tenant);
        spawn_watchers(
            self.transport,
            self.tls.as_ref().map(|t| &t.raw),
            servers,
            &key,
            &self.reader_token,
            self.watched_revision.load(Ordering::Relaxed),
            first,
            count,
            due,
            set,
        )
        .await;
    }

    /// Publishes 1 KiB of text as the watched config's new version (on the first node).
    pub async fn write_watched(&self, k: u64) -> Result<u64> {
        let admin = self
            .writer
            .as_ref()
            .ok_or_else(|| anyhow!("not prepared"))?;
        let content = format!("{k:08}\n{}\n", "x".repeat(1014));
        let body = PublishRequest {
            content,
            description: None,
            strategy: Strategy::Stable,
        };
        let published = admin
            .publish(self.watched_id, &body, &WriteOptions::default())
            .await?;
        self.watched_revision
            .fetch_max(published.revision, Ordering::Relaxed);
        Ok(published.revision)
    }
}

/// Longest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// One keep-alive HTTP/1.1 connection driven by hand: the request head is written from a
/// reused buffer and the response parsed in place with `httparse` (what hyper uses inside),
/// so a request costs the load generator two syscalls and no allocation. Re-opened after
/// an error.
#[derive(Debug)]
pub struct HttpConn {
    addr: SocketAddr,
    tls: Option<BenchTls>,
    stream: Option<Io>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl HttpConn {
    /// To `addr`, over TLS when `tls` is given.
    pub fn new(addr: SocketAddr, tls: Option<BenchTls>) -> HttpConn {
        HttpConn {
            addr,
            tls,
            stream: None,
            out: Vec::with_capacity(2048),
            buf: Vec::with_capacity(4096),
        }
    }

    async fn connect(&mut self) -> Result<()> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        self.stream = Some(Io::over(stream, self.tls.as_ref()).await?);
        Ok(())
    }

    /// Sends `METHOD path` with `headers` (each a full `Name: value` line without CRLF) and
    /// `body`; answers the status and the body's length.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> Result<(u16, usize)> {
        use std::io::Write;
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.addr
        )?;
        for h in headers {
            self.out.extend_from_slice(h.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        write!(self.out, "Content-Length: {}\r\n\r\n", body.len())?;
        self.out.extend_from_slice(body);
        if self.stream.is_none() {
            self.connect().await?;
        }
        let result = self.exchange().await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self) -> Result<(u16, usize)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(&self.out).await?;
        self.buf.clear();
        let (status, head_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = resp.parse(&self.buf)? {
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .ok_or_else(|| anyhow!("response without Content-Length"))?;
                break (resp.code.unwrap_or(0), n, length);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                bail!("response head over {MAX_HEAD_BYTES} bytes");
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed");
            }
        };
        while self.buf.len() < head_len + body_len {
            self.buf.reserve(head_len + body_len - self.buf.len());
            if stream.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed mid-body");
            }
        }
        Ok((status, body_len))
    }
}

/// A Conflux request worker.
#[derive(Debug)]
pub struct ConfluxWorker {
    conn: HttpConn,
    workload: Workload,
    /// The `Authorization` header line of every request.
    auth: String,
    fetch_path: String,
    versions_path: String,
    publish_path: String,
    content: Bytes,
    publish_body: Bytes,
    writes: u64,
}

impl ConfluxWorker {
    /// A fetch with labels and client id varied by `seq`: 1 in 4 is a canary, every request
    /// has its own client id (so the 10 % rule's bucket varies).
    async fn fetch(&mut self, seq: u64) -> Result<()> {
        let region = format!("X-Client-Label-Region: {}", REGIONS[(seq % 4) as usize]);
        let id = format!("X-Client-Id: host-{seq}");
        let canary = "X-Client-Label-Canary: true";
        let headers = [self.auth.as_str(), region.as_str(), id.as_str(), canary];
        let n = if seq % 4 == 3 { 4 } else { 3 };
        let (status, len) = self
            .conn
            .send("GET", &self.fetch_path, &headers[..n], b"")
            .await?;
        if status != 200 || len != self.content.len() {
            bail!("fetch answered {status} with {len} bytes");
        }
        Ok(())
    }

    /// A version creation, or every [`PUBLISH_EVERY`]-th write a publish.
    async fn write(&mut self) -> Result<()> {
        self.writes += 1;
        let (path, body) = if self.writes.is_multiple_of(PUBLISH_EVERY) {
            (&self.publish_path, &self.publish_body)
        } else {
            (&self.versions_path, &self.content)
        };
        let headers = [self.auth.as_str(), "Content-Type: application/json"];
        let (status, _) = self.conn.send("POST", path, &headers, body).await?;
        if !(200..300).contains(&status) {
            bail!("write answered {status}");
        }
        Ok(())
    }
}

impl crate::load::Worker for ConfluxWorker {
    async fn call(&mut self, seq: u64) -> (OpKind, bool) {
        if self.workload.is_write(seq) {
            (OpKind::Write, self.write().await.is_ok())
        } else {
            (OpKind::Read, self.fetch(seq).await.is_ok())
        }
    }
}
