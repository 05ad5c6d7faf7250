//! The entities of the config plane, as stored in the state machine.
//!
//! These types are persisted (MessagePack with field names, so fields can be added with
//! `#[serde(default)]` without breaking old data) and are not the HTTP wire format, which
//! lives in `conflux-api-types`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::format::Format;

/// Milliseconds since the Unix epoch, stamped by the leader when it proposes.
pub type UnixMillis = u64;
/// Numeric config id, assigned in apply from a counter in the state.
pub type ConfigId = u64;
/// Version number of a config: 1, 2, 3... assigned in apply.
pub type VersionId = u64;
/// A Raft log index. Every committed entry is a cluster revision.
pub type Revision = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

/// Per-tenant limits. Every field has the contract's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    pub max_apps: u64,
    pub max_configs: u64,
    pub max_config_bytes: u64,
    pub max_versions_per_config: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_apps: 100,
            max_configs: 1000,
            max_config_bytes: 102_400,
            max_versions_per_config: 1000,
        }
    }
}

/// A partial quota update: absent fields keep their current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasPatch {
    pub max_apps: Option<u64>,
    pub max_configs: Option<u64>,
    pub max_config_bytes: Option<u64>,
    pub max_versions_per_config: Option<u64>,
}

impl QuotasPatch {
    pub fn apply_to(&self, q: Quotas) -> Quotas {
        Quotas {
            max_apps: self.max_apps.unwrap_or(q.max_apps),
            max_configs: self.max_configs.unwrap_or(q.max_configs),
            max_config_bytes: self.max_config_bytes.unwrap_or(q.max_config_bytes),
            max_versions_per_config: self
                .max_versions_per_config
                .unwrap_or(q.max_versions_per_config),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub display_name: String,
    pub status: TenantStatus,
    pub quotas: Quotas,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub revision: Revision,
}

/// Approval settings of an environment. Stored and returned; enforcement arrives with the
/// approval workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    pub required: bool,
    pub min_approvals: u32,
    pub allow_self_approval: bool,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            required: false,
            min_approvals: 1,
            allow_self_approval: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub tenant: String,
    pub app: String,
    pub name: String,
    pub description: String,
    pub approval: ApprovalSettings,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub revision: Revision,
}

/// `tenant/app/env/name`: the human identity of a config. Ordered so that all configs of a
/// tenant (or app, or environment) are contiguous in a sorted map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigPath {
    pub tenant: String,
    pub app: String,
    pub env: String,
    pub name: String,
}

impl ConfigPath {
    pub fn new(
        tenant: impl Into<String>,
        app: impl Into<String>,
        env: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ConfigPath {
            tenant: tenant.into(),
            app: app.into(),
            env: env.into(),
            name: name.into(),
        }
    }

    /// Parses `tenant/app/env/name`, validating every segment.
    pub fn parse(s: &str) -> Result<Self, crate::DomainError> {
        let parts: Vec<&str> = s.split('/').collect();
        let [tenant, app, env, name] = parts.as_slice() else {
            return Err(crate::DomainError::invalid_argument(
                "path",
                format!("{s:?} is not of the form tenant/app/env/name"),
            ));
        };
        crate::validate_name("tenant", tenant)?;
        crate::validate_name("app", app)?;
        crate::validate_name("env", env)?;
        crate::validate_config_name("name", name)?;
        Ok(ConfigPath::new(*tenant, *app, *env, *name))
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.tenant, self.app, self.env, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionStrategy {
    /// A version is kept only if every rule keeps it.
    And,
    /// A version is kept if any rule keeps it.
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionKind {
    /// Keep the newest `keep` versions.
    Count,
    /// Keep versions created within the last `keep` days.
    Days,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    #[serde(rename = "type")]
    pub kind: RetentionKind,
    pub keep: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub strategy: RetentionStrategy,
    pub rules: Vec<RetentionRule>,
}

/// One release rule. See [`crate::resolve`] for how a list of them picks a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRule {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub percent: Option<u8>,
    pub version_id: VersionId,
    #[serde(default)]
    pub priority: i32,
}

impl ReleaseRule {
    /// The default rule matches every client: no labels and no percent.
    pub fn is_default(&self) -> bool {
        self.labels.is_empty() && self.percent.is_none()
    }

    pub fn default_to(version_id: VersionId) -> Self {
        ReleaseRule {
            labels: BTreeMap::new(),
            percent: None,
            version_id,
            priority: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: ConfigId,
    pub path: ConfigPath,
    pub format: Format,
    /// The JSON Schema as JSON text; compiled copies live in [`crate::State`].
    pub schema: Option<String>,
    pub retention: Option<RetentionPolicy>,
    pub description: String,
    /// Newest version number, 0 before the first version.
    pub latest_version: VersionId,
    pub rules: Vec<ReleaseRule>,
    /// The comment of the last rule change, if it had one.
    #[serde(default)]
    pub release_comment: Option<String>,
    /// Log index of the last change to this config, its versions or its rules.
    pub revision: Revision,
    /// Log index of the entry that created this config (tells a re-created config from the
    /// one that had the same path before).
    #[serde(default)]
    pub created_revision: Revision,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Every version's content is envelope-encrypted (see [`crate::SealedContent`]). Chosen
    /// at creation and never changed: turning it off would leave old versions sealed and
    /// new ones plain, turning it on would leave old plaintext behind in storage.
    #[serde(default)]
    pub encrypted: bool,
}

/// SHA-256 of a version's content. Rendered as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn of(content: &[u8]) -> Self {
        ContentHash(sha2::Sha256::digest(content).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| serde::de::Error::custom("content hash must start with sha256:"))?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(serde::de::Error::custom)?;
        Ok(ContentHash(out))
    }
}

/// Metadata of one immutable version. The content bytes are stored beside it, not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub config_id: ConfigId,
    pub version: VersionId,
    pub hash: ContentHash,
    pub size: u64,
    pub format: Format,
    pub description: String,
    pub author: Option<String>,
    pub created_at: UnixMillis,
    pub revision: Revision,
    /// Present when the stored content is ciphertext: how to open it. `hash` and `size` are
    /// always the plaintext's.
    #[serde(default)]
    pub seal: Option<Box<crate::Seal>>,
}
