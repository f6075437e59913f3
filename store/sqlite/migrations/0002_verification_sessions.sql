-- Verification sessions (store.VerificationStore) and the manual review queue
-- (store.Reviews). Times are INTEGER microseconds since the Unix epoch, UTC, as in 0001; an
-- optional time that is not set (the zero time.Time) is NULL.

-- evidence is a JSON array of store.Evidence and consent a JSON object (store.Consent) or
-- NULL, both as encoding/json writes them.
ALTER TABLE verifications ADD COLUMN evidence TEXT NOT NULL DEFAULT '[]';
ALTER TABLE verifications ADD COLUMN consent TEXT;
ALTER TABLE verifications ADD COLUMN retention_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE verifications ADD COLUMN expires_at INTEGER;
ALTER TABLE verifications ADD COLUMN last_event_at INTEGER;

-- One session per vendor reference: concurrent webhook placeholders resolve to one row.
CREATE UNIQUE INDEX verifications_provider_ref ON verifications (provider, provider_ref)
	WHERE provider_ref <> '';
CREATE INDEX verifications_user_created ON verifications (user_id, created_at);
CREATE INDEX verifications_expires ON verifications (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX verifications_pending_review ON verifications (created_at) WHERE status = 'pending_review';

-- Idempotency-Key bindings of CreateVerification (decisions keep theirs in idempotency).
CREATE TABLE verification_idempotency (
	key             TEXT PRIMARY KEY,
	request_hash    TEXT NOT NULL,
	verification_id TEXT NOT NULL
) STRICT;

-- Provider events applied by UpdateVerification, so a redelivery is refused.
CREATE TABLE webhook_events (
	event_key       TEXT PRIMARY KEY,
	verification_id TEXT NOT NULL,
	applied_at      INTEGER NOT NULL
) STRICT;

-- Webhook bodies as the caller encrypted them, kept apart from the canonical record.
CREATE TABLE raw_payloads (
	id              TEXT PRIMARY KEY,
	provider        TEXT NOT NULL,
	verification_id TEXT NOT NULL,
	received_at     INTEGER NOT NULL,
	ciphertext      BLOB NOT NULL
) STRICT;
CREATE INDEX raw_payloads_verification ON raw_payloads (verification_id);

-- Claims and resolutions of review items (kind 'verification' or 'decision'). A row whose
-- decided_at is set is closed. An item with no row is open and unclaimed.
CREATE TABLE reviews (
	kind          TEXT NOT NULL,
	item_id       TEXT NOT NULL,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until INTEGER,
	decided_by    TEXT NOT NULL DEFAULT '',
	outcome       TEXT NOT NULL DEFAULT '',
	reason        TEXT NOT NULL DEFAULT '',
	note_sha256   TEXT NOT NULL DEFAULT '',
	decided_at    INTEGER,
	PRIMARY KEY (kind, item_id)
) STRICT, WITHOUT ROWID;

-- The review queue's decisions.
CREATE INDEX decisions_review ON decisions (created_at) WHERE outcome = 'review';
