-- A workspace's lifetime rules for its tokens: the longest a new or rotated token may live (NULL:
-- no maximum), whether every token must expire, and after how long a token is due for rotation
-- (90 days by default; 30 in regulated industries). In seconds.
ALTER TABLE workspaces ADD COLUMN policy_max_lifetime_s BIGINT;
ALTER TABLE workspaces ADD COLUMN policy_require_expiry BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN policy_rotation_interval_s BIGINT NOT NULL DEFAULT 7776000;
-- The scopes a token may carry, by its owner's role (canonical `read,write` text); whether a
-- token with `write` must carry an address allow-list; after how long unused tokens are revoked
-- when the policy is applied (NULL: never).
ALTER TABLE workspaces ADD COLUMN policy_owner_scopes TEXT NOT NULL DEFAULT 'read,write,admin,introspect';
ALTER TABLE workspaces ADD COLUMN policy_admin_scopes TEXT NOT NULL DEFAULT 'read,write,admin,introspect';
ALTER TABLE workspaces ADD COLUMN policy_member_scopes TEXT NOT NULL DEFAULT 'read,write,introspect';
ALTER TABLE workspaces ADD COLUMN policy_write_needs_allowlist BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN policy_revoke_unused_after_s BIGINT;

-- The networks a token may be used from (canonical CIDR, space-separated); '' = anywhere.
ALTER TABLE tokens ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '';

-- Rotation with verified hand-over. On the old token: the hand-over's state (`pending` until the
-- new token is first used, `overlap` until the old one's end, then `done`; `timed_out` when the
-- new token was never used before the deadline) and the overlap in seconds; its revoked_at_us
-- is the hard deadline, brought forward to first use + overlap. On the new token: the token it
-- replaces while the hand-over is pending, so that its first accepted use completes it.
ALTER TABLE tokens ADD COLUMN handover TEXT;
ALTER TABLE tokens ADD COLUMN handover_overlap_s BIGINT;
ALTER TABLE tokens ADD COLUMN handover_of TEXT;
CREATE INDEX tokens_handover ON tokens (handover, revoked_at_us) WHERE handover IS NOT NULL;
