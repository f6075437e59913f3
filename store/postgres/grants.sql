-- Applied by Migrate after the migrations, every time (it is idempotent), so that tables
-- added by later migrations are covered too.
--
-- verdict_app is the role convention for the application: full DML on its tables, but on
-- audit_events only SELECT and INSERT, and on audit_head no DELETE or TRUNCATE. It is
-- created NOLOGIN; give it to a login role (GRANT verdict_app TO verdict_web) or ALTER it
-- to LOGIN with a password. Creating it needs CREATEROLE; a DBA may create it beforehand.
DO $$
DECLARE
	s text := current_schema();
	p regclass;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'verdict_app') THEN
		BEGIN
			CREATE ROLE verdict_app NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL; -- created meanwhile by a migration of another schema
		END;
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA %I TO verdict_app', s);
	EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO verdict_app', s);
	REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM verdict_app;
	REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC, verdict_app;
	REVOKE DELETE, TRUNCATE ON audit_head FROM PUBLIC, verdict_app;
	FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit_events'::regclass LOOP
		EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM PUBLIC, verdict_app', p);
	END LOOP;
	GRANT EXECUTE ON FUNCTION verdict_ensure_audit_partitions(timestamptz, integer) TO verdict_app;
END
$$;
