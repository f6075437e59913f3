-- Check values of the deployment's secret keys (store.KeyChecks): the first process to start
-- records one (a keyed hash of a fixed label, which reveals nothing of the key); a later one
-- compares its own and refuses to start on a difference (a key given in the environment that
-- is not the one the store's data was written with).
CREATE TABLE key_checks (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
