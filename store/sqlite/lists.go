package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/verdict-engine/verdict/store"
)

// PutListEntry implements store.Lists: it adds or replaces the entry (a zero CreatedAt is
// set to the store's clock), bumps the lists version and appends a list.entry_put audit
// event, in one transaction. It returns an error wrapping store.ErrInvalidRecord for an
// entry store.ValidateListEntry refuses.
func (s *Store) PutListEntry(ctx context.Context, e store.ListEntry, correlationID string) (bool, error) {
	if err := store.ValidateListEntry(e); err != nil {
		return false, fmt.Errorf("put list entry: %w", err)
	}
	now := s.now()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	var created bool
	err := s.writeTx(ctx, "put list entry", func(tx *sql.Tx, c *chain) error {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM list_entries WHERE list = ? AND value = ?`, e.List, e.Value).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			created = true
		case err != nil:
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO list_entries (list, value, reason, created_at, actor)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (list, value) DO UPDATE SET
			reason = excluded.reason, created_at = excluded.created_at, actor = excluded.actor`,
			e.List, e.Value, e.Reason, micros(e.CreatedAt), e.Actor); err != nil {
			return err
		}
		return s.listChanged(ctx, tx, c, store.EventListEntryPut, e.List, e.Value, e.Actor, correlationID)
	})
	return created, err
}

// DeleteListEntry implements store.Lists: it removes the entry, bumps the lists version and
// appends a list.entry_deleted audit event, in one transaction. It returns an error
// wrapping store.ErrNotFound, and changes nothing, when the entry does not exist.
func (s *Store) DeleteListEntry(ctx context.Context, list, value, actor, correlationID string) error {
	return s.writeTx(ctx, "delete list entry", func(tx *sql.Tx, c *chain) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM list_entries WHERE list = ? AND value = ?`, list, value)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return s.listChanged(ctx, tx, c, store.EventListEntryDeleted, list, value, actor, correlationID)
	})
}

func (s *Store) listChanged(ctx context.Context, tx *sql.Tx, c *chain, typ, list, value, actor, correlationID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE lists_version SET version = version + 1 WHERE id = 1`); err != nil {
		return err
	}
	ev, err := store.ListEntryEvent(typ, list, value, actor, correlationID, s.now())
	if err != nil {
		return err
	}
	return c.append(ctx, ev)
}

// ListEntries implements store.Lists: the entries of list ordered by value (bytewise).
func (s *Store) ListEntries(ctx context.Context, list string) ([]store.ListEntry, error) {
	return s.queryEntries(ctx, "list entries", `SELECT list, value, reason, created_at, actor
		FROM list_entries WHERE list = ? ORDER BY value`, list)
}

// AllListEntries implements store.Lists: every entry ordered by list, then value (bytewise).
func (s *Store) AllListEntries(ctx context.Context) ([]store.ListEntry, error) {
	return s.queryEntries(ctx, "all list entries", `SELECT list, value, reason, created_at, actor
		FROM list_entries ORDER BY list, value`)
}

func (s *Store) queryEntries(ctx context.Context, op, query string, args ...any) ([]store.ListEntry, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	defer rows.Close()
	var out []store.ListEntry
	for rows.Next() {
		var (
			e  store.ListEntry
			at int64
		)
		if err := rows.Scan(&e.List, &e.Value, &e.Reason, &at, &e.Actor); err != nil {
			return nil, classify(ctx, op, err)
		}
		e.CreatedAt = fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

// ListsVersion implements store.Lists: a counter incremented by every list change.
func (s *Store) ListsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.r.QueryRowContext(ctx, `SELECT version FROM lists_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, classify(ctx, "lists version", err)
	}
	return v, nil
}
