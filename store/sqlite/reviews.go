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

// reviewQueue selects the open review items: sessions in pending_review and decisions
// with outcome review, each without a closed reviews row. Each branch is cut to the limit
// on its own (along the partial indexes on created_at) before the two are merged.
const reviewQueue = `SELECT kind, id, user_id, action, status, score, reason_codes, created_at,
	claimed_by, claimed_until FROM (
	SELECT * FROM (
		SELECT 'verification' AS kind, v.id, v.user_id, '' AS action, v.status, v.score, v.reason_codes,
			v.created_at, COALESCE(r.claimed_by, '') AS claimed_by, r.claimed_until
		FROM verifications v LEFT JOIN reviews r ON r.kind = 'verification' AND r.item_id = v.id
		WHERE v.status = 'pending_review' AND r.decided_at IS NULL
		ORDER BY v.created_at, v.score DESC, v.id LIMIT ?)
	UNION ALL
	SELECT * FROM (
		SELECT 'decision' AS kind, d.id, d.subject_id AS user_id, d.action, d.outcome AS status, d.score,
			d.reason_codes, d.created_at, COALESCE(r.claimed_by, '') AS claimed_by, r.claimed_until
		FROM decisions d LEFT JOIN reviews r ON r.kind = 'decision' AND r.item_id = d.id
		WHERE d.outcome = 'review' AND d.review_closed_at IS NULL
		ORDER BY d.created_at, d.score DESC, d.id LIMIT ?)
) ORDER BY created_at, score DESC, id, kind LIMIT ?`

// reviewItemQueries select one item of each kind, open or not, with its review row.
var reviewItemQueries = map[string]string{
	store.ReviewVerification: `SELECT 'verification', v.id, v.user_id, '', v.status, v.score, v.reason_codes,
		v.created_at, COALESCE(r.claimed_by, ''), r.claimed_until, r.decided_at IS NOT NULL
		FROM verifications v LEFT JOIN reviews r ON r.kind = 'verification' AND r.item_id = v.id
		WHERE v.id = ?`,
	store.ReviewDecision: `SELECT 'decision', d.id, d.subject_id, d.action, d.outcome, d.score, d.reason_codes,
		d.created_at, COALESCE(r.claimed_by, ''), r.claimed_until, r.decided_at IS NOT NULL
		FROM decisions d LEFT JOIN reviews r ON r.kind = 'decision' AND r.item_id = d.id
		WHERE d.id = ?`,
}

// openStatus is the status or outcome that puts an item of each kind in the queue.
var openStatus = map[string]string{store.ReviewVerification: store.StatusPendingReview, store.ReviewDecision: "review"}

func scanReviewItem(row rowScanner, extra ...any) (store.ReviewItem, error) {
	var (
		it        store.ReviewItem
		codes     []byte
		createdAt int64
		until     sql.NullInt64
	)
	if err := row.Scan(append([]any{&it.Kind, &it.ID, &it.UserID, &it.Action, &it.Status, &it.Score, &codes,
		&createdAt, &it.ClaimedBy, &until}, extra...)...); err != nil {
		return store.ReviewItem{}, err
	}
	if err := json.Unmarshal(codes, &it.ReasonCodes); err != nil {
		return store.ReviewItem{}, fmt.Errorf("decode reason codes of %s %q: %w", it.Kind, it.ID, err)
	}
	it.CreatedAt, it.ClaimedUntil = fromMicros(createdAt), fromNullMicros(until)
	return it, nil
}

// ListReviews implements store.Reviews: open items by CreatedAt, then highest Score, then
// ID (bytewise), then kind; none when limit < 1.
func (s *Store) ListReviews(ctx context.Context, limit int) ([]store.ReviewItem, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, reviewQueue, limit, limit, limit)
	if err != nil {
		return nil, classify(ctx, "list reviews", err)
	}
	defer rows.Close()
	var out []store.ReviewItem
	for rows.Next() {
		it, err := scanReviewItem(rows)
		if err != nil {
			return nil, classify(ctx, "list reviews", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "list reviews", err)
	}
	return out, nil
}

// openReviewItem returns the item if it is open, else an error wrapping store.ErrNotFound.
func openReviewItem(ctx context.Context, tx *sql.Tx, kind, id string) (store.ReviewItem, error) {
	var closed bool
	it, err := scanReviewItem(tx.QueryRowContext(ctx, reviewItemQueries[kind], id), &closed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ReviewItem{}, fmt.Errorf("review %s %q: %w", kind, id, store.ErrNotFound)
	case err != nil:
		return store.ReviewItem{}, err
	case closed || it.Status != openStatus[kind]:
		return store.ReviewItem{}, fmt.Errorf("review %s %q is closed: %w", kind, id, store.ErrNotFound)
	}
	return it, nil
}

// ClaimReview implements store.Reviews. It returns an error wrapping store.ErrInvalidRecord
// for an unknown kind or an empty id or reviewer.
func (s *Store) ClaimReview(ctx context.Context, kind, id, reviewer string, until time.Time, correlationID string) (store.ReviewItem, error) {
	if err := store.ValidateClaim(kind, id, reviewer, correlationID); err != nil {
		return store.ReviewItem{}, fmt.Errorf("claim review: %w", err)
	}
	now := s.now()
	until = store.UTCMicros(until)
	var out store.ReviewItem
	err := s.writeTx(ctx, "claim review", func(tx *sql.Tx, c *chain) error {
		it, err := openReviewItem(ctx, tx, kind, id)
		if err != nil {
			return err
		}
		if it.ClaimedBy != "" && it.ClaimedBy != reviewer && it.ClaimedUntil.After(now) {
			return fmt.Errorf("review %s %q held by %s until %s: %w", kind, id, it.ClaimedBy,
				it.ClaimedUntil.Format(time.RFC3339), store.ErrClaimed)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reviews (kind, item_id, claimed_by, claimed_until)
			VALUES (?, ?, ?, ?) ON CONFLICT (kind, item_id) DO UPDATE SET
			claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until`,
			kind, id, reviewer, nullMicros(until)); err != nil {
			return err
		}
		ev, err := store.ReviewClaimedEvent(kind, id, it.UserID, reviewer, until, correlationID, now)
		if err != nil {
			return err
		}
		if err := c.append(ctx, ev); err != nil {
			return err
		}
		it.ClaimedBy, it.ClaimedUntil = reviewer, until
		out = it
		return nil
	})
	if err != nil {
		return store.ReviewItem{}, err
	}
	return out, nil
}

// ResolveReview implements store.Reviews. A zero DecidedAt is set to the store's clock. It
// returns an error wrapping store.ErrInvalidRecord for an outcome the item's kind does not
// allow (see store.ReviewResolution).
func (s *Store) ResolveReview(ctx context.Context, r store.ReviewResolution) error {
	if err := store.ValidateResolution(r); err != nil {
		return fmt.Errorf("resolve review: %w", err)
	}
	now := s.now()
	r.DecidedAt = store.UTCMicros(r.DecidedAt)
	if r.DecidedAt.IsZero() {
		r.DecidedAt = store.UTCMicros(now)
	}
	var transitionErr error
	err := s.writeTx(ctx, "resolve review", func(tx *sql.Tx, c *chain) error {
		it, err := openReviewItem(ctx, tx, r.Kind, r.ID)
		if err != nil {
			return err
		}
		if it.ClaimedBy != r.Reviewer || !it.ClaimedUntil.After(now) {
			return fmt.Errorf("review %s %q: %s holds no current claim: %w", r.Kind, r.ID, r.Reviewer, store.ErrClaimed)
		}
		if r.Kind == store.ReviewVerification {
			prev, err := verificationWhere(ctx, tx, `WHERE id = ?`, r.ID)
			if err != nil {
				return err
			}
			ch := store.VerificationChange{Actor: r.Reviewer, CorrelationID: r.CorrelationID, Reason: r.Reason}
			next, events, err := store.ApplyVerificationChange(prev, ch, now, func(v *store.Verification) error {
				store.ApplyResolution(v, r)
				return nil
			})
			if err != nil {
				transitionErr = err
				return err
			}
			if err := updateVerificationRow(ctx, tx, next); err != nil {
				return err
			}
			for _, ev := range events {
				if err := c.append(ctx, ev); err != nil {
					return err
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE reviews SET decided_by = ?, outcome = ?, reason = ?, note_sha256 = ?,
			decided_at = ? WHERE kind = ? AND item_id = ?`,
			r.Reviewer, r.Outcome, r.Reason, r.NoteSHA256, micros(r.DecidedAt), r.Kind, r.ID); err != nil {
			return err
		}
		if r.Kind == store.ReviewDecision {
			// Out of the queue's index of open decisions.
			if _, err := tx.ExecContext(ctx, `UPDATE decisions SET review_closed_at = ? WHERE id = ?`, micros(r.DecidedAt), r.ID); err != nil {
				return err
			}
		}
		ev, err := store.ReviewDecidedEvent(r, it.UserID, now)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
	if transitionErr != nil {
		return transitionErr
	}
	return err
}

// GetReviewResolution implements store.Reviews.
func (s *Store) GetReviewResolution(ctx context.Context, kind, id string) (store.ReviewResolution, error) {
	r := store.ReviewResolution{Kind: kind, ID: id}
	var decidedAt int64
	err := s.r.QueryRowContext(ctx, `SELECT decided_by, outcome, reason, note_sha256, decided_at FROM reviews
		WHERE kind = ? AND item_id = ? AND decided_at IS NOT NULL`, kind, id).
		Scan(&r.Reviewer, &r.Outcome, &r.Reason, &r.NoteSHA256, &decidedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ReviewResolution{}, fmt.Errorf("review resolution of %s %q: %w", kind, id, store.ErrNotFound)
	}
	if err != nil {
		return store.ReviewResolution{}, classify(ctx, "get review resolution", err)
	}
	r.DecidedAt = fromMicros(decidedAt)
	return r, nil
}
