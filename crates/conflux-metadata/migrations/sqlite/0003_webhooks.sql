-- Version 3: webhooks (contract section 7), the durable queue of their deliveries and every
-- delivery attempt. A webhook's secret is stored only as an envelope-encrypted blob the
-- server makes with its KMS; this schema never sees it in the clear. Deleting a webhook
-- deletes its deliveries and their attempts (the store also deletes them explicitly).

CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    -- Event names joined by commas (names never contain one).
    events        TEXT NOT NULL,
    -- NULL: events of every tenant.
    tenant        TEXT,
    secret_sealed TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- Derived from the audit outbox key, the event and the webhook: enqueuing the same event
    -- again (a re-drain after a crash or a leader change) inserts nothing.
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    -- The exact JSON body sent (and signed) at every attempt.
    payload         TEXT NOT NULL,
    -- pending | delivered | failed
    status          TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    -- When a pending delivery is due (a claimed one: when its claim lapses); NULL once final.
    next_attempt_ms INTEGER,
    delivered_at_ms INTEGER,
    attempt_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at_ms DESC, id DESC);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    time_ms     INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
