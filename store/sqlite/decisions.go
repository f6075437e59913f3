package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdict-engine/verdict/store"
)

// WriteDecisions implements store.DecisionWriter in one IMMEDIATE transaction. A record
// whose idempotency key is already stored, or repeated earlier in recs, gets
// store.ErrDuplicateIdempotencyKey in its slot and leaves no trace: no decision row, no
// audit event. A record that fails store.ValidateDecision gets that error (wrapping
// store.ErrInvalidRecord) in its slot. Every other record is written with one
// decision.created audit event; a zero CreatedAt is set to the store's clock. Times are
// kept to the microsecond. A non-nil error (wrapping store.ErrUnavailable when the database
// is locked or unwritable) means nothing was written.
func (s *Store) WriteDecisions(ctx context.Context, recs []store.DecisionRecord) ([]error, error) {
	if len(recs) == 0 {
		return []error{}, nil
	}
	// Everything that does not depend on the chain head is done before taking the lock.
	recs, events, results, err := store.PrepareDecisions(recs, s.now())
	if err != nil {
		return nil, fmt.Errorf("write decisions: %w", err)
	}
	err = s.writeTx(ctx, "write decisions", func(tx *sql.Tx, c *chain) error {
		ctx := statementContext(ctx)
		insIdem := tx.StmtContext(ctx, s.insIdempotency)
		insDec := tx.StmtContext(ctx, s.insDecision)
		newKeys := map[string][]byte{} // subject → wrapped key stored by this transaction
		for i, rec := range recs {
			if results[i] != nil {
				continue
			}
			if k := rec.NewSubjectKey; k != nil {
				ok, err := s.storeNewKey(ctx, tx, newKeys, k)
				if err != nil {
					return err
				}
				if !ok {
					results[i] = store.ErrSubjectKeyExists
					continue
				}
			}
			if key := rec.IdempotencyKey; key != "" {
				res, err := insIdem.ExecContext(ctx, key, rec.RequestHash, rec.ID)
				if err != nil {
					return fmt.Errorf("insert idempotency key: %w", err)
				}
				if n, err := res.RowsAffected(); err != nil {
					return fmt.Errorf("insert idempotency key: %w", err)
				} else if n == 0 {
					results[i] = store.ErrDuplicateIdempotencyKey
					continue
				}
			}
			if _, err := insDec.ExecContext(ctx, rec.ID, rec.Action, rec.SubjectID, rec.Outcome, rec.Score,
				reasonCodesJSON(rec.ReasonCodes), rec.PolicyVersion, rec.PolicyHash, rec.FailMode,
				string(rec.Input), string(rec.Response), rec.IdempotencyKey, rec.RequestHash,
				micros(rec.CreatedAt), rec.Actor, rec.CorrelationID, rec.PII); err != nil {
				return fmt.Errorf("insert decision %q: %w", rec.ID, err)
			}
			if err := c.append(ctx, events[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// GetDecision implements store.DecisionReader. It returns an error wrapping
// store.ErrNotFound when no decision has the id.
func (s *Store) GetDecision(ctx context.Context, id string) (store.DecisionRecord, error) {
	var (
		r                  store.DecisionRecord
		codes, input, resp []byte
		createdAt          int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, action, subject_id, outcome, score, reason_codes,
		policy_version, policy_hash, fail_mode, input, response, idempotency_key, request_hash,
		created_at, actor, correlation_id, pii FROM decisions WHERE id = ?`, id).Scan(
		&r.ID, &r.Action, &r.SubjectID, &r.Outcome, &r.Score, &codes, &r.PolicyVersion, &r.PolicyHash,
		&r.FailMode, &input, &resp, &r.IdempotencyKey, &r.RequestHash, &createdAt, &r.Actor, &r.CorrelationID, &r.PII)
	if errors.Is(err, sql.ErrNoRows) {
		return store.DecisionRecord{}, fmt.Errorf("get decision %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.DecisionRecord{}, classify(ctx, fmt.Sprintf("get decision %q", id), err)
	}
	if err := json.Unmarshal(codes, &r.ReasonCodes); err != nil {
		return store.DecisionRecord{}, fmt.Errorf("get decision %q: decode reason codes: %w", id, err)
	}
	r.Input, r.Response, r.CreatedAt = input, resp, fromMicros(createdAt)
	return r, nil
}

// LookupIdempotency implements store.DecisionReader. It returns an error wrapping
// store.ErrNotFound when the key is not stored.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (store.Idempotency, error) {
	var idem store.Idempotency
	err := s.r.QueryRowContext(ctx, `SELECT key, request_hash, decision_id FROM idempotency WHERE key = ?`, key).
		Scan(&idem.Key, &idem.RequestHash, &idem.DecisionID)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Idempotency{}, fmt.Errorf("lookup idempotency key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Idempotency{}, classify(ctx, "lookup idempotency key", err)
	}
	return idem, nil
}

// reasonCodesJSON encodes reason codes as a JSON array, [] for none.
func reasonCodesJSON(codes []string) string {
	if len(codes) == 0 {
		return "[]"
	}
	// Encoding a slice of strings cannot fail.
	b, _ := json.Marshal(codes)
	return string(b)
}

// storeNewKey stores a record's new subject key unless the subject has one; it reports
// whether the record's key is the subject's key (stored now, or earlier in this
// transaction for another record of the batch).
func (s *Store) storeNewKey(ctx context.Context, tx *sql.Tx, stored map[string][]byte, k *store.SubjectKey) (bool, error) {
	if w, ok := stored[k.UserID]; ok {
		return bytes.Equal(w, k.Wrapped), nil
	}
	res, err := tx.StmtContext(ctx, s.insSubjectKey).ExecContext(ctx, k.UserID, k.KEKID, k.Wrapped, micros(k.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("insert subject key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert subject key: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	stored[k.UserID] = k.Wrapped
	return true, nil
}
