-- The security log. Times are UTC microseconds since the Unix epoch.

CREATE TABLE audit_events (
    seq          BIGINT PRIMARY KEY,
    at_us        BIGINT NOT NULL,
    workspace_id TEXT,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_kind  TEXT,
    target_id    TEXT,
    client_ip    TEXT,
    user_agent   TEXT,
    request_id   TEXT,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_id, seq);
CREATE INDEX audit_events_at ON audit_events (at_us);

-- Append-only: the database itself refuses to change or remove an event.
CREATE FUNCTION knowmind_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION knowmind_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION knowmind_audit_append_only();

-- The head of the hash chain: the last sequence number and its hash. Appending locks this row,
-- so concurrent writers (several server instances) take turns and the chain cannot fork.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Every verification of a known token id, accepted or refused.
CREATE TABLE usage_records (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_us        BIGINT NOT NULL,
    token_id     TEXT NOT NULL,
    workspace_id TEXT,
    client_ip    TEXT,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    status       BIGINT,
    user_agent   TEXT,
    outcome      TEXT NOT NULL
);
-- Queries are by token. Pruning by time scans the table (hourly); an index on at_us would cost
-- every insert a second index update (measured by the load bench).
CREATE INDEX usage_records_token ON usage_records (token_id, at_us);

-- The latest accepted use of each token, kept by the usage writer (and kept after old usage
-- records are pruned).
CREATE TABLE token_last_use (
    token_id  TEXT PRIMARY KEY,
    at_us     BIGINT NOT NULL,
    client_ip TEXT
);
