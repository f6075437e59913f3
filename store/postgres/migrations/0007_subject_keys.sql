-- Crypto-shredding (store.SubjectKeys): each subject's data key, wrapped under a master key
-- that never reaches the database. Erasure deletes the row; what was sealed under the key
-- (decisions.pii, raw_payloads.ciphertext, evidence objects) cannot be decrypted any more.
--
-- The table is small and holds no personal data in the clear; keep it out of long-lived
-- backups (pg_dump --exclude-table=subject_keys for archives) or retire master keys on a
-- schedule (verdict keys rotate) so an erasure reaches backups too.
CREATE TABLE subject_keys (
	user_id    text PRIMARY KEY,
	kek_id     text NOT NULL,
	wrapped    bytea NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX subject_keys_kek ON subject_keys (kek_id);

-- The personal data taken out of a decision's input (engine/pii), sealed under the
-- subject's key; NULL when there was none, or after erasure.
ALTER TABLE decisions ADD COLUMN pii bytea;
