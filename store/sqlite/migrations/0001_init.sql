-- Verdict embedded store, initial schema. Times are INTEGER microseconds since the Unix
-- epoch, UTC (the precision Postgres keeps, so both stores return equal records). JSON
-- columns are TEXT holding the document exactly as given, so input_sha256 and
-- response_sha256 in the audit chain can be checked against the stored bytes.

CREATE TABLE decisions (
	id              TEXT PRIMARY KEY,
	action          TEXT NOT NULL,
	subject_id      TEXT NOT NULL,
	outcome         TEXT NOT NULL,
	score           REAL NOT NULL,
	reason_codes    TEXT NOT NULL, -- JSON array of strings
	policy_version  TEXT NOT NULL,
	policy_hash     TEXT NOT NULL,
	fail_mode       TEXT NOT NULL,
	input           TEXT NOT NULL, -- JSON
	response        TEXT NOT NULL, -- JSON
	idempotency_key TEXT NOT NULL,
	request_hash    TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	actor           TEXT NOT NULL,
	correlation_id  TEXT NOT NULL
) STRICT;
CREATE INDEX decisions_subject_created ON decisions (subject_id, created_at);
CREATE INDEX decisions_created ON decisions (created_at);

-- decision_id has no foreign key on purpose: the row and its decision are only ever written
-- together, in one transaction, by WriteDecisions. (A deferred key would also make every
-- decision insert look up idempotency rows by decision_id, which needs an extra index.)
CREATE TABLE idempotency (
	key          TEXT PRIMARY KEY,
	request_hash TEXT NOT NULL,
	decision_id  TEXT NOT NULL
) STRICT;

CREATE TABLE list_entries (
	list       TEXT NOT NULL,
	value      TEXT NOT NULL,
	reason     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	PRIMARY KEY (list, value)
) STRICT, WITHOUT ROWID;

CREATE TABLE lists_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
) STRICT;
INSERT INTO lists_version (id, version) VALUES (1, 0);

CREATE TABLE verifications (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,
	provider     TEXT NOT NULL,
	provider_ref TEXT NOT NULL,
	status       TEXT NOT NULL,
	score        REAL NOT NULL,
	reason_codes TEXT NOT NULL, -- JSON array of strings
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX verifications_user_updated ON verifications (user_id, updated_at);

-- The hash chain (store/audit.go). The first event's prev_hash is empty.
CREATE TABLE audit_events (
	seq            INTEGER PRIMARY KEY,
	time           INTEGER NOT NULL,
	type           TEXT NOT NULL,
	actor          TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	subject_ref    TEXT NOT NULL,
	payload        TEXT NOT NULL, -- canonical JSON object
	prev_hash      BLOB NOT NULL,
	hash           BLOB NOT NULL
) STRICT;

-- Append-only, enforced by the database. Anyone with the file can still drop the triggers:
-- VerifyChain and signed checkpoints detect what they let through.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

-- Outcome labels attached to decisions later (fraud confirmed, chargeback, false positive).
CREATE TABLE outcome_labels (
	decision_id TEXT NOT NULL REFERENCES decisions (id),
	label       TEXT NOT NULL,
	tags        TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
	created_at  INTEGER NOT NULL,
	actor       TEXT NOT NULL,
	PRIMARY KEY (decision_id, label)
) STRICT;
