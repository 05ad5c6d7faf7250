//! `conflux admin user|token|role-binding ...` and `conflux audit list` (contract section 6).
//!
//! Passwords are never flag values (they would sit in shell history and in `ps`): they are
//! asked for on the terminal without echo, or read from stdin with `--password-stdin`. A
//! service token's secret is printed once, by `admin token create`; nothing else shows it.

use conflux_api_types::{BindingSpec, CreateRoleBinding, CreateToken, CreateUser, UpdateUser};
use conflux_client::AuditQuery;

use crate::auth;
use crate::error::CliError;
use crate::parse;
use crate::render::Removed;
use crate::{Ctx, Output};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user; the password (at least 12 characters) is asked for twice on the
    /// terminal, or read from stdin with --password-stdin.
    Create(UserCreateArgs),
    /// List users.
    List,
    /// Show one user.
    Get {
        #[arg(value_parser = parse::username, value_name = "USERNAME")]
        username: String,
    },
    /// Change a user's password, display name, or disable / enable it. Disabling ends its
    /// sessions.
    Update(UserUpdateArgs),
    /// Delete a user (ends its sessions).
    Delete {
        #[arg(value_parser = parse::username, value_name = "USERNAME")]
        username: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct UserCreateArgs {
    /// The username (lower-case letters, digits and '-').
    #[arg(value_parser = parse::username, value_name = "USERNAME")]
    pub username: String,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Read the password from stdin (its first line) instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct UserUpdateArgs {
    #[arg(value_parser = parse::username, value_name = "USERNAME")]
    pub username: String,
    /// Set a new password, asked for twice on the terminal.
    #[arg(long, conflicts_with = "password_stdin")]
    pub new_password: bool,
    /// Set a new password, read from stdin (its first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Disable the user (its sessions end; it cannot log in).
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    /// Enable a disabled user.
    #[arg(long)]
    pub enable: bool,
    #[arg(long, conflicts_with = "clear_display_name")]
    pub display_name: Option<String>,
    /// Remove the display name.
    #[arg(long)]
    pub clear_display_name: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a service token (for a service, Terraform, CI). Its secret is printed once.
    Create(TokenCreateArgs),
    /// List service tokens (never their secrets).
    List,
    /// Show one service token (never its secret).
    Get {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Revoke a service token; within 2 s no node accepts it.
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// A name saying what the token is for.
    #[arg(long)]
    pub name: String,
    /// When the token stops working (RFC 3339, e.g. 2030-01-31T00:00:00Z); default: never.
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    /// When the token stops working, from now (e.g. 90d, 12h).
    #[arg(long, value_parser = parse::time_from_now, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// Grant ROLE on SCOPE to the new token, e.g. reader=acme/billing/prod (repeatable).
    #[arg(long = "bind", value_parser = parse::binding, value_name = "ROLE=SCOPE")]
    pub bindings: Vec<BindingSpec>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RoleBindingCommand {
    /// Grant a role on a scope to a user or a service token.
    Create(RoleBindingCreateArgs),
    /// List role bindings (those the caller may see), optionally of one principal or scope.
    List {
        /// Only bindings of this principal (user:<name> or token:<id>).
        #[arg(long, value_parser = parse::principal, value_name = "PRINCIPAL")]
        principal: Option<String>,
        /// Only bindings on this scope.
        #[arg(long, value_parser = parse::scope, value_name = "SCOPE")]
        scope: Option<String>,
    },
    /// Show one role binding.
    Get {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Remove a role binding; within 2 s no node grants it.
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct RoleBindingCreateArgs {
    /// user:<username> or token:<id>.
    #[arg(long, value_parser = parse::principal, value_name = "PRINCIPAL")]
    pub principal: String,
    /// cluster_admin, tenant_admin, publisher, editor, viewer or reader.
    #[arg(long, value_parser = parse::role, value_name = "ROLE")]
    pub role: String,
    /// *, tenant, tenant/app or tenant/app/env.
    #[arg(long, value_parser = parse::scope, value_name = "SCOPE")]
    pub scope: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Audit records, newest first: logins, denials, and every change of configs, users,
    /// tokens and bindings.
    List(AuditListArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditListArgs {
    /// Only records of this tenant.
    #[arg(long, value_parser = parse::tenant_name)]
    pub tenant: Option<String>,
    /// Only records of this principal (user:<name> or token:<id>).
    #[arg(long, value_parser = parse::principal, value_name = "PRINCIPAL")]
    pub actor: Option<String>,
    /// Only records of this action.
    #[arg(long)]
    pub action: Option<String>,
    /// Only records from this time on: RFC 3339, or a duration back from now (e.g. 1h).
    #[arg(long, value_parser = parse::time_ago, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before this time: RFC 3339, or a duration back from now.
    #[arg(long, value_parser = parse::time_ago, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after the previous page (its "more: --cursor" line).
    #[arg(long)]
    pub cursor: Option<String>,
}

pub(crate) async fn user(ctx: &Ctx, command: UserCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        UserCommand::Create(a) => {
            let password = auth::password(a.password_stdin, true).await?;
            let body = CreateUser {
                username: a.username,
                password,
                display_name: a.display_name,
            };
            ctx.render(&client.create_user(&body).await?)
        }
        UserCommand::List => ctx.render(&client.list_users().await?),
        UserCommand::Get { username } => ctx.render(&client.get_user(&username).await?),
        UserCommand::Update(a) => {
            let password = if a.password_stdin || a.new_password {
                Some(auth::password(a.password_stdin, true).await?)
            } else {
                None
            };
            let body = UpdateUser {
                password,
                disabled: match (a.disable, a.enable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                display_name: if a.clear_display_name {
                    Some(None)
                } else {
                    a.display_name.map(Some)
                },
            };
            if body == UpdateUser::default() {
                return Err(CliError::usage(
                    "nothing to change: give --new-password, --password-stdin, --disable, --enable, --display-name or --clear-display-name",
                ));
            }
            ctx.render(&client.update_user(&a.username, &body).await?)
        }
        UserCommand::Delete { username } => {
            client.delete_user(&username).await?;
            ctx.render(&Removed::new("user", username))
        }
    }
}

pub(crate) async fn token(ctx: &Ctx, command: TokenCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        TokenCommand::Create(a) => {
            let body = CreateToken {
                name: a.name,
                expires_at: a.expires_at.or(a.expires_in),
                bindings: a.bindings,
            };
            ctx.render(&client.create_token(&body).await?)
        }
        TokenCommand::List => ctx.render(&client.list_tokens().await?),
        TokenCommand::Get { id } => ctx.render(&client.get_token(&id).await?),
        TokenCommand::Delete { id } => {
            client.delete_token(&id).await?;
            ctx.render(&Removed::new("token", id))
        }
    }
}

pub(crate) async fn role_binding(
    ctx: &Ctx,
    command: RoleBindingCommand,
) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        RoleBindingCommand::Create(a) => {
            let body = CreateRoleBinding {
                principal: a.principal,
                role: a.role,
                scope: a.scope,
            };
            ctx.render(&client.create_role_binding(&body).await?)
        }
        RoleBindingCommand::List { principal, scope } => ctx.render(
            &client
                .list_role_bindings(principal.as_deref(), scope.as_deref())
                .await?,
        ),
        RoleBindingCommand::Get { id } => ctx.render(&client.get_role_binding(&id).await?),
        RoleBindingCommand::Delete { id } => {
            client.delete_role_binding(&id).await?;
            ctx.render(&Removed::new("role binding", id))
        }
    }
}

pub(crate) async fn audit(ctx: &Ctx, command: AuditCommand) -> Result<Output, CliError> {
    match command {
        AuditCommand::List(a) => {
            let query = AuditQuery {
                tenant: a.tenant,
                actor: a.actor,
                action: a.action,
                since: a.since,
                until: a.until,
                limit: a.limit,
                cursor: a.cursor,
            };
            ctx.render(&ctx.client.audit(&query).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        #[command(subcommand)]
        User(UserCommand),
        #[command(subcommand)]
        Token(TokenCommand),
        #[command(subcommand)]
        RoleBinding(RoleBindingCommand),
        #[command(subcommand)]
        Audit(AuditCommand),
    }

    fn parse(args: &[&str]) -> Result<Sub, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.c)
    }

    #[test]
    fn token_create_takes_bindings_and_an_expiry() {
        let Sub::Token(TokenCommand::Create(a)) = parse(&[
            "token",
            "create",
            "--name",
            "billing-reader",
            "--bind",
            "reader=acme/billing/prod",
            "--bind",
            "viewer=acme",
            "--expires-in",
            "30d",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.bindings.len(), 2);
        assert_eq!(a.bindings[0].scope, "acme/billing/prod");
        assert!(a.expires_in.is_some() && a.expires_at.is_none());
        for bad in [
            &["token", "create", "--name", "x", "--bind", "reader"][..],
            &["token", "create", "--name", "x", "--bind", "root=*"],
            &[
                "token",
                "create",
                "--name",
                "x",
                "--expires-at",
                "2030-01-01T00:00:00Z",
                "--expires-in",
                "1d",
            ],
            &["token", "create"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn no_password_flag_takes_a_value() {
        // A password given as a flag value would end up in shell history: there is none.
        assert!(parse(&["user", "create", "alice", "--password", "x"]).is_err());
        assert!(parse(&["user", "create", "alice", "--password-stdin"]).is_ok());
        let Sub::User(UserCommand::Update(a)) =
            parse(&["user", "update", "alice", "--new-password"]).unwrap()
        else {
            panic!()
        };
        assert!(a.new_password);
        assert!(
            parse(&[
                "user",
                "update",
                "alice",
                "--new-password",
                "--password-stdin"
            ])
            .is_err()
        );
        assert!(parse(&["user", "update", "alice", "--disable", "--enable"]).is_err());
    }

    #[test]
    fn bindings_and_audit_filters_are_checked() {
        assert!(
            parse(&[
                "role-binding",
                "create",
                "--principal",
                "user:alice",
                "--role",
                "viewer",
                "--scope",
                "acme/web"
            ])
            .is_ok()
        );
        for bad in [
            &[
                "role-binding",
                "create",
                "--principal",
                "alice",
                "--role",
                "viewer",
                "--scope",
                "acme",
            ][..],
            &["role-binding", "list", "--scope", "a/b/c/d"],
            &["audit", "list", "--actor", "nobody"],
            &["audit", "list", "--limit", "-1"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let Sub::Audit(AuditCommand::List(a)) = parse(&[
            "audit",
            "list",
            "--since",
            "2h",
            "--until",
            "2030-01-01T00:00:00Z",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(a.since.unwrap().ends_with('Z'));
        assert_eq!(a.until.as_deref(), Some("2030-01-01T00:00:00Z"));
    }
}
