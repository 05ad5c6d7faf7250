//! The client subcommands of the `conflux` binary: `config`, `release`, `admin`, `audit`,
//! `login`, `logout` and `auth`.
//!
//! This crate owns the command-line surface of contract section 5 for talking to a running
//! cluster: the clap definitions ([`Command`], [`GlobalArgs`]), the small syntaxes of their
//! values (paths, `k=v` label lists, the `--rule` syntax in [`parse::RULE_SYNTAX`]), the
//! table/JSON/YAML renderings ([`render`]) and the error convention: exit code 1 with exactly
//! one line `error: <code>: <message>[ (field: <field>)]` on stderr, exit code 2 for usage
//! errors. Who the CLI is (the bearer token: `--token`, `--token-file`, `CONFLUX_TOKEN`, or
//! the session `conflux login` saved) is [`auth`]'s; how a refusal (401, 403, 429) is
//! explained is [`error`]'s.
//!
//! It does not own the binary (`main`, `conflux server`, tracing setup: the server crate
//! flattens [`GlobalArgs`], adds [`Command`] as subcommands and calls [`run`]), nor HTTP
//! (every request goes through `conflux-client`), nor any rule of the config plane: names
//! are checked with `conflux-domain`'s validators so that usage errors come early, and
//! everything else is left to the server.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
mod error;
pub mod identity;
mod input;
pub mod parse;
pub mod proposal;
pub mod release;
pub mod render;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use conflux_client::{ApiClient, WriteOptions};

pub use admin::{AdminCommand, AppCommand, EnvCommand, TenantCommand};
pub use auth::{AuthCommand, LoginArgs, Token};
pub use cluster::ClusterCommand;
pub use config::ConfigCommand;
pub use identity::{AuditCommand, RoleBindingCommand, TokenCommand, UserCommand};
pub use proposal::ProposalCommand;
pub use release::ReleaseCommand;
pub use render::OutputFormat;

use auth::{Environment, Resolved};
use error::CliError;
use render::Render;

/// `--endpoint` when neither the flag nor `CONFLUX_ENDPOINT` is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

const GLOBAL_HEADING: &str = "Client options";

// Flags shared by every client subcommand. They are global, so they may be given before or
// after the subcommand. (Plain comments here and on the other flattened structs: clap would
// turn a doc comment into the `about` of the command that flattens them.)
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The node to talk to (any node of the cluster).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "CONFLUX_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "URL"
    )]
    pub endpoint: String,

    /// How to print results: table for people, json or yaml (the API's own shapes) for scripts.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Timeout of each request, e.g. 10s, 500ms, 2m (a bare number is seconds).
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, default_value = "30s", value_parser = parse::timeout, value_name = "DURATION")]
    pub timeout: Duration,

    /// The bearer token to send. Without it: --token-file, then CONFLUX_TOKEN, then the
    /// session saved by `conflux login` for this endpoint. (Prefer --token-file or the
    /// variable: a flag value is visible to other users in the process list.)
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, value_name = "TOKEN")]
    pub token: Option<Token>,

    /// A file whose content (trimmed) is the bearer token, e.g. a data dir's admin.token.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// PEM CA certificate(s) to verify an https:// endpoint against (the cluster's CA); without
    /// it, the system trust store.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, env = "CONFLUX_CACERT", value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// PEM client certificate for nodes that require one (--api-tls-client-ca); with
    /// --client-key.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, env = "CONFLUX_CLIENT_CERT", value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, global = true, help_heading = GLOBAL_HEADING, env = "CONFLUX_CLIENT_KEY", value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl GlobalArgs {
    /// The client TLS settings these flags give.
    pub fn tls(&self) -> conflux_client::TlsOptions {
        conflux_client::TlsOptions::from_files(
            self.cacert.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )
    }
}

// The client subcommands (plain comment for the same reason as on `GlobalArgs`). The
// arguments are boxed so that a binary's own subcommand enum embedding this one stays small.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Configs and their versions: create, push, get, list, versions, show, watch.
    #[command(subcommand)]
    Config(Box<ConfigCommand>),
    /// Release rules: which clients get which version (set/apply, status, publish, rollback).
    #[command(subcommand)]
    Release(Box<ReleaseCommand>),
    /// Release changes waiting for approval: list, show, approve, reject, cancel.
    #[command(subcommand)]
    Proposal(Box<ProposalCommand>),
    /// Tenants, apps, environments, users, service tokens, role bindings and the cluster.
    #[command(subcommand)]
    Admin(Box<AdminCommand>),
    /// The audit log: who did what, when, and whether it was allowed.
    #[command(subcommand)]
    Audit(Box<AuditCommand>),
    /// Log in as a user: the session token is saved for this endpoint (credentials file:
    /// $CONFLUX_CREDENTIALS, $XDG_CONFIG_HOME/conflux/credentials or
    /// ~/.config/conflux/credentials, mode 0600).
    Login(Box<LoginArgs>),
    /// End the session on the server and remove the saved login for this endpoint.
    Logout,
    /// Who the CLI is to the server.
    #[command(subcommand)]
    Auth(Box<AuthCommand>),
}

// `--idempotency-key` and `--if-match`, shared by the write commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WriteArgs {
    /// Makes the write safe to retry: the same key (with the same request) within 24 h is
    /// applied once and answered with the first result.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Only write if the entity's revision is still REV (fails with revision_mismatch
    /// otherwise).
    #[arg(long, value_name = "REV")]
    pub if_match: Option<u64>,
}

impl WriteArgs {
    fn options(&self) -> WriteOptions {
        WriteOptions {
            idempotency_key: self.idempotency_key.clone(),
            if_match: self.if_match,
        }
    }
}

/// What a command prints on stdout.
#[derive(Debug)]
enum Output {
    Text(String),
    /// Config content, written as is.
    Raw(Vec<u8>),
}

/// What every command gets: a client (sending the token, if any) and the output format.
#[derive(Debug)]
struct Ctx {
    client: ApiClient,
    output: OutputFormat,
    /// The token the client sends and where it came from; `None`: it sends none. Commands
    /// that build another client (the SDK's, for `config watch`) give it the same token.
    token: Option<Resolved>,
    /// The TLS settings of `client`, for commands that build another client.
    tls: conflux_client::TlsOptions,
}

impl Ctx {
    fn render<T: Render>(&self, value: &T) -> Result<Output, CliError> {
        render::render(value, self.output)
            .map(Output::Text)
            .map_err(CliError::output)
    }
}

/// Runs one client subcommand: prints its result on stdout, or one error line on stderr.
/// Exit code 0 on success, 1 on an error, 2 on a usage error found after parsing.
pub async fn run(global: GlobalArgs, command: Command) -> ExitCode {
    match execute(&global, command).await {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            let written = match &output {
                Output::Text(text) => stdout.write_all(text.as_bytes()),
                Output::Raw(bytes) => stdout.write_all(bytes),
            }
            .and_then(|()| stdout.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                // `conflux config get ... | head` is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => report(&CliError::output(format!("cannot write to stdout: {e}"))),
            }
        }
        Err(e) => report(&e),
    }
}

fn report(e: &CliError) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "{}", e.line());
    ExitCode::from(e.exit_code())
}

async fn execute(global: &GlobalArgs, command: Command) -> Result<Output, CliError> {
    execute_in(global, command, &Environment::from_process()).await
}

/// [`execute`] with the environment given (tests pass their own).
async fn execute_in(
    global: &GlobalArgs,
    command: Command,
    env: &Environment,
) -> Result<Output, CliError> {
    let tls = global.tls();
    let builder = ApiClient::builder(global.endpoint.as_str())
        .timeout(global.timeout)
        .tls(tls.clone())
        .user_agent(concat!("conflux-cli/", env!("CARGO_PKG_VERSION")));
    // Without a token: logs in with one, and names the endpoint the way the client does
    // (the key of saved logins).
    let anonymous = builder.clone().build()?;
    let command = match command {
        Command::Login(args) => return auth::login(&anonymous, global.output, env, *args).await,
        other => other,
    };
    let token = auth::resolve(
        global.token.as_ref(),
        global.token_file.as_deref(),
        env,
        anonymous.endpoint(),
    )?;
    let client = match &token {
        Some(t) => builder.bearer_token(t.token.expose()).build()?,
        None => anonymous,
    };
    let ctx = Ctx {
        client,
        output: global.output,
        token,
        tls,
    };
    let result = match command {
        Command::Config(c) => config::execute(&ctx, *c).await,
        Command::Release(c) => release::execute(&ctx, *c).await,
        Command::Proposal(c) => proposal::execute(&ctx, *c).await,
        Command::Admin(c) => admin::execute(&ctx, *c).await,
        Command::Audit(c) => identity::audit(&ctx, *c).await,
        Command::Logout => auth::logout(&ctx).await,
        Command::Auth(c) => auth::execute(&ctx, *c).await,
        Command::Login(_) => unreachable!("handled above"),
    };
    result.map_err(|e| e.with_token_source(ctx.token.as_ref().map(|t| &t.source)))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The binary's shape: global flags flattened, client commands beside its own.
    #[derive(Debug, Parser)]
    #[command(name = "conflux")]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Server {
            #[arg(long)]
            data_dir: Option<String>,
        },
        #[command(flatten)]
        Client(Command),
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("conflux").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
        // Small enough to embed in the binary's own subcommand enum unboxed.
        assert!(std::mem::size_of::<Command>() <= 16);
    }

    #[test]
    fn globals_go_anywhere() {
        let cli = parse(&[
            "config",
            "show",
            "acme/billing/prod/db.toml",
            "--output",
            "json",
            "--endpoint",
            "http://10.0.0.1:8080",
            "--timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.endpoint, "http://10.0.0.1:8080");
        assert_eq!(cli.global.timeout, Duration::from_secs(5));
        let cli = parse(&["--output", "yaml", "admin", "tenant", "list"]).unwrap();
        assert_eq!(cli.global.output, OutputFormat::Yaml);
        assert_eq!(cli.global.timeout, Duration::from_secs(30));
    }

    #[test]
    fn apply_is_set() {
        for verb in ["set", "apply"] {
            let cli = parse(&[
                "release",
                verb,
                "acme/billing/prod/db.toml",
                "--rule",
                "version=4",
                "--rule",
                "labels=canary:true,version=5,priority=100",
                "--if-match",
                "41",
            ])
            .unwrap();
            let Top::Client(Command::Release(release)) = cli.command else {
                panic!("{verb}: {:?}", cli.command)
            };
            let ReleaseCommand::Set(args) = *release else {
                panic!("{verb}: {release:?}")
            };
            assert_eq!(args.rules.len(), 2);
            assert_eq!(args.rules[1].priority, 100);
            assert_eq!(args.write.if_match, Some(41));
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let cases: &[&[&str]] = &[
            &["config", "get", "acme/billing/db.toml"],
            &["config", "list", "acme/billing"],
            &["release", "set", "a/b/c/d", "--rule", "percent=10"],
            &["release", "set", "a/b/c/d"],
            &["release", "status", "a/b/c/d", "--labels", "Canary=true"],
            &[
                "release",
                "rollback",
                "a/b/c/d",
                "--version",
                "2",
                "--mode",
                "all",
            ],
            &[
                "release",
                "publish",
                "a/b/c/d",
                "--file",
                "x",
                "--strategy",
                "canary",
                "--percent",
                "101",
            ],
            &["config", "create", "a/b/c/d", "--format", "csv"],
            &[
                "config",
                "get",
                "a/b/c/d",
                "--version",
                "2",
                "--labels",
                "a=b",
            ],
            &["admin", "tenant", "create", "Acme"],
            &["admin", "env", "create", "acme/billing"],
            &["config", "show", "a/b/c/d", "--timeout", "0"],
        ];
        for args in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn rollback_modes_use_the_wire_names() {
        let cli = parse(&[
            "release",
            "rollback",
            "a/b/c/d",
            "--version",
            "3",
            "--mode",
            "emergency",
        ])
        .unwrap();
        let Top::Client(Command::Release(release)) = cli.command else {
            panic!()
        };
        let ReleaseCommand::Rollback(args) = *release else {
            panic!()
        };
        assert_eq!(args.version, 3);
        assert!(
            parse(&[
                "release",
                "rollback",
                "a/b/c/d",
                "--version",
                "3",
                "--mode",
                "stable_only"
            ])
            .is_ok()
        );
    }

    fn global(endpoint: &str) -> GlobalArgs {
        GlobalArgs {
            endpoint: endpoint.to_owned(),
            output: OutputFormat::Table,
            timeout: Duration::from_secs(2),
            token: None,
            token_file: None,
            cacert: None,
            client_cert: None,
            client_key: None,
        }
    }

    fn command(args: &[&str]) -> Command {
        match parse(args).unwrap().command {
            Top::Client(c) => c,
            Top::Server { .. } => panic!(),
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_one_error_line() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = execute(
            &global(&format!("http://{addr}")),
            command(&["admin", "tenant", "list"]),
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let line = err.line();
        assert!(
            line.starts_with(&format!("error: unreachable: cannot reach http://{addr}")),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[tokio::test]
    async fn inconsistent_publish_flags_are_usage_errors_before_any_request() {
        // Port 9 (discard) is never contacted: the check comes first.
        let g = global("http://127.0.0.1:9");
        for args in [
            &[
                "release",
                "publish",
                "a/b/c/d",
                "--file",
                "-",
                "--strategy",
                "stable",
                "--percent",
                "5",
            ][..],
            &[
                "release",
                "publish",
                "a/b/c/d",
                "--file",
                "-",
                "--strategy",
                "canary",
            ][..],
        ] {
            let err = execute(&g, command(args)).await.unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(
                err.line().starts_with("error: invalid_argument: "),
                "{}",
                err.line()
            );
        }
    }

    #[tokio::test]
    async fn bad_endpoint_is_reported_with_its_field() {
        let err = execute(&global("ftp://x"), command(&["admin", "tenant", "list"]))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.line().starts_with("error: invalid_argument: "),
            "{}",
            err.line()
        );
        assert!(err.line().ends_with(" (field: endpoint)"), "{}", err.line());
    }

    #[tokio::test]
    async fn unreadable_files_are_reported() {
        let err = execute(
            &global("http://127.0.0.1:9"),
            command(&[
                "config",
                "push",
                "a/b/c/d",
                "--file",
                "/nonexistent/conflux-test",
            ]),
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.line()
                .starts_with("error: io_error: cannot read /nonexistent/conflux-test"),
            "{}",
            err.line()
        );
    }

    /// A peer that answers one request with `status` and `body`, and reports the request's
    /// head (lower-cased).
    async fn one_shot(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::sync::oneshot::Receiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&chunk[..n]);
            }
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            let _ = tx.send(String::from_utf8_lossy(&head).to_ascii_lowercase());
        });
        (format!("http://{addr}"), rx)
    }

    #[tokio::test]
    async fn the_token_chosen_goes_on_the_wire_and_a_refusal_names_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = Environment {
            token: Some(Token::new("from-env")),
            credentials: Some(dir.path().join("credentials")),
        };
        let (endpoint, head) = one_shot("200 OK", r#"{"tenants": []}"#).await;
        let mut g = global(&endpoint);
        g.token_file = Some(file.clone());
        execute_in(&g, command(&["admin", "tenant", "list"]), &env)
            .await
            .unwrap();
        let head = head.await.unwrap();
        assert!(
            head.contains("\r\nauthorization: bearer from-file\r\n"),
            "{head}"
        );

        let (endpoint, head) = one_shot(
            "401 Unauthorized",
            r#"{"error": {"code": "unauthenticated", "message": "unknown token"}}"#,
        )
        .await;
        let err = execute_in(&global(&endpoint), command(&["auth", "whoami"]), &env)
            .await
            .unwrap_err();
        assert!(
            head.await
                .unwrap()
                .contains("authorization: bearer from-env")
        );
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.line().starts_with("error: unauthenticated: token rejected (expired, revoked or unknown; it came from CONFLUX_TOKEN): run `conflux login` or pass --token"),
            "{}",
            err.line()
        );
        assert!(!err.line().contains("from-env"), "{}", err.line());

        // No token anywhere: nothing is sent, and the refusal says to log in.
        let (endpoint, head) = one_shot(
            "401 Unauthorized",
            r#"{"error": {"code": "unauthenticated", "message": "no token"}}"#,
        )
        .await;
        let err = execute_in(
            &global(&endpoint),
            command(&["admin", "tenant", "list"]),
            &Environment::default(),
        )
        .await
        .unwrap_err();
        assert!(!head.await.unwrap().contains("authorization"));
        assert!(
            err.line().starts_with(
                "error: unauthenticated: not logged in (no token was sent): run `conflux login`"
            ),
            "{}",
            err.line()
        );
    }

    #[tokio::test]
    async fn logout_without_a_token_sends_nothing() {
        // Port 9 is never contacted.
        let out = execute_in(
            &global("http://127.0.0.1:9"),
            command(&["logout"]),
            &Environment::default(),
        )
        .await
        .unwrap();
        let Output::Text(text) = out else { panic!() };
        assert_eq!(text, "not logged in to http://127.0.0.1:9\n");
    }

    #[test]
    fn token_flags_parse_and_never_show_in_debug() {
        let cli = parse(&["--token", "s3cr3t", "auth", "whoami"]).unwrap();
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("s3cr3t"));
        assert!(!format!("{cli:?}").contains("s3cr3t"));
        let cli = parse(&["admin", "token", "list", "--token-file", "/x/admin.token"]).unwrap();
        assert_eq!(
            cli.global.token_file.as_deref(),
            Some(std::path::Path::new("/x/admin.token"))
        );
        assert!(parse(&["login", "--password-stdin"]).is_err());
        assert!(parse(&["login", "-u", "alice", "--password-stdin"]).is_ok());
        assert!(parse(&["logout"]).is_ok());
        assert!(parse(&["audit", "list", "--limit", "5"]).is_ok());
    }
}
