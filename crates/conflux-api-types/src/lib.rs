//! The JSON bodies and header names of the Conflux HTTP API (contract section 4).
//!
//! One crate so that the server, the SDK, the CLI and the Terraform provider cannot drift:
//! each request body is a struct that the server deserialises and the client serialises, and
//! each response is a view built from domain types in exactly one place (`From` impls here).
//! This crate owns the wire shape only; validation and semantics live in `conflux-domain`.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use conflux_domain::{App, Config, Environment, Tenant, UnixMillis, VersionMeta};
pub use conflux_domain::{
    ApprovalSettings, Format, Quotas, QuotasPatch, ReleaseRule, RetentionPolicy, RollbackMode,
    TenantStatus,
};

mod governance;
pub use governance::*;

/// Header names. HTTP header names are case-insensitive; these are the canonical spellings.
pub mod headers {
    /// Prefix of client label headers: `X-Client-Label-<key>: <value>`.
    pub const CLIENT_LABEL_PREFIX: &str = "x-client-label-";
    pub const CLIENT_ID: &str = "x-client-id";
    pub const CONFIG_VERSION: &str = "x-config-version";
    pub const CONFIG_HASH: &str = "x-config-hash";
    pub const REVISION: &str = "x-conflux-revision";
    pub const IDEMPOTENCY_KEY: &str = "x-idempotency-key";
    /// Echoed on every answer; taken from the request when the client sends one, else made
    /// up by the server. Audit records carry it.
    pub const REQUEST_ID: &str = "x-request-id";
    /// `sha256=<hex HMAC-SHA256(webhook secret, raw body)>`: on every webhook delivery, and
    /// what an external approver sends instead of a bearer token.
    pub const SIGNATURE: &str = "x-conflux-signature-256";
    /// The event a webhook delivery carries (`proposal.created`, ...).
    pub const EVENT: &str = "x-conflux-event";
    /// A webhook delivery's id, the same on every retry: receivers deduplicate on it.
    pub const DELIVERY: &str = "x-conflux-delivery";
}

/// `{"error": {...}}`: every non-2xx answer of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code; see docs/errors.md for the registry.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
}

/// Renders a timestamp as RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: UnixMillis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// For PATCH bodies: distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---- tenants ------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<QuotasPatch>,
}

impl CreateTenant {
    /// A tenant with this name and the default display name and quotas.
    pub fn named(name: impl Into<String>) -> Self {
        CreateTenant {
            name: name.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TenantStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<QuotasPatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    pub name: String,
    pub display_name: String,
    pub status: TenantStatus,
    pub quotas: Quotas,
    pub created_at: String,
    pub updated_at: String,
    pub revision: u64,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            status: t.status,
            quotas: t.quotas,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            revision: t.revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

// ---- apps ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CreateApp {
    /// An app with this name and no description.
    pub fn named(name: impl Into<String>) -> Self {
        CreateApp {
            name: name.into(),
            description: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision: u64,
}

impl From<&App> for AppView {
    fn from(a: &App) -> Self {
        AppView {
            tenant: a.tenant.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            revision: a.revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

// ---- environments -------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSettings>,
}

impl CreateEnvironment {
    /// An environment with this name, no description and no approval requirement.
    pub fn named(name: impl Into<String>) -> Self {
        CreateEnvironment {
            name: name.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentView {
    pub tenant: String,
    pub app: String,
    pub name: String,
    pub description: String,
    pub approval: ApprovalSettings,
    pub created_at: String,
    pub updated_at: String,
    pub revision: u64,
}

impl From<&Environment> for EnvironmentView {
    fn from(e: &Environment) -> Self {
        EnvironmentView {
            tenant: e.tenant.clone(),
            app: e.app.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            approval: e.approval,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            revision: e.revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentList {
    pub environments: Vec<EnvironmentView>,
}

// ---- configs ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    pub name: String,
    pub format: Format,
    /// A JSON Schema (as a JSON value) the content of every new version must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Envelope-encrypt every version's content (contract section 8). Chosen here and never
    /// changed afterwards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

/// PATCH body: an absent field is left as is; `"schema": null` / `"retention": null` clear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub schema: Option<Option<serde_json::Value>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention: Option<Option<RetentionPolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Accepted only when equal to the config's setting: encryption cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    pub id: u64,
    pub tenant: String,
    pub app: String,
    pub env: String,
    pub name: String,
    /// `tenant/app/env/name`.
    pub path: String,
    pub format: Format,
    pub schema: Option<serde_json::Value>,
    pub retention: Option<RetentionPolicy>,
    pub description: String,
    /// 0 until the first version exists.
    pub latest_version: u64,
    pub revision: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Whether version contents are envelope-encrypted at rest.
    #[serde(default)]
    pub encrypted: bool,
}

impl From<&Config> for ConfigView {
    fn from(c: &Config) -> Self {
        ConfigView {
            id: c.id,
            tenant: c.path.tenant.clone(),
            app: c.path.app.clone(),
            env: c.path.env.clone(),
            name: c.path.name.clone(),
            path: c.path.to_string(),
            format: c.format,
            // Stored schemas were validated as JSON when they were set.
            schema: c
                .schema
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            retention: c.retention.clone(),
            description: c.description.clone(),
            latest_version: c.latest_version,
            revision: c.revision,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            encrypted: c.encrypted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigList {
    pub configs: Vec<ConfigView>,
}

// ---- versions -----------------------------------------------------------------------------

/// Answer to `POST /configs/{id}/versions` (and `validate_only`, with `version_id` 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionCreated {
    pub version_id: u64,
    pub hash: String,
    pub revision: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub config_id: u64,
    pub version_id: u64,
    pub hash: String,
    pub size: u64,
    pub format: Format,
    pub description: String,
    pub author: Option<String>,
    pub created_at: String,
    pub revision: u64,
}

impl From<&VersionMeta> for VersionView {
    fn from(v: &VersionMeta) -> Self {
        VersionView {
            config_id: v.config_id,
            version_id: v.version,
            hash: v.hash.to_string(),
            size: v.size,
            format: v.format,
            description: v.description.clone(),
            author: v.author.clone(),
            created_at: rfc3339(v.created_at),
            revision: v.revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionList {
    pub versions: Vec<VersionView>,
    /// Pass as `?cursor=` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

// ---- releases -----------------------------------------------------------------------------

/// `PUT /configs/{id}/releases`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutReleases {
    pub releases: Vec<ReleaseRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasesView {
    pub config_id: u64,
    pub revision: u64,
    pub releases: Vec<ReleaseRule>,
    pub comment: Option<String>,
}

impl From<&Config> for ReleasesView {
    fn from(c: &Config) -> Self {
        ReleasesView {
            config_id: c.id,
            revision: c.revision,
            releases: c.rules.clone(),
            comment: c.release_comment.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    Stable,
    Canary {
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
        /// Default 100.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<i32>,
    },
}

/// Priority of a canary rule when the publish request does not give one.
pub const DEFAULT_CANARY_PRIORITY: i32 = 100;

/// `POST /configs/{id}/publish`: a new version and its release in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub version_id: u64,
    pub hash: String,
    pub revision: u64,
    pub releases: Vec<ReleaseRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub version_id: u64,
    #[serde(default = "default_rollback_mode")]
    pub mode: RollbackMode,
}

fn default_rollback_mode() -> RollbackMode {
    RollbackMode::StableOnly
}

/// `GET /configs/{id}/resolve`: what a client with the given labels receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveResponse {
    pub version_id: u64,
    pub rule_index: usize,
    pub rule: ReleaseRule,
    pub revision: u64,
}

// ---- misc ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub node_id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub applied_index: u64,
    /// Whether the metadata DB (users, tokens, audit) answered this node's last call. Not a
    /// condition of readiness: serving goes on without it (contract section 6).
    #[serde(default)]
    pub metadata_reachable: bool,
    /// Why the node is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---- watch --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventKind {
    Updated,
    Deleted,
}

/// A change of a watched config: the long-poll reply, and each WebSocket/gRPC event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// `tenant/app/env/name`.
    pub key: String,
    /// The config's revision after the change; fetch with `?min_revision=` this value to
    /// never read an older state from a lagging node.
    pub revision: u64,
    /// The version the subscriber's labels now resolve to (`None` when unpublished or
    /// deleted).
    pub version_id: Option<u64>,
    pub event: WatchEventKind,
}

/// One subscription of a WebSocket watch (`/api/v1/watch/ws`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// `tenant/app/env/name`.
    pub key: String,
    /// The last revision the client saw (0: tell me the current state at once).
    #[serde(default)]
    pub revision: u64,
    /// The version the client holds; with labels, only a change of the version these labels
    /// resolve to is an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A message a WebSocket watch client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WatchRequest {
    Subscribe(Vec<Subscription>),
    Unsubscribe(Vec<String>),
}

/// A message the server sends on a WebSocket watch: an event, the keys a subscribe
/// registered, or an error (about one key, or the whole message). A key at a revision the
/// node has not applied yet is registered (or refused) in a message of its own, once its
/// wait ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WatchMessage {
    Event(WatchEvent),
    Subscribed {
        subscribed: Vec<String>,
    },
    Error {
        error: ErrorDetail,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

// ---- cluster ------------------------------------------------------------------------------

/// `POST /_cluster/members`: add a node (as a learner, promoted to voter once caught up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub node_id: u64,
    pub raft_addr: String,
    pub api_addr: String,
}

/// `POST /_cluster/leader/transfer`: to a given voter, or (without `to`) to the most
/// up-to-date other voter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

/// Answer of a membership change or leadership transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterChange {
    /// Log index at which the change took effect.
    pub revision: u64,
    /// The leader after the change, when known.
    pub leader_id: Option<u64>,
}

/// `GET /_cluster/status`: every member's own view, gathered by the node that answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate`, `learner`, or `unknown` when unreachable.
    pub role: String,
    pub voter: bool,
    pub raft_addr: String,
    pub api_addr: String,
    pub reachable: bool,
    pub term: Option<u64>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    /// How many entries this member's applied index is behind the leader's log.
    pub lag: Option<u64>,
}

/// `GET /api/v1/mgt/kms`: the KEK new data keys are wrapped with, and how many data keys
/// (one per version of an encrypted config) each KEK wraps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsStatus {
    pub current_kek_id: String,
    pub data_keys_by_kek: BTreeMap<String, u64>,
}

/// `POST /api/v1/mgt/kms/rewrap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsRewrapped {
    /// Data keys this request rewrapped under the current KEK.
    pub rewrapped: u64,
    /// Data keys still wrapped by another KEK (0 when the job is done).
    pub remaining: u64,
    pub status: KmsStatus,
}

/// `GET /_cluster/digest`: the answering node's applied index and a digest of its config
/// plane as of exactly that index. Two nodes at the same applied index must show the same
/// digest; comparing them at different indexes tells nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDigest {
    /// The node that answered.
    pub node_id: u64,
    pub applied_index: u64,
    /// `sha256:<hex>` of the canonical form of the whole replicated config plane: tenants,
    /// apps, environments, configs with their settings and release rules, every version's
    /// metadata and content hash, idempotency records, members recorded as started, and the
    /// state's counters.
    pub digest: String,
    pub tenants: u64,
    pub apps: u64,
    pub environments: u64,
    pub configs: u64,
    pub versions: u64,
    pub idempotency_records: u64,
}

/// `POST /_cluster/snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    pub snapshot_index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let p: UpdateConfig = serde_json::from_str(r#"{"schema": null}"#).unwrap();
        assert_eq!(p.schema, Some(None));
        assert_eq!(p.retention, None);
        let p: UpdateConfig = serde_json::from_str(r#"{"schema": {"type": "object"}}"#).unwrap();
        assert!(matches!(p.schema, Some(Some(_))));
    }

    #[test]
    fn strategy_wire_shape() {
        let s: Strategy = serde_json::from_str(r#"{"type": "stable"}"#).unwrap();
        assert_eq!(s, Strategy::Stable);
        let s: Strategy = serde_json::from_str(
            r#"{"type": "canary", "labels": {"canary": "true"}, "percent": 10}"#,
        )
        .unwrap();
        assert!(matches!(
            s,
            Strategy::Canary {
                percent: Some(10),
                priority: None,
                ..
            }
        ));
        assert!(serde_json::from_str::<Strategy>(r#"{"type": "blue"}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<CreateTenant>(r#"{"name": "a", "nmae": "b"}"#).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}

// ---- identity (contract section 6) --------------------------------------------------------
//
// Roles, scopes and principals travel as strings (`"publisher"`, `"shop/web/prod"`,
// `"user:alice"`) and are parsed by the server, so that a bad value gets a 400 naming its field
// rather than a generic body error.

/// `POST /api/v1/auth/login`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Answer to a login: a session token and when it expires (RFC 3339).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: String,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One grant of a principal, as whoami shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub id: String,
    pub role: String,
    pub scope: String,
}

/// `GET /api/v1/auth/whoami`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// `user:<username>` or `token:<id>`.
    pub principal: String,
    pub bindings: Vec<GrantView>,
}

/// `POST /api/v1/users`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// `PATCH /api/v1/users/{username}`: absent fields stay as they are.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    pub display_name: Option<Option<String>>,
}

impl std::fmt::Debug for UpdateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUser")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("disabled", &self.disabled)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub username: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// A role on a scope, as given when creating a token or a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    pub role: String,
    pub scope: String,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// RFC 3339; absent: the token does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingSpec>,
}

/// Answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub bindings: Vec<RoleBindingView>,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("bindings", &self.bindings)
            .finish()
    }
}

/// A service token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `POST /api/v1/role-bindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBinding {
    /// `user:<username>` or `token:<id>`.
    pub principal: String,
    pub role: String,
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBindingView {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub scope: String,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleBindingList {
    pub role_bindings: Vec<RoleBindingView>,
}

/// One audit record (`GET /api/v1/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecordView {
    pub id: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// Pass as `?cursor=` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
