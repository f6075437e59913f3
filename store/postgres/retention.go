package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

var _ store.Retention = (*Store)(nil)

// sessionPolicy selects the scope's sessions (alias v); its arguments are $2 and $3.
const sessionPolicy = `(v.retention_policy = $2 OR ($3::boolean AND v.retention_policy = ''))`

// dueRows returns the FROM ... WHERE ... clause of the scope's due records ($1 is the
// cutoff; session classes use $2 and $3), the columns that identify one, its ordering, and
// the arguments.
func dueRows(scope store.RetentionScope) (from, cols, order string, args []any, err error) {
	sargs := []any{scope.Cutoff, scope.Policy, scope.IncludeUnset}
	switch scope.Class {
	case store.ClassRawEvidence:
		return `FROM verifications v, jsonb_array_elements(v.evidence) WITH ORDINALITY AS e(value, ord)
			WHERE v.created_at < $1 AND ` + sessionPolicy + ` AND e.value->>'state' <> '` + store.EvidenceDeleted + `'`,
			`v.id, e.value->>'id', e.value->>'blob_key'`, `v.created_at, v.id, e.ord`, sargs, nil
	case store.ClassRawPayloads:
		return `FROM raw_payloads p JOIN verifications v ON v.id = p.verification_id
			WHERE p.received_at < $1 AND ` + sessionPolicy, `p.id`, `p.received_at, p.id`, sargs, nil
	case store.ClassConsentRecords:
		return `FROM verifications v WHERE v.consent IS NOT NULL AND v.created_at < $1 AND ` + sessionPolicy,
			`v.id`, `v.created_at, v.id`, sargs, nil
	case store.ClassReviewNotes:
		return `FROM reviews r JOIN verifications v ON v.id = r.item_id WHERE r.kind = '` + store.ReviewVerification +
				`' AND r.decided_at IS NOT NULL AND r.decided_at < $1 AND v.status <> '` + store.StatusPendingReview + `' AND ` + sessionPolicy,
			`r.item_id AS id`, `r.decided_at, r.item_id`, sargs, nil
	case store.ClassVerificationOutcomes:
		return `FROM verifications v WHERE v.created_at < $1 AND ` + sessionPolicy + ` AND NOT EXISTS (
				SELECT 1 FROM jsonb_array_elements(v.evidence) e WHERE e->>'state' <> '` + store.EvidenceDeleted + `')`,
			`v.id`, `v.created_at, v.id`, sargs, nil
	case store.ClassDecisions:
		return `FROM decisions d WHERE d.created_at < $1`, `d.id`, `d.created_at, d.id`, []any{scope.Cutoff}, nil
	case store.ClassLabels:
		return `FROM outcome_labels l WHERE l.created_at < $1`, `l.decision_id, l.label`,
			`l.created_at, l.decision_id, l.label`, []any{scope.Cutoff}, nil
	}
	return "", "", "", nil, store.InvalidRecordf("retention: unknown data class %q", scope.Class)
}

// CountRetentionDue implements store.Retention.
func (s *Store) CountRetentionDue(ctx context.Context, scope store.RetentionScope) (int, error) {
	from, _, _, args, err := dueRows(scope)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) `+from, args...).Scan(&n); err != nil {
		return 0, classify(ctx, "count "+scope.Class+" due", err)
	}
	return n, nil
}

// deletions are the data-modifying statements, as CTEs over "due", of each class. All see
// the rows as they were before the statement, so a decision's idempotency key can be read
// from the row being deleted; foreign keys are checked at the end of the statement.
var deletions = map[string][]string{
	store.ClassRawPayloads:    {`DELETE FROM raw_payloads WHERE id IN (SELECT id FROM due) RETURNING 1`},
	store.ClassConsentRecords: {`UPDATE verifications SET consent = NULL WHERE id IN (SELECT id FROM due) RETURNING 1`},
	store.ClassReviewNotes: {`DELETE FROM reviews WHERE kind = '` + store.ReviewVerification +
		`' AND item_id IN (SELECT id FROM due) RETURNING 1`},
	store.ClassVerificationOutcomes: {
		`DELETE FROM raw_payloads WHERE verification_id IN (SELECT id FROM due)`,
		`DELETE FROM webhook_events WHERE verification_id IN (SELECT id FROM due)`,
		`DELETE FROM verification_idempotency WHERE verification_id IN (SELECT id FROM due)`,
		`DELETE FROM reviews WHERE kind = '` + store.ReviewVerification + `' AND item_id IN (SELECT id FROM due)`,
		`DELETE FROM verifications WHERE id IN (SELECT id FROM due) RETURNING 1`,
	},
	store.ClassDecisions: {
		`DELETE FROM outcome_labels WHERE decision_id IN (SELECT id FROM due)`,
		`DELETE FROM shadow_results WHERE decision_id IN (SELECT id FROM due)`,
		`DELETE FROM idempotency i USING decisions d WHERE d.id IN (SELECT id FROM due)
			AND d.idempotency_key <> '' AND i.key = d.idempotency_key AND i.decision_id = d.id`,
		`DELETE FROM reviews WHERE kind = '` + store.ReviewDecision + `' AND item_id IN (SELECT id FROM due)`,
		`DELETE FROM decisions WHERE id IN (SELECT id FROM due) RETURNING 1`,
	},
	store.ClassLabels: {`DELETE FROM outcome_labels o USING due WHERE o.decision_id = due.decision_id
		AND o.label = due.label RETURNING 1`},
}

// DeleteRetentionDue implements store.Retention in one transaction holding the audit head
// (which serializes it with every other write): one statement deletes the batch and what
// hangs off it, then the event is appended.
func (s *Store) DeleteRetentionDue(ctx context.Context, scope store.RetentionScope) (int, error) {
	if scope.Class == store.ClassRawEvidence {
		return 0, store.InvalidRecordf("retention: %s is deleted with MarkEvidenceDeleted after its blobs", scope.Class)
	}
	from, cols, order, args, err := dueRows(scope)
	if err != nil {
		return 0, err
	}
	stmts := deletions[scope.Class]
	q := `WITH due AS (SELECT ` + cols + ` ` + from + ` ORDER BY ` + order + fmt.Sprintf(` LIMIT $%d)`, len(args)+1)
	for i, st := range stmts {
		q += fmt.Sprintf(`, d%d AS (%s)`, i, st)
	}
	q += fmt.Sprintf(` SELECT count(*) FROM d%d`, len(stmts)-1)
	args = append(args, scope.BatchLimit())
	op := "delete " + scope.Class + " due"
	at := s.now()
	var n int
	w, err := s.begin(ctx, at, func(b *pgx.Batch) {
		b.Queue(q, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
	})
	if err != nil {
		return 0, classify(ctx, op, err)
	}
	defer w.rollback(ctx)
	if n == 0 {
		return 0, nil
	}
	ev, err := store.RetentionDeletedEvent(scope, n, at)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if err := w.append(ev); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return 0, classify(ctx, op, err)
	}
	return n, nil
}

// RetentionDueEvidence implements store.Retention.
func (s *Store) RetentionDueEvidence(ctx context.Context, scope store.RetentionScope) ([]store.DueEvidence, error) {
	scope.Class = store.ClassRawEvidence
	from, cols, order, args, err := dueRows(scope)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` `+from+` ORDER BY `+order+fmt.Sprintf(` LIMIT $%d`, len(args)+1),
		append(args, scope.BatchLimit())...)
	if err != nil {
		return nil, classify(ctx, "raw evidence due", err)
	}
	defer rows.Close()
	var out []store.DueEvidence
	for rows.Next() {
		var (
			d       store.DueEvidence
			id, key *string
		)
		if err := rows.Scan(&d.VerificationID, &id, &key); err != nil {
			return nil, classify(ctx, "raw evidence due", err)
		}
		if id != nil {
			d.EvidenceID = *id
		}
		if key != nil {
			d.BlobKey = *key
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "raw evidence due", err)
	}
	return out, nil
}

// MarkEvidenceDeleted implements store.Retention in one transaction holding the audit head.
func (s *Store) MarkEvidenceDeleted(ctx context.Context, scope store.RetentionScope, items []store.DueEvidence) (int, error) {
	scope.Class = store.ClassRawEvidence
	return s.markEvidence(ctx, "mark evidence deleted", "", items, func(n int, at time.Time) (store.AuditEvent, error) {
		return store.RetentionDeletedEvent(scope, n, at)
	})
}

// MarkSubjectEvidenceDeleted implements store.SubjectKeys in one transaction holding the
// audit head.
func (s *Store) MarkSubjectEvidenceDeleted(ctx context.Context, userID, actor, correlationID string, items []store.DueEvidence) (int, error) {
	if userID == "" {
		return 0, store.InvalidRecordf("mark subject evidence deleted: empty user id")
	}
	return s.markEvidence(ctx, "mark subject evidence deleted", userID, items, func(n int, at time.Time) (store.AuditEvent, error) {
		return store.SubjectEvidenceDeletedEvent(userID, n, actor, correlationID, at)
	})
}

// markEvidence marks the items' pointers EvidenceDeleted, only in sessions of userID
// unless it is empty, and appends event's audit event when it marked any, in one
// transaction.
func (s *Store) markEvidence(ctx context.Context, op, userID string, items []store.DueEvidence,
	event func(n int, at time.Time) (store.AuditEvent, error)) (int, error) {
	groups := store.GroupDueEvidence(items)
	if len(groups) == 0 {
		return 0, nil
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.VerificationID
	}
	at := s.now()
	columns := map[string]string{}
	w, err := s.begin(ctx, at, func(b *pgx.Batch) {
		b.Queue(`SELECT id, evidence::text FROM verifications WHERE id = ANY ($1::text[]) AND ($2 = '' OR user_id = $2)
			FOR UPDATE`, ids, userID).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var id, col string
					if err := rows.Scan(&id, &col); err != nil {
						return err
					}
					columns[id] = col
				}
				return rows.Err()
			})
	})
	if err != nil {
		return 0, classify(ctx, op, err)
	}
	defer w.rollback(ctx)
	var (
		n       int
		updates [][2]string
	)
	for _, g := range groups {
		col, ok := columns[g.VerificationID]
		if !ok {
			continue
		}
		updated, marked, err := store.MarkEvidence(col, g.EvidenceIDs)
		if err != nil {
			return 0, fmt.Errorf("%s: verification %q: %w", op, g.VerificationID, err)
		}
		if marked > 0 {
			updates = append(updates, [2]string{g.VerificationID, updated})
			n += marked
		}
	}
	if n == 0 {
		return 0, nil
	}
	ev, err := event(n, at)
	if err == nil {
		err = w.append(ev)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		for _, u := range updates {
			b.Queue(`UPDATE verifications SET evidence = $2::jsonb WHERE id = $1`, u[0], u[1])
		}
	})
	if err != nil {
		return 0, classify(ctx, op, err)
	}
	return n, nil
}

// RetentionPolicyNames implements store.Retention.
func (s *Store) RetentionPolicyNames(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT retention_policy, COUNT(*) FROM verifications GROUP BY retention_policy`)
	if err != nil {
		return nil, classify(ctx, "retention policy names", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			name string
			n    int64
		)
		if err := rows.Scan(&name, &n); err != nil {
			return nil, classify(ctx, "retention policy names", err)
		}
		out[name] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "retention policy names", err)
	}
	return out, nil
}
