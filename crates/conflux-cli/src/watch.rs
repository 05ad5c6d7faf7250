//! `conflux config watch`: prints each change of a config as it happens.
//!
//! It is a thin loop over the SDK's [`ConfigWatch`] (long poll, reconnection with backoff,
//! label-aware): it learns the current state first (and says so on stderr, so a script knows
//! when the watch is in place), then prints one line per change on stdout, flushed at once,
//! until the config is deleted (exit 0 after printing the deletion) or the process is
//! interrupted. An error that retrying cannot fix ends it with the usual one error line.

use std::io::Write;

use conflux_client::{Change, ChangeKind, ConfigPath, ConfluxClient, StartMode};
use futures::StreamExt;
use serde::Serialize;

use crate::error::CliError;
use crate::parse::{self, Labels};
use crate::render::OutputFormat;
use crate::{Ctx, Output};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// Labels to watch as, k=v,k2=v2: only changes of the version these labels get are
    /// printed.
    #[arg(long, value_parser = parse::labels, value_name = "K=V,...")]
    pub labels: Option<Labels>,
    /// The client id that places this client in percentage rules.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Also print the new content (after the line in table output; a "content" field in
    /// json and yaml).
    #[arg(long)]
    pub content: bool,
}

/// One event as json/yaml print it.
#[derive(Debug, Serialize)]
struct EventView<'a> {
    key: &'a str,
    event: &'static str,
    revision: u64,
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

/// The text printed for one change.
pub(crate) fn render_change(
    change: &Change,
    format: OutputFormat,
    with_content: bool,
) -> Result<Vec<u8>, CliError> {
    let value = change.value.as_ref();
    match format {
        OutputFormat::Table => {
            let mut out = match (change.kind, change.version) {
                (ChangeKind::Deleted, _) => format!("revision {} deleted\n", change.revision),
                (ChangeKind::Updated, Some(v)) => {
                    format!("revision {} version {v} updated\n", change.revision)
                }
                (ChangeKind::Updated, None) => {
                    format!("revision {} version - updated\n", change.revision)
                }
            }
            .into_bytes();
            if with_content && let Some(v) = value {
                out.extend_from_slice(&v.content);
                if !v.content.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            Ok(out)
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let view = EventView {
                key: &change.key,
                event: change.kind.as_str(),
                revision: change.revision,
                version: change.version,
                hash: value.map(|v| v.hash.as_str()),
                content_type: value.map(|v| v.content_type.as_str()),
                content: value
                    .filter(|_| with_content)
                    .map(|v| String::from_utf8_lossy(&v.content).into_owned()),
            };
            let text = if format == OutputFormat::Json {
                serde_json::to_string(&view)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            } else {
                serde_norway::to_string(&view)
                    .map(|s| format!("---\n{s}"))
                    .map_err(|e| e.to_string())
            };
            text.map(String::into_bytes)
                .map_err(|e| CliError::output(format!("cannot render the event: {e}")))
        }
    }
}

pub(crate) async fn execute(ctx: &Ctx, a: WatchArgs) -> Result<Output, CliError> {
    let mut builder = ConfluxClient::new([ctx.client.endpoint()])
        .with_timeout(ctx.client.timeout())
        .with_tls(ctx.tls.clone())
        .with_labels(a.labels.unwrap_or_default().0)
        .start_mode(StartMode::FailFast);
    if let Some(id) = &a.client_id {
        builder = builder.with_client_id(id.clone());
    }
    if let Some(t) = &ctx.token {
        builder = builder.with_token(t.token.expose());
    }
    let client = builder.build().await?;
    let p = &a.path;
    let key = p.to_string();
    let watch = client.watch_config(&p.tenant, &p.app, &p.env, &p.name);
    let mut watch = match client.get_config(&p.tenant, &p.app, &p.env, &p.name).await {
        Ok(value) => {
            eprintln!(
                "watching {key} from revision {} (version {})",
                value.revision, value.version
            );
            watch.since(&value)
        }
        // Nothing released to these labels yet: wait for it.
        Err(e) if e.code() == "not_published" => {
            eprintln!("watching {key} (no version is released to this client yet)");
            watch
        }
        Err(e) => return Err(e.into()),
    };
    while let Some(change) = watch.next().await {
        let text = render_change(&change, ctx.output, a.content)?;
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&text).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // `conflux config watch ... | head -1` is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(CliError::output(format!("cannot write to stdout: {e}"))),
        }
    }
    match watch.into_error() {
        Some(e) => Err(e.into()),
        None => Ok(Output::Text(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use conflux_client::ConfigValue;

    use super::*;

    fn updated() -> Change {
        Change {
            key: "acme/shop/prod/app.yaml".into(),
            kind: ChangeKind::Updated,
            revision: 12,
            version: Some(3),
            value: Some(ConfigValue {
                key: "acme/shop/prod/app.yaml".into(),
                content: Bytes::from_static(b"a: 1"),
                version: 3,
                revision: 12,
                hash: "sha256:ab".into(),
                content_type: "application/yaml".into(),
            }),
        }
    }

    fn text(change: &Change, format: OutputFormat, content: bool) -> String {
        String::from_utf8(render_change(change, format, content).unwrap()).unwrap()
    }

    #[test]
    fn table_lines() {
        assert_eq!(
            text(&updated(), OutputFormat::Table, false),
            "revision 12 version 3 updated\n"
        );
        assert_eq!(
            text(&updated(), OutputFormat::Table, true),
            "revision 12 version 3 updated\na: 1\n"
        );
        let deleted = Change {
            kind: ChangeKind::Deleted,
            revision: 14,
            version: None,
            value: None,
            ..updated()
        };
        assert_eq!(
            text(&deleted, OutputFormat::Table, true),
            "revision 14 deleted\n"
        );
        let unpublished = Change {
            version: None,
            value: None,
            ..updated()
        };
        assert_eq!(
            text(&unpublished, OutputFormat::Table, false),
            "revision 12 version - updated\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let line = text(&updated(), OutputFormat::Json, true);
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "updated");
        assert_eq!(v["revision"], 12);
        assert_eq!(v["version"], 3);
        assert_eq!(v["content"], "a: 1");
        assert_eq!(v["hash"], "sha256:ab");
        let v: serde_json::Value =
            serde_json::from_str(&text(&updated(), OutputFormat::Json, false)).unwrap();
        assert!(v.get("content").is_none());
        let yaml = text(&updated(), OutputFormat::Yaml, false);
        assert!(
            yaml.starts_with("---\nkey: acme/shop/prod/app.yaml\n"),
            "{yaml}"
        );
    }
}
