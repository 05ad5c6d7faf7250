//! Who may do what (contract section 6): principals, the six built-in roles, scopes, and the
//! authorization decision.
//!
//! The model is a total order of roles times a tree of scopes: a binding grants its role and
//! every role below it, on its scope and everything under it. A request needs one role on one
//! resource, so the decision is "is there a binding whose role is at least the needed one and
//! whose scope covers the resource", a scan of the principal's (few) bindings. Pure and
//! allocation-free, so the fetch path can afford it on every request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::names::validate_name;

/// The built-in roles, weakest first; each includes every role before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fetch and watch: what a service gets.
    Reader,
    /// Read the management plane: configs, versions, contents, diffs, resolve, audit.
    Viewer,
    /// Create and change configs, create versions.
    Editor,
    /// Change releases, publish, roll back, approve proposals.
    Publisher,
    /// Everything inside the scope, including approval settings and role bindings.
    TenantAdmin,
    /// Everything, including `/_cluster/*`, users, tokens and tenants.
    ClusterAdmin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Reader,
        Role::Viewer,
        Role::Editor,
        Role::Publisher,
        Role::TenantAdmin,
        Role::ClusterAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::TenantAdmin => "tenant_admin",
            Role::ClusterAdmin => "cluster_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid_argument(
                    "role",
                    format!(
                        "{s:?} is not a role; roles are {}",
                        Role::ALL.map(Role::as_str).join(", ")
                    ),
                )
            })
    }
}

/// Where something is: the whole cluster, or a tenant, an app or an environment (a config is
/// addressed by its environment). Used both as a binding's scope and as a request's resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `*`
    All,
    Tenant(String),
    App(String, String),
    Env(String, String, String),
}

impl Scope {
    /// The path parts below the cluster: none, tenant, tenant/app or tenant/app/env.
    fn parts(&self) -> [Option<&str>; 3] {
        match self {
            Scope::All => [None, None, None],
            Scope::Tenant(t) => [Some(t), None, None],
            Scope::App(t, a) => [Some(t), Some(a), None],
            Scope::Env(t, a, e) => [Some(t), Some(a), Some(e)],
        }
    }

    /// Whether `resource` is this scope or lies under it.
    pub fn covers(&self, resource: &Scope) -> bool {
        self.parts()
            .iter()
            .zip(resource.parts())
            .all(|(mine, theirs)| mine.is_none() || *mine == theirs)
    }

    /// The tenant this scope is in, if it is below the cluster.
    pub fn tenant(&self) -> Option<&str> {
        self.parts()[0]
    }

    /// Parses `*`, `tenant`, `tenant/app` or `tenant/app/env`; `field` names the input in
    /// errors.
    pub fn parse(field: &str, s: &str) -> Result<Scope, DomainError> {
        if s == "*" {
            return Ok(Scope::All);
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(DomainError::invalid_argument(
                field,
                format!("{s:?} is not a scope: use *, tenant, tenant/app or tenant/app/env"),
            ));
        }
        for part in &parts {
            validate_name(field, part)?;
        }
        let owned = |i: usize| parts[i].to_owned();
        Ok(match parts.len() {
            1 => Scope::Tenant(owned(0)),
            2 => Scope::App(owned(0), owned(1)),
            _ => Scope::Env(owned(0), owned(1), owned(2)),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Tenant(t) => f.write_str(t),
            Scope::App(t, a) => write!(f, "{t}/{a}"),
            Scope::Env(t, a, e) => write!(f, "{t}/{a}/{e}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse("scope", &s).map_err(serde::de::Error::custom)
    }
}

/// Who makes a request: a user, or a service token by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    Token(String),
}

impl Principal {
    /// Parses `user:<username>` or `token:<id>`; `field` names the input in errors.
    pub fn parse(field: &str, s: &str) -> Result<Principal, DomainError> {
        let bad = || {
            DomainError::invalid_argument(
                field,
                format!("{s:?} is not a principal: use user:<username> or token:<id>"),
            )
        };
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "user" => {
                validate_name(field, name)?;
                Ok(Principal::User(name.to_owned()))
            }
            "token" if is_token_id(name) => Ok(Principal::Token(name.to_owned())),
            _ => Err(bad()),
        }
    }
}

/// Token ids are short lower-case alphanumeric strings (they appear in tokens and URLs).
pub fn is_token_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => write!(f, "user:{u}"),
            Principal::Token(t) => write!(f, "token:{t}"),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Principal::parse("principal", &s).map_err(serde::de::Error::custom)
    }
}

/// One role granted on one scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

/// Whether `grants` allow acting with role `needed` on `resource`.
pub fn allows(grants: &[Grant], needed: Role, resource: &Scope) -> bool {
    grants
        .iter()
        .any(|g| g.role >= needed && g.scope.covers(resource))
}

/// [`allows`] on the environment `tenant/app/env`, without building a [`Scope`]: the fetch
/// and watch paths ask this on every request.
pub fn allows_env(grants: &[Grant], needed: Role, tenant: &str, app: &str, env: &str) -> bool {
    let target = [Some(tenant), Some(app), Some(env)];
    grants.iter().any(|g| {
        g.role >= needed
            && g.scope
                .parts()
                .iter()
                .zip(target)
                .all(|(mine, theirs)| mine.is_none() || *mine == theirs)
    })
}

/// Whether a principal holding `grants` may create or delete a binding of `role` on `scope`:
/// cluster admins may grant anything; a tenant admin may grant any role but cluster_admin,
/// on scopes inside one of its tenant_admin scopes.
pub fn may_grant(grants: &[Grant], role: Role, scope: &Scope) -> bool {
    if allows(grants, Role::ClusterAdmin, &Scope::All) {
        return true;
    }
    role != Role::ClusterAdmin && *scope != Scope::All && allows(grants, Role::TenantAdmin, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_env_agrees_with_allows() {
        let grants = [
            grant(Role::Reader, "shop/web/prod"),
            grant(Role::Viewer, "shop/api"),
            grant(Role::Editor, "bank"),
        ];
        for t in ["shop", "bank", "other"] {
            for a in ["web", "api"] {
                for e in ["prod", "dev"] {
                    for role in Role::ALL {
                        assert_eq!(
                            allows_env(&grants, role, t, a, e),
                            allows(&grants, role, &scope(&format!("{t}/{a}/{e}"))),
                            "{role} on {t}/{a}/{e}"
                        );
                    }
                }
            }
        }
    }

    fn scope(s: &str) -> Scope {
        Scope::parse("scope", s).unwrap()
    }

    fn grant(role: Role, s: &str) -> Grant {
        Grant {
            role,
            scope: scope(s),
        }
    }

    #[test]
    fn a_scope_covers_itself_and_what_lies_under_it() {
        assert!(scope("*").covers(&scope("acme/shop/prod")));
        assert!(scope("acme").covers(&scope("acme")));
        assert!(scope("acme").covers(&scope("acme/shop/prod")));
        assert!(scope("acme/shop").covers(&scope("acme/shop/prod")));
        assert!(!scope("acme/shop").covers(&scope("acme")));
        assert!(!scope("acme/shop").covers(&scope("acme/cart/prod")));
        assert!(!scope("acme").covers(&scope("*")));
        assert!(!scope("acme").covers(&scope("acmecorp")));
    }

    #[test]
    fn a_role_includes_the_weaker_ones_on_its_scope_only() {
        let grants = [grant(Role::Publisher, "acme/shop")];
        assert!(allows(&grants, Role::Reader, &scope("acme/shop/prod")));
        assert!(allows(&grants, Role::Publisher, &scope("acme/shop/prod")));
        assert!(!allows(
            &grants,
            Role::TenantAdmin,
            &scope("acme/shop/prod")
        ));
        assert!(!allows(&grants, Role::Reader, &scope("acme/cart/prod")));
        assert!(!allows(&grants, Role::Reader, &scope("acme")));
        assert!(!allows(&[], Role::Reader, &scope("acme/shop/prod")));
    }

    #[test]
    fn tenant_admins_grant_inside_their_scope_and_never_cluster_admin() {
        let admin = [grant(Role::TenantAdmin, "acme")];
        assert!(may_grant(&admin, Role::Publisher, &scope("acme/shop")));
        assert!(may_grant(&admin, Role::TenantAdmin, &scope("acme")));
        assert!(!may_grant(&admin, Role::ClusterAdmin, &scope("acme")));
        assert!(!may_grant(&admin, Role::Reader, &scope("other")));
        assert!(!may_grant(&admin, Role::Reader, &scope("*")));
        let root = [grant(Role::ClusterAdmin, "*")];
        assert!(may_grant(&root, Role::ClusterAdmin, &scope("*")));
    }

    #[test]
    fn roles_scopes_and_principals_parse_and_print_the_same() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
        for s in ["*", "acme", "acme/shop", "acme/shop/prod"] {
            assert_eq!(scope(s).to_string(), s);
        }
        for bad in [
            "",
            "acme/",
            "a/b/c/d",
            "Acme",
            "acme/shop/prod/x.txt",
            "*/x",
        ] {
            assert!(Scope::parse("scope", bad).is_err(), "{bad:?}");
        }
        for p in ["user:alice", "token:k3x9"] {
            assert_eq!(Principal::parse("principal", p).unwrap().to_string(), p);
        }
        for bad in [
            "alice",
            "user:",
            "user:Alice",
            "token:",
            "token:A-B",
            "group:x",
        ] {
            assert!(Principal::parse("principal", bad).is_err(), "{bad:?}");
        }
    }
}
