package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdict-engine/verdict/store"
)

// EnsureSubjectKeys implements store.SubjectKeys in one transaction.
func (s *Store) EnsureSubjectKeys(ctx context.Context, candidates []store.SubjectKey) ([]store.SubjectKey, error) {
	out := make([]store.SubjectKey, len(candidates))
	if len(candidates) == 0 {
		return out, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify(ctx, "ensure subject keys", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for i, k := range candidates {
		if _, err := tx.StmtContext(ctx, s.insSubjectKey).ExecContext(ctx, k.UserID, k.KEKID, k.Wrapped, micros(k.CreatedAt)); err != nil {
			return nil, classify(ctx, "ensure subject keys", err)
		}
		if out[i], err = scanSubjectKey(tx.QueryRowContext(ctx, `SELECT user_id, kek_id, wrapped, created_at
			FROM subject_keys WHERE user_id = ?`, k.UserID)); err != nil {
			return nil, classify(ctx, "ensure subject keys", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, classify(ctx, "ensure subject keys", err)
	}
	return out, nil
}

// GetSubjectKey implements store.SubjectKeys.
func (s *Store) GetSubjectKey(ctx context.Context, userID string) (store.SubjectKey, error) {
	k, err := scanSubjectKey(s.selSubjectKey.QueryRowContext(ctx, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SubjectKey{}, fmt.Errorf("subject key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.SubjectKey{}, classify(ctx, "subject key", err)
	}
	return k, nil
}

// scanSubjectKey reads user_id, kek_id, wrapped, created_at.
func scanSubjectKey(row rowScanner) (store.SubjectKey, error) {
	var (
		k  store.SubjectKey
		at int64
	)
	if err := row.Scan(&k.UserID, &k.KEKID, &k.Wrapped, &at); err != nil {
		return store.SubjectKey{}, err
	}
	k.CreatedAt = fromMicros(at)
	return k, nil
}

// subjectKeys reads every row of rows with scanSubjectKey and closes rows.
func subjectKeys(rows *sql.Rows) ([]store.SubjectKey, error) {
	defer rows.Close()
	var out []store.SubjectKey
	for rows.Next() {
		k, err := scanSubjectKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RewrapSubjectKeys implements store.SubjectKeys, 500 keys per transaction.
func (s *Store) RewrapSubjectKeys(ctx context.Context, kekID string, rewrap func(store.SubjectKey) (store.SubjectKey, error)) (int, error) {
	n := 0
	for {
		rows, err := s.r.QueryContext(ctx, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys
			WHERE kek_id <> ? ORDER BY user_id LIMIT 500`, kekID)
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		batch, err := subjectKeys(rows)
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		if len(batch) == 0 {
			return n, nil
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		for _, k := range batch {
			nk, err := rewrap(k)
			if err != nil {
				tx.Rollback() //nolint:errcheck
				return n, fmt.Errorf("rewrap subject keys: %w", err)
			}
			// Only the row as read is replaced: a key erased meanwhile stays erased.
			if _, err := tx.ExecContext(ctx, `UPDATE subject_keys SET kek_id = ?, wrapped = ?
				WHERE user_id = ? AND kek_id = ? AND wrapped = ?`, nk.KEKID, nk.Wrapped, k.UserID, k.KEKID, k.Wrapped); err != nil {
				tx.Rollback() //nolint:errcheck
				return n, classify(ctx, "rewrap subject keys", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return n, classify(ctx, "rewrap subject keys", err)
		}
		n += len(batch)
	}
}

// EraseSubject implements store.SubjectKeys in one transaction.
func (s *Store) EraseSubject(ctx context.Context, userID, actor, correlationID string) (store.Erasure, error) {
	e := store.Erasure{UserID: userID, ErasedAt: s.now()}
	err := s.writeTx(ctx, "erase subject", func(tx *sql.Tx, c *chain) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subject_keys WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		e.KeyDestroyed = n > 0
		if res, err = tx.ExecContext(ctx, `UPDATE decisions SET pii = NULL WHERE subject_id = ? AND pii IS NOT NULL`, userID); err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		e.Decisions = int(n)
		if res, err = tx.ExecContext(ctx, `DELETE FROM raw_payloads WHERE verification_id IN
			(SELECT id FROM verifications WHERE user_id = ?)`, userID); err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		e.RawPayloads = int(n)
		rows, err := tx.QueryContext(ctx, `SELECT id, evidence FROM verifications WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				id  string
				raw []byte
			)
			if err := rows.Scan(&id, &raw); err != nil {
				rows.Close()
				return err
			}
			e.Verify++
			live, err := store.LiveEvidence(id, raw)
			if err != nil {
				rows.Close()
				return err
			}
			e.Evidence = append(e.Evidence, live...)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ev, err := store.SubjectErasedEvent(e, actor, correlationID)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
	if err != nil {
		return store.Erasure{}, err
	}
	return e, nil
}

// LookupSubjectKeys implements store.SubjectKeys with one prepared query for all the users
// (passed as a JSON array).
func (s *Store) LookupSubjectKeys(ctx context.Context, userIDs []string) ([]store.SubjectKey, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(userIDs)
	if err != nil {
		return nil, fmt.Errorf("lookup subject keys: %w", err)
	}
	rows, err := s.selSubjectKeys.QueryContext(ctx, string(ids))
	if err != nil {
		return nil, classify(ctx, "lookup subject keys", err)
	}
	keys, err := subjectKeys(rows)
	if err != nil {
		return nil, classify(ctx, "lookup subject keys", err)
	}
	return keys, nil
}

// SampleSubjectKeys implements store.SubjectKeys with one query: a walk of the kek_id index
// from one id to the next, then up to perKEK keys of each.
func (s *Store) SampleSubjectKeys(ctx context.Context, perKEK int) ([]store.SubjectKey, error) {
	if perKEK <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `WITH RECURSIVE ids(kek_id) AS (
			SELECT min(kek_id) FROM subject_keys
			UNION ALL
			SELECT (SELECT min(k.kek_id) FROM subject_keys k WHERE k.kek_id > ids.kek_id)
			FROM ids WHERE ids.kek_id IS NOT NULL)
		SELECT k.user_id, k.kek_id, k.wrapped, k.created_at FROM ids, subject_keys k
		WHERE ids.kek_id IS NOT NULL AND k.rowid IN
			(SELECT rowid FROM subject_keys WHERE kek_id = ids.kek_id LIMIT ?)`, perKEK)
	if err != nil {
		return nil, classify(ctx, "sample subject keys", err)
	}
	keys, err := subjectKeys(rows)
	if err != nil {
		return nil, classify(ctx, "sample subject keys", err)
	}
	return keys, nil
}

// ClaimKeyCheck implements store.KeyChecks on the writer connection, which serializes it
// with every other write of this process (the only writer of the file).
func (s *Store) ClaimKeyCheck(ctx context.Context, name string, value []byte) ([]byte, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO key_checks (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, value, micros(s.now())); err != nil {
		return nil, classify(ctx, "claim key check", err)
	}
	var stored []byte
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM key_checks WHERE name = ?`, name).Scan(&stored); err != nil {
		return nil, classify(ctx, "claim key check", err)
	}
	return stored, nil
}
