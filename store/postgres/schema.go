package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// DropSchema drops the schema set with WithSchema and everything in it. It is meant for
// tearing down test and tenant schemas; it returns an error when no schema was set, so
// it can never drop the server's default schema by accident.
func (s *Store) DropSchema(ctx context.Context) error {
	if s.schema == "" {
		return errors.New("drop schema: the store has no schema of its own (WithSchema)")
	}
	if _, err := s.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE"); err != nil {
		return classify(ctx, "drop schema", err)
	}
	return nil
}
