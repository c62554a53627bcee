-- OAuth connectors. A client belongs to one workspace; a grant ("connection") is a member's
-- remembered consent to a client; access tokens are rows of `tokens` (so the one verification
-- pipeline, cache and revocation sync serve them) that name their client and grant. Codes,
-- refresh tokens and client secrets are 190–256 random bits, stored only as SHA-256.

CREATE TABLE oauth_clients (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    name               TEXT NOT NULL,
    registration       TEXT NOT NULL CHECK (registration IN ('admin', 'dynamic')),
    registered_by      TEXT REFERENCES members (id),
    redirect_uris      TEXT NOT NULL,
    scopes             TEXT NOT NULL,
    secret_hash        TEXT,
    client_credentials BIGINT NOT NULL DEFAULT 0,
    created_at_us      BIGINT NOT NULL,
    removed_at_us      BIGINT,
    removed_by         TEXT,
    removed_reason     TEXT
);
CREATE INDEX oauth_clients_workspace ON oauth_clients (workspace_id, created_at_us);

CREATE TABLE oauth_grants (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id),
    member_id      TEXT NOT NULL REFERENCES members (id),
    scopes         TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    revoked_at_us  BIGINT,
    revoked_reason TEXT,
    revoked_by     TEXT
);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id, member_id);
-- One live connection per member and client, even when two approvals race.
CREATE UNIQUE INDEX oauth_grants_live ON oauth_grants (client_id, member_id)
    WHERE revoked_at_us IS NULL;
CREATE INDEX oauth_grants_member ON oauth_grants (member_id);

CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES oauth_grants (id),
    redirect_uri   TEXT NOT NULL,
    challenge      TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    expires_at_us  BIGINT NOT NULL,
    used_at_us     BIGINT
);

CREATE TABLE oauth_refresh_tokens (
    id            TEXT PRIMARY KEY,
    grant_id      TEXT NOT NULL REFERENCES oauth_grants (id),
    hash          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us    BIGINT
);
CREATE INDEX oauth_refresh_grant ON oauth_refresh_tokens (grant_id);

ALTER TABLE tokens ADD COLUMN oauth_client_id TEXT REFERENCES oauth_clients (id);
ALTER TABLE tokens ADD COLUMN oauth_grant_id TEXT REFERENCES oauth_grants (id);
CREATE INDEX tokens_oauth_client ON tokens (oauth_client_id);
CREATE INDEX tokens_oauth_grant ON tokens (oauth_grant_id);

ALTER TABLE workspaces ADD COLUMN oauth_registration BIGINT NOT NULL DEFAULT 0;
-- At most one workspace accepts self-registered clients (the endpoint cannot name one), even
-- when two admins turn it on at once.
CREATE UNIQUE INDEX workspaces_oauth_registration ON workspaces (oauth_registration)
    WHERE oauth_registration = 1;
