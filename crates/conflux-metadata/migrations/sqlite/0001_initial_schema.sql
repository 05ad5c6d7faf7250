-- Conflux metadata DB, SQLite, version 1: identity (users, sessions, service tokens, role
-- bindings), the identity change counter and the audit log. Times are unix milliseconds (INTEGER)
-- in every table, as in the PostgreSQL schema.

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    display_name  TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_username ON sessions (username);
CREATE INDEX sessions_expires ON sessions (expires_at_ms);

CREATE TABLE service_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    created_by    TEXT NOT NULL
);

CREATE TABLE role_bindings (
    id            TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    role          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX role_bindings_principal ON role_bindings (principal);
CREATE INDEX role_bindings_scope ON role_bindings (scope);

-- One row. Every identity write bumps it in its transaction (BEGIN IMMEDIATE serialises
-- identity writes; bootstrap relies on it) and nodes poll the value to reload.
CREATE TABLE identity_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    change_counter INTEGER NOT NULL
);
INSERT INTO identity_state (id, change_counter) VALUES (1, 0);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    record_key  TEXT NOT NULL UNIQUE,
    time_ms     INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    tenant      TEXT,
    app         TEXT,
    env         TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    revision    INTEGER,
    request_id  TEXT NOT NULL,
    source_ip   TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    details     TEXT NOT NULL
);
