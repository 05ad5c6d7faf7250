-- Conflux metadata DB, PostgreSQL, version 1: identity (users, sessions, service tokens, role
-- bindings), the identity change counter and the audit log. Times are unix milliseconds (BIGINT)
-- in every table, as in the SQLite schema.

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    display_name  TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX sessions_username ON sessions (username);
CREATE INDEX sessions_expires ON sessions (expires_at_ms);

CREATE TABLE service_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    created_by    TEXT NOT NULL
);

CREATE TABLE role_bindings (
    id            TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    role          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX role_bindings_principal ON role_bindings (principal);
CREATE INDEX role_bindings_scope ON role_bindings (scope);

-- One row. Every identity write bumps it first in its transaction: that row lock serialises
-- identity writes across nodes (bootstrap relies on it) and nodes poll the value to reload.
CREATE TABLE identity_state (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    change_counter BIGINT NOT NULL
);
INSERT INTO identity_state (id, change_counter) VALUES (1, 0);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_key  TEXT NOT NULL UNIQUE,
    time_ms     BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    tenant      TEXT,
    app         TEXT,
    env         TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    revision    BIGINT,
    request_id  TEXT NOT NULL,
    source_ip   TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    details     JSONB NOT NULL
);
