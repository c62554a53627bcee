-- A second factor for signing in: a TOTP secret per member (sealed with a key kept outside the
-- database, see docs/SECURITY.md), recovery codes (SHA-256, usable once), sessions that wait for
-- the code, and workspaces that require a second factor of everyone.
CREATE TABLE member_totp (
    member_id       TEXT PRIMARY KEY REFERENCES members (id),
    secret_sealed   TEXT NOT NULL,
    confirmed_at_us BIGINT,
    last_step       BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE recovery_codes (
    member_id  TEXT NOT NULL REFERENCES members (id),
    code_hash  TEXT NOT NULL,
    used_at_us BIGINT,
    PRIMARY KEY (member_id, code_hash)
);

ALTER TABLE sessions ADD COLUMN needs_factor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN require_second_factor BIGINT NOT NULL DEFAULT 0;
