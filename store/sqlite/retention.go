package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/store"
)

var _ store.Retention = (*Store)(nil)

// sessionScope returns the condition selecting the scope's sessions (alias v) and its
// arguments.
func sessionScope(scope store.RetentionScope) (string, []any) {
	unset := 0
	if scope.IncludeUnset {
		unset = 1
	}
	return `(v.retention_policy = ? OR (? = 1 AND v.retention_policy = ''))`, []any{scope.Policy, unset}
}

// liveEvidence is true for a session (alias v) that still has evidence not yet deleted.
const liveEvidence = `EXISTS (SELECT 1 FROM json_each(v.evidence) e WHERE json_extract(e.value, '$.state') <> '` + store.EvidenceDeleted + `')`

// dueRows returns the FROM ... WHERE ... clause of the scope's due records, the expression
// that identifies one of them, and its ordering.
func dueRows(scope store.RetentionScope) (from, key, order string, args []any, err error) {
	cut := micros(scope.Cutoff)
	pol, pargs := sessionScope(scope)
	switch scope.Class {
	case store.ClassRawEvidence:
		return `FROM verifications v, json_each(v.evidence) e WHERE v.created_at < ? AND ` + pol +
				` AND json_extract(e.value, '$.state') <> '` + store.EvidenceDeleted + `'`,
			`v.id`, `v.created_at, v.id, e.key`, append([]any{cut}, pargs...), nil
	case store.ClassRawPayloads:
		return `FROM raw_payloads p JOIN verifications v ON v.id = p.verification_id WHERE p.received_at < ? AND ` + pol,
			`p.id`, `p.received_at, p.id`, append([]any{cut}, pargs...), nil
	case store.ClassConsentRecords:
		return `FROM verifications v WHERE v.consent IS NOT NULL AND v.created_at < ? AND ` + pol,
			`v.id`, `v.created_at, v.id`, append([]any{cut}, pargs...), nil
	case store.ClassReviewNotes:
		return `FROM reviews r JOIN verifications v ON v.id = r.item_id WHERE r.kind = '` + store.ReviewVerification +
				`' AND r.decided_at IS NOT NULL AND r.decided_at < ? AND v.status <> '` + store.StatusPendingReview + `' AND ` + pol,
			`r.item_id`, `r.decided_at, r.item_id`, append([]any{cut}, pargs...), nil
	case store.ClassVerificationOutcomes:
		return `FROM verifications v WHERE v.created_at < ? AND ` + pol + ` AND NOT ` + liveEvidence,
			`v.id`, `v.created_at, v.id`, append([]any{cut}, pargs...), nil
	case store.ClassDecisions:
		return `FROM decisions d WHERE d.created_at < ?`, `d.id`, `d.created_at, d.id`, []any{cut}, nil
	case store.ClassLabels:
		return `FROM outcome_labels l WHERE l.created_at < ?`, `l.rowid`, `l.created_at, l.rowid`, []any{cut}, nil
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
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) `+from, args...).Scan(&n); err != nil {
		return 0, classify(ctx, "count "+scope.Class+" due", err)
	}
	return n, nil
}

// DeleteRetentionDue implements store.Retention in one IMMEDIATE transaction.
func (s *Store) DeleteRetentionDue(ctx context.Context, scope store.RetentionScope) (int, error) {
	if scope.Class == store.ClassRawEvidence {
		return 0, store.InvalidRecordf("retention: %s is deleted with MarkEvidenceDeleted after its blobs", scope.Class)
	}
	from, key, order, args, err := dueRows(scope)
	if err != nil {
		return 0, err
	}
	op := "delete " + scope.Class + " due"
	at := s.now()
	var n int
	err = s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+key+` `+from+` ORDER BY `+order+` LIMIT ?`, append(args, scope.BatchLimit())...)
		if err != nil {
			return err
		}
		var keys []any
		for rows.Next() {
			var k any
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		ids, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		in := `IN (SELECT value FROM json_each(?))`
		var stmts []string
		switch scope.Class {
		case store.ClassRawPayloads:
			stmts = []string{`DELETE FROM raw_payloads WHERE id ` + in}
		case store.ClassConsentRecords:
			stmts = []string{`UPDATE verifications SET consent = NULL WHERE id ` + in}
		case store.ClassReviewNotes:
			stmts = []string{`DELETE FROM reviews WHERE kind = '` + store.ReviewVerification + `' AND item_id ` + in}
		case store.ClassVerificationOutcomes:
			stmts = []string{
				`DELETE FROM raw_payloads WHERE verification_id ` + in,
				`DELETE FROM webhook_events WHERE verification_id ` + in,
				`DELETE FROM verification_idempotency WHERE verification_id ` + in,
				`DELETE FROM reviews WHERE kind = '` + store.ReviewVerification + `' AND item_id ` + in,
				`DELETE FROM verifications WHERE id ` + in,
			}
		case store.ClassDecisions:
			stmts = []string{
				`DELETE FROM outcome_labels WHERE decision_id ` + in,
				`DELETE FROM shadow_results WHERE decision_id ` + in,
				// The decision row names its key: look it up by primary key, not decision_id.
				`DELETE FROM idempotency WHERE key IN (SELECT idempotency_key FROM decisions WHERE id ` + in +
					` AND idempotency_key <> '') AND decision_id ` + in,
				`DELETE FROM reviews WHERE kind = '` + store.ReviewDecision + `' AND item_id ` + in,
				`DELETE FROM decisions WHERE id ` + in,
			}
		case store.ClassLabels:
			stmts = []string{`DELETE FROM outcome_labels WHERE rowid ` + in}
		}
		for _, q := range stmts {
			a := slices.Repeat([]any{string(ids)}, strings.Count(q, "?"))
			if _, err := tx.ExecContext(ctx, q, a...); err != nil {
				return fmt.Errorf("%s: %w", q[:min(len(q), 40)], err)
			}
		}
		ev, err := store.RetentionDeletedEvent(scope, len(keys), at)
		if err != nil {
			return err
		}
		n = len(keys)
		return c.append(ctx, ev)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RetentionDueEvidence implements store.Retention.
func (s *Store) RetentionDueEvidence(ctx context.Context, scope store.RetentionScope) ([]store.DueEvidence, error) {
	scope.Class = store.ClassRawEvidence
	from, _, order, args, err := dueRows(scope)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT v.id, json_extract(e.value, '$.id'), json_extract(e.value, '$.blob_key') `+
		from+` ORDER BY `+order+` LIMIT ?`, append(args, scope.BatchLimit())...)
	if err != nil {
		return nil, classify(ctx, "raw evidence due", err)
	}
	defer rows.Close()
	var out []store.DueEvidence
	for rows.Next() {
		var (
			d       store.DueEvidence
			id, key sql.NullString
		)
		if err := rows.Scan(&d.VerificationID, &id, &key); err != nil {
			return nil, classify(ctx, "raw evidence due", err)
		}
		d.EvidenceID, d.BlobKey = id.String, key.String
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "raw evidence due", err)
	}
	return out, nil
}

// MarkEvidenceDeleted implements store.Retention in one IMMEDIATE transaction.
func (s *Store) MarkEvidenceDeleted(ctx context.Context, scope store.RetentionScope, items []store.DueEvidence) (int, error) {
	scope.Class = store.ClassRawEvidence
	return s.markEvidence(ctx, "mark evidence deleted", "", items, func(n int, at time.Time) (store.AuditEvent, error) {
		return store.RetentionDeletedEvent(scope, n, at)
	})
}

// MarkSubjectEvidenceDeleted implements store.SubjectKeys in one IMMEDIATE transaction.
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
	byVerification := store.GroupDueEvidence(items)
	if len(byVerification) == 0 {
		return 0, nil
	}
	at := s.now()
	var n int
	err := s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		for _, g := range byVerification {
			var raw string
			err := tx.QueryRowContext(ctx, `SELECT evidence FROM verifications WHERE id = ? AND (? = '' OR user_id = ?)`,
				g.VerificationID, userID, userID).Scan(&raw)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			updated, marked, err := store.MarkEvidence(raw, g.EvidenceIDs)
			if err != nil {
				return fmt.Errorf("verification %q: %w", g.VerificationID, err)
			}
			if marked == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE verifications SET evidence = ? WHERE id = ?`, updated, g.VerificationID); err != nil {
				return err
			}
			n += marked
		}
		if n == 0 {
			return nil
		}
		ev, err := event(n, at)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RetentionPolicyNames implements store.Retention.
func (s *Store) RetentionPolicyNames(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT retention_policy, COUNT(*) FROM verifications GROUP BY retention_policy`)
	if err != nil {
		return nil, classify(ctx, "retention policy names", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			name string
			n    int
		)
		if err := rows.Scan(&name, &n); err != nil {
			return nil, classify(ctx, "retention policy names", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "retention policy names", err)
	}
	return out, nil
}
