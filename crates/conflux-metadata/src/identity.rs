//! Users, sessions, service tokens, role bindings, login failures and the change counter.
//!
//! Invariant: every transaction that changes an identity table first bumps the single row of
//! `identity_state`. On PostgreSQL that row lock serialises identity writes across all nodes
//! (bootstrap relies on it to have exactly one winner); on SQLite `BEGIN IMMEDIATE` does the
//! same. A transaction that turns out to change nothing rolls back, so the counter moves only
//! when something changed.

use sqlx::Row;

use crate::error::from_sqlx;
use crate::{
    BindingRecord, IdentitySnapshot, MetadataError, MetadataStore, NewBinding, NewSession,
    NewToken, NewUser, SessionEntry, TokenEntry, TokenRecord, UserPatch, UserRecord, with_pool,
};

/// The role and scope of the bootstrap token's binding.
const BOOTSTRAP_ROLE: &str = "cluster_admin";
const BOOTSTRAP_SCOPE: &str = "*";

const BUMP_COUNTER: &str =
    "UPDATE identity_state SET change_counter = change_counter + 1 WHERE id = 1";

const USER_COLUMNS: &str =
    "username, password_hash, display_name, disabled, created_at_ms, updated_at_ms";
const TOKEN_COLUMNS: &str = "id, name, created_at_ms, expires_at_ms, created_by";
const BINDING_COLUMNS: &str = "id, principal, role, scope, created_at_ms, created_by";

/// Decodes a [`UserRecord`] from a row with [`USER_COLUMNS`].
macro_rules! user_from_row {
    ($row:expr) => {{
        let r = &$row;
        Ok::<_, sqlx::Error>(UserRecord {
            username: r.try_get("username")?,
            password_hash: r.try_get("password_hash")?,
            display_name: r.try_get("display_name")?,
            disabled: r.try_get("disabled")?,
            created_at_ms: r.try_get("created_at_ms")?,
            updated_at_ms: r.try_get("updated_at_ms")?,
        })
    }};
}

/// Decodes a [`TokenRecord`] from a row with [`TOKEN_COLUMNS`].
macro_rules! token_from_row {
    ($row:expr) => {{
        let r = &$row;
        Ok::<_, sqlx::Error>(TokenRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at_ms: r.try_get("created_at_ms")?,
            expires_at_ms: r.try_get("expires_at_ms")?,
            created_by: r.try_get("created_by")?,
        })
    }};
}

/// Decodes a [`BindingRecord`] from a row with [`BINDING_COLUMNS`].
macro_rules! binding_from_row {
    ($row:expr) => {{
        let r = &$row;
        Ok::<_, sqlx::Error>(BindingRecord {
            id: r.try_get("id")?,
            principal: r.try_get("principal")?,
            role: r.try_get("role")?,
            scope: r.try_get("scope")?,
            created_at_ms: r.try_get("created_at_ms")?,
            created_by: r.try_get("created_by")?,
        })
    }};
}

/// Inserts a [`NewToken`] inside transaction `$tx`.
macro_rules! insert_token {
    ($tx:ident, $t:expr) => {{
        let t: &NewToken = $t;
        sqlx::query(
            "INSERT INTO service_tokens (id, name, secret_hash, created_at_ms, expires_at_ms, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.secret_hash)
        .bind(t.created_at_ms)
        .bind(t.expires_at_ms)
        .bind(&t.created_by)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Inserts a [`NewBinding`] inside transaction `$tx`.
macro_rules! insert_binding {
    ($tx:ident, $b:expr) => {{
        let b: &NewBinding = $b;
        sqlx::query(
            "INSERT INTO role_bindings (id, principal, role, scope, created_at_ms, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&b.id)
        .bind(&b.principal)
        .bind(&b.role)
        .bind(&b.scope)
        .bind(b.created_at_ms)
        .bind(&b.created_by)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The principal string of a token.
fn token_principal(id: &str) -> String {
    format!("token:{id}")
}

/// The principal string of a user.
fn user_principal(username: &str) -> String {
    format!("user:{username}")
}

/// Converts a count read from the database (never negative) to `u32`, saturating.
fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl MetadataStore {
    /// Atomically: if there is no user and no token at all, inserts `token` and one binding
    /// (role "cluster_admin", scope "*", id `binding_id`) for principal "token:<id>" and
    /// returns true; otherwise inserts nothing and returns false. Exactly one of several nodes
    /// racing wins.
    pub async fn bootstrap(
        &self,
        token: &NewToken,
        binding_id: &str,
        now_ms: i64,
    ) -> Result<bool, MetadataError> {
        const CTX: &str = "bootstrapping the first token";
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                // Taking the counter's row lock first serialises racing nodes: the loser
                // waits here and then sees the winner's rows.
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                let principals: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM service_tokens)",
                )
                .fetch_one(&mut *tx)
                .await?;
                if principals != 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                insert_token!(tx, token);
                insert_binding!(
                    tx,
                    &NewBinding {
                        id: binding_id.to_owned(),
                        principal: token_principal(&token.id),
                        role: BOOTSTRAP_ROLE.to_owned(),
                        scope: BOOTSTRAP_SCOPE.to_owned(),
                        created_at_ms: now_ms,
                        created_by: token.created_by.clone(),
                    }
                );
                tx.commit().await?;
                Ok(true)
            }
            .await;
            res.map_err(|e| from_sqlx(CTX, e))
        })
    }

    /// Creates a user. `Conflict` if the username exists.
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRecord, MetadataError> {
        const CTX: &str = "creating user";
        with_pool!(self, |pool, d| {
            let res: Result<(), sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO users (username, password_hash, display_name, disabled, \
                     created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.display_name)
                .bind(false)
                .bind(user.created_at_ms)
                .bind(user.created_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await;
            res.map_err(|e| from_sqlx(CTX, e))
        })?;
        Ok(UserRecord {
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            display_name: user.display_name.clone(),
            disabled: false,
            created_at_ms: user.created_at_ms,
            updated_at_ms: user.created_at_ms,
        })
    }

    /// The user named `username`, with its password hash.
    pub async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Option<UserRecord>, sqlx::Error> = async {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
                )))
                .bind(username)
                .fetch_optional(pool)
                .await?;
                row.map(|r| user_from_row!(r)).transpose()
            }
            .await;
            res.map_err(|e| from_sqlx("reading user", e))
        })
    }

    /// Every user, ordered by username.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Vec<UserRecord>, sqlx::Error> = async {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users ORDER BY username"
                )))
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| user_from_row!(r)).collect()
            }
            .await;
            res.map_err(|e| from_sqlx("listing users", e))
        })
    }

    /// Changes any of password hash, disabled flag and display name. Disabling the user or
    /// changing its password deletes its sessions in the same transaction. `NotFound` if the
    /// user does not exist.
    pub async fn update_user(
        &self,
        username: &str,
        patch: &UserPatch,
        now_ms: i64,
    ) -> Result<UserRecord, MetadataError> {
        const CTX: &str = "updating user";
        let ends_sessions = patch.password_hash.is_some() || patch.disabled == Some(true);
        let set_display_name = patch.display_name.is_some();
        let display_name = patch.display_name.clone().flatten();
        let updated = with_pool!(self, |pool, d| {
            let res: Result<Option<UserRecord>, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE users SET \
                       password_hash = COALESCE($2, password_hash), \
                       disabled = COALESCE($3, disabled), \
                       display_name = CASE WHEN $4 THEN $5 ELSE display_name END, \
                       updated_at_ms = $6 \
                     WHERE username = $1 RETURNING {USER_COLUMNS}"
                )))
                .bind(username)
                .bind(&patch.password_hash)
                .bind(patch.disabled)
                .bind(set_display_name)
                .bind(&display_name)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let user = user_from_row!(row)?;
                if ends_sessions {
                    sqlx::query("DELETE FROM sessions WHERE username = $1")
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(user))
            }
            .await;
            res.map_err(|e| from_sqlx(CTX, e))
        })?;
        updated.ok_or_else(|| MetadataError::NotFound(format!("user {username}")))
    }

    /// Deletes the user, its sessions and every binding of principal "user:<name>". false if
    /// there was no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                let deleted = sqlx::query("DELETE FROM users WHERE username = $1")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM sessions WHERE username = $1")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM role_bindings WHERE principal = $1")
                    .bind(user_principal(username))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
            .await;
            res.map_err(|e| from_sqlx("deleting user", e))
        })
    }

    /// Stores a login session. `NotFound` if the user does not exist, `Conflict` if the id
    /// does.
    pub async fn create_session(&self, s: &NewSession) -> Result<(), MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<(), sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO sessions (id, username, secret_hash, created_at_ms, \
                     expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.id)
                .bind(&s.username)
                .bind(&s.secret_hash)
                .bind(s.created_at_ms)
                .bind(s.expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await;
            res.map_err(|e| from_sqlx("creating session", e))
        })
    }

    /// Deletes a session (logout). false if there was none.
    pub async fn delete_session(&self, id: &str) -> Result<bool, MetadataError> {
        self.delete_one("DELETE FROM sessions WHERE id = $1", id, "deleting session")
            .await
    }

    /// Inserts the token and its bindings in one transaction. Each binding's principal is
    /// stored as "token:<id>" whatever the caller put there.
    pub async fn create_token(
        &self,
        t: &NewToken,
        bindings: &[NewBinding],
    ) -> Result<TokenRecord, MetadataError> {
        let principal = token_principal(&t.id);
        with_pool!(self, |pool, d| {
            let res: Result<(), sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                insert_token!(tx, t);
                for b in bindings {
                    let b = NewBinding {
                        principal: principal.clone(),
                        ..b.clone()
                    };
                    insert_binding!(tx, &b);
                }
                tx.commit().await
            }
            .await;
            res.map_err(|e| from_sqlx("creating token", e))
        })?;
        Ok(TokenRecord {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at_ms: t.created_at_ms,
            expires_at_ms: t.expires_at_ms,
            created_by: t.created_by.clone(),
        })
    }

    /// Every token (expired ones too, until purged), never the hash; ordered by created_at, id.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Vec<TokenRecord>, sqlx::Error> = async {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM service_tokens ORDER BY created_at_ms, id"
                )))
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| token_from_row!(r)).collect()
            }
            .await;
            res.map_err(|e| from_sqlx("listing tokens", e))
        })
    }

    /// One token, never the hash.
    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Option<TokenRecord>, sqlx::Error> = async {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM service_tokens WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(pool)
                .await?;
                row.map(|r| token_from_row!(r)).transpose()
            }
            .await;
            res.map_err(|e| from_sqlx("reading token", e))
        })
    }

    /// Deletes the token and its bindings. false if there was no such token.
    pub async fn delete_token(&self, id: &str) -> Result<bool, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                let deleted = sqlx::query("DELETE FROM service_tokens WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM role_bindings WHERE principal = $1")
                    .bind(token_principal(id))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
            .await;
            res.map_err(|e| from_sqlx("deleting token", e))
        })
    }

    /// Stores a role binding. `Conflict` if the id exists.
    pub async fn create_binding(&self, b: &NewBinding) -> Result<BindingRecord, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<(), sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                insert_binding!(tx, b);
                tx.commit().await
            }
            .await;
            res.map_err(|e| from_sqlx("creating role binding", e))
        })?;
        Ok(BindingRecord::from(b))
    }

    /// Bindings, optionally only of one principal and/or exactly one scope; ordered by
    /// created_at, id.
    pub async fn list_bindings(
        &self,
        principal: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<BindingRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Vec<BindingRecord>, sqlx::Error> = async {
                // NULL parameters disable their filter.
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {BINDING_COLUMNS} FROM role_bindings \
                     WHERE ($1 IS NULL OR principal = $1) AND ($2 IS NULL OR scope = $2) \
                     ORDER BY created_at_ms, id"
                )))
                .bind(principal)
                .bind(scope)
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| binding_from_row!(r)).collect()
            }
            .await;
            res.map_err(|e| from_sqlx("listing role bindings", e))
        })
    }

    /// One binding.
    pub async fn get_binding(&self, id: &str) -> Result<Option<BindingRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Option<BindingRecord>, sqlx::Error> = async {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {BINDING_COLUMNS} FROM role_bindings WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(pool)
                .await?;
                row.map(|r| binding_from_row!(r)).transpose()
            }
            .await;
            res.map_err(|e| from_sqlx("reading role binding", e))
        })
    }

    /// Deletes one binding. false if there was none.
    pub async fn delete_binding(&self, id: &str) -> Result<bool, MetadataError> {
        self.delete_one(
            "DELETE FROM role_bindings WHERE id = $1",
            id,
            "deleting role binding",
        )
        .await
    }

    /// Deletes every binding whose scope is `scope` or lies under it ("t" removes "t", "t/a"
    /// and "t/a/e" but not "tx"). Returns how many.
    pub async fn delete_bindings_under(&self, scope: &str) -> Result<u64, MetadataError> {
        let prefix = format!("{scope}/");
        with_pool!(self, |pool, d| {
            let res: Result<u64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                // A prefix compared with substr, not LIKE: scopes may contain '_' and '%'.
                let deleted = sqlx::query(
                    "DELETE FROM role_bindings \
                     WHERE scope = $1 OR substr(scope, 1, length($2)) = $2",
                )
                .bind(scope)
                .bind(&prefix)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                Ok(deleted)
            }
            .await;
            res.map_err(|e| from_sqlx("deleting role bindings under a scope", e))
        })
    }

    /// Reads users, unexpired sessions and tokens, bindings and the change counter in one
    /// consistent snapshot.
    pub async fn load_identity(&self, now_ms: i64) -> Result<IdentitySnapshot, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<IdentitySnapshot, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_snapshot).await?;
                let counter: i64 =
                    sqlx::query_scalar("SELECT change_counter FROM identity_state WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                let users = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users ORDER BY username"
                )))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| user_from_row!(r))
                .collect::<Result<Vec<_>, _>>()?;
                let sessions = sqlx::query(
                    "SELECT id, username, secret_hash, expires_at_ms FROM sessions \
                     WHERE expires_at_ms > $1 ORDER BY id",
                )
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| {
                    Ok::<_, sqlx::Error>(SessionEntry {
                        id: r.try_get("id")?,
                        username: r.try_get("username")?,
                        secret_hash: r.try_get("secret_hash")?,
                        expires_at_ms: r.try_get("expires_at_ms")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
                let tokens = sqlx::query(
                    "SELECT id, name, secret_hash, expires_at_ms FROM service_tokens \
                     WHERE expires_at_ms IS NULL OR expires_at_ms > $1 ORDER BY id",
                )
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| {
                    Ok::<_, sqlx::Error>(TokenEntry {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        secret_hash: r.try_get("secret_hash")?,
                        expires_at_ms: r.try_get("expires_at_ms")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
                let bindings = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {BINDING_COLUMNS} FROM role_bindings ORDER BY created_at_ms, id"
                )))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| binding_from_row!(r))
                .collect::<Result<Vec<_>, _>>()?;
                tx.commit().await?;
                Ok(IdentitySnapshot {
                    counter,
                    users,
                    sessions,
                    tokens,
                    bindings,
                })
            }
            .await;
            res.map_err(|e| from_sqlx("loading identity", e))
        })
    }

    /// The identity change counter: one row read.
    pub async fn change_counter(&self) -> Result<i64, MetadataError> {
        with_pool!(self, |pool, _d| {
            sqlx::query_scalar("SELECT change_counter FROM identity_state WHERE id = 1")
                .fetch_one(pool)
                .await
                .map_err(|e| from_sqlx("reading the change counter", e))
        })
    }

    /// Records a failed login for `username` at `now_ms` and returns how many failures it has
    /// within (now_ms - window_ms, now_ms], this one included. Rows of any username older than
    /// the window are pruned.
    pub async fn record_login_failure(
        &self,
        username: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, MetadataError> {
        let since = now_ms.saturating_sub(window_ms);
        with_pool!(self, |pool, d| {
            let res: Result<i64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query("INSERT INTO login_failures (username, at_ms) VALUES ($1, $2)")
                    .bind(username)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM login_failures WHERE at_ms <= $1")
                    .bind(since)
                    .execute(&mut *tx)
                    .await?;
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM login_failures \
                     WHERE username = $1 AND at_ms > $2 AND at_ms <= $3",
                )
                .bind(username)
                .bind(since)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(n)
            }
            .await;
            res.map(to_u32)
                .map_err(|e| from_sqlx("recording a login failure", e))
        })
    }

    /// How many failures `username` has within (now_ms - window_ms, now_ms].
    pub async fn login_failures(
        &self,
        username: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, MetadataError> {
        with_pool!(self, |pool, _d| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM login_failures \
                 WHERE username = $1 AND at_ms > $2 AND at_ms <= $3",
            )
            .bind(username)
            .bind(now_ms.saturating_sub(window_ms))
            .bind(now_ms)
            .fetch_one(pool)
            .await
            .map(to_u32)
            .map_err(|e| from_sqlx("counting login failures", e))
        })
    }

    /// Forgets `username`'s failures (after a successful login).
    pub async fn clear_login_failures(&self, username: &str) -> Result<(), MetadataError> {
        with_pool!(self, |pool, _d| {
            sqlx::query("DELETE FROM login_failures WHERE username = $1")
                .bind(username)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| from_sqlx("clearing login failures", e))
        })
    }

    /// Deletes sessions and tokens expired at `now_ms`, and the expired tokens' bindings.
    /// Returns how many sessions and tokens went.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<u64, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<u64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                sqlx::query(
                    "DELETE FROM role_bindings WHERE principal IN \
                     (SELECT 'token:' || id FROM service_tokens \
                      WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1)",
                )
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let tokens = sqlx::query(
                    "DELETE FROM service_tokens \
                     WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1",
                )
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let purged = tokens + sessions;
                if purged == 0 {
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                Ok(purged)
            }
            .await;
            res.map_err(|e| from_sqlx("purging expired sessions and tokens", e))
        })
    }

    /// Runs a one-row identity delete (`$1` = `id`) with the counter bump; false if no row.
    async fn delete_one(
        &self,
        sql: &'static str,
        id: &str,
        context: &str,
    ) -> Result<bool, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(BUMP_COUNTER).execute(&mut *tx).await?;
                let deleted = sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }
            .await;
            res.map_err(|e| from_sqlx(context, e))
        })
    }
}
