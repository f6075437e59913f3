package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

// reviewQueue selects the open review items: sessions in pending_review and decisions
// with outcome review, each without a closed reviews row. Each branch is cut to the limit
// on its own (along the partial indexes on created_at) before the two are merged. Ids are
// compared bytewise ("C"), as in the embedded store.
const reviewQueue = `SELECT kind, id, user_id, action, status, score, reason_codes, created_at,
	claimed_by, claimed_until FROM (
	(SELECT 'verification'::text AS kind, v.id COLLATE "C" AS id, v.user_id, ''::text AS action, v.status,
		v.score, v.reason_codes::text AS reason_codes, v.created_at, COALESCE(r.claimed_by, '') AS claimed_by,
		r.claimed_until
	FROM verifications v LEFT JOIN reviews r ON r.kind = 'verification' AND r.item_id = v.id
	WHERE v.status = 'pending_review' AND r.decided_at IS NULL
	ORDER BY v.created_at, v.score DESC, v.id COLLATE "C" LIMIT $1)
	UNION ALL
	(SELECT 'decision'::text, d.id COLLATE "C", d.subject_id, d.action, d.outcome, d.score,
		d.reason_codes::text, d.created_at, COALESCE(r.claimed_by, ''), r.claimed_until
	FROM decisions d LEFT JOIN reviews r ON r.kind = 'decision' AND r.item_id = d.id
	WHERE d.outcome = 'review' AND d.review_closed_at IS NULL
	ORDER BY d.created_at, d.score DESC, d.id COLLATE "C" LIMIT $1)
) q ORDER BY created_at, score DESC, id, kind LIMIT $1`

// reviewItemQueries select one item of each kind, open or not, with its review row.
var reviewItemQueries = map[string]string{
	store.ReviewVerification: `SELECT 'verification', v.id, v.user_id, '', v.status, v.score, v.reason_codes::text,
		v.created_at, COALESCE(r.claimed_by, ''), r.claimed_until, r.decided_at IS NOT NULL
		FROM verifications v LEFT JOIN reviews r ON r.kind = 'verification' AND r.item_id = v.id
		WHERE v.id = $1`,
	store.ReviewDecision: `SELECT 'decision', d.id, d.subject_id, d.action, d.outcome, d.score, d.reason_codes::text,
		d.created_at, COALESCE(r.claimed_by, ''), r.claimed_until, r.decided_at IS NOT NULL
		FROM decisions d LEFT JOIN reviews r ON r.kind = 'decision' AND r.item_id = d.id
		WHERE d.id = $1`,
}

// openStatus is the status or outcome that puts an item of each kind in the queue.
var openStatus = map[string]string{store.ReviewVerification: store.StatusPendingReview, store.ReviewDecision: "review"}

func scanReviewItem(row pgx.Row, extra ...any) (store.ReviewItem, error) {
	var (
		it    store.ReviewItem
		codes []byte
		until *time.Time
	)
	if err := row.Scan(append([]any{&it.Kind, &it.ID, &it.UserID, &it.Action, &it.Status, &it.Score, &codes,
		&it.CreatedAt, &it.ClaimedBy, &until}, extra...)...); err != nil {
		return store.ReviewItem{}, err
	}
	if err := json.Unmarshal(codes, &it.ReasonCodes); err != nil {
		return store.ReviewItem{}, fmt.Errorf("decode reason codes of %s %q: %w", it.Kind, it.ID, err)
	}
	it.CreatedAt, it.ClaimedUntil = it.CreatedAt.UTC(), fromNullTime(until)
	return it, nil
}

// ListReviews implements store.Reviews: open items by CreatedAt, then highest Score, then
// ID (bytewise), then kind; none when limit < 1.
func (s *Store) ListReviews(ctx context.Context, limit int) ([]store.ReviewItem, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, reviewQueue, limit)
	if err != nil {
		return nil, classify(ctx, "list reviews", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ReviewItem, error) { return scanReviewItem(row) })
	if err != nil {
		return nil, classify(ctx, "list reviews", err)
	}
	return out, nil
}

// reviewTx is a write transaction on one review item.
type reviewTx struct {
	*writeTx
	item   store.ReviewItem
	found  bool
	closed bool
	// session is the verification under review (kind verification), locked.
	session store.Verification
}

// beginReview begins a write transaction, locks the audit head and reads the item (and,
// for a verification, locks the session's row), in one round trip. The audit head already
// serializes every write.
func (s *Store) beginReview(ctx context.Context, now time.Time, kind, id string) (*reviewTx, error) {
	rt := &reviewTx{}
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		if kind == store.ReviewVerification {
			b.Queue(`SELECT `+verificationColumns+` FROM verifications WHERE id = $1 FOR UPDATE`, id).
				QueryRow(func(row pgx.Row) error {
					v, err := scanVerification(row)
					if errors.Is(err, pgx.ErrNoRows) {
						return nil
					}
					rt.session = v
					return err
				})
		}
		b.Queue(reviewItemQueries[kind], id).QueryRow(func(row pgx.Row) error {
			it, err := scanReviewItem(row, &rt.closed)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			rt.item, rt.found = it, err == nil
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	rt.writeTx = w
	return rt, nil
}

// open returns nil when the item is open, else an error wrapping store.ErrNotFound.
func (rt *reviewTx) open(kind, id string) error {
	switch {
	case !rt.found:
		return fmt.Errorf("review %s %q: %w", kind, id, store.ErrNotFound)
	case rt.closed || rt.item.Status != openStatus[kind]:
		return fmt.Errorf("review %s %q is closed: %w", kind, id, store.ErrNotFound)
	}
	return nil
}

// ClaimReview implements store.Reviews. It returns an error wrapping store.ErrInvalidRecord
// for an unknown kind or an empty id or reviewer.
func (s *Store) ClaimReview(ctx context.Context, kind, id, reviewer string, until time.Time, correlationID string) (store.ReviewItem, error) {
	if err := store.ValidateClaim(kind, id, reviewer, correlationID); err != nil {
		return store.ReviewItem{}, fmt.Errorf("claim review: %w", err)
	}
	now := s.now()
	until = store.UTCMicros(until)
	rt, err := s.beginReview(ctx, now, kind, id)
	if err != nil {
		return store.ReviewItem{}, classify(ctx, "claim review", err)
	}
	defer rt.rollback(ctx)
	if err := rt.open(kind, id); err != nil {
		return store.ReviewItem{}, fmt.Errorf("claim review: %w", err)
	}
	it := rt.item
	if it.ClaimedBy != "" && it.ClaimedBy != reviewer && it.ClaimedUntil.After(now) {
		return store.ReviewItem{}, fmt.Errorf("claim review %s %q: held by %s until %s: %w", kind, id, it.ClaimedBy,
			it.ClaimedUntil.Format(time.RFC3339), store.ErrClaimed)
	}
	ev, err := store.ReviewClaimedEvent(kind, id, it.UserID, reviewer, until, correlationID, now)
	if err != nil {
		return store.ReviewItem{}, fmt.Errorf("claim review: %w", err)
	}
	if err := rt.append(ev); err != nil {
		return store.ReviewItem{}, fmt.Errorf("claim review: %w", err)
	}
	err = rt.commit(ctx, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO reviews (kind, item_id, claimed_by, claimed_until) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, item_id) DO UPDATE SET
			claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until`,
			kind, id, reviewer, nullTime(until))
	})
	if err != nil {
		return store.ReviewItem{}, classify(ctx, "claim review", err)
	}
	it.ClaimedBy, it.ClaimedUntil = reviewer, until
	return it, nil
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
	rt, err := s.beginReview(ctx, now, r.Kind, r.ID)
	if err != nil {
		return classify(ctx, "resolve review", err)
	}
	defer rt.rollback(ctx)
	if err := rt.open(r.Kind, r.ID); err != nil {
		return fmt.Errorf("resolve review: %w", err)
	}
	if it := rt.item; it.ClaimedBy != r.Reviewer || !it.ClaimedUntil.After(now) {
		return fmt.Errorf("resolve review %s %q: %s holds no current claim: %w", r.Kind, r.ID, r.Reviewer, store.ErrClaimed)
	}
	var values []any
	if r.Kind == store.ReviewVerification {
		ch := store.VerificationChange{Actor: r.Reviewer, CorrelationID: r.CorrelationID, Reason: r.Reason}
		next, events, err := store.ApplyVerificationChange(rt.session, ch, now, func(v *store.Verification) error {
			store.ApplyResolution(v, r)
			return nil
		})
		if err != nil {
			return err
		}
		if values, err = verificationValues(next); err != nil {
			return fmt.Errorf("resolve review: %w", err)
		}
		for _, ev := range events {
			if err := rt.append(ev); err != nil {
				return fmt.Errorf("resolve review: %w", err)
			}
		}
	}
	ev, err := store.ReviewDecidedEvent(r, rt.item.UserID, now)
	if err != nil {
		return fmt.Errorf("resolve review: %w", err)
	}
	if err := rt.append(ev); err != nil {
		return fmt.Errorf("resolve review: %w", err)
	}
	err = rt.commit(ctx, func(b *pgx.Batch) {
		if values != nil {
			b.Queue(updateVerification, values...)
		}
		b.Queue(`UPDATE reviews SET decided_by = $3, outcome = $4, reason = $5, note_sha256 = $6, decided_at = $7
			WHERE kind = $1 AND item_id = $2`, r.Kind, r.ID, r.Reviewer, r.Outcome, r.Reason, r.NoteSHA256, r.DecidedAt)
		if r.Kind == store.ReviewDecision {
			// Out of the queue's index of open decisions.
			b.Queue(`UPDATE decisions SET review_closed_at = $2 WHERE id = $1`, r.ID, r.DecidedAt)
		}
	})
	if err != nil {
		return classify(ctx, "resolve review", err)
	}
	return nil
}

// GetReviewResolution implements store.Reviews.
func (s *Store) GetReviewResolution(ctx context.Context, kind, id string) (store.ReviewResolution, error) {
	r := store.ReviewResolution{Kind: kind, ID: id}
	err := s.pool.QueryRow(ctx, `SELECT decided_by, outcome, reason, note_sha256, decided_at FROM reviews
		WHERE kind = $1 AND item_id = $2 AND decided_at IS NOT NULL`, kind, id).
		Scan(&r.Reviewer, &r.Outcome, &r.Reason, &r.NoteSHA256, &r.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ReviewResolution{}, fmt.Errorf("review resolution of %s %q: %w", kind, id, store.ErrNotFound)
	}
	if err != nil {
		return store.ReviewResolution{}, classify(ctx, "get review resolution", err)
	}
	r.DecidedAt = r.DecidedAt.UTC()
	return r, nil
}
