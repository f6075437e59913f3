-- Check values of the deployment's secret keys (store.KeyChecks): the first process to start
-- records one (a keyed hash of a fixed label, which reveals nothing of the key); every later
-- one compares its own and refuses to start on a difference, so that replicas given
-- different keys (one without VERDICT_PSEUDONYM_KEY, say, which makes a key file of its own)
-- cannot write data the others do not match.
CREATE TABLE key_checks (
	name       text PRIMARY KEY,
	value      bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
