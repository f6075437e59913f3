-- Policy versions, activations, shadow versions and shadow results (store.PolicyStore).
-- Times are INTEGER microseconds since the Unix epoch, UTC, as in 0001.

-- A published version is immutable: its hash is computed over its files (path and bytes),
-- so neither the row nor its files may change; the triggers below refuse it.
CREATE TABLE policy_versions (
	hash       TEXT PRIMARY KEY,
	label      TEXT NOT NULL,
	author     TEXT NOT NULL,
	changelog  TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX policy_versions_created ON policy_versions (created_at);

CREATE TABLE policy_files (
	hash    TEXT NOT NULL REFERENCES policy_versions (hash),
	path    TEXT NOT NULL,
	content BLOB NOT NULL,
	PRIMARY KEY (hash, path)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER policy_versions_immutable_update BEFORE UPDATE ON policy_versions
BEGIN
	SELECT RAISE(ABORT, 'policy_versions is immutable: UPDATE refused');
END;
CREATE TRIGGER policy_versions_immutable_delete BEFORE DELETE ON policy_versions
BEGIN
	SELECT RAISE(ABORT, 'policy_versions is immutable: DELETE refused');
END;
CREATE TRIGGER policy_files_immutable_update BEFORE UPDATE ON policy_files
BEGIN
	SELECT RAISE(ABORT, 'policy_files is immutable: UPDATE refused');
END;
CREATE TRIGGER policy_files_immutable_delete BEFORE DELETE ON policy_files
BEGIN
	SELECT RAISE(ABORT, 'policy_files is immutable: DELETE refused');
END;

-- Every activation asked for, in order (seq). hash is '' for a rollback to the default
-- bundle. At most one row per action has status 'active': the one that set policy_live
-- (or, with hash '', removed it).
CREATE TABLE policy_activations (
	seq      INTEGER PRIMARY KEY,
	id       TEXT NOT NULL UNIQUE,
	action   TEXT NOT NULL,
	hash     TEXT NOT NULL,
	previous TEXT NOT NULL,
	actor    TEXT NOT NULL,
	approver TEXT NOT NULL,
	status   TEXT NOT NULL,
	at       INTEGER NOT NULL
) STRICT;
CREATE INDEX policy_activations_action ON policy_activations (action, seq);
CREATE UNIQUE INDEX policy_activations_one_active ON policy_activations (action) WHERE status = 'active';

-- The live version of each action; an action without a row runs the default bundle.
CREATE TABLE policy_live (
	action TEXT PRIMARY KEY,
	hash   TEXT NOT NULL REFERENCES policy_versions (hash)
) STRICT, WITHOUT ROWID;

-- The shadow versions of each action, in the order they were set.
CREATE TABLE policy_shadow (
	action   TEXT NOT NULL,
	position INTEGER NOT NULL,
	hash     TEXT NOT NULL REFERENCES policy_versions (hash),
	PRIMARY KEY (action, position),
	UNIQUE (action, hash)
) STRICT, WITHOUT ROWID;

-- Bumped by every change of policy_live or policy_shadow; replicas poll it.
CREATE TABLE policy_generation (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	generation INTEGER NOT NULL
) STRICT;
INSERT INTO policy_generation (id, generation) VALUES (1, 0);

-- A shadow version's outcome on a live decision. No foreign key to decisions: shadow
-- results are written after the decision, off the request path, and a result whose
-- decision is missing only drops out of the agreement join.
CREATE TABLE shadow_results (
	decision_id  TEXT NOT NULL,
	hash         TEXT NOT NULL,
	action       TEXT NOT NULL,
	outcome      TEXT NOT NULL,
	reason_codes TEXT NOT NULL, -- JSON array of strings
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (decision_id, hash)
) STRICT, WITHOUT ROWID;
CREATE INDEX shadow_results_action_created ON shadow_results (action, created_at);
