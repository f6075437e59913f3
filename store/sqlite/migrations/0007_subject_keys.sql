-- Crypto-shredding (store.SubjectKeys): each subject's data key, wrapped under a master key
-- that is never stored here. Erasure deletes the row; what was sealed under the key
-- (decisions.pii, raw_payloads.ciphertext, evidence objects) cannot be decrypted any more.
CREATE TABLE subject_keys (
	user_id    TEXT PRIMARY KEY,
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX subject_keys_kek ON subject_keys (kek_id);

-- The personal data taken out of a decision's input (engine/pii), sealed under the
-- subject's key; NULL when there was none, or after erasure.
ALTER TABLE decisions ADD COLUMN pii BLOB;
