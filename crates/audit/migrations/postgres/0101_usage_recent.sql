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
