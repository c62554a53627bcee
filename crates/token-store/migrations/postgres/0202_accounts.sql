-- People signing in to the dashboard: their passwords, their sessions, and the one-time links
-- that let them set a password the first time. Secrets are stored only as hashes: passwords as
-- scrypt PHC strings (like tokens), session and link secrets (256 random bits) as SHA-256.

CREATE TABLE member_passwords (
    member_id     TEXT PRIMARY KEY REFERENCES members (id),
    hash          TEXT NOT NULL,
    changed_at_us BIGINT NOT NULL
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    secret_hash     TEXT NOT NULL UNIQUE,
    member_id       TEXT NOT NULL REFERENCES members (id),
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    created_at_us   BIGINT NOT NULL,
    last_seen_at_us BIGINT NOT NULL,
    expires_at_us   BIGINT NOT NULL,
    ended_at_us     BIGINT,
    ended_reason    TEXT,
    client_ip       TEXT,
    user_agent      TEXT
);
CREATE INDEX sessions_member ON sessions (member_id, created_at_us);

CREATE TABLE enrolments (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL UNIQUE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    email         TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    member_id     TEXT REFERENCES members (id),
    created_by    TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us    BIGINT
);

-- A removed member stays (their tokens and events name them) but can no longer sign in or hold
-- a live token.
ALTER TABLE members ADD COLUMN removed_at_us BIGINT;

-- Forms that must not take effect twice (creating a token shows its secret once: submitting
-- the same form again, by reloading or going back, must not make another). Kept for a day.
CREATE TABLE form_submissions (
    id            TEXT PRIMARY KEY,
    member_id     TEXT NOT NULL REFERENCES members (id),
    at_us         BIGINT NOT NULL
);
