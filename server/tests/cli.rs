//! The client subcommands of the real `conflux` binary against a real node: what they print
//! (exact raw content for `config get`; JSON and YAML in the API's own shapes; tables with
//! the expected names) and how they fail (exit code 1 with exactly one `error: <code>: ...`
//! line on stderr; exit code 2 for usage errors).
//!
//! Every test starts its own single node (port 0, its own temporary data directory) and
//! talks to it with the node's cluster_admin token (`CONFLUX_TOKEN`); identity and access
//! through the CLI are `cli_identity.rs`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use conflux_client::types::{
    AppList, AppView, ConfigList, ConfigView, CreateApp, CreateConfig, CreateEnvironment,
    CreateTenant, EnvironmentList, EnvironmentView, Format, PublishResponse, ReleaseRule,
    ReleasesView, ResolveResponse, TenantList, TenantView, VersionCreated, VersionList,
};
use conflux_client::{ApiClient, ConfigPath, NewVersion, WriteOptions};
use conflux_testkit::{NodeSpec, TestNode, conflux_binary};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

// ---- harness ------------------------------------------------------------------------------

/// One finished CLI process.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }
}

/// Runs `conflux <args> --endpoint <node>` (with the node's admin token) and checks what it
/// printed.
struct Cli {
    bin: PathBuf,
    endpoint: String,
    token: String,
}

impl Cli {
    fn new(node: &TestNode) -> Self {
        Cli {
            bin: conflux_binary().expect("the conflux binary"),
            endpoint: node.api_url(),
            token: node.token(),
        }
    }

    async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .arg("--endpoint")
            .arg(&self.endpoint)
            // Nothing from the environment of whoever runs the tests.
            .env_remove("CONFLUX_ENDPOINT")
            .env_remove("RUST_LOG")
            .env("CONFLUX_TOKEN", &self.token)
            .env(
                "CONFLUX_CREDENTIALS",
                "/nonexistent/conflux-test/credentials",
            )
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("conflux starts");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(bytes).await.expect("write stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("conflux {args:?} did not finish within 20 s"))
            .expect("conflux runs");
        Out {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None).await
    }

    /// Exit 0 and nothing on stderr; returns stdout.
    #[track_caller]
    fn succeeded(out: Out, args: &[&str]) -> Vec<u8> {
        assert_eq!(
            out.code,
            Some(0),
            "conflux {args:?} failed: stderr {:?}, stdout {:?}",
            out.stderr,
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            out.stderr.is_empty(),
            "conflux {args:?} wrote to stderr: {:?}",
            out.stderr
        );
        out.stdout
    }

    async fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args).await;
        Cli::succeeded(out, args)
    }

    async fn ok_text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args).await).expect("UTF-8 output")
    }

    async fn ok_stdin(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run_with(args, Some(stdin)).await;
        Cli::succeeded(out, args)
    }

    /// `--output json`, parsed as `T`.
    async fn json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok_text(&all).await;
        assert!(text.ends_with('\n'), "{text:?}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("conflux {all:?}: {e} in\n{text}"))
    }

    /// `--output yaml`, parsed as `T`.
    async fn yaml<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut all = args.to_vec();
        all.extend(["--output", "yaml"]);
        let text = self.ok_text(&all).await;
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("conflux {all:?}: {e} in\n{text}"))
    }

    /// The default table output.
    async fn table(&self, args: &[&str]) -> String {
        self.ok_text(args).await
    }

    /// Exit 1, nothing on stdout, exactly one line `error: <code>: <message>` on stderr;
    /// returns that line.
    async fn fails(&self, args: &[&str], code: &str) -> String {
        let out = self.run(args).await;
        one_error_line(&out, args, 1, code)
    }

    async fn fails_stdin(&self, args: &[&str], stdin: &[u8], code: &str) -> String {
        let out = self.run_with(args, Some(stdin)).await;
        one_error_line(&out, args, 1, code)
    }

    /// A usage error: exit 2, nothing on stdout, a message on stderr.
    async fn usage_error(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(out.code, Some(2), "conflux {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "conflux {args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("error: "),
            "conflux {args:?}: {:?}",
            out.stderr
        );
        out.stderr
    }
}

#[track_caller]
fn one_error_line(out: &Out, args: &[&str], exit: i32, code: &str) -> String {
    assert_eq!(out.code, Some(exit), "conflux {args:?}: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "conflux {args:?} printed on stdout: {out:?}"
    );
    assert!(
        out.stderr.ends_with('\n'),
        "conflux {args:?}: {:?}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "conflux {args:?}: not one line: {:?}",
        out.stderr
    );
    let prefix = format!("error: {code}: ");
    assert!(
        lines[0].starts_with(&prefix),
        "conflux {args:?}: {:?}",
        lines[0]
    );
    assert!(
        lines[0].len() > prefix.len() + 3,
        "no message: {:?}",
        lines[0]
    );
    lines[0].to_owned()
}

async fn start() -> (TestNode, Cli, ApiClient) {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let client = ApiClient::builder(node.api_url())
        .bearer_token(node.token())
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.ready().await.is_ok_and(|r| r.ready) {
        assert!(Instant::now() < deadline, "node not ready within 15 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let cli = Cli::new(&node);
    (node, cli, client)
}

fn sha(bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    format!("sha256:{}", hex::encode(digest))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A temporary file with this content.
fn file(content: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), content).expect("write temp file");
    f
}

fn path_str(f: &tempfile::NamedTempFile) -> &str {
    f.path().to_str().expect("UTF-8 temp path")
}

/// Rows of a table whose first column is `first`.
fn rows_starting<'a>(table: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.first() == Some(&first))
        .collect()
}

/// `release status` in JSON/YAML: the rules view flattened, plus the resolution.
#[derive(Debug, Deserialize, PartialEq)]
struct Status {
    #[serde(flatten)]
    releases: ReleasesView,
    #[serde(default)]
    resolved: Option<Resolved>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Resolved {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(flatten)]
    answer: ResolveResponse,
}

// ---- admin --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_create_and_list_tenants_apps_and_envs() {
    let (_node, cli, client) = start().await;

    // Tenants, in all three output formats.
    let acme: TenantView = cli
        .json(&[
            "admin",
            "tenant",
            "create",
            "acme",
            "--display-name",
            "Acme Corp",
            "--max-apps",
            "5",
            "--max-config-bytes",
            "2048",
        ])
        .await;
    assert_eq!(
        (acme.name.as_str(), acme.display_name.as_str()),
        ("acme", "Acme Corp")
    );
    assert_eq!(
        (acme.quotas.max_apps, acme.quotas.max_config_bytes),
        (5, 2048)
    );
    assert_eq!(
        (acme.quotas.max_configs, acme.quotas.max_versions_per_config),
        (1000, 1000)
    );
    assert_eq!(
        client.get_tenant("acme").await.unwrap(),
        acme,
        "the JSON output is the API's shape"
    );
    let beta: TenantView = cli.yaml(&["admin", "tenant", "create", "beta"]).await;
    assert_eq!(
        client.get_tenant("beta").await.unwrap(),
        beta,
        "the YAML output is the API's shape"
    );
    let table = cli
        .table(&["admin", "tenant", "create", "gamma", "--max-configs", "7"])
        .await;
    assert_row(&table, "name:", " gamma");
    assert_row(&table, "max configs:", " 7");
    // An idempotency key makes a retry answer the first result.
    let first: TenantView = cli
        .json(&[
            "admin",
            "tenant",
            "create",
            "delta",
            "--idempotency-key",
            "cli-t1",
        ])
        .await;
    let again: TenantView = cli
        .json(&[
            "admin",
            "tenant",
            "create",
            "delta",
            "--idempotency-key",
            "cli-t1",
        ])
        .await;
    assert_eq!(first, again);

    let list: TenantList = cli.json(&["admin", "tenant", "list"]).await;
    assert_eq!(list, client.list_tenants().await.unwrap());
    let list_yaml: TenantList = cli.yaml(&["admin", "tenant", "list"]).await;
    assert_eq!(list_yaml, list);
    let table = cli.table(&["admin", "tenant", "list"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DISPLAY", "NAME", "STATUS", "CREATED", "REVISION"],
        "{table}"
    );
    for name in ["acme", "beta", "gamma", "delta"] {
        let rows = rows_starting(&table, name);
        assert_eq!(rows.len(), 1, "{name} in\n{table}");
        assert!(rows[0].contains(&"active"), "{table}");
    }
    assert!(table.contains("Acme Corp"), "{table}");

    // Apps.
    let shop: AppView = cli
        .json(&[
            "admin",
            "app",
            "create",
            "acme/shop",
            "--description",
            "Web shop",
        ])
        .await;
    assert_eq!(
        (
            shop.tenant.as_str(),
            shop.name.as_str(),
            shop.description.as_str()
        ),
        ("acme", "shop", "Web shop")
    );
    let table = cli.table(&["admin", "app", "create", "acme/api"]).await;
    assert_row(&table, "app:", " acme/api");
    let apps: AppList = cli.json(&["admin", "app", "list", "acme"]).await;
    assert_eq!(apps, client.list_apps("acme").await.unwrap());
    assert_eq!(
        cli.yaml::<AppList>(&["admin", "app", "list", "acme"]).await,
        apps
    );
    let table = cli.table(&["admin", "app", "list", "acme"]).await;
    assert_eq!(rows_starting(&table, "shop").len(), 1, "{table}");
    assert_eq!(rows_starting(&table, "api").len(), 1, "{table}");
    assert!(table.contains("Web shop"), "{table}");
    assert_eq!(
        cli.table(&["admin", "app", "list", "beta"]).await,
        "(none)\n"
    );

    // Environments.
    let prod: EnvironmentView = cli
        .yaml(&[
            "admin",
            "env",
            "create",
            "acme/shop/prod",
            "--description",
            "Production",
        ])
        .await;
    assert_eq!(
        (prod.name.as_str(), prod.description.as_str()),
        ("prod", "Production")
    );
    assert_eq!(client.get_env("acme", "shop", "prod").await.unwrap(), prod);
    let dev: EnvironmentView = cli.json(&["admin", "env", "create", "acme/shop/dev"]).await;
    assert_eq!(dev.app, "shop");
    let envs: EnvironmentList = cli.json(&["admin", "env", "list", "acme/shop"]).await;
    assert_eq!(envs, client.list_envs("acme", "shop").await.unwrap());
    assert_eq!(
        cli.yaml::<EnvironmentList>(&["admin", "env", "list", "acme/shop"])
            .await,
        envs
    );
    let table = cli.table(&["admin", "env", "list", "acme/shop"]).await;
    assert_eq!(rows_starting(&table, "prod").len(), 1, "{table}");
    assert_eq!(rows_starting(&table, "dev").len(), 1, "{table}");
    assert!(table.contains("Production"), "{table}");

    // Server-side errors: exit 1, one line with the server's code.
    cli.fails(
        &["admin", "tenant", "create", "acme"],
        "tenant_already_exists",
    )
    .await;
    cli.fails(&["admin", "app", "list", "nosuch"], "tenant_not_found")
        .await;
    cli.fails(
        &["admin", "app", "create", "nosuch/app"],
        "tenant_not_found",
    )
    .await;
    cli.fails(&["admin", "env", "list", "acme/nosuch"], "app_not_found")
        .await;
    cli.fails(
        &["admin", "env", "create", "acme/nosuch/prod"],
        "app_not_found",
    )
    .await;
    cli.fails(
        &["admin", "env", "create", "acme/shop/prod"],
        "environment_already_exists",
    )
    .await;
    for app in ["a3", "a4", "a5"] {
        cli.ok(&["admin", "app", "create", &format!("acme/{app}")])
            .await;
    }
    let line = cli
        .fails(&["admin", "app", "create", "acme/a6"], "quota_exceeded")
        .await;
    assert!(line.ends_with(" (field: max_apps)"), "{line}");
    let line = cli
        .fails(
            &["admin", "tenant", "create", "zero", "--max-apps", "0"],
            "invalid_argument",
        )
        .await;
    assert!(line.ends_with(" (field: quotas.max_apps)"), "{line}");
    cli.fails(
        &[
            "admin",
            "tenant",
            "create",
            "delta",
            "--idempotency-key",
            "cli-t1",
            "--display-name",
            "other",
        ],
        "idempotency_key_reused",
    )
    .await;

    // Names are checked before anything is sent: a usage error naming the field.
    for args in [
        &["admin", "tenant", "create", "Acme"][..],
        &["admin", "tenant", "create", "acme_corp"][..],
        &["admin", "app", "create", "acme/Shop"][..],
        &["admin", "env", "create", "acme/shop/pro d"][..],
        &["admin", "app", "list", "x_y"][..],
    ] {
        let err = cli.usage_error(args).await;
        assert!(err.contains("invalid value"), "{args:?}: {err}");
    }
    let err = cli
        .usage_error(&["admin", "app", "create", "acme/Shop"])
        .await;
    assert!(err.contains("app:"), "the field is named: {err}");
    for args in [
        &["admin", "tenant", "create"][..],
        &["admin", "env", "create", "acme/shop"][..],
        &["admin", "tenant", "list", "--output", "xml"][..],
        &["admin", "tenant", "frobnicate"][..],
        &["admin"][..],
    ] {
        cli.usage_error(args).await;
    }
    // Nothing of the refused commands reached the server.
    assert_eq!(client.list_tenants().await.unwrap().tenants.len(), 4);
    assert_eq!(client.list_apps("acme").await.unwrap().apps.len(), 5);
}

// ---- config -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_commands_create_push_get_list_and_show_versions() {
    let (_node, cli, client) = start().await;
    cli.ok(&["admin", "tenant", "create", "acme"]).await;
    cli.ok(&["admin", "app", "create", "acme/shop"]).await;
    cli.ok(&["admin", "env", "create", "acme/shop/prod"]).await;
    let db = "acme/shop/prod/db.toml";

    let created: ConfigView = cli
        .json(&[
            "config",
            "create",
            db,
            "--format",
            "toml",
            "--description",
            "Database",
        ])
        .await;
    assert_eq!((created.format, created.latest_version), (Format::Toml, 0));
    assert_eq!(
        (created.path.as_str(), created.description.as_str()),
        (db, "Database")
    );
    let schema = serde_json::json!({"type": "object", "required": ["port"]});
    let schema_file = file(schema.to_string().as_bytes());
    let app_json: ConfigView = cli
        .yaml(&[
            "config",
            "create",
            "acme/shop/prod/app.json",
            "--format",
            "json",
            "--schema-file",
            path_str(&schema_file),
        ])
        .await;
    assert_eq!(app_json.schema.as_ref(), Some(&schema));
    let table = cli
        .table(&[
            "config",
            "create",
            "acme/shop/prod/motd.txt",
            "--format",
            "text",
        ])
        .await;
    assert_row(&table, "path:", " acme/shop/prod/motd.txt");
    assert_row(&table, "latest version:", "(no versions yet)");

    // Push from a file and from stdin; the content is stored byte for byte.
    let v1 = b"# first\nhost = \"db.internal\"\nport = 5432\n".to_vec();
    let v2 = "# second, with CRLF and UTF-8 \u{2713}\r\nhost = \"db2.internal\"\r\nport = 6432\r\nname = \"Zürich\"".as_bytes().to_vec();
    let f1 = file(&v1);
    let pushed: VersionCreated = cli
        .json(&[
            "config",
            "push",
            db,
            "--file",
            path_str(&f1),
            "--description",
            "first one",
        ])
        .await;
    assert_eq!(
        (pushed.version_id, pushed.hash.as_str()),
        (1, sha(&v1).as_str())
    );
    let out = cli
        .ok_stdin(
            &["config", "push", db, "--file", "-", "--output", "json"],
            &v2,
        )
        .await;
    let pushed: VersionCreated = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (pushed.version_id, pushed.hash.as_str()),
        (2, sha(&v2).as_str())
    );
    assert_eq!(
        client
            .get_version_content(created.id, 2)
            .await
            .unwrap()
            .as_ref(),
        &v2[..]
    );
    // -f is --file; a table shows the version.
    let table = cli
        .table(&[
            "config",
            "push",
            "acme/shop/prod/motd.txt",
            "-f",
            path_str(&file(b"hello\n")),
        ])
        .await;
    assert_row(&table, "version:", " 1");
    // validate_only stores nothing.
    let table = cli
        .table(&[
            "config",
            "push",
            db,
            "--file",
            path_str(&f1),
            "--validate-only",
        ])
        .await;
    assert_eq!(table, format!("valid: {} (nothing was stored)\n", sha(&v1)));
    assert_eq!(
        client.get_config(created.id).await.unwrap().latest_version,
        2
    );

    // Bad content: one error line with the server's code and field.
    let line = cli
        .fails_stdin(
            &["config", "push", db, "--file", "-"],
            b"port = = 1\n",
            "content_invalid",
        )
        .await;
    assert!(line.contains("line 1"), "{line}");
    assert!(line.ends_with(" (field: content)"), "{line}");
    cli.fails_stdin(
        &["config", "push", "acme/shop/prod/app.json", "-f", "-"],
        b"{\"host\": \"x\"}",
        "schema_violation",
    )
    .await;
    cli.fails(
        &[
            "config",
            "push",
            db,
            "--file",
            "/nonexistent/conflux-cli-test",
        ],
        "io_error",
    )
    .await;
    cli.fails_stdin(
        &["config", "push", "acme/shop/prod/nope.toml", "--file", "-"],
        b"a = 1\n",
        "config_not_found",
    )
    .await;

    // get: what a client fetches, exactly; with --labels as that client; with --version.
    cli.fails(&["config", "get", db], "not_published").await;
    cli.ok(&[
        "release",
        "set",
        db,
        "--rule",
        "version=1",
        "--rule",
        "labels=canary:true,version=2,priority=100",
    ])
    .await;
    assert_eq!(cli.ok(&["config", "get", db]).await, v1);
    assert_eq!(
        cli.ok(&["config", "get", db, "--labels", "canary=true"])
            .await,
        v2
    );
    assert_eq!(
        cli.ok(&["config", "get", db, "--labels", "canary=true,region=eu"])
            .await,
        v2
    );
    assert_eq!(
        cli.ok(&["config", "get", db, "--labels", "canary=false"])
            .await,
        v1
    );
    assert_eq!(cli.ok(&["config", "get", db, "--version", "2"]).await, v2);
    // --output does not change raw content.
    assert_eq!(
        cli.ok(&[
            "config",
            "get",
            db,
            "--labels",
            "canary=true",
            "--output",
            "json"
        ])
        .await,
        v2
    );
    cli.fails(
        &["config", "get", "acme/shop/prod/nope.toml"],
        "config_not_found",
    )
    .await;
    cli.fails(
        &["config", "get", db, "--version", "9"],
        "version_not_found",
    )
    .await;
    let long = format!("big={}", "x".repeat(300));
    cli.fails(&["config", "get", db, "--labels", &long], "invalid_label")
        .await;

    // versions: newest first, paged.
    let versions: VersionList = cli.json(&["config", "versions", db]).await;
    assert_eq!(
        versions,
        client.list_versions(created.id, None, None).await.unwrap()
    );
    assert_eq!(
        versions
            .versions
            .iter()
            .map(|v| v.version_id)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(versions.versions[1].description, "first one");
    assert_eq!(versions.versions[1].hash, sha(&v1));
    assert_eq!(
        cli.yaml::<VersionList>(&["config", "versions", db]).await,
        versions
    );
    let table = cli.table(&["config", "versions", db, "--limit", "1"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "VERSION",
            "SIZE",
            "HASH",
            "AUTHOR",
            "CREATED",
            "DESCRIPTION"
        ],
        "{table}"
    );
    assert_eq!(rows_starting(&table, "2").len(), 1, "{table}");
    assert!(rows_starting(&table, "1").is_empty(), "{table}");
    let cursor = table
        .lines()
        .find_map(|l| l.strip_prefix("more: --cursor "))
        .unwrap_or_else(|| panic!("no cursor line in\n{table}"))
        .to_owned();
    let page: VersionList = cli
        .json(&[
            "config", "versions", db, "--limit", "1", "--cursor", &cursor,
        ])
        .await;
    assert_eq!(
        page.versions
            .iter()
            .map(|v| v.version_id)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(page.next_cursor, None);
    let table = cli.table(&["config", "versions", db]).await;
    assert!(
        table.contains("first one") && table.contains(&sha(&v1)),
        "{table}"
    );

    // list and show.
    let list: ConfigList = cli.json(&["config", "list", "acme/shop/prod"]).await;
    assert_eq!(
        list,
        client.list_configs("acme", "shop", "prod").await.unwrap()
    );
    assert_eq!(list.configs.len(), 3);
    assert_eq!(
        cli.yaml::<ConfigList>(&["config", "list", "acme/shop/prod"])
            .await,
        list
    );
    let table = cli.table(&["config", "list", "acme/shop/prod"]).await;
    for (name, format, latest) in [
        ("db.toml", "toml", "2"),
        ("app.json", "json", "0"),
        ("motd.txt", "text", "1"),
    ] {
        let row: Vec<&str> = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.get(1) == Some(&name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"));
        assert_eq!((row[2], row[3]), (format, latest), "{table}");
    }
    let shown: ConfigView = cli.json(&["config", "show", db]).await;
    assert_eq!(shown, client.get_config(created.id).await.unwrap());
    cli.fails(
        &["config", "list", "acme/shop/nope"],
        "environment_not_found",
    )
    .await;
    cli.fails(
        &["config", "versions", "acme/shop/prod/nope.toml"],
        "config_not_found",
    )
    .await;
    cli.fails(
        &["config", "create", db, "--format", "toml"],
        "config_already_exists",
    )
    .await;
    cli.fails(
        &[
            "config",
            "create",
            "nope/shop/prod/x.json",
            "--format",
            "json",
        ],
        "tenant_not_found",
    )
    .await;

    // Usage errors.
    for args in [
        &[
            "config",
            "create",
            "acme/shop/prod/x.csv",
            "--format",
            "csv",
        ][..],
        &["config", "create", "acme/shop/prod/x.json"][..],
        &["config", "get", "acme/shop/prod"][..],
        &["config", "get", "acme/shop/prod/.hidden"][..],
        &["config", "get", db, "--version", "1", "--labels", "a=b"][..],
        &["config", "get", db, "--labels", "Canary=true"][..],
        &["config", "push", db][..],
        &["config", "versions", db, "--limit", "many"][..],
        &["config", "list", "acme/shop"][..],
    ] {
        cli.usage_error(args).await;
    }
}

// ---- release ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_commands_set_status_publish_and_rollback() {
    let (_node, cli, client) = start().await;
    let w = WriteOptions::default();
    client
        .create_tenant(&CreateTenant::named("acme"), &w)
        .await
        .unwrap();
    client
        .create_app("acme", &CreateApp::named("shop"), &w)
        .await
        .unwrap();
    client
        .create_env("acme", "shop", &CreateEnvironment::named("prod"), &w)
        .await
        .unwrap();
    let body = CreateConfig {
        name: "app.yaml".into(),
        format: Format::Yaml,
        schema: None,
        retention: None,
        description: None,
        encrypted: false,
    };
    let config = client
        .create_config("acme", "shop", "prod", &body, &w)
        .await
        .unwrap();
    let path = "acme/shop/prod/app.yaml";
    let cpath = ConfigPath::parse(path).unwrap();
    let content = |i: u64| format!("version: {i}\nfeature: {}\n", i.is_multiple_of(2));
    for i in 1..=2 {
        client
            .create_version(
                config.id,
                NewVersion::new(content(i), "application/yaml"),
                &w,
            )
            .await
            .unwrap();
    }

    // set, with the --rule syntax.
    let set: ReleasesView = cli
        .json(&[
            "release",
            "set",
            path,
            "--rule",
            "version=1",
            "--rule",
            "labels=ip:10.0.0.1,version=2",
            "--comment",
            "pin one host",
        ])
        .await;
    assert_eq!(
        set.releases,
        [
            ReleaseRule::default_to(1),
            ReleaseRule {
                labels: labels(&[("ip", "10.0.0.1")]),
                percent: None,
                version_id: 2,
                priority: 0
            }
        ]
    );
    assert_eq!(set.comment.as_deref(), Some("pin one host"));
    assert_eq!(client.get_releases(config.id).await.unwrap(), set);
    let stale = set.revision;

    // status: the rules as a table, and what given labels resolve to.
    let table = cli.table(&["release", "status", path]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["#", "ORDER", "PRIORITY", "LABELS", "PERCENT", "VERSION"],
        "{table}"
    );
    assert_eq!(
        rows_starting(&table, "0"),
        [vec!["0", "2", "0", "(default)", "-", "1"]],
        "{table}"
    );
    assert_eq!(
        rows_starting(&table, "1"),
        [vec!["1", "1", "0", "ip=10.0.0.1", "-", "2"]],
        "{table}"
    );
    assert!(
        table.contains(&format!("revision: {}\n", set.revision)),
        "{table}"
    );
    assert!(table.contains("comment: pin one host\n"), "{table}");
    let status: Status = cli
        .json(&["release", "status", path, "--labels", "ip=10.0.0.1"])
        .await;
    assert_eq!(status.releases, set);
    let resolved = status.resolved.expect("resolution with --labels");
    assert_eq!(resolved.labels, labels(&[("ip", "10.0.0.1")]));
    assert_eq!(
        (resolved.answer.version_id, resolved.answer.rule_index),
        (2, 1)
    );
    let plain: Status = cli.yaml(&["release", "status", path]).await;
    assert_eq!((plain.releases, plain.resolved), (set.clone(), None));

    // publish: canary by labels from a file, canary by percent from stdin, then stable.
    let c3 = content(3);
    let f3 = file(c3.as_bytes());
    let p3: PublishResponse = cli
        .json(&[
            "release",
            "publish",
            path,
            "--file",
            path_str(&f3),
            "--strategy",
            "canary",
            "--labels",
            "canary=true",
            "--description",
            "canary three",
        ])
        .await;
    assert_eq!(
        (p3.version_id, p3.hash.as_str()),
        (3, sha(c3.as_bytes()).as_str())
    );
    assert_eq!(
        p3.releases[2],
        ReleaseRule {
            labels: labels(&[("canary", "true")]),
            percent: None,
            version_id: 3,
            priority: 100
        }
    );
    assert_eq!(
        client.get_version(config.id, 3).await.unwrap().description,
        "canary three"
    );
    let c4 = content(4);
    let out = cli
        .ok_stdin(
            &[
                "release",
                "publish",
                path,
                "--file",
                "-",
                "--strategy",
                "canary",
                "--percent",
                "20",
                "--priority",
                "5",
            ],
            c4.as_bytes(),
        )
        .await;
    let table = String::from_utf8(out).unwrap();
    assert_row(&table, "version:", " 4");
    assert_eq!(
        rows_starting(&table, "3"),
        [vec!["3", "2", "5", "-", "20%", "4"]],
        "{table}"
    );
    let rules = client.get_releases(config.id).await.unwrap().releases;
    assert_eq!(
        rules[3],
        ReleaseRule {
            labels: BTreeMap::new(),
            percent: Some(20),
            version_id: 4,
            priority: 5
        }
    );
    // The percentage canary reaches exactly the clients whose bucket is below 20.
    let inside = (0..)
        .map(|i| format!("host-{i}"))
        .find(|id| conflux_domain::bucket(config.id, id) < 20)
        .unwrap();
    let outside = (0..)
        .map(|i| format!("host-{i}"))
        .find(|id| conflux_domain::bucket(config.id, id) >= 20)
        .unwrap();
    let status: Status = cli
        .yaml(&["release", "status", path, "--client-id", &inside])
        .await;
    let resolved = status.resolved.expect("resolution with --client-id");
    assert_eq!(
        (resolved.client_id.as_deref(), resolved.answer.version_id),
        (Some(inside.as_str()), 4)
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--client-id", &inside])
            .await,
        c4.as_bytes()
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--client-id", &outside])
            .await,
        content(1).as_bytes()
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--labels", "canary=true"])
            .await,
        c3.as_bytes()
    );
    let table = cli
        .table(&[
            "release",
            "status",
            path,
            "--labels",
            "canary=true",
            "--client-id",
            &inside,
        ])
        .await;
    assert!(
        table.ends_with(&format!(
            "canary=true and client id {inside} -> version 3 (rule #2)\n"
        )),
        "{table}"
    );

    let c5 = content(5);
    let p5: PublishResponse = cli
        .yaml(&[
            "release",
            "publish",
            path,
            "-f",
            path_str(&file(c5.as_bytes())),
            "--strategy",
            "stable",
        ])
        .await;
    assert_eq!(p5.version_id, 5);
    assert_eq!(p5.releases[0], ReleaseRule::default_to(5));
    assert_eq!(p5.releases.len(), 4, "stable keeps the other rules");
    assert_eq!(cli.ok(&["config", "get", path]).await, c5.as_bytes());

    // Errors from the server: one line, exit 1.
    let line = cli
        .fails(
            &[
                "release",
                "set",
                path,
                "--rule",
                "version=1",
                "--if-match",
                &stale.to_string(),
            ],
            "revision_mismatch",
        )
        .await;
    assert!(line.contains(&stale.to_string()), "{line}");
    let line = cli
        .fails(
            &["release", "set", path, "--rule", "version=99"],
            "unknown_version",
        )
        .await;
    assert!(line.ends_with(" (field: releases[0].version_id)"), "{line}");
    cli.fails(
        &[
            "release",
            "set",
            path,
            "--rule",
            "version=1",
            "--rule",
            "version=2",
        ],
        "invalid_release_rules",
    )
    .await;
    cli.fails(
        &["release", "rollback", path, "--version", "42"],
        "unknown_version",
    )
    .await;
    cli.fails_stdin(
        &[
            "release",
            "publish",
            path,
            "--file",
            "-",
            "--strategy",
            "stable",
        ],
        b"a: [1\n",
        "content_invalid",
    )
    .await;
    cli.fails(
        &["release", "status", "acme/shop/prod/nope.yaml"],
        "config_not_found",
    )
    .await;
    assert_eq!(
        client.get_releases(config.id).await.unwrap().releases,
        p5.releases,
        "refused commands change nothing"
    );

    // rollback: stable_only by default keeps the canaries; emergency leaves one default rule.
    let rb: ReleasesView = cli
        .json(&["release", "rollback", path, "--version", "2"])
        .await;
    let mut expected = p5.releases.clone();
    expected[0] = ReleaseRule::default_to(2);
    assert_eq!(rb.releases, expected);
    assert_eq!(rb.comment.as_deref(), Some("rollback to version 2"));
    assert_eq!(
        cli.ok(&["config", "get", path]).await,
        content(2).as_bytes()
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--labels", "canary=true"])
            .await,
        c3.as_bytes()
    );
    let rb: ReleasesView = cli
        .yaml(&[
            "release",
            "rollback",
            path,
            "--version",
            "1",
            "--mode",
            "emergency",
        ])
        .await;
    assert_eq!(rb.releases, [ReleaseRule::default_to(1)]);
    assert_eq!(client.get_releases(config.id).await.unwrap(), rb);
    assert_eq!(
        cli.ok(&["config", "get", path, "--labels", "canary=true"])
            .await,
        content(1).as_bytes()
    );
    let fetched = client.fetch(&cpath, &Default::default()).await.unwrap();
    assert!(
        matches!(
            fetched,
            conflux_client::Fetched::Modified { version: 1, .. }
        ),
        "{fetched:?}"
    );
    // `apply` is `set`.
    let applied: ReleasesView = cli
        .json(&[
            "release",
            "apply",
            path,
            "--rule",
            "version=5",
            "--if-match",
            &rb.revision.to_string(),
        ])
        .await;
    assert_eq!(applied.releases, [ReleaseRule::default_to(5)]);
    // Negative priorities parse, in --priority and in --rule; a rule below the default's
    // priority never wins, however specific.
    let low: PublishResponse = cli
        .json(&[
            "release",
            "publish",
            path,
            "--file",
            path_str(&file(b"low: true\n")),
            "--strategy",
            "canary",
            "--labels",
            "ring=low",
            "--priority",
            "-5",
        ])
        .await;
    assert_eq!(
        low.releases[1],
        ReleaseRule {
            labels: labels(&[("ring", "low")]),
            percent: None,
            version_id: 6,
            priority: -5
        }
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--labels", "ring=low"])
            .await,
        c5.as_bytes()
    );
    let set: ReleasesView = cli
        .json(&[
            "release",
            "set",
            path,
            "--rule",
            "version=5",
            "--rule",
            "labels=ring:low,version=6,priority=-1",
            "--rule",
            "labels=ring:high,priority=1,version=6",
        ])
        .await;
    assert_eq!(
        (set.releases[1].priority, set.releases[2].priority),
        (-1, 1)
    );
    assert_eq!(
        cli.ok(&["config", "get", path, "--labels", "ring=high"])
            .await,
        b"low: true\n"
    );

    // Usage errors: exit 2 before anything is sent.
    for args in [
        &["release", "set", path][..],
        &["release", "set", path, "--rule", "percent=10"][..],
        &["release", "set", path, "--rule", "version=1,weight=3"][..],
        &["release", "rollback", path][..],
        &[
            "release",
            "rollback",
            path,
            "--version",
            "1",
            "--mode",
            "all",
        ][..],
        &[
            "release",
            "publish",
            path,
            "--file",
            "x",
            "--strategy",
            "blue",
        ][..],
        &[
            "release",
            "publish",
            path,
            "--file",
            "x",
            "--strategy",
            "canary",
            "--percent",
            "101",
        ][..],
        &["release", "status", path, "--labels", "Canary=true"][..],
    ] {
        cli.usage_error(args).await;
    }
    // Flags that do not fit the strategy: one line, exit 2.
    for args in [
        &[
            "release",
            "publish",
            path,
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
            path,
            "--file",
            "-",
            "--strategy",
            "canary",
        ][..],
    ] {
        let out = cli.run_with(args, Some(b"a: 1\n")).await;
        one_error_line(&out, args, 2, "invalid_argument");
    }
    assert_eq!(
        client.get_config(config.id).await.unwrap().latest_version,
        6
    );
}

// ---- transport errors ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_bad_endpoints_are_one_error_line() {
    let bin = conflux_binary().expect("the conflux binary");
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (endpoint, code) in [
        (format!("http://127.0.0.1:{port}"), "unreachable"),
        ("ftp://example.invalid".to_owned(), "invalid_argument"),
    ] {
        let cli = Cli {
            bin: bin.clone(),
            endpoint,
            token: "unused-token".to_owned(),
        };
        for args in [
            &["admin", "tenant", "list"][..],
            &["config", "get", "a/b/c/d.json"][..],
        ] {
            cli.fails(args, code).await;
        }
    }
    // CONFLUX_ENDPOINT is the default of --endpoint.
    let out = tokio::process::Command::new(&bin)
        .args(["admin", "tenant", "list"])
        .env("CONFLUX_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .await
        .unwrap();
    let out = Out {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let line = one_error_line(&out, &["admin", "tenant", "list"], 1, "unreachable");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert_eq!(out.text(), "");
}

/// Asserts that a `--output table` answer has a row labelled `label` ending in `value`.
fn assert_row(table: &str, label: &str, value: &str) {
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(label) && l.ends_with(value)),
        "no row {label} ...{value} in\n{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_commands_propose_list_approve_and_show() {
    let (_node, cli, client) = start().await;
    let w = WriteOptions::default();
    client
        .create_tenant(&CreateTenant::named("acme"), &w)
        .await
        .unwrap();
    client
        .create_app("acme", &CreateApp::named("shop"), &w)
        .await
        .unwrap();
    let env = cli
        .ok_text(&[
            "admin",
            "env",
            "create",
            "acme/shop/prod",
            "--require-approval",
            "true",
            "--allow-self-approval",
            "true",
        ])
        .await;
    assert!(env.contains("approval required:  true"), "{env}");
    let body = CreateConfig {
        name: "app.txt".into(),
        format: Format::Text,
        schema: None,
        retention: None,
        description: None,
        encrypted: false,
    };
    client
        .create_config("acme", "shop", "prod", &body, &w)
        .await
        .unwrap();
    let path = "acme/shop/prod/app.txt";
    let v1 = file(b"one");
    let args = [
        "release",
        "publish",
        path,
        "-f",
        path_str(&v1),
        "--strategy",
        "stable",
    ];
    let proposed = cli.ok_text(&args).await;
    assert!(proposed.contains("proposal 1 is pending"), "{proposed}");
    assert!(proposed.contains("version 1 was created"), "{proposed}");
    // Nothing is released until the approval.
    let releases = client.get_releases(1).await.unwrap();
    assert!(releases.releases.is_empty());

    let pending = cli
        .ok_text(&["proposal", "list", "--status", "pending", "--config", path])
        .await;
    assert_eq!(rows_starting(&pending, "1").len(), 1, "{pending}");
    let approved = cli
        .ok_text(&["proposal", "approve", "1", "--comment", "CAB ok"])
        .await;
    assert!(approved.contains("executed"), "{approved}");
    assert_eq!(client.get_releases(1).await.unwrap().releases.len(), 1);
    let shown = cli.ok_text(&["proposal", "show", "1"]).await;
    for step in ["created", "approved", "executed", "CAB ok"] {
        assert!(shown.contains(step), "{step} missing from {shown}");
    }
    let again = ["proposal", "approve", "1"];
    let out = cli.run(&again).await;
    let line = one_error_line(&out, &again, 1, "proposal_finished");
    assert!(line.contains("already executed"), "{line}");

    // Approval settings change through the CLI, and a flag left out keeps its value.
    let updated = cli
        .ok_text(&[
            "admin",
            "env",
            "update",
            "acme/shop/prod",
            "--min-approvals",
            "2",
        ])
        .await;
    assert!(updated.contains("min approvals:      2"), "{updated}");
    assert!(updated.contains("approval required:  true"), "{updated}");
    let bad = [
        "admin",
        "env",
        "update",
        "acme/shop/prod",
        "--min-approvals",
        "0",
    ];
    let out = cli.run(&bad).await;
    one_error_line(&out, &bad, 1, "invalid_argument");
}
