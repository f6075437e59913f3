package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/verdict-engine/verdict/store/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// applyMigrations applies the embedded migrations not yet recorded in schema_migrations, all in one
// IMMEDIATE transaction, so two processes opening the same file cannot both apply them.
func applyMigrations(ctx context.Context, db *sql.DB) error {
	migrations, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return classify(ctx, "migrate", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return classify(ctx, "migrate", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return classify(ctx, "migrate", err)
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return classify(ctx, fmt.Sprintf("migrate to %04d_%s", m.Version, m.Name), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return classify(ctx, "migrate", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return classify(ctx, "migrate", err)
	}
	return nil
}
