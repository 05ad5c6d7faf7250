//! The crate's error type and the one mapping from sqlx errors to it.
//!
//! Messages carry a short context ("creating user", "querying audit") and the database's
//! primary message, never bound values: no secret or password hash can reach a log through
//! an error.

/// Everything the metadata store can fail with. The server maps `Unavailable` to 503
/// `metadata_unavailable`, `Conflict` to 409, `NotFound` to 404, `Invalid` to 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The database cannot be reached, a connection broke, the pool timed out, a statement
    /// timed out or the database is busy or shutting down: worth retrying later.
    #[error("metadata database unavailable: {0}")]
    Unavailable(String),
    /// A unique key already exists (username, token id, binding id, session id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The thing named does not exist (or a row refers to something that does not).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller passed something unusable: a bad URL, a malformed cursor, a value the
    /// database rejects as data.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Applying the embedded schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Anything else.
    #[error("metadata store error: {0}")]
    Other(String),
}

/// PostgreSQL SQLSTATE classes and codes that mean "the database is not usable right now".
fn pg_code_is_unavailable(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections, disk full)
        || code.starts_with("57") // operator intervention: shutdown, statement timeout (57014)
        || code.starts_with("40") // serialization failure, deadlock: retry later
        || code == "55P03" // lock not available
}

/// SQLite primary result codes (the low byte of the extended code) with the same meaning:
/// BUSY, LOCKED, IOERR, CANTOPEN, FULL, PROTOCOL. SQLite codes have at most four digits, so a
/// five-character SQLSTATE is never read as one.
fn sqlite_code_is_unavailable(code: &str) -> bool {
    if code.len() > 4 {
        return false;
    }
    code.parse::<i64>()
        .map(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14 | 15))
        .unwrap_or(false)
}

/// Maps a sqlx error met while doing `context` (e.g. "creating user").
pub(crate) fn from_sqlx(context: &str, e: sqlx::Error) -> MetadataError {
    use sqlx::error::ErrorKind;
    match e {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    return MetadataError::Conflict(format!("{context}: already exists"));
                }
                ErrorKind::ForeignKeyViolation => {
                    return MetadataError::NotFound(format!(
                        "{context}: a row it refers to does not exist"
                    ));
                }
                _ => {}
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if pg_code_is_unavailable(&code) || sqlite_code_is_unavailable(&code) {
                MetadataError::Unavailable(format!("{context}: {message}"))
            } else if code.starts_with("22") || code.starts_with("23") {
                // Data exceptions (bad encoding, out of range) and other constraint failures.
                MetadataError::Invalid(format!("{context}: {message}"))
            } else {
                MetadataError::Other(format!("{context}: {message} (code {code})"))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => MetadataError::Unavailable(format!("{context}: {e}")),
        sqlx::Error::Configuration(_) => MetadataError::Invalid(format!("{context}: {e}")),
        sqlx::Error::Migrate(m) => MetadataError::Migration(format!("{context}: {m}")),
        other => MetadataError::Other(format!("{context}: {other}")),
    }
}

/// Maps a migration error; connection trouble while migrating is still `Unavailable`.
pub(crate) fn from_migrate(e: sqlx::migrate::MigrateError) -> MetadataError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => {
            match from_sqlx("applying migrations", inner) {
                MetadataError::Unavailable(m) => MetadataError::Unavailable(m),
                other => MetadataError::Migration(other.to_string()),
            }
        }
        other => MetadataError::Migration(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_codes() {
        assert!(pg_code_is_unavailable("08006"));
        assert!(pg_code_is_unavailable("57P01"));
        assert!(pg_code_is_unavailable("57014"));
        assert!(!pg_code_is_unavailable("23505"));
        assert!(sqlite_code_is_unavailable("5"));
        assert!(sqlite_code_is_unavailable("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(!sqlite_code_is_unavailable("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!sqlite_code_is_unavailable("57014"));
        assert!(!sqlite_code_is_unavailable(""));
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(matches!(
            from_sqlx("x", sqlx::Error::PoolTimedOut),
            MetadataError::Unavailable(_)
        ));
    }
}
