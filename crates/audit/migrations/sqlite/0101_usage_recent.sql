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

-- Where and how each token was used, kept up to date by the moves: a token's distinct client
-- addresses and endpoints with first and last call and how many, without reading its records.
-- They count every call since the token's first use; pruning removes old records, not these.
-- An unknown client address is stored as '' (a key column cannot be NULL).
CREATE TABLE usage_by_ip (
    token_id  TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    first_us  INTEGER NOT NULL,
    last_us   INTEGER NOT NULL,
    calls     INTEGER NOT NULL,
    PRIMARY KEY (token_id, client_ip)
) WITHOUT ROWID;
CREATE TABLE usage_by_route (
    token_id TEXT NOT NULL,
    method   TEXT NOT NULL,
    route    TEXT NOT NULL,
    first_us INTEGER NOT NULL,
    last_us  INTEGER NOT NULL,
    calls    INTEGER NOT NULL,
    PRIMARY KEY (token_id, method, route)
) WITHOUT ROWID;
INSERT INTO usage_by_ip (token_id, client_ip, first_us, last_us, calls)
SELECT token_id, COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*)
FROM usage_records GROUP BY token_id, COALESCE(client_ip, '');
INSERT INTO usage_by_route (token_id, method, route, first_us, last_us, calls)
SELECT token_id, method, route, MIN(at_us), MAX(at_us), COUNT(*)
FROM usage_records GROUP BY token_id, method, route;
