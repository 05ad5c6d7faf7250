//! [`ApiClient`]: one method per endpoint of the HTTP API.
//!
//! Every method builds its path with [`ApiPath`] (names percent-encoded), sends one request,
//! reads the whole answer, and turns a non-2xx answer into [`ClientError::Api`]. Nothing is
//! retried here: whether a write may be retried depends on its idempotency key, which only
//! the caller knows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conflux_api_types::{
    AppList, AppView, ClusterChange, ClusterDigest, ClusterStatus, ConfigList, ConfigView,
    CreateApp, CreateConfig, CreateEnvironment, CreateTenant, Deleted, EnvironmentList,
    EnvironmentView, Health, JoinRequest, KmsRewrapped, KmsStatus, PublishRequest, PublishResponse,
    PutReleases, Readiness, ReleasesView, ResolveResponse, RollbackRequest, SnapshotTaken,
    TenantList, TenantView, TransferLeaderRequest, UpdateApp, UpdateConfig, UpdateEnvironment,
    UpdateTenant, VersionCreated, VersionList, VersionView, WatchEvent, headers,
};
use conflux_domain::ConfigPath;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::options::{
    FetchOptions, Fetched, NewVersion, WatchOptions, WriteOptions, duration_param, identity_headers,
};
use crate::path::{ApiPath, parse_endpoint};
use crate::tls::TlsOptions;

/// Timeout of a whole request (connect, send, answer) unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of establishing a TCP connection unless changed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const MGT: &str = "/api/v1/mgt";
const FETCH: &str = "/api/v1/fetch/config";
const WATCH: &str = "/api/v1/watch/config";

/// The long-poll timeout the server applies when the request does not say.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the long-poll timeout a watch request may take before the client
/// gives up on it (the server answers 304 at the timeout; this covers a slow network).
pub const WATCH_GRACE: Duration = Duration::from_secs(10);

/// Builds a [`ApiClient`]. Options that need a new HTTP client (connection settings, the
/// bearer token, TLS) live here; per-request settings such as the timeout can also be
/// changed on a built client. Several endpoints are the SDK's ([`crate::ConfluxClient`]).
/// Its `Debug` output never shows the token.
#[derive(Clone)]
pub struct ApiClientBuilder {
    endpoint: String,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    bearer_token: Option<String>,
    tls: TlsOptions,
}

impl std::fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

impl ApiClientBuilder {
    /// `endpoint` is `http://host:port` or `https://host:port` (a path prefix is kept;
    /// `host:port` means http).
    pub fn new(endpoint: impl Into<String>) -> Self {
        ApiClientBuilder {
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            user_agent: concat!("conflux-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            bearer_token: None,
            tls: TlsOptions::default(),
        }
    }

    /// Timeout of each whole request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout of establishing a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (the server ignores it until
    /// authentication exists). The value is marked sensitive, so it never appears in debug
    /// output of the request.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// All TLS settings at once (replaces those given before).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Trust exactly the CA certificates in this PEM bundle for `https://` (without one, the
    /// system trust store).
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls = self.tls.ca_cert_pem(pem);
        self
    }

    /// [`ApiClientBuilder::ca_cert_pem`] from a file, read by [`ApiClientBuilder::build`].
    pub fn ca_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls = self.tls.ca_cert_file(path);
        self
    }

    /// Present this client certificate and key (PEM) to servers that require one.
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls = self.tls.client_identity(cert_pem, key_pem);
        self
    }

    /// [`ApiClientBuilder::client_identity`] from files, read by [`ApiClientBuilder::build`].
    pub fn client_identity_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls = self.tls.client_identity_files(cert, key);
        self
    }

    pub fn build(self) -> Result<ApiClient, ClientError> {
        let base = parse_endpoint(&self.endpoint)?;
        let tls = self.tls.client_config(base.starts_with("https://"))?;
        let mut default_headers = HeaderMap::new();
        if let Some(token) = &self.bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .ok()
                .filter(|_| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    ClientError::invalid_argument(
                        "token",
                        "a bearer token is non-empty visible ASCII without spaces",
                    )
                })?;
            value.set_sensitive(true);
            default_headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .default_headers(default_headers)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| ClientError::invalid_argument("client", e.to_string()))?;
        Ok(ApiClient {
            inner: Arc::new(Inner { http, base }),
            timeout: self.timeout,
        })
    }
}

/// A client of one Conflux endpoint. Cloning is cheap (the connection pool is shared), so
/// clone it into tasks instead of wrapping it in an `Arc`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
    timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    base: String,
}

/// A request body.
pub(crate) enum Body {
    Empty,
    Json(Vec<u8>),
    Raw {
        content: Bytes,
        content_type: String,
    },
}

/// A whole answer, read to the end.
pub(crate) struct Answer {
    /// `METHOD /path`, for error messages.
    request: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// Fails with [`ClientError::Api`] unless the status is 2xx.
    pub(crate) fn success(self) -> Result<Answer, ClientError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ClientError::from_response(
                self.status,
                &self.headers,
                &self.body,
            ))
        }
    }

    pub(crate) fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let answer = self.success()?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| ClientError::decode(answer.request, e.to_string()))
    }

    /// Succeeds on any 2xx and ignores the body (the 204s of deletes and logout).
    pub(crate) fn no_content(self) -> Result<(), ClientError> {
        self.success().map(|_| ())
    }

    fn text(self) -> Result<String, ClientError> {
        let answer = self.success()?;
        String::from_utf8(answer.body.to_vec())
            .map_err(|_| ClientError::decode(answer.request, "the body is not UTF-8"))
    }

    fn header(&self, name: &str) -> Result<&str, ClientError> {
        self.headers
            .get(name)
            .ok_or_else(|| ClientError::decode(&self.request, format!("no {name} header")))?
            .to_str()
            .map_err(|_| ClientError::decode(&self.request, format!("{name} is not ASCII")))
    }

    fn header_u64(&self, name: &str) -> Result<u64, ClientError> {
        let raw = self.header(name)?;
        raw.trim().parse().map_err(|_| {
            ClientError::decode(&self.request, format!("{name} {raw:?} is not a number"))
        })
    }
}

pub(crate) fn json_body<T: Serialize>(value: &T) -> Result<Body, ClientError> {
    serde_json::to_vec(value)
        .map(Body::Json)
        .map_err(|e| ClientError::invalid_argument("body", e.to_string()))
}

fn mgt() -> ApiPath {
    ApiPath::new(MGT)
}

fn tenant_path(tenant: &str) -> Result<ApiPath, ClientError> {
    mgt().lit("tenants").seg("tenant", tenant)
}

fn app_path(tenant: &str, app: &str) -> Result<ApiPath, ClientError> {
    tenant_path(tenant)?.lit("apps").seg("app", app)
}

fn env_path(tenant: &str, app: &str, env: &str) -> Result<ApiPath, ClientError> {
    app_path(tenant, app)?.lit("envs").seg("env", env)
}

fn config_path(id: u64) -> ApiPath {
    mgt().lit("configs").num(id)
}

fn cascade(path: ApiPath, cascade: bool) -> ApiPath {
    if cascade {
        path.query("cascade", "true")
    } else {
        path
    }
}

impl ApiClient {
    /// A client of `endpoint` with default settings; see [`ApiClientBuilder`] for the others.
    pub fn new(endpoint: &str) -> Result<Self, ClientError> {
        ApiClientBuilder::new(endpoint).build()
    }

    pub fn builder(endpoint: impl Into<String>) -> ApiClientBuilder {
        ApiClientBuilder::new(endpoint)
    }

    /// The same client (sharing its connections) with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The normalised endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.inner.base
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and returns the answer once its head has arrived; the body is
    /// left to the caller (read within the same timeout).
    async fn start(
        &self,
        method: Method,
        path: &ApiPath,
        headers: HeaderMap,
        body: Body,
    ) -> Result<reqwest::Response, ClientError> {
        let url = path.url(&self.inner.base)?;
        let mut rb = self
            .inner
            .http
            .request(method, url)
            .timeout(self.timeout)
            .headers(headers);
        rb = match body {
            Body::Empty => rb,
            Body::Json(bytes) => rb
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes),
            Body::Raw {
                content,
                content_type,
            } => {
                let ct = HeaderValue::from_str(&content_type).map_err(|_| {
                    ClientError::invalid_argument("content_type", "not a valid Content-Type")
                })?;
                rb.header(CONTENT_TYPE, ct).body(content)
            }
        };
        rb.send()
            .await
            .map_err(|e| ClientError::transport(&self.inner.base, &e))
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &ApiPath,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Answer, ClientError> {
        let request = format!("{method} {}", path.path());
        let response = self.start(method, path, headers, body).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::transport(&self.inner.base, &e))?;
        Ok(Answer {
            request,
            status,
            headers,
            body,
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: ApiPath) -> Result<T, ClientError> {
        self.send(Method::GET, &path, HeaderMap::new(), Body::Empty)
            .await?
            .json()
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: ApiPath,
        body: Body,
        opts: &WriteOptions,
    ) -> Result<T, ClientError> {
        self.send(method, &path, opts.headers()?, body)
            .await?
            .json()
    }

    /// A release change: 202 means the environment requires approval and the change became
    /// a proposal ([`ClientError::PendingApproval`]).
    async fn release_write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: ApiPath,
        body: Body,
        opts: &WriteOptions,
    ) -> Result<T, ClientError> {
        let answer = self.send(method, &path, opts.headers()?, body).await?;
        if answer.status == StatusCode::ACCEPTED {
            return Err(ClientError::PendingApproval(answer.json()?));
        }
        answer.json()
    }

    async fn delete(&self, path: ApiPath, opts: &WriteOptions) -> Result<Deleted, ClientError> {
        let answer = self
            .send(Method::DELETE, &path, opts.headers()?, Body::Empty)
            .await?
            .success()?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            // A body-less answer still carries the revision of the delete.
            let revision = answer.header_u64(headers::REVISION)?;
            return Ok(Deleted { revision });
        }
        answer.json()
    }

    // ---- tenants ------------------------------------------------------------------------

    pub async fn create_tenant(
        &self,
        body: &CreateTenant,
        opts: &WriteOptions,
    ) -> Result<TenantView, ClientError> {
        self.write(Method::POST, mgt().lit("tenants"), json_body(body)?, opts)
            .await
    }

    pub async fn list_tenants(&self) -> Result<TenantList, ClientError> {
        self.get(mgt().lit("tenants")).await
    }

    pub async fn get_tenant(&self, tenant: &str) -> Result<TenantView, ClientError> {
        self.get(tenant_path(tenant)?).await
    }

    pub async fn update_tenant(
        &self,
        tenant: &str,
        body: &UpdateTenant,
        opts: &WriteOptions,
    ) -> Result<TenantView, ClientError> {
        self.write(Method::PATCH, tenant_path(tenant)?, json_body(body)?, opts)
            .await
    }

    /// Deletes a tenant; with `cascade`, also its apps, environments and configs (409
    /// otherwise when it has any).
    pub async fn delete_tenant(
        &self,
        tenant: &str,
        cascade_children: bool,
        opts: &WriteOptions,
    ) -> Result<Deleted, ClientError> {
        self.delete(cascade(tenant_path(tenant)?, cascade_children), opts)
            .await
    }

    // ---- apps ---------------------------------------------------------------------------

    pub async fn create_app(
        &self,
        tenant: &str,
        body: &CreateApp,
        opts: &WriteOptions,
    ) -> Result<AppView, ClientError> {
        let path = tenant_path(tenant)?.lit("apps");
        self.write(Method::POST, path, json_body(body)?, opts).await
    }

    pub async fn list_apps(&self, tenant: &str) -> Result<AppList, ClientError> {
        self.get(tenant_path(tenant)?.lit("apps")).await
    }

    pub async fn get_app(&self, tenant: &str, app: &str) -> Result<AppView, ClientError> {
        self.get(app_path(tenant, app)?).await
    }

    pub async fn update_app(
        &self,
        tenant: &str,
        app: &str,
        body: &UpdateApp,
        opts: &WriteOptions,
    ) -> Result<AppView, ClientError> {
        self.write(
            Method::PATCH,
            app_path(tenant, app)?,
            json_body(body)?,
            opts,
        )
        .await
    }

    pub async fn delete_app(
        &self,
        tenant: &str,
        app: &str,
        cascade_children: bool,
        opts: &WriteOptions,
    ) -> Result<Deleted, ClientError> {
        self.delete(cascade(app_path(tenant, app)?, cascade_children), opts)
            .await
    }

    // ---- environments -------------------------------------------------------------------

    pub async fn create_env(
        &self,
        tenant: &str,
        app: &str,
        body: &CreateEnvironment,
        opts: &WriteOptions,
    ) -> Result<EnvironmentView, ClientError> {
        let path = app_path(tenant, app)?.lit("envs");
        self.write(Method::POST, path, json_body(body)?, opts).await
    }

    pub async fn list_envs(&self, tenant: &str, app: &str) -> Result<EnvironmentList, ClientError> {
        self.get(app_path(tenant, app)?.lit("envs")).await
    }

    pub async fn get_env(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
    ) -> Result<EnvironmentView, ClientError> {
        self.get(env_path(tenant, app, env)?).await
    }

    pub async fn update_env(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
        body: &UpdateEnvironment,
        opts: &WriteOptions,
    ) -> Result<EnvironmentView, ClientError> {
        let path = env_path(tenant, app, env)?;
        self.write(Method::PATCH, path, json_body(body)?, opts)
            .await
    }

    pub async fn delete_env(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
        cascade_children: bool,
        opts: &WriteOptions,
    ) -> Result<Deleted, ClientError> {
        let path = cascade(env_path(tenant, app, env)?, cascade_children);
        self.delete(path, opts).await
    }

    // ---- configs ------------------------------------------------------------------------

    pub async fn create_config(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
        body: &CreateConfig,
        opts: &WriteOptions,
    ) -> Result<ConfigView, ClientError> {
        let path = env_path(tenant, app, env)?.lit("configs");
        self.write(Method::POST, path, json_body(body)?, opts).await
    }

    pub async fn list_configs(
        &self,
        tenant: &str,
        app: &str,
        env: &str,
    ) -> Result<ConfigList, ClientError> {
        self.get(env_path(tenant, app, env)?.lit("configs")).await
    }

    /// `GET /tenants/{t}/apps/{a}/envs/{e}/configs/{name}`: a config by its path.
    pub async fn get_config_by_path(&self, path: &ConfigPath) -> Result<ConfigView, ClientError> {
        let p = env_path(&path.tenant, &path.app, &path.env)?
            .lit("configs")
            .seg("name", &path.name)?;
        self.get(p).await
    }

    pub async fn get_config(&self, id: u64) -> Result<ConfigView, ClientError> {
        self.get(config_path(id)).await
    }

    pub async fn update_config(
        &self,
        id: u64,
        body: &UpdateConfig,
        opts: &WriteOptions,
    ) -> Result<ConfigView, ClientError> {
        self.write(Method::PATCH, config_path(id), json_body(body)?, opts)
            .await
    }

    /// Deletes a config with all its versions and rules.
    pub async fn delete_config(
        &self,
        id: u64,
        opts: &WriteOptions,
    ) -> Result<Deleted, ClientError> {
        self.delete(config_path(id), opts).await
    }

    // ---- versions -----------------------------------------------------------------------

    /// Creates a version (or, with `validate_only`, only checks it; then `version_id` is 0).
    pub async fn create_version(
        &self,
        id: u64,
        version: NewVersion,
        opts: &WriteOptions,
    ) -> Result<VersionCreated, ClientError> {
        let path = config_path(id)
            .lit("versions")
            .query_opt("description", version.description)
            .query_opt("validate_only", version.validate_only.then_some("true"));
        let body = Body::Raw {
            content: version.content,
            content_type: version.content_type,
        };
        self.write(Method::POST, path, body, opts).await
    }

    /// One page of versions; pass the answer's `next_cursor` back to get the next.
    pub async fn list_versions(
        &self,
        id: u64,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<VersionList, ClientError> {
        let path = config_path(id)
            .lit("versions")
            .query_opt("limit", limit.map(|l| l.to_string()))
            .query_opt("cursor", cursor);
        self.get(path).await
    }

    /// Metadata of one version.
    pub async fn get_version(&self, id: u64, version: u64) -> Result<VersionView, ClientError> {
        self.get(config_path(id).lit("versions").num(version)).await
    }

    /// The raw content of one version.
    pub async fn get_version_content(&self, id: u64, version: u64) -> Result<Bytes, ClientError> {
        let path = config_path(id).lit("versions").num(version).lit("content");
        let answer = self
            .send(Method::GET, &path, HeaderMap::new(), Body::Empty)
            .await?
            .success()?;
        Ok(answer.body)
    }

    /// The unified diff from version `from` to version `to`.
    pub async fn diff_versions(&self, id: u64, from: u64, to: u64) -> Result<String, ClientError> {
        let path = config_path(id)
            .lit("versions")
            .num(from)
            .lit("diff")
            .num(to);
        self.send(Method::GET, &path, HeaderMap::new(), Body::Empty)
            .await?
            .text()
    }

    // ---- releases -----------------------------------------------------------------------

    pub async fn get_releases(&self, id: u64) -> Result<ReleasesView, ClientError> {
        self.get(config_path(id).lit("releases")).await
    }

    /// Replaces the rule list. `opts.if_match` guards against a concurrent change. In an
    /// environment that requires approval this, `publish` and a `stable_only` rollback fail
    /// with [`ClientError::PendingApproval`]: the change became a proposal.
    pub async fn put_releases(
        &self,
        id: u64,
        body: &PutReleases,
        opts: &WriteOptions,
    ) -> Result<ReleasesView, ClientError> {
        let path = config_path(id).lit("releases");
        self.release_write(Method::PUT, path, json_body(body)?, opts)
            .await
    }

    /// A new version and its release in one step.
    pub async fn publish(
        &self,
        id: u64,
        body: &PublishRequest,
        opts: &WriteOptions,
    ) -> Result<PublishResponse, ClientError> {
        let path = config_path(id).lit("publish");
        self.release_write(Method::POST, path, json_body(body)?, opts)
            .await
    }

    pub async fn rollback(
        &self,
        id: u64,
        body: &RollbackRequest,
        opts: &WriteOptions,
    ) -> Result<ReleasesView, ClientError> {
        let path = config_path(id).lit("rollback");
        self.release_write(Method::POST, path, json_body(body)?, opts)
            .await
    }

    /// Which version (and rule) a client with these labels and id would get.
    pub async fn resolve(
        &self,
        id: u64,
        labels: &BTreeMap<String, String>,
        client_id: Option<&str>,
    ) -> Result<ResolveResponse, ClientError> {
        let path = config_path(id).lit("resolve");
        let headers = identity_headers(labels, client_id)?;
        self.send(Method::GET, &path, headers, Body::Empty)
            .await?
            .json()
    }

    // ---- fetch --------------------------------------------------------------------------

    /// Fetches a config as a service does: the content its labels resolve to.
    pub async fn fetch(
        &self,
        path: &ConfigPath,
        opts: &FetchOptions,
    ) -> Result<Fetched, ClientError> {
        let p = ApiPath::new(FETCH)
            .seg("tenant", &path.tenant)?
            .seg("app", &path.app)?
            .seg("env", &path.env)?
            .seg("name", &path.name)?
            .query_opt("min_revision", opts.min_revision.map(|r| r.to_string()))
            .query_opt("consistency", opts.linearizable.then_some("linearizable"));
        let answer = self
            .send(Method::GET, &p, opts.headers()?, Body::Empty)
            .await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let answer = answer.success()?;
        let content_type = match answer.headers.get(CONTENT_TYPE) {
            None => "application/octet-stream".to_owned(),
            Some(_) => answer.header(CONTENT_TYPE.as_str())?.to_owned(),
        };
        Ok(Fetched::Modified {
            version: answer.header_u64(headers::CONFIG_VERSION)?,
            hash: answer.header(headers::CONFIG_HASH)?.to_owned(),
            revision: answer.header_u64(headers::REVISION)?,
            etag: answer.header(ETAG.as_str())?.to_owned(),
            content_type,
            content: answer.body,
        })
    }

    /// Long-polls a config (`GET /api/v1/watch/config/...`): the first change after
    /// `opts.revision` (with `opts.version`, the first change of what this client's labels
    /// resolve to, or a deletion), or `None` when the server's timeout passed first (304).
    /// The request may take up to the poll timeout plus [`WATCH_GRACE`], whatever this
    /// client's own timeout. Nothing is retried here; the SDK's watch reconnects.
    pub async fn watch(
        &self,
        path: &ConfigPath,
        opts: &WatchOptions,
    ) -> Result<Option<WatchEvent>, ClientError> {
        let p = ApiPath::new(WATCH)
            .seg("tenant", &path.tenant)?
            .seg("app", &path.app)?
            .seg("env", &path.env)?
            .seg("name", &path.name)?
            .query("revision", opts.revision.to_string())
            .query_opt("version", opts.version.map(|v| v.to_string()))
            .query_opt("timeout", opts.timeout.map(duration_param));
        let poll = opts.timeout.unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let client = self
            .clone()
            .with_timeout(self.timeout.max(poll + WATCH_GRACE));
        let answer = client
            .send(Method::GET, &p, opts.headers()?, Body::Empty)
            .await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        answer.json().map(Some)
    }

    // ---- operations ---------------------------------------------------------------------

    /// `GET /health`: the process is alive.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(ApiPath::new("/health")).await
    }

    /// `GET /ready`. A node that is not ready answers 503; when it says why in a readiness
    /// body, that body is returned (`ready: false`) rather than an error.
    pub async fn ready(&self) -> Result<Readiness, ClientError> {
        let answer = self
            .send(
                Method::GET,
                &ApiPath::new("/ready"),
                HeaderMap::new(),
                Body::Empty,
            )
            .await?;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE
            && let Ok(readiness) = serde_json::from_slice::<Readiness>(&answer.body)
        {
            return Ok(readiness);
        }
        answer.json()
    }

    // ---- cluster ------------------------------------------------------------------------

    /// `GET /_cluster/status`: every member's view, as gathered by the node asked.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        self.get(ApiPath::new("/_cluster/status")).await
    }

    /// `GET /_cluster/digest`: the node's applied index and the digest of its config plane
    /// at that index.
    pub async fn cluster_digest(&self) -> Result<ClusterDigest, ClientError> {
        self.get(ApiPath::new("/_cluster/digest")).await
    }

    /// `POST /_cluster/members`: adds a node (learner first, voter once caught up). Can take
    /// as long as the new node needs to catch up; use a generous timeout.
    pub async fn add_member(&self, request: &JoinRequest) -> Result<ClusterChange, ClientError> {
        self.write(
            Method::POST,
            ApiPath::new("/_cluster/members"),
            json_body(request)?,
            &WriteOptions::default(),
        )
        .await
    }

    /// `DELETE /_cluster/members/{id}`.
    pub async fn remove_member(&self, node_id: u64) -> Result<ClusterChange, ClientError> {
        let path = ApiPath::new("/_cluster/members").num(node_id);
        self.write(Method::DELETE, path, Body::Empty, &WriteOptions::default())
            .await
    }

    /// `POST /_cluster/leader/transfer`, to `to` or (with `None`) the most up-to-date voter.
    pub async fn transfer_leader(&self, to: Option<u64>) -> Result<ClusterChange, ClientError> {
        let body = json_body(&TransferLeaderRequest { to })?;
        self.write(
            Method::POST,
            ApiPath::new("/_cluster/leader/transfer"),
            body,
            &WriteOptions::default(),
        )
        .await
    }

    /// `POST /_cluster/snapshot`: builds a snapshot on the node asked.
    pub async fn snapshot(&self) -> Result<SnapshotTaken, ClientError> {
        self.write(
            Method::POST,
            ApiPath::new("/_cluster/snapshot"),
            Body::Empty,
            &WriteOptions::default(),
        )
        .await
    }

    /// `GET /api/v1/mgt/kms`: the current key-encryption key and how many data keys each
    /// KEK wraps.
    pub async fn kms_status(&self) -> Result<KmsStatus, ClientError> {
        self.get(ApiPath::new("/api/v1/mgt/kms")).await
    }

    /// `POST /api/v1/mgt/kms/rewrap`: rewraps every data key under the current KEK. Takes as
    /// long as there are versions of encrypted configs; use a generous timeout. Safe to repeat.
    pub async fn kms_rewrap(&self) -> Result<KmsRewrapped, ClientError> {
        self.write(
            Method::POST,
            ApiPath::new("/api/v1/mgt/kms/rewrap"),
            Body::Empty,
            &WriteOptions::default(),
        )
        .await
    }

    /// `GET /_cluster/backup`: a consistent snapshot file, for `conflux restore`, held in
    /// memory as a whole; [`ApiClient::backup_download`] reads it piece by piece.
    pub async fn backup(&self) -> Result<Bytes, ClientError> {
        let answer = self
            .send(
                Method::GET,
                &ApiPath::new("/_cluster/backup"),
                HeaderMap::new(),
                Body::Empty,
            )
            .await?
            .success()?;
        Ok(answer.body)
    }

    /// `GET /_cluster/backup`, streamed: returns once the server has built the snapshot and
    /// started sending it; read the file with [`BackupDownload::chunk`] (e.g. straight into a
    /// file) instead of holding it in memory. The client's timeout covers the whole download,
    /// so give a large backup a generous one.
    pub async fn backup_download(&self) -> Result<BackupDownload, ClientError> {
        let path = ApiPath::new("/_cluster/backup");
        let request = format!("{} {}", Method::GET, path.path());
        let response = self
            .start(Method::GET, &path, HeaderMap::new(), Body::Empty)
            .await?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| ClientError::transport(&self.inner.base, &e))?;
            return Err(ClientError::from_response(status, &headers, &body));
        }
        let revision = match response.headers().get(headers::REVISION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        ClientError::decode(
                            &request,
                            format!("{} {v:?} is not a number", headers::REVISION),
                        )
                    })?,
            ),
        };
        Ok(BackupDownload {
            response,
            endpoint: self.inner.base.clone(),
            revision,
            received: 0,
        })
    }
}

/// A backup being received ([`ApiClient::backup_download`]).
#[derive(Debug)]
pub struct BackupDownload {
    response: reqwest::Response,
    endpoint: String,
    revision: Option<u64>,
    received: u64,
}

impl BackupDownload {
    /// The log index the backup covers (the server's `X-Conflux-Revision`), when sent.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// The size the server announced (`Content-Length`); the server streams backups, so
    /// usually unknown.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of the file, or `None` once it has been received completely. A
    /// connection that breaks or a download that times out before the end is an error
    /// ([`ClientError::Transport`]), never a silent end: what was received is then not a
    /// whole backup.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        let chunk = self
            .response
            .chunk()
            .await
            .map_err(|e| ClientError::transport(&self.endpoint, &e))?;
        if let Some(c) = &chunk {
            self.received += c.len() as u64;
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A peer that answers one request with `reply` (written as is) and closes.
    async fn peer(reply: Vec<u8>) -> ApiClient {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            assert!(buf.starts_with(b"GET /_cluster/backup HTTP/1.1\r\n"));
            stream.write_all(&reply).await.unwrap();
            stream.shutdown().await.unwrap();
        });
        ApiClient::builder(format!("http://{addr}"))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nx-conflux-revision: 42\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";

    async fn read_all(d: &mut BackupDownload) -> Result<Vec<u8>, ClientError> {
        let mut all = Vec::new();
        while let Some(c) = d.chunk().await? {
            all.extend_from_slice(&c);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn backup_download_reads_pieces_and_the_revision() {
        let reply = format!("{HEAD}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        let client = peer(reply.into_bytes()).await;
        let mut d = client.backup_download().await.unwrap();
        assert_eq!(d.revision(), Some(42));
        assert_eq!(read_all(&mut d).await.unwrap(), b"hello world");
        assert_eq!(d.received(), 11);
    }

    #[tokio::test]
    async fn a_cut_backup_download_is_an_error() {
        // The last chunk never comes: the connection closes mid-body.
        let reply = format!("{HEAD}5\r\nhello\r\n6\r\n wo");
        let client = peer(reply.into_bytes()).await;
        let mut d = client.backup_download().await.unwrap();
        let err = read_all(&mut d).await.unwrap_err();
        assert_eq!(err.code(), "unreachable", "{err}");
    }

    #[tokio::test]
    async fn backup_download_errors_are_api_errors() {
        let body = r#"{"error": {"code": "snapshot_timeout", "message": "not built"}}"#;
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let client = peer(reply.into_bytes()).await;
        let err = client.backup_download().await.unwrap_err();
        assert_eq!(err.code(), "snapshot_timeout");
        assert_eq!(err.retry_after_secs(), Some(5));
    }
}
