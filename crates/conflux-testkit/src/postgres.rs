//! Throwaway PostgreSQL servers for tests of the metadata DB.
//!
//! [`TestPostgres::start`] runs `initdb` in a new temporary directory and starts a server on
//! a free loopback port with its socket in that directory (fsync off: nothing here must
//! survive a crash). Every test then takes its own database with
//! [`TestPostgres::fresh_database`], so tests sharing one server ([`TestPostgres::shared`],
//! one per test binary) never see each other's rows. The server is stopped and its directory
//! removed when the handle is dropped, or, for the shared one (a static is never dropped), by
//! a small watchdog process once the test process has exited. Only the server this handle
//! started is ever stopped, through `pg_ctl` on its own data directory.
//!
//! The binaries come from `$CONFLUX_PG_BIN` or the newest `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package, installed by `scripts/setup.sh`). `initdb` refuses to run as root, so
//! when the tests run as root the server tools run as the `postgres` user through `runuser`.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{Context, Result, anyhow, bail};

/// How many times [`TestPostgres::start`] tries a new port when the one it picked was taken
/// before the server bound it.
const START_ATTEMPTS: u32 = 3;
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// `max_connections` of the test server: many stores with pools of 8 share it.
const MAX_CONNECTIONS: u32 = 200;

/// A PostgreSQL server owned by a test: its data directory, port and socket directory.
#[derive(Debug)]
pub struct TestPostgres {
    bin_dir: PathBuf,
    /// Owns everything: `data/` (the cluster), the socket, the logs. Removed on drop.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    port: u16,
    /// Whether the server tools must run as the `postgres` user (the tests run as root).
    run_as_postgres: bool,
    /// Stops the server if this process dies without dropping the handle.
    watchdog: Mutex<Option<Child>>,
    next_database: AtomicU64,
}

/// The directory holding `initdb`, `pg_ctl` and `createdb`.
fn find_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CONFLUX_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("pg_ctl").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries under {} (run scripts/setup.sh, which installs \
             Debian's postgresql package, or set CONFLUX_PG_BIN)",
            base.display()
        )
    })
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> Result<bool> {
    Ok(std::fs::metadata("/proc/self")
        .context("reading /proc/self")?
        .uid()
        == 0)
}

/// Runs `cmd`, with its output going to `out` (a file, so that a daemon it starts cannot hold
/// a pipe of ours open), and fails with that output if it fails.
fn run_logged(mut cmd: Command, out: &Path, what: &str) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        let output = std::fs::read_to_string(out).unwrap_or_default();
        bail!("{what} failed ({status}):\n{output}");
    }
    Ok(())
}

impl TestPostgres {
    /// Initialises a new cluster in a temporary directory and starts a server on a free
    /// loopback port.
    pub fn start() -> Result<TestPostgres> {
        let bin_dir = find_bin_dir()?;
        let run_as_postgres = running_as_root()?;
        let dir = tempfile::Builder::new()
            .prefix("conflux-pg-")
            .tempdir()
            .context("creating the PostgreSQL directory")?;
        let root = dir.path().to_path_buf();
        let mut pg = TestPostgres {
            bin_dir,
            dir: Some(dir),
            root,
            port: 0,
            run_as_postgres,
            watchdog: Mutex::new(None),
            next_database: AtomicU64::new(0),
        };
        if run_as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pg.root)
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "chown postgres {} failed: is there a postgres user?",
                    pg.root.display()
                );
            }
        }
        let mut initdb = pg.tool("initdb");
        initdb
            .arg("-D")
            .arg(pg.data_dir())
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C");
        run_logged(initdb, &pg.root.join("initdb.out"), "initdb")?;
        pg.spawn_watchdog()?;
        let mut attempt = 1;
        loop {
            pg.port = crate::free_port()?;
            match pg.start_again() {
                Ok(()) => return Ok(pg),
                Err(e) if attempt >= START_ATTEMPTS => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    }

    /// One server for the whole test binary, started on first use. It is stopped (and its
    /// directory removed) by a watchdog when the process exits. Do not stop it: tests
    /// needing an outage start their own with [`TestPostgres::start`].
    pub fn shared() -> Result<&'static TestPostgres> {
        static SHARED: OnceLock<std::result::Result<TestPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestPostgres::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("starting the shared PostgreSQL server: {e}"))
    }

    /// Creates a new, uniquely named, empty database and returns its URL.
    pub fn fresh_database(&self) -> Result<String> {
        let name = self.create_database()?;
        Ok(self.url_for(&name))
    }

    /// Like [`TestPostgres::fresh_database`], with a URL that reaches the server through its
    /// Unix socket: a path in the file system, so processes in other network namespaces
    /// (the chaos harness's nodes) reach it too.
    pub fn fresh_database_on_socket(&self) -> Result<String> {
        let name = self.create_database()?;
        Ok(format!(
            "postgres://postgres@localhost:{}/{name}?host={}",
            self.port,
            self.root.display()
        ))
    }

    fn create_database(&self) -> Result<String> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("conflux_test_{}_{n}", std::process::id());
        let out = Command::new(self.bin_dir.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .stdin(Stdio::null())
            .output()
            .context("running createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(name)
    }

    /// The URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data: for outage tests.
    pub fn stop(&self) -> Result<()> {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D").arg(self.data_dir()).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_WAIT_SECS,
            "stop",
        ]);
        run_logged(cmd, &self.root.join("pg_ctl-stop.out"), "pg_ctl stop")
    }

    /// Starts the server (again) on the same port and data directory, waiting until it
    /// accepts connections.
    pub fn start_again(&self) -> Result<()> {
        let server_options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections={MAX_CONNECTIONS}",
            self.root.display(),
            self.port
        );
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(server_options)
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "start"]);
        // Its own process group: a Ctrl-C meant for the test run leaves the server to the
        // watchdog, which also removes the directory.
        cmd.process_group(0);
        run_logged(cmd, &self.root.join("pg_ctl-start.out"), "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            anyhow!("{e:#}\nserver log:\n{log}")
        })
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A command running server tool `name`, as the `postgres` user when we are root.
    fn tool(&self, name: &str) -> Command {
        let path = self.bin_dir.join(name);
        if self.run_as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// Starts a `sh` process that waits for this process to exit, then stops the server
    /// immediately and removes the directory. It holds none of our pipes.
    fn spawn_watchdog(&self) -> Result<()> {
        const SCRIPT: &str = r#"
parent=$1; pg_ctl=$2; root=$3; as_postgres=$4
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
if [ "$as_postgres" = 1 ]; then
    runuser -u postgres -- "$pg_ctl" -D "$root/data" -m immediate stop
else
    "$pg_ctl" -D "$root/data" -m immediate stop
fi
rm -rf "$root"
"#;
        let child = Command::new("sh")
            .args(["-c", SCRIPT, "conflux-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(&self.root)
            .arg(if self.run_as_postgres { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the PostgreSQL watchdog")?;
        *self.watchdog.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        Ok(())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = watchdog {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.data_dir().join("postmaster.pid").exists() {
            let mut cmd = self.tool("pg_ctl");
            cmd.arg("-D").arg(self.data_dir()).args([
                "-m",
                "immediate",
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "stop",
            ]);
            let _ = run_logged(cmd, &self.root.join("pg_ctl-drop.out"), "pg_ctl stop");
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
