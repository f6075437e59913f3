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

// verificationColumns are the columns scanVerification reads, in its order.
const verificationColumns = `id, user_id, provider, provider_ref, status, score, reason_codes::text,
	evidence::text, consent::text, retention_policy, created_at, updated_at, expires_at, last_event_at`

func scanVerification(row pgx.Row) (store.Verification, error) {
	var (
		v                      store.Verification
		codes, evidence        []byte
		consent                []byte
		expiresAt, lastEventAt *time.Time
	)
	if err := row.Scan(&v.ID, &v.UserID, &v.Provider, &v.ProviderRef, &v.Status, &v.Score, &codes,
		&evidence, &consent, &v.RetentionPolicy, &v.CreatedAt, &v.UpdatedAt, &expiresAt, &lastEventAt); err != nil {
		return store.Verification{}, err
	}
	if err := store.DecodeVerificationJSON(&v, codes, evidence, consent); err != nil {
		return store.Verification{}, err
	}
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	v.ExpiresAt, v.LastEventAt = fromNullTime(expiresAt), fromNullTime(lastEventAt)
	return v, nil
}

// querier is the read side shared by the pool and a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// verificationWhere returns the one verification matching where (a WHERE clause), or an
// error wrapping store.ErrNotFound.
func verificationWhere(ctx context.Context, q querier, where string, args ...any) (store.Verification, error) {
	v, err := scanVerification(q.QueryRow(ctx, `SELECT `+verificationColumns+` FROM verifications `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Verification{}, store.ErrNotFound
	}
	return v, err
}

// collectVerifications reads every row of a query selecting verificationColumns.
func collectVerifications(rows pgx.Rows) ([]store.Verification, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Verification, error) { return scanVerification(row) })
}

// verificationValues returns the arguments of insertVerification and updateVerification
// for v.
func verificationValues(v store.Verification) ([]any, error) {
	evidence, err := store.EncodeEvidence(v.Evidence)
	if err != nil {
		return nil, err
	}
	consent, err := store.EncodeConsent(v.Consent)
	if err != nil {
		return nil, err
	}
	return []any{v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status, v.Score, reasonCodesJSON(v.ReasonCodes),
		evidence, consent, v.RetentionPolicy, v.CreatedAt, v.UpdatedAt, nullTime(v.ExpiresAt), nullTime(v.LastEventAt)}, nil
}

const insertVerification = `INSERT INTO verifications (id, user_id, provider, provider_ref, status, score,
	reason_codes, evidence, consent, retention_policy, created_at, updated_at, expires_at, last_event_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14)`

// updateVerification sets every mutable column; it takes verificationValues' arguments
// (and uses the immutable ones to find the row, as every argument must be used).
const updateVerification = `UPDATE verifications SET provider_ref = $4, status = $5, score = $6,
	reason_codes = $7::jsonb, evidence = $8::jsonb, consent = $9::jsonb, retention_policy = $10,
	updated_at = $12, expires_at = $13, last_event_at = $14
	WHERE id = $1 AND user_id = $2 AND provider = $3 AND created_at = $11`

// CreateVerification implements store.VerificationStore in one transaction that holds
// the audit head. A zero CreatedAt or UpdatedAt is set to the store's clock; times are
// kept to the microsecond. The session is inserted with ON CONFLICT DO NOTHING on the
// unique (provider, provider_ref) index, and when that finds a session with the same
// reference it is read back and returned (created=false). Besides
// verification.status_changed it appends consent_recorded when the session has consent,
// and evidence_added (and evidence_uploaded) for evidence it starts with. It returns an
// error wrapping store.ErrInvalidRecord for a session store.ValidateVerification refuses,
// with a status that is not canonical, or with evidence or consent that is not valid text,
// and one wrapping store.ErrConflict when a session with the same ID exists.
func (s *Store) CreateVerification(ctx context.Context, nv store.NewVerification) (store.Verification, bool, error) {
	now := s.now()
	v, err := store.PrepareNewVerification(nv, now)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	events, err := store.VerificationChangeEvents(nil, v, store.VerificationChange{Actor: nv.Actor, CorrelationID: nv.CorrelationID}, now)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	values, err := verificationValues(v)
	if err != nil {
		return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
	}
	key := nv.IdempotencyKey
	var (
		idemFound        bool
		idemHash, idemID string
	)
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		if key == "" {
			return
		}
		b.Queue(`SELECT request_hash, verification_id FROM verification_idempotency WHERE key = $1`, key).
			QueryRow(func(row pgx.Row) error {
				err := row.Scan(&idemHash, &idemID)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil
				}
				idemFound = err == nil
				return err
			})
	})
	if err != nil {
		return store.Verification{}, false, classify(ctx, "create verification", err)
	}
	defer w.rollback(ctx)
	if idemFound {
		if idemHash != nv.RequestHash {
			return store.Verification{}, false, fmt.Errorf("create verification: %w", store.ErrDuplicateIdempotencyKey)
		}
		got, err := verificationWhere(ctx, w.tx, `WHERE id = $1`, idemID)
		if err != nil {
			return store.Verification{}, false, classify(ctx, "create verification: read the session of the idempotency key", err)
		}
		return got, false, nil
	}

	var (
		inserted    bool
		winner      store.Verification
		winnerFound bool
	)
	b := &pgx.Batch{}
	b.Queue(insertVerification+` ON CONFLICT (provider, provider_ref) WHERE provider_ref <> '' DO NOTHING`, values...).
		Exec(func(tag pgconn.CommandTag) error {
			inserted = tag.RowsAffected() == 1
			return nil
		})
	if v.ProviderRef != "" {
		// A statement of its own, so it sees the row the insert conflicted with.
		b.Queue(`SELECT `+verificationColumns+` FROM verifications WHERE provider = $1 AND provider_ref = $2`,
			v.Provider, v.ProviderRef).QueryRow(func(row pgx.Row) error {
			var err error
			winner, err = scanVerification(row)
			winnerFound = err == nil
			return err
		})
	}
	if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
		return store.Verification{}, false, classify(ctx, "create verification", err)
	}
	out, created := v, inserted
	if !inserted {
		if !winnerFound {
			return store.Verification{}, false, fmt.Errorf("create verification %q: %w", v.ID, store.ErrConflict)
		}
		out = winner
	} else {
		for _, ev := range events {
			if err := w.append(ev); err != nil {
				return store.Verification{}, false, fmt.Errorf("create verification: %w", err)
			}
		}
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		if key != "" {
			b.Queue(`INSERT INTO verification_idempotency (key, request_hash, verification_id) VALUES ($1, $2, $3)`,
				key, nv.RequestHash, out.ID)
		}
	})
	if err != nil {
		return store.Verification{}, false, classify(ctx, "create verification", err)
	}
	if created {
		s.unverified.Forget(out.UserID) // the database announces it too, a round trip later
	}
	return out, created, nil
}

// GetVerification implements store.VerificationStore.
func (s *Store) GetVerification(ctx context.Context, id string) (store.Verification, error) {
	v, err := verificationWhere(ctx, s.pool, `WHERE id = $1`, id)
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
	v, err := verificationWhere(ctx, s.pool, `WHERE provider = $1 AND provider_ref = $2`, provider, ref)
	if err != nil {
		return store.Verification{}, classify(ctx, "verification by provider reference", err)
	}
	return v, nil
}

// ListVerifications implements store.VerificationStore: newest CreatedAt first, ties
// broken by the greater ID (bytewise); none when limit < 1.
func (s *Store) ListVerifications(ctx context.Context, userID string, limit int) ([]store.Verification, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+verificationColumns+` FROM verifications WHERE user_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, userID, limit)
	if err != nil {
		return nil, classify(ctx, "list verifications", err)
	}
	out, err := collectVerifications(rows)
	if err != nil {
		return nil, classify(ctx, "list verifications", err)
	}
	return out, nil
}

// LatestVerification implements store.Verifications: the user's verification with the
// latest UpdatedAt (ties broken by the greater ID), or an error wrapping store.ErrNotFound.
func (s *Store) LatestVerification(ctx context.Context, userID string) (store.Verification, error) {
	s.startListener()
	none, gen := s.unverified.Has(userID, s.now())
	if none {
		return store.Verification{}, fmt.Errorf("latest verification: %w", store.ErrNotFound)
	}
	v, err := verificationWhere(ctx, s.pool, `WHERE user_id = $1 ORDER BY updated_at DESC, id DESC LIMIT 1`, userID)
	if err != nil {
		err = classify(ctx, "latest verification", err)
		if errors.Is(err, store.ErrNotFound) {
			s.unverified.Add(userID, gen)
		}
		return store.Verification{}, err
	}
	return v, nil
}

// LatestVerifications implements store.Verifications in one query: for each distinct user,
// the same index lookup LatestVerification makes (a LATERAL subquery per user).
func (s *Store) LatestVerifications(ctx context.Context, userIDs []string) (map[string]store.Verification, error) {
	out := make(map[string]store.Verification, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	s.startListener()
	now := s.now()
	ask := distinct(userIDs)
	var gen uint64
	n := 0
	for _, id := range ask {
		none, g := s.unverified.Has(id, now)
		gen = g
		if !none {
			ask[n] = id
			n++
		}
	}
	if ask = ask[:n]; len(ask) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT latest.* FROM unnest($1::text[]) AS u(user_id)
		CROSS JOIN LATERAL (SELECT `+verificationColumns+` FROM verifications v
			WHERE v.user_id = u.user_id ORDER BY v.updated_at DESC, v.id DESC LIMIT 1) latest`, ask)
	if err != nil {
		return nil, classify(ctx, "latest verifications", err)
	}
	vs, err := collectVerifications(rows)
	if err != nil {
		return nil, classify(ctx, "latest verifications", err)
	}
	for _, v := range vs {
		out[v.UserID] = v
	}
	for _, id := range ask {
		if _, ok := out[id]; !ok {
			s.unverified.Add(id, gen)
		}
	}
	return out, nil
}

// distinct returns ids without repeats, in their first order.
func distinct(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// UpdateVerification implements store.VerificationStore in one transaction: it locks the
// audit head and the session's row (SELECT ... FOR UPDATE) and checks the event key in the
// first round trip, and writes the row, the event key, the payload and the audit events
// with the commit. Holding the audit head serializes every write, so two deliveries of one
// event cannot both pass the check. Errors from fn and *store.IllegalTransitionError are
// returned as they are; a change of ID, UserID, Provider or CreatedAt, or a result
// validation refuses, is an error wrapping store.ErrInvalidRecord. In every error case
// nothing is written. When the session moves into pending_review, a review row left from
// an earlier round is removed, so that it is queued again.
func (s *Store) UpdateVerification(ctx context.Context, id string, ch store.VerificationChange, fn func(v *store.Verification) error) (store.Verification, error) {
	op := fmt.Sprintf("update verification %q", id)
	if err := store.ValidateVerificationChange(ch); err != nil {
		return store.Verification{}, fmt.Errorf("%s: %w", op, err)
	}
	now := s.now()
	var (
		prev           store.Verification
		found, applied bool
	)
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		b.Queue(`SELECT `+verificationColumns+` FROM verifications WHERE id = $1 FOR UPDATE`, id).
			QueryRow(func(row pgx.Row) error {
				v, err := scanVerification(row)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil
				}
				prev, found = v, err == nil
				return err
			})
		if ch.EventKey != "" {
			b.Queue(`SELECT EXISTS (SELECT 1 FROM webhook_events WHERE event_key = $1)`, ch.EventKey).
				QueryRow(func(row pgx.Row) error { return row.Scan(&applied) })
		}
	})
	if err != nil {
		return store.Verification{}, classify(ctx, op, err)
	}
	defer w.rollback(ctx)
	switch {
	case !found:
		return store.Verification{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case applied:
		return store.Verification{}, fmt.Errorf("%s: %w", op, store.ErrAlreadyApplied)
	}
	next, events, err := store.ApplyVerificationChange(prev, ch, now, fn)
	if err != nil {
		return store.Verification{}, err
	}
	values, err := verificationValues(next)
	if err != nil {
		return store.Verification{}, fmt.Errorf("%s: %w", op, err)
	}
	for _, ev := range events {
		if err := w.append(ev); err != nil {
			return store.Verification{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		b.Queue(updateVerification, values...)
		if ch.EventKey != "" {
			b.Queue(`INSERT INTO webhook_events (event_key, verification_id, applied_at) VALUES ($1, $2, $3)`,
				ch.EventKey, id, store.UTCMicros(now))
		}
		if p := ch.Payload; p != nil {
			received := store.UTCMicros(p.ReceivedAt)
			if received.IsZero() {
				received = store.UTCMicros(now)
			}
			b.Queue(`INSERT INTO raw_payloads (id, provider, verification_id, received_at, ciphertext)
				VALUES ($1, $2, $3, $4, $5)`, p.ID, p.Provider, id, received, p.Ciphertext)
		}
		if store.ReentersReview(prev, next) {
			b.Queue(`DELETE FROM reviews WHERE kind = $1 AND item_id = $2`, store.ReviewVerification, id)
		}
	})
	if err != nil {
		return store.Verification{}, classify(ctx, op, err)
	}
	return next, nil
}

// RawPayload implements store.VerificationStore.
func (s *Store) RawPayload(ctx context.Context, id string) (store.RawPayload, error) {
	var p store.RawPayload
	err := s.pool.QueryRow(ctx, `SELECT id, provider, received_at, ciphertext FROM raw_payloads WHERE id = $1`, id).
		Scan(&p.ID, &p.Provider, &p.ReceivedAt, &p.Ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.RawPayload{}, fmt.Errorf("raw payload %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.RawPayload{}, classify(ctx, fmt.Sprintf("raw payload %q", id), err)
	}
	p.ReceivedAt = p.ReceivedAt.UTC()
	return p, nil
}

// ExpireVerifications implements store.VerificationStore in one transaction: it locks the
// audit head and the due rows, the sessions with the earliest ExpiresAt first. Each gets
// UpdatedAt from the store's clock and a verification.status_changed event with actor
// "system" and reason VERIFICATION_EXPIRED.
func (s *Store) ExpireVerifications(ctx context.Context, now time.Time, limit int) ([]store.Verification, error) {
	if limit < 1 {
		return nil, nil
	}
	at := s.now()
	var due []store.Verification
	w, err := s.begin(ctx, at, func(b *pgx.Batch) {
		b.Queue(`SELECT `+verificationColumns+` FROM verifications
			WHERE expires_at IS NOT NULL AND expires_at < $1 AND status <> ALL ($2::text[])
			ORDER BY expires_at, id LIMIT $3 FOR UPDATE`, now, store.TerminalStatuses(), limit).
			Query(func(rows pgx.Rows) error {
				var err error
				due, err = collectVerifications(rows)
				return err
			})
	})
	if err != nil {
		return nil, classify(ctx, "expire verifications", err)
	}
	defer w.rollback(ctx)
	updates := make([][]any, 0, len(due))
	expired := make([]store.Verification, 0, len(due))
	for _, prev := range due {
		next, events, err := store.ApplyVerificationChange(prev, store.ExpiryChange, at, func(v *store.Verification) error {
			v.Status = store.StatusExpired
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("expire verifications: %w", err)
		}
		values, err := verificationValues(next)
		if err != nil {
			return nil, fmt.Errorf("expire verifications: %w", err)
		}
		updates = append(updates, values)
		expired = append(expired, next)
		for _, ev := range events {
			if err := w.append(ev); err != nil {
				return nil, fmt.Errorf("expire verifications: %w", err)
			}
		}
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		for _, values := range updates {
			b.Queue(updateVerification, values...)
		}
	})
	if err != nil {
		return nil, classify(ctx, "expire verifications", err)
	}
	return expired, nil
}

// AppendAudit implements store.AuditAppender. A zero Time is set to the store's clock;
// the audit partition for the event's month is created if missing. It returns an error
// wrapping store.ErrInvalidRecord for an event without a type, with text that is not valid
// UTF-8, or whose payload is not a JSON object.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	if err := store.ValidateAuditEvent(ev); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	now := s.now()
	if ev.Time.IsZero() {
		ev.Time = now
	}
	if !sameMonth(ev.Time, now) {
		// Not the month ensurePartitions follows (it tracks the clock): make sure of this
		// one month directly.
		if _, err := s.pool.Exec(ctx, `SELECT verdict_ensure_audit_partitions($1, 1)`, ev.Time); err != nil {
			return classify(ctx, "append audit event: ensure audit partition", err)
		}
	}
	w, err := s.begin(ctx, now, nil)
	if err != nil {
		return classify(ctx, "append audit event", err)
	}
	defer w.rollback(ctx)
	if err := w.append(ev); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return classify(ctx, "append audit event", err)
	}
	return nil
}

// nullTime returns t, or nil (NULL) for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// sameMonth reports whether a and b fall in the same UTC month.
func sameMonth(a, b time.Time) bool {
	ay, am, _ := a.UTC().Date()
	by, bm, _ := b.UTC().Date()
	return ay == by && am == bm
}

// RawPayloadIDs implements store.VerificationStore.
func (s *Store) RawPayloadIDs(ctx context.Context, verificationID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM raw_payloads WHERE verification_id = $1 ORDER BY received_at, id`, verificationID)
	if err != nil {
		return nil, classify(ctx, "raw payload ids", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify(ctx, "raw payload ids", err)
	}
	return ids, nil
}
