//! `conflux admin webhook create|list|get|delete|deliveries` (contract section 7), and how
//! webhooks and their deliveries are shown as tables.
//!
//! The secret is never a flag value (it would sit in shell history and in `ps`): it is read
//! from a file (`--secret-file F`, `-` for stdin; one trailing newline is dropped) or from an
//! environment variable (`--secret-env NAME`). Nothing shows it afterwards.

use comfy_table::{Table, presets};
use conflux_api_types::{CreateWebhook, DeliveryList, WebhookList, WebhookView};

use crate::error::CliError;
use crate::parse;
use crate::render::{Removed, Render};
use crate::{Ctx, Output};

#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Register a webhook: Conflux POSTs the events it names to URL, signed with the secret
    /// (X-Conflux-Signature-256).
    Create(WebhookCreateArgs),
    /// List the webhooks the caller manages (never their secrets).
    List,
    /// Show one webhook.
    Get {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Delete a webhook; its pending deliveries are dropped.
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// A webhook's deliveries, newest first, with their attempts.
    Deliveries {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct WebhookCreateArgs {
    /// A name saying what the webhook is for.
    #[arg(long)]
    pub name: String,
    /// Where deliveries are POSTed (http:// or https://).
    #[arg(long)]
    pub url: String,
    /// An event to deliver (repeatable): proposal.created, proposal.approved,
    /// proposal.rejected, proposal.executed, proposal.failed, release.changed,
    /// version.created.
    #[arg(long = "event", value_name = "EVENT", required = true)]
    pub events: Vec<String>,
    /// Read the secret (16-256 bytes) from this file, or stdin with `-`.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "secret_env",
        required_unless_present = "secret_env"
    )]
    pub secret_file: Option<String>,
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "NAME")]
    pub secret_env: Option<String>,
    /// Only events of this tenant (tenant_admin of it may register); absent: every tenant
    /// (cluster_admin only).
    #[arg(long, value_parser = parse::tenant_name)]
    pub tenant: Option<String>,
}

/// The secret from `--secret-file` or `--secret-env`, without a trailing newline.
async fn read_secret(a: &WebhookCreateArgs) -> Result<String, CliError> {
    let raw = match (&a.secret_file, &a.secret_env) {
        (Some(file), _) => {
            let bytes = crate::input::read(file).await?;
            String::from_utf8(bytes).map_err(|_| {
                CliError::invalid_input("secret", format!("the secret in {file} is not UTF-8"))
            })?
        }
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            CliError::invalid_input(
                "secret",
                format!("the environment variable {var} is not set (or not UTF-8)"),
            )
        })?,
        (None, None) => {
            return Err(CliError::usage(
                "give --secret-file FILE or --secret-env NAME",
            ));
        }
    };
    let secret = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw)
        .to_owned();
    if secret.is_empty() {
        return Err(CliError::invalid_input("secret", "the secret is empty"));
    }
    Ok(secret)
}

pub(crate) async fn execute(ctx: &Ctx, command: WebhookCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        WebhookCommand::Create(a) => {
            let body = CreateWebhook {
                name: a.name.clone(),
                url: a.url.clone(),
                events: a.events.clone(),
                secret: read_secret(&a).await?,
                tenant: a.tenant.clone(),
            };
            ctx.render(&client.create_webhook(&body).await?)
        }
        WebhookCommand::List => ctx.render(&client.list_webhooks().await?),
        WebhookCommand::Get { id } => ctx.render(&client.get_webhook(&id).await?),
        WebhookCommand::Delete { id } => {
            client.delete_webhook(&id).await?;
            ctx.render(&Removed::new("webhook", id))
        }
        WebhookCommand::Deliveries { id } => ctx.render(&client.list_deliveries(&id).await?),
    }
}

// ---- rendering ----------------------------------------------------------------------------

const NONE: &str = "-";

fn table(header: Option<&[&str]>, rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() && header.is_some() {
        return "(none)\n".to_owned();
    }
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if let Some(h) = header {
        t.set_header(h.to_vec());
    }
    for row in rows {
        t.add_row(row);
    }
    let lines: Vec<String> = t
        .to_string()
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
        .collect();
    format!("{}\n", lines.join("\n"))
}

fn tenant_text(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| "(all)".to_owned())
}

impl Render for WebhookView {
    fn table(&self) -> String {
        let rows = [
            ("id", self.id.clone()),
            ("name", self.name.clone()),
            ("url", self.url.clone()),
            ("events", self.events.join(", ")),
            ("tenant", tenant_text(&self.tenant)),
            ("created", self.created_at.clone()),
            ("created by", self.created_by.clone()),
        ];
        table(
            None,
            rows.into_iter()
                .map(|(k, v)| vec![format!("{k}:"), v])
                .collect(),
        )
    }
}

impl Render for WebhookList {
    fn table(&self) -> String {
        table(
            Some(&["ID", "NAME", "TENANT", "EVENTS", "URL"]),
            self.webhooks
                .iter()
                .map(|w| {
                    vec![
                        w.id.clone(),
                        w.name.clone(),
                        tenant_text(&w.tenant),
                        w.events.join(","),
                        w.url.clone(),
                    ]
                })
                .collect(),
        )
    }
}

impl Render for DeliveryList {
    fn table(&self) -> String {
        table(
            Some(&[
                "ID",
                "EVENT",
                "STATUS",
                "ATTEMPTS",
                "CREATED",
                "LAST RESULT",
                "NEXT ATTEMPT",
            ]),
            self.deliveries
                .iter()
                .map(|d| {
                    let last = d.attempts.last().map_or(NONE.to_owned(), |a| {
                        match (&a.error, a.status_code) {
                            (None, Some(code)) => format!("HTTP {code}"),
                            (Some(e), _) => e.chars().take(60).collect(),
                            (None, None) => NONE.to_owned(),
                        }
                    });
                    vec![
                        d.id.clone(),
                        d.event.clone(),
                        d.status.clone(),
                        d.attempts.len().to_string(),
                        d.created_at.clone(),
                        last,
                        d.next_attempt_at.clone().unwrap_or_else(|| NONE.to_owned()),
                    ]
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use conflux_api_types::{DeliveryAttemptView, DeliveryView};

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: WebhookCommand,
    }

    fn view() -> WebhookView {
        WebhookView {
            id: "0a1b2c3d4e5f6a7b".into(),
            name: "chat".into(),
            url: "https://hooks.example.com/x".into(),
            events: vec!["version.created".into(), "release.changed".into()],
            tenant: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            created_by: "user:admin".into(),
        }
    }

    #[test]
    fn create_needs_events_and_a_secret_source() {
        let ok = T::try_parse_from([
            "t",
            "create",
            "--name",
            "n",
            "--url",
            "http://h/",
            "--event",
            "version.created",
            "--event",
            "release.changed",
            "--secret-env",
            "S",
            "--tenant",
            "acme",
        ])
        .unwrap();
        let WebhookCommand::Create(a) = ok.c else {
            panic!("create")
        };
        assert_eq!(a.events, ["version.created", "release.changed"]);
        assert_eq!(a.tenant.as_deref(), Some("acme"));
        for bad in [
            // No event.
            vec![
                "t",
                "create",
                "--name",
                "n",
                "--url",
                "u",
                "--secret-env",
                "S",
            ],
            // No secret source.
            vec!["t", "create", "--name", "n", "--url", "u", "--event", "e"],
            // Both.
            vec![
                "t",
                "create",
                "--name",
                "n",
                "--url",
                "u",
                "--event",
                "e",
                "--secret-env",
                "S",
                "--secret-file",
                "f",
            ],
            // The secret is never a flag value.
            vec![
                "t", "create", "--name", "n", "--url", "u", "--event", "e", "--secret", "x",
            ],
        ] {
            assert!(T::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn secret_file_drops_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        let args = WebhookCreateArgs {
            name: "n".into(),
            url: "u".into(),
            events: vec![],
            secret_file: Some(file.display().to_string()),
            secret_env: None,
            tenant: None,
        };
        assert_eq!(read_secret(&args).await.unwrap(), "0123456789abcdef");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_secret(&args).await.is_err());
    }

    #[test]
    fn tables() {
        let shown = view().table();
        assert!(
            shown.contains("tenant:") && shown.contains("(all)"),
            "{shown}"
        );
        let list = WebhookList {
            webhooks: vec![view()],
        }
        .table();
        assert!(list.starts_with("ID"), "{list}");
        assert!(list.contains("version.created,release.changed"), "{list}");
        assert_eq!(WebhookList { webhooks: vec![] }.table(), "(none)\n");
        let deliveries = DeliveryList {
            deliveries: vec![DeliveryView {
                id: "d1".into(),
                webhook_id: "w".into(),
                event: "version.created".into(),
                status: "pending".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                next_attempt_at: Some("2026-01-01T00:00:02Z".into()),
                delivered_at: None,
                attempts: vec![DeliveryAttemptView {
                    time: "2026-01-01T00:00:00Z".into(),
                    status_code: Some(503),
                    error: Some("the receiver answered HTTP 503".into()),
                    duration_ms: 4,
                }],
            }],
        }
        .table();
        assert!(deliveries.contains("HTTP 503"), "{deliveries}");
        assert!(deliveries.contains("2026-01-01T00:00:02Z"), "{deliveries}");
    }
}
