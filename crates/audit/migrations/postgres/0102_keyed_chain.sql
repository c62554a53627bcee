-- How each event's hash was made: 1 = SHA-256 (events written before the chain was keyed),
-- 2 = HMAC-SHA-256 with a key kept outside the database. Once one event is keyed, every later
-- one must be: verification refuses a downgrade.
ALTER TABLE audit_events ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 1;

-- A usage record whose address, route and user agent were reported by a resource server
-- (POST /v1/tokens/verify) names that server's introspect token; NULL when knowmind observed
-- the call itself.
ALTER TABLE usage_recent ADD COLUMN reported_by TEXT;
ALTER TABLE usage_records ADD COLUMN reported_by TEXT;
