-- Verdict Postgres schema, version 1. Objects are created in the first schema of the
-- search_path (see postgres.WithSchema).
--
-- input, response and audit payloads are `json`, not `jsonb`: json keeps the document's
-- exact text, so the input_sha256 / response_sha256 the audit chain commits to can be
-- checked against the stored row, and inserting it costs a syntax check instead of a
-- conversion. Reason codes and tags, which one may want to query, are jsonb.

CREATE TABLE decisions (
	id              text PRIMARY KEY,
	action          text NOT NULL,
	subject_id      text NOT NULL,
	outcome         text NOT NULL,
	score           double precision NOT NULL,
	reason_codes    jsonb NOT NULL,
	policy_version  text NOT NULL,
	policy_hash     text NOT NULL,
	fail_mode       text NOT NULL,
	input           json NOT NULL,
	response        json NOT NULL,
	idempotency_key text NOT NULL,
	request_hash    text NOT NULL,
	created_at      timestamptz NOT NULL,
	actor           text NOT NULL,
	correlation_id  text NOT NULL
);
CREATE INDEX decisions_subject_created ON decisions (subject_id, created_at);
CREATE INDEX decisions_created ON decisions (created_at);

-- decision_id has no foreign key on purpose: the row and its decision are only ever written
-- together, in one transaction, by WriteDecisions, and a deferred key check costs a locking
-- lookup per row at commit (about 0.65 ms per batch of 100, measured).
CREATE TABLE idempotency (
	key          text PRIMARY KEY,
	request_hash text NOT NULL,
	decision_id  text NOT NULL
);

-- "C" collation: entries are ordered bytewise, as in the embedded store, whatever the
-- database's locale.
CREATE TABLE list_entries (
	list       text COLLATE "C" NOT NULL,
	value      text COLLATE "C" NOT NULL,
	reason     text NOT NULL,
	created_at timestamptz NOT NULL,
	actor      text NOT NULL,
	PRIMARY KEY (list, value)
);

CREATE TABLE lists_version (
	id      boolean PRIMARY KEY DEFAULT true CHECK (id),
	version bigint NOT NULL
);
INSERT INTO lists_version (id, version) VALUES (true, 0);

CREATE TABLE verifications (
	id           text COLLATE "C" PRIMARY KEY,
	user_id      text NOT NULL,
	provider     text NOT NULL,
	provider_ref text NOT NULL,
	status       text NOT NULL,
	score        double precision NOT NULL,
	reason_codes jsonb NOT NULL,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL
);
CREATE INDEX verifications_user_updated ON verifications (user_id, updated_at);

-- Outcome labels attached to decisions later (fraud confirmed, chargeback, false positive).
CREATE TABLE outcome_labels (
	decision_id text NOT NULL REFERENCES decisions (id),
	label       text NOT NULL,
	tags        jsonb NOT NULL DEFAULT '[]',
	created_at  timestamptz NOT NULL,
	actor       text NOT NULL,
	PRIMARY KEY (decision_id, label)
);

-- The audit hash chain (store/audit.go). Writers lock the one-row head (SELECT ... FOR
-- UPDATE) first, so appends from any number of replicas are serialized and gapless.
CREATE TABLE audit_head (
	id   boolean PRIMARY KEY DEFAULT true CHECK (id),
	seq  bigint NOT NULL,
	hash bytea NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (true, 0, '\x');

-- Partitioned by month of time, so old months can be archived by detaching a partition.
-- The primary key must contain the partition key; seq alone is kept unique by the head
-- lock, and VerifyChain would report a repeated seq. The first event's prev_hash is empty.
CREATE TABLE audit_events (
	seq            bigint NOT NULL,
	time           timestamptz NOT NULL,
	type           text NOT NULL,
	actor          text NOT NULL,
	correlation_id text NOT NULL,
	subject_ref    text NOT NULL,
	payload        json NOT NULL,
	prev_hash      bytea NOT NULL,
	hash           bytea NOT NULL,
	PRIMARY KEY (seq, time)
) PARTITION BY RANGE (time);

-- Append-only, enforced by the database even for the table owner and superusers: row
-- triggers on the partitioned table are cloned onto every partition; TRUNCATE triggers are
-- not, so verdict_ensure_audit_partitions adds one to each partition it creates. A
-- superuser can still bypass triggers (session_replication_role = replica): VerifyChain and
-- signed checkpoints detect what that lets through.
CREATE FUNCTION verdict_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION verdict_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION verdict_audit_append_only();

-- The head only moves forward and is never removed.
CREATE FUNCTION verdict_audit_head_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.seq >= OLD.seq THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'audit_head only moves forward: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
	FOR EACH ROW EXECUTE FUNCTION verdict_audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
	FOR EACH STATEMENT EXECUTE FUNCTION verdict_audit_head_forward_only();

-- verdict_ensure_audit_partitions creates the monthly partitions (UTC months) covering
-- p_months months from the one holding p_at, if missing, and returns how many it created.
-- The store calls it before writing into a month it has not seen covered; operators may
-- call it from cron. SECURITY DEFINER so that an application role without CREATE on the
-- schema can run it; its search_path is pinned below.
CREATE FUNCTION verdict_ensure_audit_partitions(p_at timestamptz, p_months integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	first_month timestamp := date_trunc('month', p_at AT TIME ZONE 'UTC');
	lo          timestamptz;
	hi          timestamptz;
	part        text;
	created     integer := 0;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('verdict.audit_partitions.' || current_schema(), 0));
	FOR i IN 0 .. greatest(p_months, 1) - 1 LOOP
		lo := (first_month + make_interval(months => i)) AT TIME ZONE 'UTC';
		hi := (first_month + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
		part := 'audit_events_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
		CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
		EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
		EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I '
			'FOR EACH STATEMENT EXECUTE FUNCTION verdict_audit_append_only()', part);
		EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM PUBLIC', part);
		created := created + 1;
	END LOOP;
	RETURN created;
END
$$;
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION verdict_ensure_audit_partitions(timestamptz, integer) SET search_path = %I, pg_temp',
		current_schema());
END
$$;
REVOKE ALL ON FUNCTION verdict_ensure_audit_partitions(timestamptz, integer) FROM PUBLIC;
SELECT verdict_ensure_audit_partitions(now(), 2);

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
