-- Version 2: login throttling rows, and the indexes of the audit queries (newest first, by
-- tenant, by actor).

CREATE TABLE login_failures (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    at_ms    BIGINT NOT NULL
);
CREATE INDEX login_failures_username_at ON login_failures (username, at_ms);
CREATE INDEX login_failures_at ON login_failures (at_ms);

CREATE INDEX audit_log_time_id ON audit_log (time_ms DESC, id DESC);
CREATE INDEX audit_log_tenant_time_id ON audit_log (tenant, time_ms DESC, id DESC);
CREATE INDEX audit_log_actor_time_id ON audit_log (actor, time_ms DESC, id DESC);
