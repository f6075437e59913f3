-- Policy versions, activations, shadow versions and shadow results (store.PolicyStore).
-- Hashes, paths and actions are "C" collated so that they sort bytewise, as in the
-- embedded store.

-- A published version is immutable: its hash is computed over its files (path and bytes),
-- so neither the row nor its files may change. The triggers refuse it for every role, the
-- table owner included. seq orders versions published at the same time.
CREATE TABLE policy_versions (
	hash       text COLLATE "C" PRIMARY KEY,
	seq        bigint GENERATED ALWAYS AS IDENTITY,
	label      text NOT NULL,
	author     text NOT NULL,
	changelog  text NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX policy_versions_created ON policy_versions (created_at DESC, seq DESC);

CREATE TABLE policy_files (
	hash    text COLLATE "C" NOT NULL REFERENCES policy_versions (hash),
	path    text COLLATE "C" NOT NULL,
	content bytea NOT NULL,
	PRIMARY KEY (hash, path)
);

CREATE FUNCTION verdict_policy_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is immutable: % refused', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER policy_versions_immutable BEFORE UPDATE OR DELETE ON policy_versions
	FOR EACH ROW EXECUTE FUNCTION verdict_policy_immutable();
CREATE TRIGGER policy_versions_no_truncate BEFORE TRUNCATE ON policy_versions
	FOR EACH STATEMENT EXECUTE FUNCTION verdict_policy_immutable();
CREATE TRIGGER policy_files_immutable BEFORE UPDATE OR DELETE ON policy_files
	FOR EACH ROW EXECUTE FUNCTION verdict_policy_immutable();
CREATE TRIGGER policy_files_no_truncate BEFORE TRUNCATE ON policy_files
	FOR EACH STATEMENT EXECUTE FUNCTION verdict_policy_immutable();

-- Every activation asked for, in order (seq). hash is '' for a rollback to the default
-- bundle. At most one row per action has status 'active': the one that set policy_live
-- (or, with hash '', removed it).
CREATE TABLE policy_activations (
	seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id       text NOT NULL UNIQUE,
	action   text COLLATE "C" NOT NULL,
	hash     text COLLATE "C" NOT NULL,
	previous text COLLATE "C" NOT NULL,
	actor    text NOT NULL,
	approver text NOT NULL,
	status   text NOT NULL,
	at       timestamptz NOT NULL
);
CREATE INDEX policy_activations_action ON policy_activations (action, seq);
CREATE UNIQUE INDEX policy_activations_one_active ON policy_activations (action) WHERE status = 'active';

-- The live version of each action; an action without a row runs the default bundle.
CREATE TABLE policy_live (
	action text COLLATE "C" PRIMARY KEY,
	hash   text COLLATE "C" NOT NULL REFERENCES policy_versions (hash)
);

-- The shadow versions of each action, in the order they were set.
CREATE TABLE policy_shadow (
	action   text COLLATE "C" NOT NULL,
	position integer NOT NULL,
	hash     text COLLATE "C" NOT NULL REFERENCES policy_versions (hash),
	PRIMARY KEY (action, position),
	UNIQUE (action, hash)
);

-- Bumped by every change of policy_live or policy_shadow; replicas poll it.
CREATE TABLE policy_generation (
	id         boolean PRIMARY KEY DEFAULT true CHECK (id),
	generation bigint NOT NULL
);
INSERT INTO policy_generation (id, generation) VALUES (true, 0);

-- A shadow version's outcome on a live decision. No foreign key to decisions: shadow
-- results are written after the decision, off the request path, and a result whose
-- decision is missing only drops out of the agreement join.
CREATE TABLE shadow_results (
	decision_id  text NOT NULL,
	hash         text COLLATE "C" NOT NULL,
	action       text NOT NULL,
	outcome      text NOT NULL,
	reason_codes jsonb NOT NULL,
	created_at   timestamptz NOT NULL,
	PRIMARY KEY (decision_id, hash)
);
CREATE INDEX shadow_results_action_created ON shadow_results (action, created_at);
