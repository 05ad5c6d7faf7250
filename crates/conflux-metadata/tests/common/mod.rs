//! Test databases: a fresh database on the test binary's shared PostgreSQL server, or a
//! SQLite file in the test's own temporary directory.

#![allow(dead_code, unreachable_pub)]

use anyhow::Result;
use conflux_metadata::{
    BackendKind, MetadataStore, NewAuditRecord, NewBinding, NewToken, NewUser, PoolSettings,
};
use conflux_testkit::TestPostgres;

/// One empty metadata database owned by one test.
#[derive(Debug)]
pub struct Db {
    pub kind: BackendKind,
    pub url: String,
    /// The SQLite file's directory, removed with the test.
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub fn postgres() -> Result<Db> {
        let url = TestPostgres::shared()?.fresh_database()?;
        Ok(Db {
            kind: BackendKind::Postgres,
            url,
            _dir: None,
        })
    }

    pub fn sqlite() -> Result<Db> {
        let dir = tempfile::Builder::new()
            .prefix("conflux-metadata-")
            .tempdir()?;
        let url = format!("sqlite://{}/metadata.db", dir.path().display());
        Ok(Db {
            kind: BackendKind::Sqlite,
            url,
            _dir: Some(dir),
        })
    }

    /// A new store (its own pool) on this database.
    pub async fn open(&self) -> Result<MetadataStore> {
        self.open_with(&PoolSettings::default()).await
    }

    /// A new store with these pool settings.
    pub async fn open_with(&self, settings: &PoolSettings) -> Result<MetadataStore> {
        let store = MetadataStore::connect(&self.url, settings).await?;
        assert_eq!(store.backend(), self.kind);
        Ok(store)
    }
}

pub fn user(name: &str, at: i64) -> NewUser {
    NewUser {
        username: name.to_owned(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        display_name: None,
        created_at_ms: at,
    }
}

pub fn token(id: &str, at: i64, expires: Option<i64>) -> NewToken {
    NewToken {
        id: id.to_owned(),
        name: format!("name-{id}"),
        secret_hash: format!("secret-hash-{id}"),
        created_at_ms: at,
        expires_at_ms: expires,
        created_by: "user:admin".to_owned(),
    }
}

pub fn binding(id: &str, principal: &str, role: &str, scope: &str, at: i64) -> NewBinding {
    NewBinding {
        id: id.to_owned(),
        principal: principal.to_owned(),
        role: role.to_owned(),
        scope: scope.to_owned(),
        created_at_ms: at,
        created_by: "user:admin".to_owned(),
    }
}

pub fn audit(key: &str, time_ms: i64, tenant: Option<&str>, app: Option<&str>) -> NewAuditRecord {
    NewAuditRecord {
        key: key.to_owned(),
        time_ms,
        actor: "user:alice".to_owned(),
        action: "config.update".to_owned(),
        resource: "configs/x".to_owned(),
        tenant: tenant.map(str::to_owned),
        app: app.map(str::to_owned),
        env: None,
        outcome: "success".to_owned(),
        reason: None,
        revision: Some(7),
        request_id: format!("req-{key}"),
        source_ip: "127.0.0.1".to_owned(),
        user_agent: "test".to_owned(),
        details: serde_json::json!({ "key": key, "n": [1, 2, 3] }),
    }
}
