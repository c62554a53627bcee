-- Token families: a token and every token rotated from it, transitively, share the id of the
-- first one (the root). Revocation takes the family; rotation and revocation lock it (the root's
-- row on PostgreSQL; SQLite has one writer at a time).
ALTER TABLE tokens ADD COLUMN family_id TEXT;
WITH RECURSIVE family (id, root) AS (
    SELECT id, id FROM tokens WHERE rotated_from IS NULL
    UNION ALL
    SELECT t.id, family.root FROM tokens t JOIN family ON t.rotated_from = family.id
)
UPDATE tokens SET family_id = (SELECT root FROM family WHERE family.id = tokens.id);
UPDATE tokens SET family_id = id WHERE family_id IS NULL;
CREATE INDEX tokens_family ON tokens (family_id);

-- What presenting a token after its rotation grace has ended does: 'alert' (a token.reuse
-- security event) or 'revoke_family' (also revoke the family's live tokens).
ALTER TABLE workspaces ADD COLUMN reuse_detection TEXT NOT NULL DEFAULT 'alert'
    CHECK (reuse_detection IN ('alert', 'revoke_family'));
