//! The in-memory identity every request is checked against: token digest -> principal and
//! grants. Built from one consistent read of the metadata DB and swapped in whole, so a
//! request sees either the old or the new identity, never a mix, and reading it takes no
//! lock (fetch and watch authenticate on every request).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use conflux_domain::{Grant, Principal, Role, Scope};
use conflux_metadata::IdentitySnapshot;
use tokio::sync::watch;

use super::token::{TokenDigest, digest, parse_digest, well_formed};

/// Who a token belongs to and what it may do.
#[derive(Debug)]
pub struct Subject {
    pub principal: Principal,
    /// The principal's bindings, each with its id (whoami shows them).
    pub bindings: Vec<(String, Grant)>,
    /// Only the grants, for the decision (see [`conflux_domain::access::allows`]).
    pub grants: Vec<Grant>,
    pub expires_at_ms: Option<i64>,
    /// The session id when the token is a user's session (logout revokes it).
    pub session_id: Option<String>,
}

impl Subject {
    pub fn allows(&self, needed: Role, resource: &Scope) -> bool {
        conflux_domain::access::allows(&self.grants, needed, resource)
    }

    /// Whether this subject may fetch or watch the config at `path`
    /// (`tenant/app/env/name`); a path that is not one is not readable. Allocation-free: the
    /// fetch path asks on every request.
    pub fn may_read_path(&self, path: &str) -> bool {
        let mut parts = path.splitn(4, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(a), Some(e)) => {
                conflux_domain::access::allows_env(&self.grants, Role::Reader, t, a, e)
            }
            _ => false,
        }
    }
}

/// One generation of the identity.
#[derive(Debug, Default)]
pub struct Identity {
    by_digest: HashMap<TokenDigest, Arc<Subject>>,
    /// The metadata DB's change counter this generation was read at.
    pub counter: i64,
}

impl Identity {
    /// Builds the identity from a snapshot of the metadata DB. Rows that cannot be used
    /// (a corrupt digest, an unknown role) are skipped with a warning rather than failing the
    /// whole load: one bad row must not lock everybody out.
    pub fn from_snapshot(snapshot: &IdentitySnapshot) -> Identity {
        let mut bindings: HashMap<String, Vec<(String, Grant)>> = HashMap::new();
        for b in &snapshot.bindings {
            let role = b.role.parse::<Role>();
            let scope = Scope::parse("scope", &b.scope);
            match (role, scope) {
                (Ok(role), Ok(scope)) => bindings
                    .entry(b.principal.clone())
                    .or_default()
                    .push((b.id.clone(), Grant { role, scope })),
                _ => {
                    tracing::warn!(binding = %b.id, "skipping a role binding with an unknown role or scope")
                }
            }
        }
        let subject = |principal: Principal, expires_at_ms, session_id| {
            let bindings = bindings
                .get(&principal.to_string())
                .cloned()
                .unwrap_or_default();
            Arc::new(Subject {
                grants: bindings.iter().map(|(_, g)| g.clone()).collect(),
                bindings,
                principal,
                expires_at_ms,
                session_id,
            })
        };
        let mut by_digest = HashMap::new();
        for t in &snapshot.tokens {
            let Some(d) = parse_digest(&t.secret_hash) else {
                tracing::warn!(token = %t.id, "skipping a service token with a corrupt digest");
                continue;
            };
            by_digest.insert(
                d,
                subject(Principal::Token(t.id.clone()), t.expires_at_ms, None),
            );
        }
        let enabled: HashMap<&str, bool> = snapshot
            .users
            .iter()
            .map(|u| (u.username.as_str(), !u.disabled))
            .collect();
        for s in &snapshot.sessions {
            if !enabled.get(s.username.as_str()).copied().unwrap_or(false) {
                continue;
            }
            let Some(d) = parse_digest(&s.secret_hash) else {
                tracing::warn!(session = %s.id, "skipping a session with a corrupt digest");
                continue;
            };
            by_digest.insert(
                d,
                subject(
                    Principal::User(s.username.clone()),
                    Some(s.expires_at_ms),
                    Some(s.id.clone()),
                ),
            );
        }
        Identity {
            by_digest,
            counter: snapshot.counter,
        }
    }

    /// The subject of `token` at `now_ms`, if the token is known and not expired.
    pub fn authenticate(&self, token: &str, now_ms: i64) -> Option<Arc<Subject>> {
        if !well_formed(token) {
            return None;
        }
        self.authenticate_digest(&digest(token), now_ms)
    }

    /// [`Identity::authenticate`] by the token's digest (long-lived requests keep only that).
    pub fn authenticate_digest(&self, digest: &TokenDigest, now_ms: i64) -> Option<Arc<Subject>> {
        self.by_digest
            .get(digest)
            .filter(|s| s.expires_at_ms.is_none_or(|e| e > now_ms))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The current identity, replaced whole on every reload; `generation` ticks on each
/// replacement so long-lived requests can re-check their token.
#[derive(Debug)]
pub struct IdentityCache {
    current: ArcSwap<Identity>,
    generation: watch::Sender<u64>,
}

impl Default for IdentityCache {
    fn default() -> Self {
        IdentityCache {
            current: ArcSwap::from_pointee(Identity::default()),
            generation: watch::channel(0).0,
        }
    }
}

impl IdentityCache {
    pub fn load(&self) -> arc_swap::Guard<Arc<Identity>> {
        self.current.load()
    }

    pub fn replace(&self, identity: Identity) {
        self.current.store(Arc::new(identity));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether any identity was loaded yet (from the metadata DB, or from this node's copy
    /// of it). Until then an unknown token says nothing about the token.
    pub fn loaded(&self) -> bool {
        *self.generation.borrow() > 0
    }

    /// Ticks after every replacement.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use conflux_metadata::{BindingRecord, SessionEntry, TokenEntry, UserRecord};

    use super::*;
    use crate::auth::token::digest_hex;

    fn binding(id: &str, principal: &str, role: &str, scope: &str) -> BindingRecord {
        BindingRecord {
            id: id.into(),
            principal: principal.into(),
            role: role.into(),
            scope: scope.into(),
            created_at_ms: 0,
            created_by: "test".into(),
        }
    }

    fn user(name: &str, disabled: bool) -> UserRecord {
        UserRecord {
            username: name.into(),
            password_hash: String::new(),
            display_name: None,
            disabled,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn snapshot() -> IdentitySnapshot {
        IdentitySnapshot {
            counter: 7,
            users: vec![user("alice", false), user("bob", true)],
            sessions: vec![
                SessionEntry {
                    id: "s1".into(),
                    username: "alice".into(),
                    secret_hash: digest_hex("alice-session"),
                    expires_at_ms: 1000,
                },
                SessionEntry {
                    id: "s2".into(),
                    username: "bob".into(),
                    secret_hash: digest_hex("bob-session"),
                    expires_at_ms: 1000,
                },
            ],
            tokens: vec![
                TokenEntry {
                    id: "t1".into(),
                    name: "svc".into(),
                    secret_hash: digest_hex("service-token"),
                    expires_at_ms: None,
                },
                TokenEntry {
                    id: "t2".into(),
                    name: "bad".into(),
                    secret_hash: "not hex".into(),
                    expires_at_ms: None,
                },
            ],
            bindings: vec![
                binding("b1", "token:t1", "reader", "shop/web/prod"),
                binding("b2", "user:alice", "publisher", "shop"),
                binding("b3", "user:alice", "no_such_role", "shop"),
            ],
        }
    }

    #[test]
    fn tokens_and_sessions_map_to_their_principal_and_grants() {
        let id = Identity::from_snapshot(&snapshot());
        assert_eq!(id.counter, 7);
        let svc = id.authenticate("service-token", 0).unwrap();
        assert_eq!(svc.principal, Principal::Token("t1".into()));
        let prod = Scope::parse("s", "shop/web/prod").unwrap();
        assert!(svc.allows(Role::Reader, &prod));
        assert!(!svc.allows(Role::Viewer, &prod));
        let alice = id.authenticate("alice-session", 999).unwrap();
        assert_eq!(alice.session_id.as_deref(), Some("s1"));
        assert_eq!(alice.bindings.len(), 1, "the unknown role is skipped");
        assert!(alice.allows(Role::Publisher, &prod));
    }

    #[test]
    fn unknown_expired_disabled_and_malformed_tokens_are_refused() {
        let id = Identity::from_snapshot(&snapshot());
        assert!(id.authenticate("alice-session", 1000).is_none(), "expired");
        assert!(id.authenticate("bob-session", 0).is_none(), "disabled user");
        assert!(id.authenticate("nobody", 0).is_none());
        assert!(id.authenticate("", 0).is_none());
        assert!(id.authenticate("with space", 0).is_none());
        assert_eq!(id.len(), 2);
    }

    #[test]
    fn replacing_the_identity_ticks_the_generation() {
        let cache = IdentityCache::default();
        let rx = cache.subscribe();
        assert!(cache.load().is_empty());
        cache.replace(Identity::from_snapshot(&snapshot()));
        assert!(rx.has_changed().unwrap());
        assert_eq!(cache.load().counter, 7);
    }
}
