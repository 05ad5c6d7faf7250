//! `conflux release ...`: which clients get which version of a config.

use conflux_api_types::{
    PublishRequest, PutReleases, ReleaseRule, RollbackMode, RollbackRequest, Strategy,
};
use conflux_client::ConfigPath;

use crate::config::config_id;
use crate::error::CliError;
use crate::parse::{self, Labels, RULE_SYNTAX};
use crate::proposal::or_proposed;
use crate::render::{ReleaseStatus, Resolved};
use crate::{Ctx, Output, WriteArgs, input};

#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCommand {
    /// Replace a config's release rules (alias: apply).
    #[command(visible_alias = "apply", after_long_help = RULE_SYNTAX)]
    Set(SetArgs),
    /// Show a config's release rules, and with --labels what those labels resolve to.
    Status(StatusArgs),
    /// Point the rules back at an earlier version.
    Rollback(RollbackArgs),
    /// Upload a new version and release it in one step (stable or canary).
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// One release rule, e.g. 'labels=canary:true,percent=10,version=5,priority=100';
    /// repeat for each rule. A rule without labels and percent is the default (see --help).
    #[arg(long = "rule", value_parser = parse::rule, value_name = "RULE", required = true)]
    pub rules: Vec<ReleaseRule>,
    /// Why the rules change; kept with them.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// Also show which version a client with these labels gets, k=v,k2=v2.
    #[arg(long, value_parser = parse::labels, value_name = "K=V,...")]
    pub labels: Option<Labels>,
    /// The client id for percentage rules (implies resolving, even without --labels).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
}

/// `--mode` of a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RollbackModeArg {
    /// Point the default rule at the version; keep every other rule.
    #[value(name = "stable_only", alias = "stable-only")]
    StableOnly,
    /// Replace all rules with one default rule pointing at the version.
    #[value(name = "emergency")]
    Emergency,
}

impl From<RollbackModeArg> for RollbackMode {
    fn from(m: RollbackModeArg) -> Self {
        match m {
            RollbackModeArg::StableOnly => RollbackMode::StableOnly,
            RollbackModeArg::Emergency => RollbackMode::Emergency,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// The version to go back to.
    #[arg(long, value_name = "N")]
    pub version: u64,
    #[arg(long, value_enum, default_value_t = RollbackModeArg::StableOnly)]
    pub mode: RollbackModeArg,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// `--strategy` of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Point the default rule at the new version; keep every other rule.
    Stable,
    /// Add (or replace) a rule with --labels / --percent at --priority for the new version.
    Canary,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// The content: a file, or - for stdin (UTF-8).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: String,
    #[arg(long, value_enum)]
    pub strategy: StrategyArg,
    /// Canary only: the labels clients need, k=v,k2=v2.
    #[arg(long, value_parser = parse::labels, value_name = "K=V,...")]
    pub labels: Option<Labels>,
    /// Canary only: the share of clients (by client id bucket), 0-100.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100), value_name = "P")]
    pub percent: Option<u8>,
    /// Canary only: the rule's priority (default 100).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub priority: Option<i32>,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

impl PublishArgs {
    /// The strategy, or a usage error when the flags do not fit it.
    fn strategy(&self) -> Result<Strategy, CliError> {
        match self.strategy {
            StrategyArg::Stable => {
                let given: Vec<&str> = [
                    (self.labels.is_some(), "--labels"),
                    (self.percent.is_some(), "--percent"),
                    (self.priority.is_some(), "--priority"),
                ]
                .into_iter()
                .filter_map(|(set, flag)| set.then_some(flag))
                .collect();
                if !given.is_empty() {
                    return Err(CliError::usage(format!(
                        "{} only appl{} to --strategy canary",
                        given.join(", "),
                        if given.len() == 1 { "ies" } else { "y" }
                    )));
                }
                Ok(Strategy::Stable)
            }
            StrategyArg::Canary => {
                let labels = self.labels.clone().unwrap_or_default().0;
                if labels.is_empty() && self.percent.is_none() {
                    return Err(CliError::usage(
                        "--strategy canary needs --labels or --percent (a rule with neither would be a second default rule)",
                    ));
                }
                Ok(Strategy::Canary {
                    labels,
                    percent: self.percent,
                    priority: self.priority,
                })
            }
        }
    }
}

pub(crate) async fn execute(ctx: &Ctx, command: ReleaseCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        ReleaseCommand::Set(a) => {
            let id = config_id(ctx, &a.path).await?;
            let body = PutReleases {
                releases: a.rules,
                comment: a.comment,
            };
            or_proposed(
                ctx,
                client.put_releases(id, &body, &a.write.options()).await,
            )
        }
        ReleaseCommand::Status(a) => {
            let id = config_id(ctx, &a.path).await?;
            let releases = client.get_releases(id).await?;
            let resolved = if a.labels.is_some() || a.client_id.is_some() {
                let labels = a.labels.unwrap_or_default().0;
                let answer = client.resolve(id, &labels, a.client_id.as_deref()).await?;
                Some(Resolved {
                    labels,
                    client_id: a.client_id,
                    answer,
                })
            } else {
                None
            };
            ctx.render(&ReleaseStatus { releases, resolved })
        }
        ReleaseCommand::Rollback(a) => {
            let id = config_id(ctx, &a.path).await?;
            let body = RollbackRequest {
                version_id: a.version,
                mode: a.mode.into(),
            };
            or_proposed(ctx, client.rollback(id, &body, &a.write.options()).await)
        }
        ReleaseCommand::Publish(a) => {
            let strategy = a.strategy()?;
            let bytes = input::read(&a.file).await?;
            let content = String::from_utf8(bytes).map_err(|_| {
                CliError::invalid_input(
                    "file",
                    "publish sends the content as a JSON string, so it must be UTF-8",
                )
            })?;
            let id = config_id(ctx, &a.path).await?;
            let body = PublishRequest {
                content,
                description: a.description,
                strategy,
            };
            or_proposed(ctx, client.publish(id, &body, &a.write.options()).await)
        }
    }
}
