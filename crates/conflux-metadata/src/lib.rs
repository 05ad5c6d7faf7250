//! The metadata DB of Conflux, and the only crate that knows SQL.
//!
//! It owns the relational side of contract section 1: users, login sessions, service tokens,
//! role bindings, login-failure throttling rows, the audit log, and webhooks with the durable
//! queue of their deliveries, stored in PostgreSQL (clusters) or SQLite (the embedded single
//! node) behind one [`MetadataStore`] with the same behaviour on both. It owns the schema
//! (embedded migrations, one directory per backend, applied on [`MetadataStore::connect`]) and
//! the identity change counter nodes poll to reload their in-memory view.
//!
//! It does not hash or verify passwords and secrets (callers pass hashes), decide who may do
//! what (that is `conflux-domain`'s access model), stamp times (callers pass unix milliseconds),
//! or know HTTP: [`MetadataError`] says what went wrong and the server maps it to a status.
//! Nothing of the config plane (tenants, configs, versions) lives here: that is the Raft state
//! machine's.

mod audit;
mod error;
mod identity;
mod types;
mod webhooks;

pub use error::MetadataError;
pub use types::{
    AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT, AuditPage, AuditQuery, AuditRecord, BackendKind,
    BindingRecord, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT,
    IdentitySnapshot, NewAuditRecord, NewBinding, NewSession, NewToken, NewUser, PoolSettings,
    SessionEntry, TokenEntry, TokenRecord, UserPatch, UserRecord,
};
pub use webhooks::{
    AttemptRecord, DELIVERY_LIST_MAX, DeliveryOutcome, DeliveryRecord, DeliveryStatus, DueDelivery,
    NewDelivery, NewWebhook, WebhookRecord,
};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use error::{from_migrate, from_sqlx};

/// The embedded PostgreSQL schema migrations.
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The embedded SQLite schema migrations.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Extra time [`MetadataStore::connect`] allows beyond the acquire timeout before giving up,
/// as a backstop should the pool's own deadline not fire.
const CONNECT_SLACK: Duration = Duration::from_secs(1);
/// How often a SQLite migration is attempted when another process migrates the same file
/// at the same moment (the loser sees the tables half made and retries).
const SQLITE_MIGRATE_ATTEMPTS: u32 = 5;

/// Serialises SQLite migrations inside one process: SQLite has no migration lock, so stores
/// opened on the same file at the same time would otherwise race to create the tables.
static SQLITE_MIGRATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The statements that differ between the backends.
#[derive(Clone, Copy)]
struct Dialect {
    /// Starts a transaction that writes. SQLite takes the write lock up front (waiting up to
    /// the busy timeout) so a transaction never fails halfway with a stale read snapshot.
    begin_write: &'static str,
    /// Starts a read-only transaction seeing one consistent snapshot.
    begin_snapshot: &'static str,
    /// Appended to the SELECT that claims due webhook deliveries: on PostgreSQL, nodes
    /// claiming at once skip each other's rows instead of waiting; SQLite's write transaction
    /// already excludes every other writer.
    claim_lock: &'static str,
}

const PG_DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    claim_lock: " FOR UPDATE OF d SKIP LOCKED",
};
// A deferred SQLite transaction in WAL mode keeps the snapshot of its first read to the end.
const SQLITE_DIALECT: Dialect = Dialect {
    begin_write: "BEGIN IMMEDIATE",
    begin_snapshot: "BEGIN",
    claim_lock: "",
};

/// Runs `$body` with `$pool` bound to the concrete pool and `$dialect` to its [`Dialect`].
/// The body is compiled once per backend, so the same query text serves both (both accept
/// `$1` placeholders).
macro_rules! with_pool {
    ($store:expr, |$pool:ident, $dialect:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Postgres($pool) => {
                #[allow(unused_variables)]
                let $dialect = $crate::PG_DIALECT;
                $body
            }
            $crate::Pool::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $dialect = $crate::SQLITE_DIALECT;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// A handle on the metadata DB: a connection pool. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct MetadataStore {
    pool: Pool,
}

impl fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataStore")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Which backend a URL names, or `Invalid`.
fn backend_of(url: &str) -> Result<BackendKind, MetadataError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(BackendKind::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(BackendKind::Sqlite)
    } else {
        Err(MetadataError::Invalid(
            "metadata URL must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

impl MetadataStore {
    /// Opens a pool on `url` and applies the embedded migrations.
    ///
    /// `url` is `postgres://user[:password]@host[:port]/db[?params]` (or `postgresql://`), or
    /// `sqlite:///abs/path/metadata.db` / `sqlite://relative/path.db` (the file is created if
    /// missing, in WAL mode, with foreign keys on; its directory must exist). Fails with
    /// `Unavailable` within about the acquire timeout if the database cannot be reached, and
    /// with `Invalid` for a URL it cannot parse (the message never repeats the URL, which may
    /// hold a password).
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, MetadataError> {
        let kind = backend_of(url)?;
        let bound = settings.acquire_timeout + CONNECT_SLACK;
        let max_connections = settings.max_connections.max(1);
        let pool = match kind {
            BackendKind::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| MetadataError::Invalid(format!("PostgreSQL URL: {e}")))?
                    .application_name("conflux")
                    .options([(
                        "statement_timeout",
                        settings.statement_timeout.as_millis().max(1),
                    )]);
                let connecting = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .test_before_acquire(true)
                    .connect_with(options);
                let pool = tokio::time::timeout(bound, connecting)
                    .await
                    .map_err(|_| {
                        MetadataError::Unavailable("connecting to PostgreSQL: timed out".into())
                    })?
                    .map_err(|e| from_sqlx("connecting to PostgreSQL", e))?;
                Pool::Postgres(pool)
            }
            BackendKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| MetadataError::Invalid(format!("SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(settings.statement_timeout)
                    .foreign_keys(true);
                let connecting = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .test_before_acquire(true)
                    .connect_with(options);
                let pool = tokio::time::timeout(bound, connecting)
                    .await
                    .map_err(|_| {
                        MetadataError::Unavailable("opening the SQLite database: timed out".into())
                    })?
                    .map_err(|e| from_sqlx("opening the SQLite database", e))?;
                Pool::Sqlite(pool)
            }
        };
        let store = MetadataStore { pool };
        if let Err(e) = store.migrate().await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), MetadataError> {
        match &self.pool {
            // sqlx's PostgreSQL migrator holds an advisory lock: nodes starting together
            // migrate one after the other.
            Pool::Postgres(pool) => PG_MIGRATOR.run(pool).await.map_err(from_migrate),
            Pool::Sqlite(pool) => {
                let _guard = SQLITE_MIGRATE_LOCK.lock().await;
                let mut attempt = 1;
                loop {
                    match SQLITE_MIGRATOR.run(pool).await.map_err(from_migrate) {
                        Ok(()) => return Ok(()),
                        Err(e) if attempt >= SQLITE_MIGRATE_ATTEMPTS => return Err(e),
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> BackendKind {
        match self.pool {
            Pool::Postgres(_) => BackendKind::Postgres,
            Pool::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// Runs a trivial query: `Ok` when the database answers.
    pub async fn ping(&self) -> Result<(), MetadataError> {
        with_pool!(self, |pool, _d| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| from_sqlx("ping", e))
        })
    }

    /// Closes the pool, waiting for connections in use to be returned. Later calls on this
    /// store (or its clones) fail with `Unavailable`.
    pub async fn close(&self) {
        with_pool!(self, |pool, _d| pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes() {
        assert_eq!(backend_of("postgres://h/db"), Ok(BackendKind::Postgres));
        assert_eq!(backend_of("postgresql://h/db"), Ok(BackendKind::Postgres));
        assert_eq!(backend_of("sqlite:///tmp/x.db"), Ok(BackendKind::Sqlite));
        assert!(matches!(
            backend_of("mysql://h/db"),
            Err(MetadataError::Invalid(_))
        ));
    }
}
