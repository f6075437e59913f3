package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verdict-engine/verdict/store/internal/migrate"
)

//go:embed migrations/*.sql grants.sql
var migrationFS embed.FS

// Migrate brings the schema up to date: it creates the schema set with WithSchema if
// missing, applies the embedded migrations not yet recorded in schema_migrations, and
// (re)applies the verdict_app role's privileges, all in one transaction. A transaction-level
// advisory lock keyed on the schema name makes replicas that migrate at the same time wait
// for each other instead of racing. The connecting role needs CREATE on the database or
// schema, and CREATEROLE unless verdict_app already exists.
func (s *Store) Migrate(ctx context.Context) error {
	_, _, err := s.MigrateVersions(ctx)
	return err
}

// MigrateVersions is Migrate, reporting the schema's version before and after: equal when
// there was nothing to apply.
func (s *Store) MigrateVersions(ctx context.Context) (from, to int, err error) {
	migrations, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	grants, err := migrationFS.ReadFile("grants.sql")
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, classify(ctx, "migrate", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('verdict.migrate.' ||
		COALESCE(NULLIF($1::text, ''), current_schema(), ''), 0))`, s.schema); err != nil {
		return 0, 0, classify(ctx, "migrate: lock", err)
	}
	if s.schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return 0, 0, classify(ctx, "migrate: create schema", err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3F000" { // invalid_schema_name
			return 0, 0, fmt.Errorf("migrate: none of the schemas on the connection's search_path exists; "+
				"create the one to use (CREATE SCHEMA ...) or fix search_path: %w", err)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			return 0, 0, fmt.Errorf("migrate: the connecting role may not create tables in the schema: "+
				"migrate as the role that owns it (the application's verdict_app role cannot): %w", err)
		}
		return 0, 0, classify(ctx, "migrate", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, 0, classify(ctx, "migrate", err)
	}
	from, to = current, current
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		to = m.Version
		op := fmt.Sprintf("migrate to %04d_%s", m.Version, m.Name)
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return 0, 0, classify(ctx, op, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return 0, 0, classify(ctx, op, err)
		}
	}
	if _, err := tx.Exec(ctx, string(grants)); err != nil {
		return 0, 0, classify(ctx, "migrate: grant privileges", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, classify(ctx, "migrate", err)
	}
	return from, to, nil
}

// SchemaVersions returns the version of the schema the database holds (0 when it holds
// none) and the latest this binary embeds, without changing anything: a server compares
// them at start, since its queries need every migration it knows.
func (s *Store) SchemaVersions(ctx context.Context) (applied, latest int, err error) {
	migrations, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	if len(migrations) > 0 {
		latest = migrations[len(migrations)-1].Version
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, 0, classify(ctx, "schema version", err)
	}
	if !exists {
		return 0, latest, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&applied); err != nil {
		return 0, 0, classify(ctx, "schema version", err)
	}
	return applied, latest, nil
}
