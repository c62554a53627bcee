-- New usage records are appended here, without a per-token index: with many tokens in use,
-- nearly every record would land on a different page of that index, and each commit rewrites
-- every page it touched (measured by the load bench: about half the cost of recording a call).
-- The usage writer moves them into usage_records in bulk, sorted by token, so that one pass
-- through the index serves many records. Readers look at both tables.
CREATE TABLE usage_recent (
    -- AUTOINCREMENT: ids never go back when the table is emptied, so they stay unique across
    -- both tables and keep their order (the paging cursor).
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO sqlite_sequence (name, seq)
SELECT 'usage_recent', COALESCE(MAX(id), 0) FROM usage_records;

-- usage_records is only ever read by token (pruning by time scans it): store it clustered by
-- token, so a token's records sit together, newest last, and the writer's sorted moves append
-- to each token's run instead of updating a separate index.
CREATE TABLE usage_records_by_token (
    token_id     TEXT NOT NULL,
    id           INTEGER NOT NULL,
    at_us        INTEGER NOT NULL,
    workspace_id TEXT,
    client_ip    TEXT,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    status       INTEGER,
    user_agent   TEXT,
    outcome      TEXT NOT NULL,
    PRIMARY KEY (token_id, id)
) WITHOUT ROWID;
INSERT INTO usage_records_by_token
    (token_id, id, at_us, workspace_id, client_ip, method, route, status, user_agent, outcome)
SELECT token_id, id, at_us, workspace_id, client_ip, method, route, status, user_agent, outcome
FROM usage_records;
DROP TABLE usage_records;
ALTER TABLE usage_records_by_token RENAME TO usage_records;
