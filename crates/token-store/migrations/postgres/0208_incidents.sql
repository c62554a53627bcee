-- Incidents: a suspected compromise, opened at the moment of awareness (the GDPR Art. 33
-- deadline is 72 hours later), the tokens it revoked and their replacements, and the record's
-- amendments (append-only: each is a new row).
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    opened_at_us  BIGINT NOT NULL,
    opened_by     TEXT NOT NULL,
    deadline_us   BIGINT NOT NULL,
    since_us      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    summary       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_workspace ON incidents (workspace_id, opened_at_us);

CREATE TABLE incident_tokens (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    token_id    TEXT NOT NULL,
    replaced_by TEXT,
    PRIMARY KEY (incident_id, token_id)
);

CREATE TABLE incident_entries (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    seq         BIGINT NOT NULL,
    at_us       BIGINT NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);

-- Reminders that an open incident's Art. 33 deadline is near (24 and 4 hours before), each sent
-- once: the primary key decides which instance writes the event.
CREATE TABLE incident_notices (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    kind        TEXT NOT NULL,
    at_us       BIGINT NOT NULL,
    PRIMARY KEY (incident_id, kind)
);
