//! `conflux config ...`: configs and their versions (and `watch`, in `watch.rs`).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use conflux_api_types::{CreateConfig, Format};
use conflux_client::{ConfigPath, FetchOptions, Fetched, NewVersion};

use crate::error::CliError;
use crate::parse::{self, EnvPath, Labels};
use crate::{Ctx, Output, WriteArgs, input};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Create a config (no versions yet; push one next).
    Create(CreateArgs),
    /// Upload a new version of a config. Creating a version changes nothing clients see;
    /// release it with `conflux release set` or use `conflux release publish`.
    Push(PushArgs),
    /// Print a config's content: what a client with the given labels fetches, or with
    /// --version that version.
    Get(GetArgs),
    /// List the configs of an environment.
    List(ListArgs),
    /// List a config's versions, newest first.
    Versions(VersionsArgs),
    /// Show a config's metadata.
    Show(ShowArgs),
    /// Print each change of a config as it happens (one line per change; with --output
    /// json one JSON object per line) until it is deleted or interrupted.
    Watch(crate::watch::WatchArgs),
}

fn format_parser() -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::ALL.map(Format::as_str)).try_map(|s| s.parse::<Format>())
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// The content format; every version is parsed with it.
    #[arg(long, value_parser = format_parser())]
    pub format: Format,
    /// A JSON Schema (a JSON file) every version must satisfy (json, yaml, toml, ini,
    /// properties).
    #[arg(long, value_name = "FILE")]
    pub schema_file: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Keep every version's content envelope-encrypted at rest (cannot be changed later).
    #[arg(long)]
    pub encrypted: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// The content: a file, or - for stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Only check that the content parses (and fits the schema); store nothing.
    #[arg(long)]
    pub validate_only: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// Labels to fetch as, k=v,k2=v2 (sent as X-Client-Label-* headers).
    #[arg(long, value_parser = parse::labels, value_name = "K=V,...")]
    pub labels: Option<Labels>,
    /// The client id that places this client in percentage rules.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Print this version instead of what the release rules serve.
    #[arg(long, value_name = "N", conflicts_with_all = ["labels", "client_id"])]
    pub version: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// tenant/app/env
    #[arg(value_parser = parse::env_path, value_name = "TENANT/APP/ENV")]
    pub env: EnvPath,
}

#[derive(Debug, clap::Args)]
pub struct VersionsArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
    /// At most this many versions.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after a previous page (its "more: --cursor" line).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// tenant/app/env/name
    #[arg(value_parser = parse::config_path, value_name = "PATH")]
    pub path: ConfigPath,
}

pub(crate) async fn execute(ctx: &Ctx, command: ConfigCommand) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        ConfigCommand::Create(a) => {
            let schema = match &a.schema_file {
                None => None,
                Some(file) => {
                    let bytes = input::read(file).await?;
                    Some(serde_json::from_slice(&bytes).map_err(|e| {
                        CliError::invalid_input("schema-file", format!("{file} is not JSON: {e}"))
                    })?)
                }
            };
            let body = CreateConfig {
                name: a.path.name.clone(),
                format: a.format,
                schema,
                retention: None,
                description: a.description,
                encrypted: a.encrypted,
            };
            let p = &a.path;
            let view = client
                .create_config(&p.tenant, &p.app, &p.env, &body, &a.write.options())
                .await?;
            ctx.render(&view)
        }
        ConfigCommand::Push(a) => {
            let content = input::read(&a.file).await?;
            let config = client.get_config_by_path(&a.path).await?;
            // Every format lists at least one media type.
            let content_type = config
                .format
                .media_types()
                .first()
                .copied()
                .unwrap_or("application/octet-stream");
            let mut version = NewVersion::new(content, content_type).validate_only(a.validate_only);
            version.description = a.description;
            let created = client
                .create_version(config.id, version, &a.write.options())
                .await?;
            ctx.render(&created)
        }
        ConfigCommand::Get(a) => {
            if let Some(v) = a.version {
                let config = client.get_config_by_path(&a.path).await?;
                let content = client.get_version_content(config.id, v).await?;
                return Ok(Output::Raw(content.to_vec()));
            }
            let opts = FetchOptions {
                labels: a.labels.unwrap_or_default().0,
                client_id: a.client_id,
                ..FetchOptions::default()
            };
            match client.fetch(&a.path, &opts).await? {
                Fetched::Modified { content, .. } => Ok(Output::Raw(content.to_vec())),
                // Only an If-None-Match can produce this, and none was sent.
                Fetched::NotModified => Ok(Output::Raw(Vec::new())),
            }
        }
        ConfigCommand::List(a) => {
            let e = &a.env;
            let list = client.list_configs(&e.tenant, &e.app, &e.env).await?;
            ctx.render(&list)
        }
        ConfigCommand::Versions(a) => {
            let config = client.get_config_by_path(&a.path).await?;
            let list = client
                .list_versions(config.id, a.limit, a.cursor.as_deref())
                .await?;
            ctx.render(&list)
        }
        ConfigCommand::Show(a) => {
            let config = client.get_config_by_path(&a.path).await?;
            ctx.render(&config)
        }
        ConfigCommand::Watch(a) => crate::watch::execute(ctx, a).await,
    }
}

/// Looks a config up by path and returns its id; shared by the release commands.
pub(crate) async fn config_id(ctx: &Ctx, path: &ConfigPath) -> Result<u64, CliError> {
    Ok(ctx.client.get_config_by_path(path).await?.id)
}
