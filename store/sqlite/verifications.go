package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdict-engine/verdict/store"
)

// PutVerification stores v, replacing the verification with the same ID but keeping its
// original CreatedAt. Zero CreatedAt and UpdatedAt are set to the store's clock. When v is
// new or its status differs from the stored one, it appends a
// verification.status_changed audit event in the same transaction. It returns an error
// wrapping store.ErrInvalidRecord for a record store.ValidateVerification refuses.
func (s *Store) PutVerification(ctx context.Context, v store.Verification) error {
	if err := store.ValidateVerification(v); err != nil {
		return fmt.Errorf("put verification: %w", err)
	}
	now := s.now()
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = now
	}
	return s.writeTx(ctx, "put verification", func(tx *sql.Tx, c *chain) error {
		var prev string
		exists := true
		switch err := tx.QueryRowContext(ctx, `SELECT status FROM verifications WHERE id = ?`, v.ID).Scan(&prev); {
		case errors.Is(err, sql.ErrNoRows):
			exists = false
		case err != nil:
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO verifications (id, user_id, provider, provider_ref,
			status, score, reason_codes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, provider = excluded.provider,
			provider_ref = excluded.provider_ref, status = excluded.status, score = excluded.score,
			reason_codes = excluded.reason_codes, updated_at = excluded.updated_at`,
			v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status, v.Score, reasonCodesJSON(v.ReasonCodes),
			micros(v.CreatedAt), micros(v.UpdatedAt)); err != nil {
			return err
		}
		if exists && prev == v.Status {
			return nil
		}
		ev, err := store.VerificationStatusChangedEvent(v, prev, "", now)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
}

// LatestVerification implements store.Verifications: the user's verification with the
// latest UpdatedAt (ties broken by the greater ID), or an error wrapping store.ErrNotFound.
func (s *Store) LatestVerification(ctx context.Context, userID string) (store.Verification, error) {
	var (
		v                    store.Verification
		codes                []byte
		createdAt, updatedAt int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, user_id, provider, provider_ref, status, score,
		reason_codes, created_at, updated_at FROM verifications WHERE user_id = ?
		ORDER BY updated_at DESC, id DESC LIMIT 1`, userID).Scan(
		&v.ID, &v.UserID, &v.Provider, &v.ProviderRef, &v.Status, &v.Score, &codes, &createdAt, &updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Verification{}, fmt.Errorf("latest verification: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Verification{}, classify(ctx, "latest verification", err)
	}
	if err := json.Unmarshal(codes, &v.ReasonCodes); err != nil {
		return store.Verification{}, fmt.Errorf("latest verification: decode reason codes: %w", err)
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return v, nil
}
