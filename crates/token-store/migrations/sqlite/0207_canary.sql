-- Canary tokens: planted where a leak would be found first (old config files, backups), they
-- never authorize anything; a use by whoever holds one is refused like an unknown token and
-- raises a `token.canary_used` security event.
ALTER TABLE tokens ADD COLUMN canary BIGINT NOT NULL DEFAULT 0;
