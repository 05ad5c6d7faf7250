//! What an audit record says about a config-plane command: its action, the resource it
//! touched and where that resource sits (tenant, app, environment), read from the state
//! before the command is applied (a deleted config is still there to be named).
//!
//! Pure, so that every node derives the same record from the same entry.

use crate::command::Command;
use crate::state::State;

/// The subject of a command's audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSubject {
    /// `tenant.create`, `config.publish`, ...: stable strings to filter on.
    pub action: &'static str,
    /// `tenant/app/env/name` style path of the resource (or `config:<id>` when the config is
    /// unknown).
    pub resource: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
}

/// Describes `command` for the audit log; `None` for internal bookkeeping that is not an
/// operator's change (trimming the outbox, recording started members).
pub fn describe(state: &State, command: &Command) -> Option<AuditSubject> {
    let at = |action, t: &str, a: Option<&str>, e: Option<&str>, resource: String| AuditSubject {
        action,
        resource,
        tenant: Some(t.to_owned()),
        app: a.map(str::to_owned),
        env: e.map(str::to_owned),
    };
    let on_config = |action, id: u64| match state.config(id) {
        Some(c) => at(
            action,
            &c.path.tenant,
            Some(&c.path.app),
            Some(&c.path.env),
            c.path.to_string(),
        ),
        None => AuditSubject {
            action,
            resource: format!("config:{id}"),
            tenant: None,
            app: None,
            env: None,
        },
    };
    Some(match command {
        Command::CreateTenant { name, .. } => at("tenant.create", name, None, None, name.clone()),
        Command::UpdateTenant { name, .. } => at("tenant.update", name, None, None, name.clone()),
        Command::DeleteTenant { name, .. } => at("tenant.delete", name, None, None, name.clone()),
        Command::CreateApp { tenant, name, .. } => at(
            "app.create",
            tenant,
            Some(name),
            None,
            format!("{tenant}/{name}"),
        ),
        Command::UpdateApp { tenant, name, .. } => at(
            "app.update",
            tenant,
            Some(name),
            None,
            format!("{tenant}/{name}"),
        ),
        Command::DeleteApp { tenant, name, .. } => at(
            "app.delete",
            tenant,
            Some(name),
            None,
            format!("{tenant}/{name}"),
        ),
        Command::CreateEnvironment {
            tenant, app, name, ..
        } => at(
            "env.create",
            tenant,
            Some(app),
            Some(name),
            format!("{tenant}/{app}/{name}"),
        ),
        Command::UpdateEnvironment {
            tenant, app, name, ..
        } => at(
            "env.update",
            tenant,
            Some(app),
            Some(name),
            format!("{tenant}/{app}/{name}"),
        ),
        Command::DeleteEnvironment {
            tenant, app, name, ..
        } => at(
            "env.delete",
            tenant,
            Some(app),
            Some(name),
            format!("{tenant}/{app}/{name}"),
        ),
        Command::CreateConfig { path, .. } => at(
            "config.create",
            &path.tenant,
            Some(&path.app),
            Some(&path.env),
            path.to_string(),
        ),
        Command::UpdateConfig { id, .. } => on_config("config.update", *id),
        Command::DeleteConfig { id } => on_config("config.delete", *id),
        Command::CreateVersion { config_id, .. } => on_config("version.create", *config_id),
        Command::SetReleases { config_id, .. } => on_config("releases.set", *config_id),
        Command::Publish { config_id, .. } => on_config("config.publish", *config_id),
        Command::Rollback { config_id, .. } => on_config("config.rollback", *config_id),
        Command::SweepRetention => AuditSubject {
            action: "retention.sweep",
            resource: "*".into(),
            tenant: None,
            app: None,
            env: None,
        },
        Command::RewrapKeys { .. } => AuditSubject {
            action: "kms.rewrap",
            resource: "*".into(),
            tenant: None,
            app: None,
            env: None,
        },
        Command::RecordMemberStarted { .. } | Command::TrimAuditOutbox { .. } => return None,
    })
}
