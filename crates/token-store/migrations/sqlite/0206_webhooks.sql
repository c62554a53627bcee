-- Webhooks: endpoints a workspace registers, the deliveries owed to each, and every attempt.
--
-- The outbox is the audit log itself: every change is an audit event written in the change's
-- transaction, and each endpoint keeps a cursor (the last audit sequence number fanned out).
-- Fan-out inserts one delivery per (endpoint, event); the unique key makes it idempotent when
-- two instances fan out the same range. A delivery is sent under a lease (leased_until_us), so
-- one instance sends it at a time.
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    secret_sealed TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    removed_at_us BIGINT,
    cursor_seq    BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_seq       BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_us BIGINT NOT NULL,
    leased_until_us BIGINT,
    delivered_at_us BIGINT,
    UNIQUE (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_us);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt     BIGINT NOT NULL,
    at_us       BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Time-based notices (a token expiring in 14, 7 or 1 days; due for rotation), each given once:
-- the primary key decides which instance writes the event.
CREATE TABLE token_notices (
    token_id TEXT NOT NULL,
    kind     TEXT NOT NULL,
    at_us    BIGINT NOT NULL,
    PRIMARY KEY (token_id, kind)
);
