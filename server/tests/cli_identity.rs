//! Identity and access through the real `conflux` binary against a real node (contract
//! section 6): the bootstrap token from `<data-dir>/admin.token`, users, `conflux login` and
//! its credentials file, a reader service token used to fetch, token lists that never show
//! secrets, revocation, refusals and their messages, logout, and the audit log.
//!
//! The node runs the embedded default (no bootstrap token given, so it makes one and writes
//! it to its data directory). Every CLI run gets its own credentials file in the test's
//! temporary directory and nothing of the environment of whoever runs the tests.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use conflux_client::types::{
    AuditPage, RoleBindingView, TokenCreated, TokenList, UserList, UserView, WhoAmI,
};
use conflux_testkit::{NodeSpec, TestNode, conflux_binary};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

/// One finished CLI process.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `conflux <args> --endpoint <node>` with a private credentials file.
struct Cli {
    bin: PathBuf,
    endpoint: String,
    credentials: PathBuf,
    _home: tempfile::TempDir,
}

impl Cli {
    fn new(node: &TestNode) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        Cli {
            bin: conflux_binary().expect("the conflux binary"),
            endpoint: node.api_url(),
            credentials: home.path().join("conflux").join("credentials"),
            _home: home,
        }
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .arg("--endpoint")
            .arg(&self.endpoint)
            .env_remove("CONFLUX_ENDPOINT")
            .env_remove("CONFLUX_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("RUST_LOG")
            .env("HOME", self._home.path())
            .env("CONFLUX_CREDENTIALS", &self.credentials)
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("conflux starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("conflux {args:?} did not finish within 20 s"))
            .expect("conflux runs");
        Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[], None).await
    }

    /// Exit 0 and nothing on stderr; returns stdout.
    #[track_caller]
    fn succeeded(out: Out, args: &[&str]) -> String {
        assert_eq!(out.code, Some(0), "conflux {args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "conflux {args:?}: {out:?}");
        out.stdout
    }

    async fn ok(&self, args: &[&str]) -> String {
        Cli::succeeded(self.run(args).await, args)
    }

    async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        Cli::succeeded(self.run_env(args, &[], Some(stdin)).await, args)
    }

    async fn json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("conflux {all:?}: {e} in\n{text}"))
    }

    /// Exit 1, nothing on stdout, one line `error: <code>: ...` on stderr; returns it.
    #[track_caller]
    fn failed(out: Out, args: &[&str], code: &str) -> String {
        assert_eq!(out.code, Some(1), "conflux {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "conflux {args:?}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "conflux {args:?}: {out:?}");
        assert!(
            lines[0].starts_with(&format!("error: {code}: ")),
            "conflux {args:?}: {:?}",
            lines[0]
        );
        lines[0].to_owned()
    }

    async fn fails(&self, args: &[&str], code: &str) -> String {
        Cli::failed(self.run(args).await, args, code)
    }

    /// The saved logins, as JSON.
    fn saved(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.credentials).expect("credentials file"))
            .expect("credentials file is JSON")
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const PASSWORD: &str = "correct horse battery";

/// `args` followed by `--token-file <file>`.
fn as_admin(args: &[&str], file: &str) -> Vec<String> {
    args.iter()
        .copied()
        .chain(["--token-file", file])
        .map(str::to_owned)
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn start() -> (TestNode, Cli, String) {
    // The embedded default: no bootstrap token given, the node writes its own.
    let mut spec = NodeSpec::new(1);
    spec.bootstrap_token = None;
    let node = TestNode::start(spec).expect("node starts");
    let admin_file = node.data_dir().join("admin.token");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !admin_file.exists() {
        assert!(
            Instant::now() < deadline,
            "no admin.token within 15 s; log:\n{}",
            node.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(mode(&admin_file), 0o600, "admin.token is private");
    let cli = Cli::new(&node);
    // Ready once an authenticated call answers.
    let admin = admin_file.to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = cli
            .run(&["admin", "tenant", "list", "--token-file", &admin])
            .await;
        if out.code == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "node not serving: {out:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (node, cli, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_fetch_revocation_and_audit_through_the_cli() {
    let (node, cli, admin_file) = start().await;
    let with_admin = |args: &[&str]| as_admin(args, &admin_file);

    // ---- no token: refused, with what to do ---------------------------------------------------
    let line = cli
        .fails(&["admin", "tenant", "list"], "unauthenticated")
        .await;
    assert!(
        line.contains("not logged in (no token was sent): run `conflux login` or pass --token"),
        "{line}"
    );

    // ---- the bootstrap token: cluster_admin on * -----------------------------------------------
    let me: WhoAmI = cli.json(&strs(&with_admin(&["auth", "whoami"]))).await;
    assert!(me.principal.starts_with("token:"), "{me:?}");
    assert!(
        me.bindings
            .iter()
            .any(|b| b.role == "cluster_admin" && b.scope == "*"),
        "{me:?}"
    );
    // The same token through CONFLUX_TOKEN.
    let admin_token = std::fs::read_to_string(&admin_file)
        .unwrap()
        .trim()
        .to_owned();
    let out = cli
        .run_env(
            &["auth", "whoami", "--output", "json"],
            &[("CONFLUX_TOKEN", &admin_token)],
            None,
        )
        .await;
    let via_env: WhoAmI = serde_json::from_str(&Cli::succeeded(out, &["auth", "whoami"])).unwrap();
    assert_eq!(via_env.principal, me.principal);

    // A config with a published version.
    for args in [
        &["admin", "tenant", "create", "acme"][..],
        &["admin", "app", "create", "acme/billing"],
        &["admin", "env", "create", "acme/billing/prod"],
        &[
            "config",
            "create",
            "acme/billing/prod/app.json",
            "--format",
            "json",
        ],
    ] {
        cli.ok(&strs(&with_admin(args))).await;
    }
    let content = "{\"pool\": 5}\n";
    let dir = tempfile::tempdir().unwrap();
    let content_file = dir.path().join("app.json");
    std::fs::write(&content_file, content).unwrap();
    let content_path = content_file.display().to_string();
    let publish = with_admin(&[
        "release",
        "publish",
        "acme/billing/prod/app.json",
        "--strategy",
        "stable",
        "--file",
        &content_path,
    ]);
    cli.ok(&strs(&publish)).await;

    // ---- a user, made tenant admin of acme ------------------------------------------------------
    let alice: UserView = {
        let mut args = with_admin(&[
            "admin",
            "user",
            "create",
            "alice",
            "--display-name",
            "Alice",
            "--password-stdin",
        ]);
        args.extend(["--output".into(), "json".into()]);
        let text = cli.ok_stdin(&strs(&args), &format!("{PASSWORD}\n")).await;
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!((alice.username.as_str(), alice.disabled), ("alice", false));
    // A password that is too short is refused by the server, naming the field.
    let short = with_admin(&["admin", "user", "create", "bob", "--password-stdin"]);
    let out = cli.run_env(&strs(&short), &[], Some("short\n")).await;
    let line = Cli::failed(out, &strs(&short), "invalid_argument");
    assert!(line.contains("password"), "{line}");
    let users: UserList = cli
        .json(&strs(&with_admin(&["admin", "user", "list"])))
        .await;
    assert_eq!(users.users.len(), 1, "{users:?}");
    let binding: RoleBindingView = cli
        .json(&strs(&with_admin(&[
            "admin",
            "role-binding",
            "create",
            "--principal",
            "user:alice",
            "--role",
            "tenant_admin",
            "--scope",
            "acme",
        ])))
        .await;
    assert_eq!(binding.principal, "user:alice");

    // ---- login: a wrong password, then the right one --------------------------------------------
    let args = ["login", "--username", "alice", "--password-stdin"];
    let out = cli.run_env(&args, &[], Some("not the password\n")).await;
    let line = Cli::failed(out, &args, "invalid_credentials");
    assert!(!line.contains("not the password"), "{line}");
    assert!(
        !cli.credentials.exists(),
        "no credentials after a failed login"
    );

    let text = cli.ok_stdin(&args, &format!("{PASSWORD}\n")).await;
    assert!(
        text.starts_with(&format!(
            "logged in to {} as user:alice until ",
            node.api_url()
        )),
        "{text}"
    );
    assert!(
        text.contains(&cli.credentials.display().to_string()),
        "{text}"
    );
    assert_eq!(mode(&cli.credentials), 0o600);
    assert_eq!(mode(cli.credentials.parent().unwrap()), 0o700);
    let saved = cli.saved();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["credentials"][0]["endpoint"], node.api_url());
    let session = saved["credentials"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.contains(&session), "login never prints the token");

    // The saved login is used when no token is given.
    let me: WhoAmI = cli.json(&["auth", "whoami"]).await;
    assert_eq!(me.principal, "user:alice");
    assert_eq!(me.bindings.len(), 1, "{me:?}");
    assert_eq!(
        (me.bindings[0].role.as_str(), me.bindings[0].scope.as_str()),
        ("tenant_admin", "acme")
    );
    // ...and a token given explicitly wins over it.
    let me: WhoAmI = cli.json(&strs(&with_admin(&["auth", "whoami"]))).await;
    assert!(me.principal.starts_with("token:"));

    // ---- alice makes a reader token for the billing service --------------------------------------
    let table = cli
        .ok(&[
            "admin",
            "token",
            "create",
            "--name",
            "billing-reader",
            "--bind",
            "reader=acme/billing/prod",
        ])
        .await;
    assert!(
        table.contains("This is the only time the token is shown"),
        "{table}"
    );
    let created: TokenCreated = cli
        .json(&[
            "admin",
            "token",
            "create",
            "--name",
            "billing-reader-2",
            "--bind",
            "reader=acme/billing/prod",
            "--expires-in",
            "30d",
        ])
        .await;
    assert!(created.expires_at.is_some(), "{created:?}");
    assert_eq!(created.bindings.len(), 1);
    assert_eq!(
        created.bindings[0].principal,
        format!("token:{}", created.id)
    );
    let reader = created.token.clone();

    // The reader fetches (with --token, and through --token-file).
    let got = cli
        .ok(&[
            "config",
            "get",
            "acme/billing/prod/app.json",
            "--token",
            &reader,
        ])
        .await;
    assert_eq!(got, content);
    let reader_file = dir.path().join("reader.token");
    std::fs::write(&reader_file, format!("{reader}\n")).unwrap();
    let reader_file = reader_file.to_str().unwrap();
    let got = cli
        .ok(&[
            "config",
            "get",
            "acme/billing/prod/app.json",
            "--token-file",
            reader_file,
        ])
        .await;
    assert_eq!(got, content);
    // ...but may not manage anything.
    let line = cli
        .fails(
            &["admin", "tenant", "create", "other", "--token", &reader],
            "forbidden",
        )
        .await;
    assert!(line.contains("permission denied: "), "{line}");
    assert!(line.contains("`conflux auth whoami`"), "{line}");

    // ---- token lists never show secrets ---------------------------------------------------------
    for args in [
        &["admin", "token", "list"][..],
        &["admin", "token", "list", "--output", "json"],
        &["admin", "token", "list", "--output", "yaml"],
    ] {
        let text = cli.ok(args).await;
        assert!(text.contains(&created.id), "{text}");
        assert!(!text.contains(&reader), "{args:?} shows a secret: {text}");
    }
    let list: TokenList = cli.json(&["admin", "token", "list"]).await;
    assert_eq!(list.tokens.len(), 2, "{list:?}");
    assert!(list.tokens.iter().all(|t| t.created_by == "user:alice"));
    let one = cli.ok(&["admin", "token", "get", &created.id]).await;
    assert!(!one.contains(&reader), "{one}");

    // ---- revocation: the token stops working --------------------------------------------------
    let text = cli.ok(&["admin", "token", "delete", &created.id]).await;
    assert_eq!(text, format!("token {} deleted\n", created.id));
    let fetch = [
        "config",
        "get",
        "acme/billing/prod/app.json",
        "--token",
        reader.as_str(),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let out = cli.run(&fetch).await;
        if out.code != Some(0) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let line = Cli::failed(out, &fetch, "unauthenticated");
    assert!(
        line.contains("token rejected (expired, revoked or unknown; it came from --token): run `conflux login` or pass --token"),
        "{line}"
    );
    assert!(!line.contains(&reader), "{line}");

    // ---- logout --------------------------------------------------------------------------------
    let text = cli.ok(&["logout"]).await;
    assert_eq!(
        text,
        format!(
            "logged out of {} (session ended, saved login removed)\n",
            node.api_url()
        )
    );
    assert_eq!(cli.saved()["credentials"], serde_json::json!([]));
    assert_eq!(mode(&cli.credentials), 0o600);
    let line = cli.fails(&["auth", "whoami"], "unauthenticated").await;
    assert!(line.contains("not logged in (no token was sent)"), "{line}");
    // The ended session itself is refused too.
    let line = cli
        .fails(&["auth", "whoami", "--token", &session], "unauthenticated")
        .await;
    assert!(line.contains("it came from --token"), "{line}");
    // Logging out again is harmless.
    assert_eq!(
        cli.ok(&["logout"]).await,
        format!("not logged in to {}\n", node.api_url())
    );

    // ---- the audit log has the logins, the token and the denial --------------------------------
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page: AuditPage = cli
            .json(&strs(&with_admin(&[
                "audit",
                "list",
                "--actor",
                "user:alice",
                "--since",
                "1h",
            ])))
            .await;
        let has = |action: &str, outcome: &str| {
            page.records
                .iter()
                .any(|r| r.action == action && r.outcome == outcome)
        };
        if has("auth.login", "success")
            && has("auth.login", "failed")
            && has("token.create", "success")
        {
            assert!(
                page.records.iter().all(|r| r.actor == "user:alice"),
                "{page:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit records missing: {page:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page: AuditPage = cli
        .json(&strs(&with_admin(&["audit", "list", "--limit", "2"])))
        .await;
    assert_eq!(page.records.len(), 2);
    assert!(page.next_cursor.is_some(), "{page:?}");
    let table = cli
        .ok(&strs(&with_admin(&["audit", "list", "--limit", "2"])))
        .await;
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains("more: --cursor "), "{table}");
}
