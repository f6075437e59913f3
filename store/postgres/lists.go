package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	var existed bool
	// Holding the audit head serializes list changes, so the existence check cannot race.
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		b.Queue(`SELECT EXISTS (SELECT 1 FROM list_entries WHERE list = $1 AND value = $2)`, e.List, e.Value).
			QueryRow(func(row pgx.Row) error { return row.Scan(&existed) })
		b.Queue(`INSERT INTO list_entries (list, value, reason, created_at, actor) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (list, value) DO UPDATE SET
			reason = excluded.reason, created_at = excluded.created_at, actor = excluded.actor`,
			e.List, e.Value, e.Reason, e.CreatedAt, e.Actor)
		b.Queue(`UPDATE lists_version SET version = version + 1`)
	})
	if err != nil {
		return false, classify(ctx, "put list entry", err)
	}
	defer w.rollback(ctx)
	ev, err := store.ListEntryEvent(store.EventListEntryPut, e.List, e.Value, e.Actor, correlationID, now)
	if err != nil {
		return false, fmt.Errorf("put list entry: %w", err)
	}
	if err := w.append(ev); err != nil {
		return false, fmt.Errorf("put list entry: %w", err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return false, classify(ctx, "put list entry", err)
	}
	return !existed, nil
}

// DeleteListEntry implements store.Lists: it removes the entry, bumps the lists version and
// appends a list.entry_deleted audit event, in one transaction. It returns an error
// wrapping store.ErrNotFound, and changes nothing, when the entry does not exist.
func (s *Store) DeleteListEntry(ctx context.Context, list, value, actor, correlationID string) error {
	now := s.now()
	deleted := false
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		b.Queue(`WITH d AS (DELETE FROM list_entries WHERE list = $1 AND value = $2 RETURNING 1)
			UPDATE lists_version SET version = version + 1 WHERE EXISTS (SELECT 1 FROM d)`, list, value).
			Exec(func(tag pgconn.CommandTag) error {
				deleted = tag.RowsAffected() > 0
				return nil
			})
	})
	if err != nil {
		return classify(ctx, "delete list entry", err)
	}
	defer w.rollback(ctx)
	if !deleted {
		return fmt.Errorf("delete list entry: %w", store.ErrNotFound)
	}
	ev, err := store.ListEntryEvent(store.EventListEntryDeleted, list, value, actor, correlationID, now)
	if err != nil {
		return fmt.Errorf("delete list entry: %w", err)
	}
	if err := w.append(ev); err != nil {
		return fmt.Errorf("delete list entry: %w", err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return classify(ctx, "delete list entry", err)
	}
	return nil
}

// ListEntries implements store.Lists: the entries of list ordered by value (bytewise).
func (s *Store) ListEntries(ctx context.Context, list string) ([]store.ListEntry, error) {
	return s.queryEntries(ctx, "list entries", `SELECT list, value, reason, created_at, actor
		FROM list_entries WHERE list = $1 ORDER BY value`, list)
}

// AllListEntries implements store.Lists: every entry ordered by list, then value (bytewise).
func (s *Store) AllListEntries(ctx context.Context) ([]store.ListEntry, error) {
	return s.queryEntries(ctx, "all list entries", `SELECT list, value, reason, created_at, actor
		FROM list_entries ORDER BY list, value`)
}

func (s *Store) queryEntries(ctx context.Context, op, query string, args ...any) ([]store.ListEntry, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ListEntry, error) {
		var e store.ListEntry
		err := row.Scan(&e.List, &e.Value, &e.Reason, &e.CreatedAt, &e.Actor)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

// ListsVersion implements store.Lists: a counter incremented by every list change.
func (s *Store) ListsVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM lists_version`).Scan(&v); err != nil {
		return 0, classify(ctx, "lists version", err)
	}
	return v, nil
}
