-- New usage records are appended here, without a per-token index: with many tokens in use,
-- nearly every record would land on a different page of that index (measured by the load
-- bench on SQLite: about half the cost of recording a call). The usage writer moves them into
-- usage_records in bulk, sorted by token. Readers look at both tables.
CREATE SEQUENCE usage_id_seq;
SELECT setval('usage_id_seq', COALESCE((SELECT MAX(id) FROM usage_records), 0) + 1, false);
CREATE TABLE usage_recent (
    id           BIGINT NOT NULL DEFAULT nextval('usage_id_seq'),
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
-- Ids now come from usage_id_seq (through usage_recent) and are kept when records move.
ALTER TABLE usage_records ALTER COLUMN id DROP IDENTITY;

-- A token's records newest first, straight from the index.
DROP INDEX usage_records_token;
CREATE INDEX usage_records_token ON usage_records (token_id, id);

-- Where and how each token was used, kept up to date by the moves: a token's distinct client
-- addresses and endpoints with first and last call and how many, without reading its records.
-- They count every call since the token's first use; pruning removes old records, not these.
-- An unknown client address is stored as '' (a key column cannot be NULL).
CREATE TABLE usage_by_ip (
    token_id  TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    first_us  BIGINT NOT NULL,
    last_us   BIGINT NOT NULL,
    calls     BIGINT NOT NULL,
    PRIMARY KEY (token_id, client_ip)
);
CREATE TABLE usage_by_route (
    token_id TEXT NOT NULL,
    method   TEXT NOT NULL,
    route    TEXT NOT NULL,
    first_us BIGINT NOT NULL,
    last_us  BIGINT NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (token_id, method, route)
);
INSERT INTO usage_by_ip (token_id, client_ip, first_us, last_us, calls)
SELECT token_id, COALESCE(client_ip, ''), MIN(at_us), MAX(at_us), COUNT(*)
FROM usage_records GROUP BY token_id, COALESCE(client_ip, '');
INSERT INTO usage_by_route (token_id, method, route, first_us, last_us, calls)
SELECT token_id, method, route, MIN(at_us), MAX(at_us), COUNT(*)
FROM usage_records GROUP BY token_id, method, route;
