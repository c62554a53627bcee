-- The security log. Times are UTC microseconds since the Unix epoch.

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY,
    at_us        INTEGER NOT NULL,
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
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- The head of the hash chain: the last sequence number and its hash. Appending locks this row,
-- so concurrent writers take turns and the chain cannot fork.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Every verification of a known token id, accepted or refused.
CREATE TABLE usage_records (
    id           INTEGER PRIMARY KEY,
    at_us        INTEGER NOT NULL,
    token_id     TEXT NOT NULL,
    workspace_id TEXT,
    client_ip    TEXT,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    status       INTEGER,
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
    at_us     INTEGER NOT NULL,
    client_ip TEXT
);
