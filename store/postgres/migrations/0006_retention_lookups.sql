-- Deleting a verification session (retention) also deletes its idempotency key and the
-- webhook event keys applied to it; these indexes keep those lookups from scanning.
CREATE INDEX verification_idempotency_verification ON verification_idempotency (verification_id);
CREATE INDEX webhook_events_verification ON webhook_events (verification_id);
