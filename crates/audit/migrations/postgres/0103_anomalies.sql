-- Per-token baselines and the anomalies measured against them (kept by the usage writer).

-- How far each token is into its learning period: its first authenticated call and how many
-- it has made. Once a token has learnt (see UsageConfig::anomalies), the writer stops counting.
CREATE TABLE token_learning (
    token_id TEXT PRIMARY KEY,
    first_us BIGINT NOT NULL,
    calls    BIGINT NOT NULL
);

-- Every value a token has been seen with: kind 'network' (IPv4 /24, IPv6 /48), 'endpoint'
-- ('METHOD route') or 'agent' (the User-Agent's product name). Inserting a value that is already
-- here does nothing, so whichever writer (instance) inserts it first is the one that reports it:
-- each new value is reported once.
CREATE TABLE token_baseline (
    token_id TEXT NOT NULL,
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    first_us BIGINT NOT NULL,
    PRIMARY KEY (token_id, kind, value)
);

-- What was unusual, with the call that showed it. Also a token.anomaly (or token.canary_used)
-- event in the security log, written in the same transaction.
CREATE TABLE token_anomalies (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_us        BIGINT NOT NULL,
    workspace_id TEXT,
    token_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    client_ip    TEXT,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    user_agent   TEXT
);
CREATE INDEX token_anomalies_workspace ON token_anomalies (workspace_id, id);
CREATE INDEX token_anomalies_token ON token_anomalies (token_id, id);
