//! The records the store reads and writes. Times are unix milliseconds (`i64`) everywhere.
//!
//! Types holding a password or secret hash implement `Debug` by hand and print `<redacted>`
//! in its place, so a stray `{:?}` never leaks one.

use std::fmt;
use std::time::Duration;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// PostgreSQL: clusters.
    Postgres,
    /// SQLite: the embedded single-node default.
    Sqlite,
}

/// Connection pool limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a call waits for a connection (including connecting) before `Unavailable`.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`; SQLite busy timeout.
    pub statement_timeout: Duration,
}

/// Default [`PoolSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Default [`PoolSettings::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`PoolSettings::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

const REDACTED: &str = "<redacted>";

/// A user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub display_name: Option<String>,
    pub created_at_ms: i64,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("display_name", &self.display_name)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// A stored user, with its password hash (the server verifies logins against it).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub password_hash: String,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("display_name", &self.display_name)
            .field("disabled", &self.disabled)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

/// A partial update of a user: `None` leaves a field as it is. `display_name: Some(None)`
/// clears the display name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
    pub display_name: Option<Option<String>>,
}

impl fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPatch")
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| REDACTED),
            )
            .field("disabled", &self.disabled)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// A login session to store (the secret itself is never stored, only its hash).
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    pub username: String,
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("secret_hash", &REDACTED)
            .field("created_at_ms", &self.created_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A service token to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub created_by: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &REDACTED)
            .field("created_at_ms", &self.created_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("created_by", &self.created_by)
            .finish()
    }
}

/// A stored service token as listed: never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub created_by: String,
}

/// A role binding to store. `principal` is `user:<name>` or `token:<id>`; `scope` is `*`,
/// `tenant`, `tenant/app` or `tenant/app/env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBinding {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub scope: String,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// A stored role binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub scope: String,
    pub created_at_ms: i64,
    pub created_by: String,
}

impl From<&NewBinding> for BindingRecord {
    fn from(b: &NewBinding) -> Self {
        BindingRecord {
            id: b.id.clone(),
            principal: b.principal.clone(),
            role: b.role.clone(),
            scope: b.scope.clone(),
            created_at_ms: b.created_at_ms,
            created_by: b.created_by.clone(),
        }
    }
}

/// A live session as a node keeps it in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub id: String,
    pub username: String,
    pub secret_hash: String,
    pub expires_at_ms: i64,
}

impl fmt::Debug for SessionEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEntry")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("secret_hash", &REDACTED)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A live service token as a node keeps it in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    pub expires_at_ms: Option<i64>,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &REDACTED)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Everything a node needs to authenticate and authorize in memory, read in one snapshot
/// together with the change counter it corresponds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySnapshot {
    /// The change counter read in the same snapshot.
    pub counter: i64,
    /// Every user (including disabled ones), ordered by username.
    pub users: Vec<UserRecord>,
    /// Unexpired sessions, ordered by id.
    pub sessions: Vec<SessionEntry>,
    /// Unexpired service tokens, ordered by id.
    pub tokens: Vec<TokenEntry>,
    /// Every binding, ordered by created_at, id.
    pub bindings: Vec<BindingRecord>,
}

/// An audit record to insert. `key` makes the insert idempotent ("raft:<log index>",
/// "node:<node id>:<sequence>").
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    pub key: String,
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub revision: Option<i64>,
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    pub details: serde_json::Value,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub revision: Option<i64>,
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    pub details: serde_json::Value,
}

/// Default page size of [`AuditQuery::limit`].
pub const AUDIT_DEFAULT_LIMIT: u32 = 100;
/// Largest page size of [`AuditQuery::limit`].
pub const AUDIT_MAX_LIMIT: u32 = 1000;

/// An audit search. Every filter is optional; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Exact tenant.
    pub tenant: Option<String>,
    /// Exact actor ("user:alice", "token:<id>").
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Inclusive lower bound on time.
    pub since_ms: Option<i64>,
    /// Inclusive upper bound on time.
    pub until_ms: Option<i64>,
    /// Page size, clamped to 1..=1000; 100 when `None`.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Visibility restriction: None = everything; Some(list) = only records whose (tenant,
    /// app, env) lies under at least one of these scopes (scope "*" = everything, "t" = tenant
    /// t, "t/a", "t/a/e"); records with no tenant are visible only with "*". Empty list =
    /// nothing.
    pub visible_scopes: Option<Vec<String>>,
}

/// One page of audit records, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Present when more records match: pass it back as [`AuditQuery::cursor`].
    pub next_cursor: Option<String>,
}
