//! `conflux admin ...`: tenants, apps and environments; `admin cluster` is in
//! [`crate::cluster`], users, service tokens and role bindings in [`crate::identity`],
//! webhooks in [`webhook`].

use conflux_api_types::{
    ApprovalSettings, CreateApp, CreateEnvironment, CreateTenant, QuotasPatch, UpdateEnvironment,
};

use crate::cluster::{self, ClusterCommand};
use crate::error::CliError;
use crate::identity::{self, RoleBindingCommand, TokenCommand, UserCommand};
use crate::parse::{self, AppPath, EnvPath};
use crate::{Ctx, Output, WriteArgs};
use webhook::WebhookCommand;

// Declared here rather than in lib.rs: `admin webhook` is its only user.
#[path = "webhook.rs"]
pub mod webhook;

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Tenants: the top of the hierarchy, with quotas.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Apps of a tenant.
    #[command(subcommand)]
    App(AppCommand),
    /// Environments of an app.
    #[command(subcommand)]
    Env(EnvCommand),
    /// The cluster: status, members, leadership, snapshots and backups.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Users (people, who log in with a password).
    #[command(subcommand)]
    User(UserCommand),
    /// Service tokens (for services, Terraform, CI).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Role bindings: who has which role on which scope.
    #[command(subcommand)]
    RoleBinding(RoleBindingCommand),
    /// The key-encryption keys of encrypted configs: status, and rewrap after a rotation.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Webhooks: signed POSTs of proposal, release and version events, and their deliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum KmsCommand {
    /// The current key-encryption key and how many data keys each KEK wraps.
    Status,
    /// Rewrap every data key under the current KEK (after rotating it); safe to repeat.
    Rewrap,
}

#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; quotas not given keep their defaults.
    Create(TenantCreateArgs),
    /// List tenants.
    List,
}

#[derive(Debug, clap::Args)]
pub struct TenantCreateArgs {
    /// The tenant name (lower-case letters, digits and '-').
    #[arg(value_parser = parse::tenant_name, value_name = "NAME")]
    pub name: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// At most this many apps (default 100).
    #[arg(long, value_name = "N")]
    pub max_apps: Option<u64>,
    /// At most this many configs (default 1000).
    #[arg(long, value_name = "N")]
    pub max_configs: Option<u64>,
    /// At most this many bytes per version (default 102400).
    #[arg(long, value_name = "BYTES")]
    pub max_config_bytes: Option<u64>,
    /// At most this many versions per config (default 1000).
    #[arg(long, value_name = "N")]
    pub max_versions_per_config: Option<u64>,
    #[command(flatten)]
    pub write: WriteArgs,
}

impl TenantCreateArgs {
    fn quotas(&self) -> Option<QuotasPatch> {
        let patch = QuotasPatch {
            max_apps: self.max_apps,
            max_configs: self.max_configs,
            max_config_bytes: self.max_config_bytes,
            max_versions_per_config: self.max_versions_per_config,
        };
        (patch != QuotasPatch::default()).then_some(patch)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Create an app.
    Create(AppCreateArgs),
    /// List the apps of a tenant.
    List {
        /// The tenant.
        #[arg(value_parser = parse::tenant_name, value_name = "TENANT")]
        tenant: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AppCreateArgs {
    /// tenant/app
    #[arg(value_parser = parse::app_path, value_name = "TENANT/APP")]
    pub app: AppPath,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// Create an environment.
    Create(EnvCreateArgs),
    /// Change an environment's description or approval settings (approval: tenant_admin).
    Update(EnvUpdateArgs),
    /// List the environments of an app.
    List {
        /// tenant/app
        #[arg(value_parser = parse::app_path, value_name = "TENANT/APP")]
        app: AppPath,
    },
}

/// Approval settings of an environment (contract section 7); absent flags keep the current
/// (or default) value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApprovalArgs {
    /// Whether release changes (set, publish, rollback) need approval: they become proposals.
    #[arg(long, value_name = "BOOL")]
    pub require_approval: Option<bool>,
    /// How many approvals a proposal needs, 1-10 (default 1).
    #[arg(long, value_name = "N")]
    pub min_approvals: Option<u32>,
    /// Whether a proposer may approve their own proposal (default false).
    #[arg(long, value_name = "BOOL")]
    pub allow_self_approval: Option<bool>,
}

impl ApprovalArgs {
    /// The settings after these flags, or `None` when none was given.
    fn settings(&self, current: ApprovalSettings) -> Option<ApprovalSettings> {
        if self.require_approval.is_none()
            && self.min_approvals.is_none()
            && self.allow_self_approval.is_none()
        {
            return None;
        }
        Some(ApprovalSettings {
            required: self.require_approval.unwrap_or(current.required),
            min_approvals: self.min_approvals.unwrap_or(current.min_approvals),
            allow_self_approval: self
                .allow_self_approval
                .unwrap_or(current.allow_self_approval),
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct EnvUpdateArgs {
    /// tenant/app/env
    #[arg(value_parser = parse::env_path, value_name = "TENANT/APP/ENV")]
    pub env: EnvPath,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct EnvCreateArgs {
    /// tenant/app/env
    #[arg(value_parser = parse::env_path, value_name = "TENANT/APP/ENV")]
    pub env: EnvPath,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub(crate) async fn execute(ctx: &Ctx, command: AdminCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        AdminCommand::Tenant(TenantCommand::Create(a)) => {
            let body = CreateTenant {
                name: a.name.clone(),
                display_name: a.display_name.clone(),
                quotas: a.quotas(),
            };
            ctx.render(&client.create_tenant(&body, &a.write.options()).await?)
        }
        AdminCommand::Tenant(TenantCommand::List) => ctx.render(&client.list_tenants().await?),
        AdminCommand::App(AppCommand::Create(a)) => {
            let body = CreateApp {
                name: a.app.app.clone(),
                description: a.description,
            };
            let view = client
                .create_app(&a.app.tenant, &body, &a.write.options())
                .await?;
            ctx.render(&view)
        }
        AdminCommand::App(AppCommand::List { tenant }) => {
            ctx.render(&client.list_apps(&tenant).await?)
        }
        AdminCommand::Env(EnvCommand::Create(a)) => {
            let body = CreateEnvironment {
                name: a.env.env.clone(),
                description: a.description,
                approval: a.approval.settings(ApprovalSettings::default()),
            };
            let view = client
                .create_env(&a.env.tenant, &a.env.app, &body, &a.write.options())
                .await?;
            ctx.render(&view)
        }
        AdminCommand::Env(EnvCommand::Update(a)) => {
            let (tenant, app, env) = (&a.env.tenant, &a.env.app, &a.env.env);
            let approval = match a.approval.settings(ApprovalSettings::default()) {
                // Flags not given keep what the environment has.
                Some(_) => {
                    let current = client.get_env(tenant, app, env).await?.approval;
                    a.approval.settings(current)
                }
                None => None,
            };
            if approval.is_none() && a.description.is_none() {
                return Err(CliError::usage(
                    "nothing to change: give --description or an approval flag",
                ));
            }
            let body = UpdateEnvironment {
                description: a.description,
                approval,
            };
            let view = client
                .update_env(tenant, app, env, &body, &a.write.options())
                .await?;
            ctx.render(&view)
        }
        AdminCommand::Env(EnvCommand::List { app }) => {
            ctx.render(&client.list_envs(&app.tenant, &app.app).await?)
        }
        AdminCommand::Cluster(c) => cluster::execute(ctx, c).await,
        AdminCommand::User(c) => identity::user(ctx, c).await,
        AdminCommand::Token(c) => identity::token(ctx, c).await,
        AdminCommand::RoleBinding(c) => identity::role_binding(ctx, c).await,
        AdminCommand::Kms(KmsCommand::Status) => ctx.render(&ctx.client.kms_status().await?),
        AdminCommand::Kms(KmsCommand::Rewrap) => ctx.render(&ctx.client.kms_rewrap().await?),
        AdminCommand::Webhook(c) => webhook::execute(ctx, c).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: AdminCommand,
    }

    #[test]
    fn quotas_only_when_given() {
        let t = T::try_parse_from(["t", "tenant", "create", "acme"]).unwrap();
        let AdminCommand::Tenant(TenantCommand::Create(a)) = t.c else {
            panic!()
        };
        assert_eq!(a.quotas(), None);
        let t = T::try_parse_from(["t", "tenant", "create", "acme", "--max-apps", "3"]).unwrap();
        let AdminCommand::Tenant(TenantCommand::Create(a)) = t.c else {
            panic!()
        };
        assert_eq!(
            a.quotas(),
            Some(QuotasPatch {
                max_apps: Some(3),
                ..QuotasPatch::default()
            })
        );
    }
}
