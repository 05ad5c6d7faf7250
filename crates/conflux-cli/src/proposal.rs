//! `conflux proposal ...`: release changes waiting for approval (contract section 7), and
//! what the release commands print when their change became one.

use std::fmt::Write as _;

use conflux_api_types::{ProposalAccepted, ProposalList, ProposalView, ProposedChangeView};
use conflux_client::{ClientError, ProposalQuery};

use crate::config::config_id;
use crate::error::CliError;
use crate::parse;
use crate::render::{Render, fields, list, opt_text, rules_table};
use crate::{Ctx, Output};

#[derive(Debug, clap::Subcommand)]
pub enum ProposalCommand {
    /// Proposals you may see, newest first.
    List(ListArgs),
    /// One proposal: its change, approvals and history.
    Show { id: u64 },
    /// Approve (publisher or above; not your own unless the environment allows it). The
    /// approval that reaches the environment's min_approvals executes the change.
    Approve(DecideArgs),
    /// Reject: the change will not happen.
    Reject(DecideArgs),
    /// Withdraw a pending proposal (its proposer, or a tenant_admin).
    Cancel(DecideArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only proposals of this config (tenant/app/env/name).
    #[arg(long, value_parser = parse::config_path, value_name = "PATH")]
    pub config: Option<conflux_client::ConfigPath>,
    /// Only proposals in this status: pending, rejected, canceled, executed, failed.
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Where the previous page ended (its "more: --cursor" line).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    pub id: u64,
    /// Why; kept in the proposal's history and its audit record.
    #[arg(long)]
    pub comment: Option<String>,
}

pub(crate) async fn execute(ctx: &Ctx, command: ProposalCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        ProposalCommand::List(a) => {
            let config_id = match &a.config {
                Some(path) => Some(config_id(ctx, path).await?),
                None => None,
            };
            let query = ProposalQuery {
                config_id,
                status: a.status,
                limit: a.limit,
                cursor: a.cursor,
            };
            ctx.render(&client.list_proposals(&query).await?)
        }
        ProposalCommand::Show { id } => ctx.render(&client.get_proposal(id).await?),
        ProposalCommand::Approve(a) => {
            ctx.render(&client.approve_proposal(a.id, a.comment.as_deref()).await?)
        }
        ProposalCommand::Reject(a) => {
            ctx.render(&client.reject_proposal(a.id, a.comment.as_deref()).await?)
        }
        ProposalCommand::Cancel(a) => {
            ctx.render(&client.cancel_proposal(a.id, a.comment.as_deref()).await?)
        }
    }
}

/// The answer of a release command whose change became a proposal (HTTP 202): printed as a
/// result, not an error (exit code 0), since the server did what the environment asks.
pub(crate) fn or_proposed<T: Render>(
    ctx: &Ctx,
    result: Result<T, ClientError>,
) -> Result<Output, CliError> {
    match result {
        Ok(view) => ctx.render(&view),
        Err(ClientError::PendingApproval(accepted)) => ctx.render(&accepted),
        Err(e) => Err(e.into()),
    }
}

impl Render for ProposalAccepted {
    fn table(&self) -> String {
        let mut out = format!(
            "proposal {} is {}: the environment requires approval, so nothing is released yet\n",
            self.proposal_id, self.status
        );
        if let Some(v) = self.version_id {
            let _ = writeln!(out, "version {v} was created");
        }
        let _ = writeln!(
            out,
            "approve it with: conflux proposal approve {}",
            self.proposal_id
        );
        out
    }
}

fn change_text(change: &ProposedChangeView) -> String {
    match change {
        ProposedChangeView::SetReleases { releases, .. } => {
            format!("set {} release rule(s)", releases.len())
        }
        ProposedChangeView::Publish {
            version_id,
            strategy,
        } => match strategy {
            conflux_api_types::Strategy::Stable => format!("publish version {version_id} (stable)"),
            conflux_api_types::Strategy::Canary { .. } => {
                format!("publish version {version_id} (canary)")
            }
        },
        ProposedChangeView::Rollback { version_id, mode } => {
            format!("roll back to version {version_id} ({mode:?})")
        }
    }
}

impl Render for ProposalView {
    fn table(&self) -> String {
        let mut out = fields(&[
            ("proposal", self.id.to_string()),
            ("config", format!("{} (id {})", self.config, self.config_id)),
            ("status", self.status.clone()),
            ("change", change_text(&self.change)),
            ("proposer", self.proposer.clone()),
            ("created", self.created_at.clone()),
            ("base revision", self.base_revision.to_string()),
            ("reason", opt_text(&self.reason)),
        ]);
        if let ProposedChangeView::SetReleases { releases, comment } = &self.change {
            let _ = writeln!(out, "\nproposed rules ({}):", opt_text(comment));
            out.push_str(&rules_table(releases));
        }
        out.push_str("\nhistory:\n");
        out.push_str(&list(
            &["TIME", "ACTION", "ACTOR", "COMMENT", "REVISION"],
            self.history.iter().map(|h| {
                vec![
                    h.time.clone(),
                    h.action.clone(),
                    h.actor.clone(),
                    opt_text(&h.comment),
                    h.revision.to_string(),
                ]
            }),
        ));
        out
    }
}

impl Render for ProposalList {
    fn table(&self) -> String {
        let mut out = list(
            &[
                "ID",
                "CONFIG",
                "STATUS",
                "CHANGE",
                "PROPOSER",
                "APPROVALS",
                "CREATED",
            ],
            self.proposals.iter().map(|p| {
                vec![
                    p.id.to_string(),
                    p.config.clone(),
                    p.status.clone(),
                    change_text(&p.change),
                    p.proposer.clone(),
                    p.approvals.len().to_string(),
                    p.created_at.clone(),
                ]
            }),
        );
        if let Some(cursor) = &self.next_cursor {
            let _ = writeln!(out, "more: --cursor {cursor}");
        }
        out
    }
}
