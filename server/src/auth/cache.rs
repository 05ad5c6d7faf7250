//! The last identity a node loaded from the metadata DB, kept in its data directory
//! (`identity.cache`, mode 0600), so that a node restarted while the DB is down still knows
//! its principals and keeps serving them (contract section 6: a DB outage degrades
//! management only). It holds token and session digests, never a secret, and no password
//! hash (logins need the DB anyway). The DB's view replaces it as soon as the DB answers.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use conflux_metadata::{BindingRecord, IdentitySnapshot, SessionEntry, TokenEntry, UserRecord};
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "identity.cache";

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    counter: i64,
    users: Vec<CachedUser>,
    sessions: Vec<CachedSession>,
    tokens: Vec<CachedToken>,
    bindings: Vec<CachedBinding>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedUser {
    username: String,
    disabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedSession {
    id: String,
    username: String,
    digest: String,
    expires_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedToken {
    id: String,
    name: String,
    digest: String,
    expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedBinding {
    id: String,
    principal: String,
    role: String,
    scope: String,
}

/// Writes `snapshot` to `<data_dir>/identity.cache` (whole file replaced, mode 0600).
pub fn save(data_dir: &Path, snapshot: &IdentitySnapshot) -> std::io::Result<()> {
    let cached = Cached {
        counter: snapshot.counter,
        users: snapshot
            .users
            .iter()
            .map(|u| CachedUser {
                username: u.username.clone(),
                disabled: u.disabled,
            })
            .collect(),
        sessions: snapshot
            .sessions
            .iter()
            .map(|s| CachedSession {
                id: s.id.clone(),
                username: s.username.clone(),
                digest: s.secret_hash.clone(),
                expires_at_ms: s.expires_at_ms,
            })
            .collect(),
        tokens: snapshot
            .tokens
            .iter()
            .map(|t| CachedToken {
                id: t.id.clone(),
                name: t.name.clone(),
                digest: t.secret_hash.clone(),
                expires_at_ms: t.expires_at_ms,
            })
            .collect(),
        bindings: snapshot
            .bindings
            .iter()
            .map(|b| CachedBinding {
                id: b.id.clone(),
                principal: b.principal.clone(),
                role: b.role.clone(),
                scope: b.scope.clone(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&cached).map_err(std::io::Error::other)?;
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(FILE_NAME))
}

/// The identity saved by [`save`], if there is a readable one.
pub fn load(data_dir: &Path) -> Option<IdentitySnapshot> {
    let bytes = std::fs::read(data_dir.join(FILE_NAME)).ok()?;
    let cached: Cached = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable identity cache");
            return None;
        }
    };
    Some(IdentitySnapshot {
        counter: cached.counter,
        users: cached
            .users
            .into_iter()
            .map(|u| UserRecord {
                username: u.username,
                password_hash: String::new(),
                display_name: None,
                disabled: u.disabled,
                created_at_ms: 0,
                updated_at_ms: 0,
            })
            .collect(),
        sessions: cached
            .sessions
            .into_iter()
            .map(|s| SessionEntry {
                id: s.id,
                username: s.username,
                secret_hash: s.digest,
                expires_at_ms: s.expires_at_ms,
            })
            .collect(),
        tokens: cached
            .tokens
            .into_iter()
            .map(|t| TokenEntry {
                id: t.id,
                name: t.name,
                secret_hash: t.digest,
                expires_at_ms: t.expires_at_ms,
            })
            .collect(),
        bindings: cached
            .bindings
            .into_iter()
            .map(|b| BindingRecord {
                id: b.id,
                principal: b.principal,
                role: b.role,
                scope: b.scope,
                created_at_ms: 0,
                created_by: String::new(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::auth::token::digest_hex;

    #[test]
    fn a_saved_identity_authenticates_the_same_tokens_and_holds_no_password_hash() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = IdentitySnapshot {
            counter: 4,
            users: vec![UserRecord {
                username: "alice".into(),
                password_hash: "$argon2id$secret-hash".into(),
                display_name: None,
                disabled: false,
                created_at_ms: 1,
                updated_at_ms: 1,
            }],
            sessions: vec![SessionEntry {
                id: "s1".into(),
                username: "alice".into(),
                secret_hash: digest_hex("alice-session"),
                expires_at_ms: i64::MAX,
            }],
            tokens: vec![TokenEntry {
                id: "t1".into(),
                name: "svc".into(),
                secret_hash: digest_hex("service-token"),
                expires_at_ms: None,
            }],
            bindings: vec![BindingRecord {
                id: "b1".into(),
                principal: "token:t1".into(),
                role: "reader".into(),
                scope: "shop".into(),
                created_at_ms: 1,
                created_by: "x".into(),
            }],
        };
        save(dir.path(), &snapshot).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("argon2id"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Identity::from_snapshot(&load(dir.path()).unwrap());
        assert_eq!(loaded.counter, 4);
        let svc = loaded.authenticate("service-token", 0).unwrap();
        assert_eq!(svc.grants.len(), 1);
        assert!(loaded.authenticate("alice-session", 0).is_some());
        assert!(loaded.authenticate("other", 0).is_none());
        std::fs::write(dir.path().join(FILE_NAME), "{garbage").unwrap();
        assert!(load(dir.path()).is_none());
    }
}
