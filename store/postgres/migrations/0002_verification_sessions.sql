-- Verification sessions (store.VerificationStore) and the manual review queue
-- (store.Reviews). An optional time that is not set (the zero time.Time) is NULL.
-- grants.sql, applied after every migration, gives verdict_app full DML on the new tables,
-- like on every table but the audit log's.

-- evidence is a JSON array of store.Evidence and consent a JSON object (store.Consent) or
-- NULL, both as encoding/json writes them. They are jsonb: nothing commits to their exact
-- bytes, and they may be queried.
ALTER TABLE verifications
	ADD COLUMN evidence         jsonb NOT NULL DEFAULT '[]',
	ADD COLUMN consent          jsonb,
	ADD COLUMN retention_policy text NOT NULL DEFAULT '',
	ADD COLUMN expires_at       timestamptz,
	ADD COLUMN last_event_at    timestamptz;

-- One session per vendor reference: concurrent webhook placeholders resolve to one row
-- (INSERT ... ON CONFLICT on this index).
CREATE UNIQUE INDEX verifications_provider_ref ON verifications (provider, provider_ref)
	WHERE provider_ref <> '';
CREATE INDEX verifications_user_created ON verifications (user_id, created_at);
CREATE INDEX verifications_expires ON verifications (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX verifications_pending_review ON verifications (created_at) WHERE status = 'pending_review';

-- Idempotency-Key bindings of CreateVerification (decisions keep theirs in idempotency).
CREATE TABLE verification_idempotency (
	key             text PRIMARY KEY,
	request_hash    text NOT NULL,
	verification_id text NOT NULL
);

-- Provider events applied by UpdateVerification, so a redelivery is refused.
CREATE TABLE webhook_events (
	event_key       text PRIMARY KEY,
	verification_id text NOT NULL,
	applied_at      timestamptz NOT NULL
);

-- Webhook bodies as the caller encrypted them, kept apart from the canonical record.
CREATE TABLE raw_payloads (
	id              text PRIMARY KEY,
	provider        text NOT NULL,
	verification_id text NOT NULL,
	received_at     timestamptz NOT NULL,
	ciphertext      bytea NOT NULL
);
CREATE INDEX raw_payloads_verification ON raw_payloads (verification_id);

-- Claims and resolutions of review items (kind 'verification' or 'decision'). A row whose
-- decided_at is set is closed. An item with no row is open and unclaimed.
CREATE TABLE reviews (
	kind          text NOT NULL,
	item_id       text NOT NULL,
	claimed_by    text NOT NULL DEFAULT '',
	claimed_until timestamptz,
	decided_by    text NOT NULL DEFAULT '',
	outcome       text NOT NULL DEFAULT '',
	reason        text NOT NULL DEFAULT '',
	note_sha256   text NOT NULL DEFAULT '',
	decided_at    timestamptz,
	PRIMARY KEY (kind, item_id)
);

-- The review queue's decisions.
CREATE INDEX decisions_review ON decisions (created_at) WHERE outcome = 'review';
