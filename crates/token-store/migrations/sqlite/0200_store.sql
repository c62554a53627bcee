-- Workspaces, their members and their tokens. Times are UTC microseconds since the Unix epoch.
-- Tokens are never deleted: revoked and expired ones stay, with who revoked them and why.

CREATE TABLE workspaces (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    created_at_us INTEGER NOT NULL
);

CREATE TABLE members (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at_us INTEGER NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE tokens (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    owner_id       TEXT NOT NULL REFERENCES members (id),
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    client         TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at_us  INTEGER,
    revoked_at_us  INTEGER,
    revoked_reason TEXT,
    revoked_by     TEXT,
    rotated_from   TEXT REFERENCES tokens (id),
    rotated_to     TEXT REFERENCES tokens (id),
    hash           TEXT NOT NULL
);
CREATE INDEX tokens_workspace_created ON tokens (workspace_id, created_at_us, id);
