package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	var (
		prev   string
		exists bool
	)
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		b.Queue(`SELECT status FROM verifications WHERE id = $1`, v.ID).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&prev)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			exists = err == nil
			return err
		})
		b.Queue(`INSERT INTO verifications (id, user_id, provider, provider_ref, status, score, reason_codes,
			created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
			ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, provider = excluded.provider,
			provider_ref = excluded.provider_ref, status = excluded.status, score = excluded.score,
			reason_codes = excluded.reason_codes, updated_at = excluded.updated_at`,
			v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status, v.Score, reasonCodesJSON(v.ReasonCodes),
			v.CreatedAt, v.UpdatedAt)
	})
	if err != nil {
		return classify(ctx, "put verification", err)
	}
	defer w.rollback(ctx)
	if !exists || prev != v.Status {
		ev, err := store.VerificationStatusChangedEvent(v, prev, "", now)
		if err != nil {
			return fmt.Errorf("put verification: %w", err)
		}
		if err := w.append(ev); err != nil {
			return fmt.Errorf("put verification: %w", err)
		}
	}
	if err := w.commit(ctx, nil); err != nil {
		return classify(ctx, "put verification", err)
	}
	return nil
}

// LatestVerification implements store.Verifications: the user's verification with the
// latest UpdatedAt (ties broken by the greater ID), or an error wrapping store.ErrNotFound.
func (s *Store) LatestVerification(ctx context.Context, userID string) (store.Verification, error) {
	var (
		v     store.Verification
		codes []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT id, user_id, provider, provider_ref, status, score,
		reason_codes::text, created_at, updated_at FROM verifications WHERE user_id = $1
		ORDER BY updated_at DESC, id DESC LIMIT 1`, userID).Scan(
		&v.ID, &v.UserID, &v.Provider, &v.ProviderRef, &v.Status, &v.Score, &codes, &v.CreatedAt, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Verification{}, fmt.Errorf("latest verification: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Verification{}, classify(ctx, "latest verification", err)
	}
	if err := json.Unmarshal(codes, &v.ReasonCodes); err != nil {
		return store.Verification{}, fmt.Errorf("latest verification: decode reason codes: %w", err)
	}
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return v, nil
}
