//! The `conflux` binary: `conflux server` runs a node; the other subcommands are clients.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

// The node allocates many short-lived buffers per request on several threads; mimalloc's
// thread-local free lists cut the time glibc malloc spends in its arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use conflux_server::config::{
    DEFAULT_API_ADDR, DEFAULT_DATA_DIR, DEFAULT_NODE_ID, DEFAULT_RAFT_ADDR, NodeConfig, ServerArgs,
};
use conflux_server::raft::NodeInfo;

/// `conflux --version`: the package version, with the label a build was given through
/// `CONFLUX_BUILD_LABEL` at compile time as semver build metadata (`0.1.0+<label>`). Packagers
/// label a build with its commit; the Ansible harness labels a second build of the same source
/// to upgrade to. Only this file reads the variable, so relabelling recompiles only it.
fn version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| match option_env!("CONFLUX_BUILD_LABEL") {
            Some(label) if !label.is_empty() => {
                format!("{}+{label}", env!("CARGO_PKG_VERSION"))
            }
            _ => env!("CARGO_PKG_VERSION").to_owned(),
        });
    &VERSION
}

#[derive(Debug, Parser)]
#[command(
    name = "conflux",
    version = version(),
    about = "Conflux: a distributed configuration center"
)]
struct Cli {
    #[command(flatten)]
    client: conflux_cli::GlobalArgs,
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(Debug, Subcommand)]
enum TopCommand {
    /// Run a node. With no flags: a single node with data in ./conflux-data, API on
    /// 127.0.0.1:8080.
    Server(Box<ServerArgs>),
    /// Turn a backup (GET /_cluster/backup) into the data directory of the first node of a new
    /// cluster; start it with `conflux server` and let other nodes --join it.
    Restore(RestoreArgs),
    #[command(flatten)]
    Client(conflux_cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        TopCommand::Server(args) => runtime.block_on(serve(*args)),
        TopCommand::Restore(args) => restore(args),
        TopCommand::Client(command) => runtime.block_on(conflux_cli::run(cli.client, command)),
    }
}

async fn serve(args: ServerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match NodeConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match conflux_server::node::listen(&config.api_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.api_addr);
            return ExitCode::FAILURE;
        }
    };
    match conflux_server::node::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The backup file.
    #[arg(long = "from", value_name = "FILE")]
    from: PathBuf,
    /// The new node's data directory; must not exist or be empty.
    #[arg(long, env = "CONFLUX_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The new node's id.
    #[arg(long, env = "CONFLUX_NODE_ID", default_value_t = DEFAULT_NODE_ID)]
    node_id: u64,
    /// The Raft address the new node will listen on (recorded in the new membership).
    #[arg(long, env = "CONFLUX_RAFT_ADDR", default_value = DEFAULT_RAFT_ADDR)]
    raft_addr: String,
    /// The API address the new node will listen on (recorded in the new membership).
    #[arg(long, env = "CONFLUX_API_ADDR", default_value = DEFAULT_API_ADDR)]
    api_addr: String,
}

fn restore(args: RestoreArgs) -> ExitCode {
    let me = NodeInfo {
        raft_addr: args.raft_addr.clone(),
        api_addr: args.api_addr.clone(),
    };
    match conflux_server::storage::snapshot::restore(&args.from, &args.data_dir, args.node_id, me) {
        Ok(meta) => {
            let index = meta.last_log_id.map_or(0, |l| l.index);
            println!(
                "restored {} up to revision {index} into {} as node {}; start it with: conflux server --data-dir {} --node-id {} --raft-addr {} --api-addr {}",
                args.from.display(),
                args.data_dir.display(),
                args.node_id,
                args.data_dir.display(),
                args.node_id,
                args.raft_addr,
                args.api_addr
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C: stop accepting, finish in-flight requests, exit 0.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the node");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
