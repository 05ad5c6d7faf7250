//! `conflux admin cluster ...`: status, state digests, membership, leadership, snapshots and
//! backups
//! (`/_cluster/*`, contract section 4).

use std::path::{Path, PathBuf};
use std::time::Duration;

use conflux_api_types::JoinRequest;
use conflux_client::ApiClient;
use tokio::io::AsyncWriteExt;

use crate::error::CliError;
use crate::render::{BackupWritten, ClusterChanged};
use crate::{Ctx, Output};

/// Adding a node waits until it has caught up (the server allows 5 minutes and a half), and
/// a backup is a whole download: both get at least this long, whatever `--timeout` says.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Removing a member may wait for a leader and, when the leader itself is removed, for a
/// leadership transfer first; building a snapshot may take the server up to two minutes.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// A leadership transfer is bounded on the server (30 s); a little more here.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Every member: role, addresses, applied index, lag, reachability; leader and term.
    ///
    /// As seen by the node asked (--endpoint): it asks every member for its own view.
    Status,
    /// The node's applied index and a digest of its config plane at exactly that index.
    ///
    /// Nodes that show the same applied index must show the same digest; compare them
    /// (one --endpoint at a time) to check that the members agree.
    Digest,
    /// Add a node: a learner first, a voter once it has caught up.
    ///
    /// Catching up can take minutes: this waits at least 10 minutes, whatever --timeout
    /// says. A node started with `conflux server --join` adds itself.
    Add(AddArgs),
    /// Remove a node from the cluster (stop its process afterwards).
    ///
    /// Removing the leader hands leadership to another voter first.
    Remove {
        /// The node's id.
        #[arg(value_parser = node_id, value_name = "NODE_ID")]
        node_id: u64,
    },
    /// Move leadership to another voter: --to, or the most up-to-date one.
    TransferLeader {
        /// The voter that should lead.
        #[arg(long, value_parser = node_id, value_name = "NODE_ID")]
        to: Option<u64>,
    },
    /// Build a snapshot on the node asked, covering everything it has applied.
    Snapshot,
    /// Download a consistent backup into a file, for `conflux restore`.
    Backup(BackupArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The new node's id (unique in the cluster, at least 1).
    #[arg(value_parser = node_id, value_name = "NODE_ID")]
    pub node_id: u64,
    /// The address the new node's Raft listener is reachable on from the other members.
    #[arg(long, value_parser = host_port, value_name = "HOST:PORT")]
    pub raft_addr: String,
    /// The address the new node's API is reachable on.
    #[arg(long, value_parser = host_port, value_name = "HOST:PORT")]
    pub api_addr: String,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The file to write. Written next to itself under a temporary name and renamed once
    /// complete, so it is either the whole backup or not there.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Node ids start at 1.
fn node_id(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("node ids start at 1".to_owned()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!("{s:?} is not a node id (a positive integer)")),
    }
}

/// `host:port`, `1.2.3.4:port` or `[::1]:port`.
fn host_port(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not HOST:PORT");
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if port.parse::<u16>().is_err() || port.starts_with('+') {
        return Err(format!("{s:?}: {port:?} is not a port number"));
    }
    let host_ok = !host.is_empty()
        && !host.contains(':')
        && !host.contains('/')
        && !host.chars().any(|c| c.is_whitespace() || c.is_control());
    if !host_ok {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// The client with a per-request timeout of at least `floor`.
fn patient(ctx: &Ctx, floor: Duration) -> ApiClient {
    let client = ctx.client.clone();
    let timeout = client.timeout().max(floor);
    client.with_timeout(timeout)
}

pub(crate) async fn execute(ctx: &Ctx, command: ClusterCommand) -> Result<Output, CliError> {
    match command {
        ClusterCommand::Status => ctx.render(&ctx.client.cluster_status().await?),
        ClusterCommand::Digest => ctx.render(&ctx.client.cluster_digest().await?),
        ClusterCommand::Add(a) => {
            let request = JoinRequest {
                node_id: a.node_id,
                raft_addr: a.raft_addr,
                api_addr: a.api_addr,
            };
            let change = patient(ctx, LONG_TIMEOUT).add_member(&request).await?;
            ctx.render(&ClusterChanged {
                summary: format!("node {} added", a.node_id),
                change,
            })
        }
        ClusterCommand::Remove { node_id } => {
            let change = patient(ctx, CHANGE_TIMEOUT).remove_member(node_id).await?;
            ctx.render(&ClusterChanged {
                summary: format!("node {node_id} removed"),
                change,
            })
        }
        ClusterCommand::TransferLeader { to } => {
            let client = patient(ctx, TRANSFER_TIMEOUT);
            let change = client.transfer_leader(to).await?;
            let summary = match to {
                Some(to) => format!("node {to} leads"),
                None => "leadership transferred".to_owned(),
            };
            ctx.render(&ClusterChanged { summary, change })
        }
        ClusterCommand::Snapshot => ctx.render(&patient(ctx, CHANGE_TIMEOUT).snapshot().await?),
        ClusterCommand::Backup(a) => {
            let written = backup(&patient(ctx, LONG_TIMEOUT), &a.out, a.force).await?;
            ctx.render(&written)
        }
    }
}

/// Downloads the backup into a temporary file next to `out` and moves it into place.
async fn backup(client: &ApiClient, out: &Path, force: bool) -> Result<BackupWritten, CliError> {
    let shown = out.display().to_string();
    // Checked first, to fail before the server builds a snapshot; checked again (atomically)
    // when the file is moved into place.
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(exists(&shown));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| CliError::invalid_input("out", format!("{shown} is not a file name")))?
        .to_string_lossy()
        .into_owned();
    if out.is_dir() {
        return Err(CliError::invalid_input(
            "out",
            format!("{shown} is a directory"),
        ));
    }
    let (file, temp) = create_temp(&dir, &name).await?;
    let mut guard = TempGuard(Some(temp.clone()));
    let result = tokio::select! {
        r = download(client, file, &temp) => r,
        // (If Ctrl-C cannot be watched, this branch is disabled, not taken.)
        Ok(()) = tokio::signal::ctrl_c() => Err(CliError::Input {
            code: "interrupted",
            field: None,
            message: format!("the backup was interrupted; {shown} was not written"),
        }),
    };
    let (revision, bytes) = result?;
    if force {
        std::fs::rename(&temp, out)
            .map_err(|e| CliError::io(format!("cannot move the backup to {shown}: {e}")))?;
    } else {
        place_without_replacing(&temp, out, &shown)?;
    }
    guard.0 = None;
    // Make the rename itself durable; not every platform can sync a directory.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(BackupWritten {
        file: shown,
        bytes,
        revision,
    })
}

fn exists(shown: &str) -> CliError {
    CliError::Input {
        code: "file_exists",
        field: Some("out"),
        message: format!("{shown} exists; pass --force to replace it"),
    }
}

/// Creates `dir/.name.<unique>.partial` (never an existing file).
async fn create_temp(dir: &Path, name: &str) -> Result<(tokio::fs::File, PathBuf), CliError> {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let temp = dir.join(format!(".{name}.{pid}-{nanos}-{attempt}.partial"));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
        {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(CliError::io(format!(
                    "cannot create a file in {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    Err(CliError::io(format!(
        "cannot create a temporary file in {}",
        dir.display()
    )))
}

/// Writes the whole backup into `file` and syncs it; returns its revision and size.
async fn download(
    client: &ApiClient,
    mut file: tokio::fs::File,
    temp: &Path,
) -> Result<(Option<u64>, u64), CliError> {
    let write_error =
        |e: std::io::Error| CliError::io(format!("cannot write {}: {e}", temp.display()));
    let mut download = client.backup_download().await?;
    while let Some(chunk) = download.chunk().await? {
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    file.flush().await.map_err(write_error)?;
    file.sync_all().await.map_err(write_error)?;
    let bytes = download.received();
    if bytes == 0 {
        return Err(CliError::Input {
            code: "invalid_response",
            field: None,
            message: "the server sent an empty backup".to_owned(),
        });
    }
    Ok((download.revision(), bytes))
}

/// Moves `temp` to `out` unless `out` exists (checked atomically where the file system
/// supports hard links).
fn place_without_replacing(temp: &Path, out: &Path, shown: &str) -> Result<(), CliError> {
    match std::fs::hard_link(temp, out) {
        Ok(()) => {
            let _ = std::fs::remove_file(temp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(shown)),
        // No hard links here (some network or FUSE file systems): check, then rename.
        Err(_) => {
            if std::fs::symlink_metadata(out).is_ok() {
                return Err(exists(shown));
            }
            std::fs::rename(temp, out)
                .map_err(|e| CliError::io(format!("cannot move the backup to {shown}: {e}")))
        }
    }
}

/// Removes the temporary file unless it was moved into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: ClusterCommand,
    }

    fn parse(args: &[&str]) -> Result<ClusterCommand, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.c)
    }

    #[test]
    fn add_takes_an_id_and_two_addresses() {
        let c = parse(&[
            "add",
            "4",
            "--raft-addr",
            "10.0.0.4:9000",
            "--api-addr",
            "node4.internal:8080",
        ])
        .unwrap();
        let ClusterCommand::Add(a) = c else { panic!() };
        assert_eq!(
            (a.node_id, a.raft_addr.as_str(), a.api_addr.as_str()),
            (4, "10.0.0.4:9000", "node4.internal:8080")
        );
        assert!(
            parse(&[
                "add",
                "4",
                "--raft-addr",
                "[::1]:9000",
                "--api-addr",
                "[::1]:8080"
            ])
            .is_ok()
        );
    }

    #[test]
    fn bad_ids_and_addresses_are_usage_errors() {
        let cases: &[&[&str]] = &[
            &["add", "0", "--raft-addr", "a:1", "--api-addr", "a:2"],
            &["add", "x", "--raft-addr", "a:1", "--api-addr", "a:2"],
            &["add", "4", "--raft-addr", "a", "--api-addr", "a:2"],
            &["add", "4", "--raft-addr", "a:1", "--api-addr", ":2"],
            &["add", "4", "--raft-addr", "a:1", "--api-addr", "a:99999"],
            &["add", "4", "--raft-addr", "a:1", "--api-addr", "http://a:2"],
            &["add", "4", "--raft-addr", "a:1"],
            &["remove", "0"],
            &["remove"],
            &["transfer-leader", "--to", "-1"],
            &["backup"],
        ];
        for args in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn transfer_target_is_optional() {
        let ClusterCommand::TransferLeader { to } = parse(&["transfer-leader"]).unwrap() else {
            panic!()
        };
        assert_eq!(to, None);
        let ClusterCommand::TransferLeader { to } =
            parse(&["transfer-leader", "--to", "3"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(to, Some(3));
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "conflux-cli-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn an_existing_file_is_refused_before_any_request() {
        let dir = temp_dir();
        let out = dir.join("backup.snap");
        std::fs::write(&out, b"old").unwrap();
        // Port 9 (discard) is never contacted: the check comes first.
        let client = ApiClient::new("http://127.0.0.1:9").unwrap();
        let err = backup(&client, &out, false).await.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.line().starts_with("error: file_exists: ") && err.line().ends_with("(field: out)"),
            "{}",
            err.line()
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_download_leaves_nothing_behind() {
        let dir = temp_dir();
        let out = dir.join("backup.snap");
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let client = ApiClient::new(&format!("http://{addr}")).unwrap();
        let err = backup(&client, &out, false).await.unwrap_err();
        assert!(
            err.line().starts_with("error: unreachable: "),
            "{}",
            err.line()
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn placing_never_replaces_without_force() {
        let dir = temp_dir();
        let temp = dir.join(".b.partial");
        let out = dir.join("b.snap");
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&out, b"old").unwrap();
        let err = place_without_replacing(&temp, &out, "b.snap").unwrap_err();
        assert!(err.line().starts_with("error: file_exists: "));
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        std::fs::remove_file(&out).unwrap();
        place_without_replacing(&temp, &out, "b.snap").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert!(!temp.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
