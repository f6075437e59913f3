package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verdict-engine/verdict/store"
)

// EnsureSubjectKeys implements store.SubjectKeys with one statement (INSERT ... ON CONFLICT
// DO NOTHING and a read of the keys that were already there). A key a concurrent
// transaction inserted after the statement's snapshot is read by a second statement.
func (s *Store) EnsureSubjectKeys(ctx context.Context, candidates []store.SubjectKey) ([]store.SubjectKey, error) {
	got := make(map[string]store.SubjectKey, len(candidates))
	pending := candidates
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 3 {
			return nil, fmt.Errorf("ensure subject keys: %d keys neither inserted nor found", len(pending))
		}
		users := make([]string, len(pending))
		keks := make([]string, len(pending))
		wrapped := make([][]byte, len(pending))
		at := make([]time.Time, len(pending))
		for i, k := range pending {
			users[i], keks[i], wrapped[i], at[i] = k.UserID, k.KEKID, k.Wrapped, k.CreatedAt
		}
		rows, err := s.pool.Query(ctx, `WITH c AS (
				SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[]) AS c(user_id, kek_id, wrapped, created_at)
			), ins AS (
				INSERT INTO subject_keys (user_id, kek_id, wrapped, created_at) SELECT * FROM c
				ON CONFLICT (user_id) DO NOTHING RETURNING user_id, kek_id, wrapped, created_at
			)
			SELECT user_id, kek_id, wrapped, created_at FROM ins
			UNION ALL
			SELECT k.user_id, k.kek_id, k.wrapped, k.created_at FROM subject_keys k WHERE k.user_id = ANY($1)`,
			users, keks, wrapped, at)
		if err != nil {
			return nil, classify(ctx, "ensure subject keys", err)
		}
		keys, err := collectSubjectKeys(rows)
		if err != nil {
			return nil, classify(ctx, "ensure subject keys", err)
		}
		for _, k := range keys {
			got[k.UserID] = k
		}
		var next []store.SubjectKey
		for _, k := range pending {
			if _, ok := got[k.UserID]; !ok {
				next = append(next, k)
			}
		}
		pending = next
	}
	out := make([]store.SubjectKey, len(candidates))
	for i, k := range candidates {
		out[i] = got[k.UserID]
	}
	return out, nil
}

// GetSubjectKey implements store.SubjectKeys.
func (s *Store) GetSubjectKey(ctx context.Context, userID string) (store.SubjectKey, error) {
	k, err := scanSubjectKey(s.pool.QueryRow(ctx, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys WHERE user_id = $1`, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SubjectKey{}, fmt.Errorf("subject key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.SubjectKey{}, classify(ctx, "subject key", err)
	}
	return k, nil
}

// scanSubjectKey reads user_id, kek_id, wrapped, created_at (in UTC).
func scanSubjectKey(row pgx.Row) (store.SubjectKey, error) {
	var k store.SubjectKey
	err := row.Scan(&k.UserID, &k.KEKID, &k.Wrapped, &k.CreatedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// collectSubjectKeys reads every row of rows with scanSubjectKey and closes rows.
func collectSubjectKeys(rows pgx.Rows) ([]store.SubjectKey, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SubjectKey, error) { return scanSubjectKey(r) })
}

// RewrapSubjectKeys implements store.SubjectKeys, 500 keys per transaction.
func (s *Store) RewrapSubjectKeys(ctx context.Context, kekID string, rewrap func(store.SubjectKey) (store.SubjectKey, error)) (int, error) {
	n := 0
	for {
		rows, err := s.pool.Query(ctx, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys
			WHERE kek_id <> $1 ORDER BY user_id LIMIT 500`, kekID)
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		batch, err := collectSubjectKeys(rows)
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		if len(batch) == 0 {
			return n, nil
		}
		b := &pgx.Batch{}
		for _, k := range batch {
			nk, err := rewrap(k)
			if err != nil {
				return n, fmt.Errorf("rewrap subject keys: %w", err)
			}
			// Only the row as read is replaced: a key erased meanwhile stays erased.
			b.Queue(`UPDATE subject_keys SET kek_id = $1, wrapped = $2
				WHERE user_id = $3 AND kek_id = $4 AND wrapped = $5`, nk.KEKID, nk.Wrapped, k.UserID, k.KEKID, k.Wrapped)
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		n += len(batch)
	}
}

// EraseSubject implements store.SubjectKeys in one transaction of two round trips: the
// deletions queued behind the audit head lock, then the audit event and the commit.
func (s *Store) EraseSubject(ctx context.Context, userID, actor, correlationID string) (store.Erasure, error) {
	now := s.now()
	e := store.Erasure{UserID: userID, ErasedAt: now}
	type evidenceColumn struct {
		id  string
		raw []byte
	}
	var evidence []evidenceColumn
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		// The key's deletion is announced on erasureChannel when the transaction commits,
		// so that other replicas drop the key from their vault's sealing cache.
		b.Queue(`WITH d AS (DELETE FROM subject_keys WHERE user_id = $1 RETURNING user_id)
			SELECT count(pg_notify($2, CASE WHEN octet_length(user_id) > 7000 THEN '*' ELSE user_id END)) FROM d`,
			userID, erasureChannel).QueryRow(func(row pgx.Row) error {
			var n int
			if err := row.Scan(&n); err != nil {
				return err
			}
			e.KeyDestroyed = n > 0
			return nil
		})
		b.Queue(`UPDATE decisions SET pii = NULL WHERE subject_id = $1 AND pii IS NOT NULL`, userID).
			Exec(func(t pgconn.CommandTag) error {
				e.Decisions = int(t.RowsAffected())
				return nil
			})
		b.Queue(`DELETE FROM raw_payloads WHERE verification_id IN (SELECT id FROM verifications WHERE user_id = $1)`, userID).
			Exec(func(t pgconn.CommandTag) error {
				e.RawPayloads = int(t.RowsAffected())
				return nil
			})
		b.Queue(`SELECT id, evidence::text FROM verifications WHERE user_id = $1`, userID).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var c evidenceColumn
				if err := rows.Scan(&c.id, &c.raw); err != nil {
					return err
				}
				evidence = append(evidence, c)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return store.Erasure{}, classify(ctx, "erase subject", err)
	}
	defer w.rollback(ctx)
	e.Verify = len(evidence)
	for _, c := range evidence {
		live, err := store.LiveEvidence(c.id, c.raw)
		if err != nil {
			return store.Erasure{}, fmt.Errorf("erase subject: %w", err)
		}
		e.Evidence = append(e.Evidence, live...)
	}
	ev, err := store.SubjectErasedEvent(e, actor, correlationID)
	if err != nil {
		return store.Erasure{}, fmt.Errorf("erase subject: %w", err)
	}
	if err := w.append(ev); err != nil {
		return store.Erasure{}, fmt.Errorf("erase subject: %w", err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return store.Erasure{}, classify(ctx, "erase subject", err)
	}
	return e, nil
}

// LookupSubjectKeys implements store.SubjectKeys with one query.
func (s *Store) LookupSubjectKeys(ctx context.Context, userIDs []string) ([]store.SubjectKey, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys WHERE user_id = ANY($1)`, userIDs)
	if err != nil {
		return nil, classify(ctx, "lookup subject keys", err)
	}
	keys, err := collectSubjectKeys(rows)
	if err != nil {
		return nil, classify(ctx, "lookup subject keys", err)
	}
	return keys, nil
}

// SampleSubjectKeys implements store.SubjectKeys with one query: a walk of the kek_id index
// that jumps from one id to the next (Postgres 15 has no skip scan), then up to perKEK keys
// of each.
func (s *Store) SampleSubjectKeys(ctx context.Context, perKEK int) ([]store.SubjectKey, error) {
	if perKEK <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE ids AS (
			(SELECT kek_id FROM subject_keys ORDER BY kek_id LIMIT 1)
			UNION ALL
			SELECT (SELECT k.kek_id FROM subject_keys k WHERE k.kek_id > ids.kek_id ORDER BY k.kek_id LIMIT 1)
			FROM ids WHERE ids.kek_id IS NOT NULL)
		SELECT k.user_id, k.kek_id, k.wrapped, k.created_at FROM ids
		CROSS JOIN LATERAL (SELECT user_id, kek_id, wrapped, created_at FROM subject_keys k
			WHERE k.kek_id = ids.kek_id LIMIT $1) k
		WHERE ids.kek_id IS NOT NULL`, perKEK)
	if err != nil {
		return nil, classify(ctx, "sample subject keys", err)
	}
	keys, err := collectSubjectKeys(rows)
	if err != nil {
		return nil, classify(ctx, "sample subject keys", err)
	}
	return keys, nil
}

// ClaimKeyCheck implements store.KeyChecks. A statement that lost a race for the name does
// not see the winner's row in its own snapshot; the next statement does.
func (s *Store) ClaimKeyCheck(ctx context.Context, name string, value []byte) ([]byte, error) {
	for range 3 {
		var stored []byte
		err := s.pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO key_checks (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
			SELECT value FROM ins UNION ALL SELECT value FROM key_checks WHERE name = $1 LIMIT 1`, name, value).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, classify(ctx, "claim key check", err)
		}
		return stored, nil
	}
	return nil, fmt.Errorf("claim key check %q: no row after three attempts", name)
}
