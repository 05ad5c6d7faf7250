//! What an audit record says about a config-plane command: its action, the resource it
//! touched and where that resource sits (tenant, app, environment), read from the state
//! before the command is applied (a deleted config is still there to be named).
//!
//! Pure, so that every node derives the same record from the same entry.

use crate::command::{Command, Response, RollbackMode};
use crate::error::DomainError;
use crate::proposal::ProposalStatus;
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
    /// An emergency rollback by a tenant_admin in an environment that requires approval:
    /// it skips the approval (break glass), and its record says so.
    pub break_glass: bool,
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
        break_glass: false,
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
            break_glass: false,
        },
    };
    let on_proposal = |action, id: u64| match state.proposal(id) {
        Some(p) => on_config(action, p.config_id),
        None => AuditSubject {
            action,
            resource: format!("proposal:{id}"),
            tenant: None,
            app: None,
            env: None,
            break_glass: false,
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
        Command::Rollback {
            config_id,
            mode,
            break_glass,
            ..
        } => {
            let mut subject = on_config("config.rollback", *config_id);
            subject.break_glass = *break_glass
                && *mode == RollbackMode::Emergency
                && state.config(*config_id).is_some_and(|c| {
                    state
                        .environment(&c.path.tenant, &c.path.app, &c.path.env)
                        .is_some_and(|e| e.approval.required)
                });
            subject
        }
        Command::ApproveProposal { id, .. } => on_proposal("proposal.approve", *id),
        Command::RejectProposal { id, .. } => on_proposal("proposal.reject", *id),
        Command::CancelProposal { id, .. } => on_proposal("proposal.cancel", *id),
        Command::SweepRetention => AuditSubject {
            action: "retention.sweep",
            resource: "*".into(),
            tenant: None,
            app: None,
            env: None,
            break_glass: false,
        },
        Command::RewrapKeys { .. } => AuditSubject {
            action: "kms.rewrap",
            resource: "*".into(),
            tenant: None,
            app: None,
            env: None,
            break_glass: false,
        },
        Command::RecordMemberStarted { .. } | Command::TrimAuditOutbox { .. } => return None,
    })
}

/// The webhook events (contract section 7) a successfully applied command raises, in order.
/// A replayed outcome raises none: nothing changed.
pub fn webhook_events(
    command: &Command,
    outcome: &Result<Response, DomainError>,
) -> Vec<&'static str> {
    let Ok(response) = outcome else {
        return Vec::new();
    };
    match (command, response) {
        (_, Response::Proposed { version, .. }) => {
            let mut events = Vec::new();
            if version.is_some() {
                events.push("version.created");
            }
            events.push("proposal.created");
            events
        }
        (Command::ApproveProposal { .. }, Response::Proposal { proposal, .. }) => {
            match proposal.status {
                ProposalStatus::Executed => {
                    vec!["proposal.approved", "proposal.executed", "release.changed"]
                }
                ProposalStatus::Failed => vec!["proposal.approved", "proposal.failed"],
                _ => vec!["proposal.approved"],
            }
        }
        (Command::RejectProposal { .. }, Response::Proposal { .. }) => vec!["proposal.rejected"],
        (Command::CreateVersion { .. }, Response::Version { .. }) => vec!["version.created"],
        (Command::Publish { .. }, Response::Version { .. }) => {
            vec!["version.created", "release.changed"]
        }
        (Command::SetReleases { .. } | Command::Rollback { .. }, Response::Config(_)) => {
            vec!["release.changed"]
        }
        _ => Vec::new(),
    }
}
