package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// verificationColumns are the columns scanVerification reads, in its order.
const verificationColumns = `id, user_id, provider, provider_ref, status, score, reason_codes,
	evidence, consent, retention_policy, created_at, updated_at, expires_at, last_event_at`

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanVerification(row rowScanner) (store.Verification, error) {
	var (
		v                      store.Verification
		codes, evidence        []byte
		consent                []byte
		createdAt, updatedAt   int64
		expiresAt, lastEventAt sql.NullInt64
	)
	if err := row.Scan(&v.ID, &v.UserID, &v.Provider, &v.ProviderRef, &v.Status, &v.Score, &codes,
		&evidence, &consent, &v.RetentionPolicy, &createdAt, &updatedAt, &expiresAt, &lastEventAt); err != nil {
		return store.Verification{}, err
	}
	if err := store.DecodeVerificationJSON(&v, codes, evidence, consent); err != nil {
		return store.Verification{}, err
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	v.ExpiresAt, v.LastEventAt = fromNullMicros(expiresAt), fromNullMicros(lastEventAt)
	return v, nil
}

// querier is the read side shared by *sql.DB and *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// verificationWhere returns the one verification matching where (a WHERE clause), or an
// error wrapping store.ErrNotFound.
func verificationWhere(ctx context.Context, q querier, where string, args ...any) (store.Verification, error) {
	v, err := scanVerification(q.QueryRowContext(ctx, `SELECT `+verificationColumns+` FROM verifications `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Verification{}, store.ErrNotFound
	}
	return v, err
}

func verificationsWhere(ctx context.Context, q querier, where string, args ...any) ([]store.Verification, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+verificationColumns+` FROM verifications `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Verification
	for rows.Next() {
		v, err := scanVerification(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// verificationArgs returns the values of v for the columns of verificationColumns.
func verificationArgs(v store.Verification) ([]any, error) {
	evidence, err := store.EncodeEvidence(v.Evidence)
	if err != nil {
		return nil, err
	}
	consent, err := store.EncodeConsent(v.Consent)
	if err != nil {
		return nil, err
	}
	return []any{v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status, v.Score, reasonCodesJSON(v.ReasonCodes),
		evidence, consent, v.RetentionPolicy, micros(v.CreatedAt), micros(v.UpdatedAt),
		nullMicros(v.ExpiresAt), nullMicros(v.LastEventAt)}, nil
}

// CreateVerification implements store.VerificationStore in one IMMEDIATE transaction. A
// zero CreatedAt or UpdatedAt is set to the store's clock; times are kept in UTC to the
// microsecond. Besides verification.status_changed it appends consent_recorded when the
// session has consent, and evidence_added (and evidence_uploaded) for evidence it starts
// with. It returns an error wrapping store.ErrInvalidRecord for a session
// store.ValidateVerification refuses, with a status that is not canonical, or with
// evidence or consent that is not valid text, and one wrapping store.ErrConflict when a
// session with the same ID exists.
func (s *Store) CreateVerification(ctx context.Context, nv store.NewVerification) (store.Verification, bool, error) {
	defer s.noSessions.Forget(nv.Verification.UserID) // after the transaction, whatever its outcome
	now := s.now()
	v, err := store.PrepareNewVerification(nv, now)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	events, err := store.VerificationChangeEvents(nil, v, store.VerificationChange{Actor: nv.Actor, CorrelationID: nv.CorrelationID}, now)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	args, err := verificationArgs(v)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	var (
		out     store.Verification
		created bool
	)
	err = s.writeTx(ctx, "create verification", func(tx *sql.Tx, c *chain) error {
		if key := nv.IdempotencyKey; key != "" {
			var hash, id string
			switch err := tx.QueryRowContext(ctx, `SELECT request_hash, verification_id FROM verification_idempotency
				WHERE key = ?`, key).Scan(&hash, &id); {
			case err == nil:
				if hash != nv.RequestHash {
					return store.ErrDuplicateIdempotencyKey
				}
				out, err = verificationWhere(ctx, tx, `WHERE id = ?`, id)
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		// The single writer serializes creations; the unique index is what makes a second
		// session with the same provider reference impossible all the same.
		res, err := tx.ExecContext(ctx, `INSERT INTO verifications (`+verificationColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (provider, provider_ref) WHERE provider_ref <> '' DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("insert verification %q: %w", v.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			if out, err = verificationWhere(ctx, tx, `WHERE provider = ? AND provider_ref = ?`, v.Provider, v.ProviderRef); err != nil {
				return fmt.Errorf("read the session with the same provider reference: %w", err)
			}
		} else {
			out, created = v, true
			for _, ev := range events {
				if err := c.append(ctx, ev); err != nil {
					return err
				}
			}
		}
		if key := nv.IdempotencyKey; key != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO verification_idempotency (key, request_hash, verification_id)
				VALUES (?, ?, ?)`, key, nv.RequestHash, out.ID); err != nil {
				return fmt.Errorf("insert idempotency key: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Verification{}, false, err
	}
	return out, created, nil
}

// GetVerification implements store.VerificationStore.
func (s *Store) GetVerification(ctx context.Context, id string) (store.Verification, error) {
	v, err := verificationWhere(ctx, s.r, `WHERE id = ?`, id)
	if err != nil {
		return store.Verification{}, classify(ctx, fmt.Sprintf("get verification %q", id), err)
	}
	return v, nil
}

// VerificationByProviderRef implements store.VerificationStore.
func (s *Store) VerificationByProviderRef(ctx context.Context, provider, ref string) (store.Verification, error) {
	if ref == "" {
		return store.Verification{}, fmt.Errorf("verification by provider reference: %w", store.ErrNotFound)
	}
	v, err := verificationWhere(ctx, s.r, `WHERE provider = ? AND provider_ref = ?`, provider, ref)
	if err != nil {
		return store.Verification{}, classify(ctx, "verification by provider reference", err)
	}
	return v, nil
}

// ListVerifications implements store.VerificationStore: newest CreatedAt first, ties
// broken by the greater ID; none when limit < 1.
func (s *Store) ListVerifications(ctx context.Context, userID string, limit int) ([]store.Verification, error) {
	if limit < 1 {
		return nil, nil
	}
	out, err := verificationsWhere(ctx, s.r, `WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, classify(ctx, "list verifications", err)
	}
	return out, nil
}

// LatestVerification implements store.Verifications: the user's verification with the
// latest UpdatedAt (ties broken by the greater ID), or an error wrapping store.ErrNotFound.
func (s *Store) LatestVerification(ctx context.Context, userID string) (store.Verification, error) {
	known, gen := s.noSessions.Has(userID, time.Time{})
	if known {
		return store.Verification{}, fmt.Errorf("latest verification: %w", store.ErrNotFound)
	}
	v, err := scanVerification(s.selLatestVerification.QueryRowContext(ctx, userID))
	if errors.Is(err, sql.ErrNoRows) {
		s.noSessions.Add(userID, gen)
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Verification{}, classify(ctx, "latest verification", err)
	}
	return v, nil
}

// LatestVerifications implements store.Verifications with LatestVerification's prepared
// lookup per distinct user: in process, a batched query would save nothing.
func (s *Store) LatestVerifications(ctx context.Context, userIDs []string) (map[string]store.Verification, error) {
	out := make(map[string]store.Verification, len(userIDs))
	for _, id := range userIDs {
		if _, done := out[id]; done {
			continue
		}
		v, err := s.LatestVerification(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("latest verifications: %w", err)
		default:
			out[id] = v
		}
	}
	return out, nil
}

// UpdateVerification implements store.VerificationStore in one IMMEDIATE transaction (the
// single writer is the write lock). Errors from fn and *store.IllegalTransitionError are
// returned as they are; a change of ID, UserID, Provider or CreatedAt, or a result
// validation refuses, is an error wrapping store.ErrInvalidRecord. In every error case
// nothing is written. When the session moves into pending_review, a review row left from
// an earlier round is removed, so that it is queued again.
func (s *Store) UpdateVerification(ctx context.Context, id string, ch store.VerificationChange, fn func(v *store.Verification) error) (store.Verification, error) {
	if err := store.ValidateVerificationChange(ch); err != nil {
		return store.Verification{}, fmt.Errorf("update verification %q: %w", id, err)
	}
	now := s.now()
	var (
		out       store.Verification
		changeErr error // from applyChange: returned unwrapped
	)
	err := s.writeTx(ctx, fmt.Sprintf("update verification %q", id), func(tx *sql.Tx, c *chain) error {
		prev, err := verificationWhere(ctx, tx, `WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if ch.EventKey != "" {
			var one int
			switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM webhook_events WHERE event_key = ?`, ch.EventKey).Scan(&one); {
			case err == nil:
				return store.ErrAlreadyApplied
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		next, events, err := store.ApplyVerificationChange(prev, ch, now, fn)
		if err != nil {
			changeErr = err
			return err
		}
		if err := updateVerificationRow(ctx, tx, next); err != nil {
			return err
		}
		if ch.EventKey != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_key, verification_id, applied_at)
				VALUES (?, ?, ?)`, ch.EventKey, id, micros(now)); err != nil {
				return fmt.Errorf("record event key: %w", err)
			}
		}
		if p := ch.Payload; p != nil {
			received := store.UTCMicros(p.ReceivedAt)
			if received.IsZero() {
				received = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO raw_payloads (id, provider, verification_id, received_at,
				ciphertext) VALUES (?, ?, ?, ?, ?)`, p.ID, p.Provider, id, micros(received), p.Ciphertext); err != nil {
				return fmt.Errorf("insert raw payload %q: %w", p.ID, err)
			}
		}
		if store.ReentersReview(prev, next) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM reviews WHERE kind = ? AND item_id = ?`,
				store.ReviewVerification, id); err != nil {
				return err
			}
		}
		for _, ev := range events {
			if err := c.append(ctx, ev); err != nil {
				return err
			}
		}
		out = next
		return nil
	})
	if changeErr != nil {
		return store.Verification{}, changeErr
	}
	if err != nil {
		return store.Verification{}, err
	}
	return out, nil
}

// updateVerificationRow writes every mutable column of v.
func updateVerificationRow(ctx context.Context, tx *sql.Tx, v store.Verification) error {
	evidence, err := store.EncodeEvidence(v.Evidence)
	if err != nil {
		return err
	}
	consent, err := store.EncodeConsent(v.Consent)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE verifications SET provider_ref = ?, status = ?, score = ?,
		reason_codes = ?, evidence = ?, consent = ?, retention_policy = ?, updated_at = ?, expires_at = ?,
		last_event_at = ? WHERE id = ?`,
		v.ProviderRef, v.Status, v.Score, reasonCodesJSON(v.ReasonCodes), evidence, consent, v.RetentionPolicy,
		micros(v.UpdatedAt), nullMicros(v.ExpiresAt), nullMicros(v.LastEventAt), v.ID); err != nil {
		return fmt.Errorf("update verification %q: %w", v.ID, err)
	}
	return nil
}

// RawPayload implements store.VerificationStore.
func (s *Store) RawPayload(ctx context.Context, id string) (store.RawPayload, error) {
	var (
		p  store.RawPayload
		at int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, provider, received_at, ciphertext FROM raw_payloads WHERE id = ?`, id).
		Scan(&p.ID, &p.Provider, &at, &p.Ciphertext)
	if errors.Is(err, sql.ErrNoRows) {
		return store.RawPayload{}, fmt.Errorf("raw payload %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.RawPayload{}, classify(ctx, fmt.Sprintf("raw payload %q", id), err)
	}
	p.ReceivedAt = fromMicros(at)
	return p, nil
}

// ExpireVerifications implements store.VerificationStore in one IMMEDIATE transaction:
// the sessions with the earliest ExpiresAt go first. Each gets UpdatedAt from the store's
// clock and a verification.status_changed event with actor "system" and reason
// VERIFICATION_EXPIRED.
func (s *Store) ExpireVerifications(ctx context.Context, now time.Time, limit int) ([]store.Verification, error) {
	if limit < 1 {
		return nil, nil
	}
	terminal, err := json.Marshal(store.TerminalStatuses())
	if err != nil {
		return nil, fmt.Errorf("expire verifications: %w", err)
	}
	at := s.now()
	var expired []store.Verification
	err = s.writeTx(ctx, "expire verifications", func(tx *sql.Tx, c *chain) error {
		due, err := verificationsWhere(ctx, tx, `WHERE expires_at IS NOT NULL AND expires_at < ?
			AND status NOT IN (SELECT value FROM json_each(?)) ORDER BY expires_at, id LIMIT ?`,
			micros(now), string(terminal), limit)
		if err != nil {
			return err
		}
		for _, prev := range due {
			next, events, err := store.ApplyVerificationChange(prev, store.ExpiryChange, at, func(v *store.Verification) error {
				v.Status = store.StatusExpired
				return nil
			})
			if err != nil {
				return err
			}
			if err := updateVerificationRow(ctx, tx, next); err != nil {
				return err
			}
			expired = append(expired, next)
			for _, ev := range events {
				if err := c.append(ctx, ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return expired, nil
}

// AppendAudit implements store.AuditAppender. A zero Time is set to the store's clock. It
// returns an error wrapping store.ErrInvalidRecord for an event without a type, with text
// that is not valid UTF-8, or whose payload is not a JSON object.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	if err := store.ValidateAuditEvent(ev); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	return s.writeTx(ctx, "append audit event", func(_ *sql.Tx, c *chain) error {
		return c.append(ctx, ev)
	})
}

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// RawPayloadIDs implements store.VerificationStore.
func (s *Store) RawPayloadIDs(ctx context.Context, verificationID string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM raw_payloads WHERE verification_id = ? ORDER BY received_at, id`, verificationID)
	if err != nil {
		return nil, classify(ctx, "raw payload ids", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, classify(ctx, "raw payload ids", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "raw payload ids", err)
	}
	return ids, nil
}
