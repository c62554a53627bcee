-- A workspace's lifetime rules for its tokens: the longest a new or rotated token may live (NULL:
-- no maximum), whether every token must expire, and after how long a token is due for rotation
-- (90 days by default; 30 in regulated industries). In seconds.
ALTER TABLE workspaces ADD COLUMN policy_max_lifetime_s BIGINT;
ALTER TABLE workspaces ADD COLUMN policy_require_expiry BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN policy_rotation_interval_s BIGINT NOT NULL DEFAULT 7776000;
