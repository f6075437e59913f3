package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/store"
)

var (
	_ store.LabelStore      = (*Store)(nil)
	_ store.DecisionScanner = (*Store)(nil)
)

// PutLabels implements store.LabelStore in one IMMEDIATE transaction: it looks up the
// decisions of every label, upserts the labels (a (decision, label) pair already stored
// gets the new tags, actor and creation time; a zero CreatedAt is set to the store's clock)
// and appends one outcome.labeled audit event per label, in the order given. A pair given
// twice is stored once, with its last tags, and audited once. It returns an error wrapping store.ErrNotFound
// that names the first unknown decision id, or store.ErrInvalidRecord for an unknown label,
// an invalid tag or actor, and then writes nothing. It returns how many pairs were new.
func (s *Store) PutLabels(ctx context.Context, labels []store.OutcomeLabel, correlationID string) (int, error) {
	if len(labels) == 0 {
		return 0, nil
	}
	now := s.now()
	labels, ids, err := store.PrepareLabels(labels, now)
	if err != nil {
		return 0, fmt.Errorf("put labels: %w", err)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("put labels: %w", err)
	}
	created := 0
	err = s.writeTx(ctx, "put labels", func(tx *sql.Tx, c *chain) error {
		subjects := make(map[string]string, len(ids))
		if err := queryPairs(ctx, tx, `SELECT id, subject_id FROM decisions
			WHERE id IN (SELECT value FROM json_each(?))`, string(idsJSON), func(id, subject string) {
			subjects[id] = subject
		}); err != nil {
			return fmt.Errorf("look up decisions: %w", err)
		}
		for _, id := range ids {
			if _, ok := subjects[id]; !ok {
				return fmt.Errorf("decision %q: %w", id, store.ErrNotFound)
			}
		}
		stored := map[labelKey]bool{}
		if err := queryPairs(ctx, tx, `SELECT decision_id, label FROM outcome_labels
			WHERE decision_id IN (SELECT value FROM json_each(?))`, string(idsJSON), func(id, label string) {
			stored[labelKey{id, label}] = true
		}); err != nil {
			return fmt.Errorf("look up labels: %w", err)
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO outcome_labels (decision_id, label, tags, created_at, actor)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (decision_id, label) DO UPDATE SET
			tags = excluded.tags, created_at = excluded.created_at, actor = excluded.actor`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, l := range labels {
			if _, err := ins.ExecContext(ctx, l.DecisionID, l.Label, store.TagsJSON(l.Tags), micros(l.CreatedAt), l.Actor); err != nil {
				return fmt.Errorf("upsert label %q on decision %q: %w", l.Label, l.DecisionID, err)
			}
			if k := (labelKey{l.DecisionID, l.Label}); !stored[k] {
				stored[k] = true
				created++
			}
			ev, err := store.OutcomeLabeledEvent(l, subjects[l.DecisionID], correlationID, now)
			if err != nil {
				return err
			}
			if err := c.append(ctx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return created, nil
}

// MissingDecision implements store.LabelStore: ids are looked up 10,000 at a time on the
// read pool.
func (s *Store) MissingDecision(ctx context.Context, ids []string) (string, error) {
	found := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(ids, 10_000) {
		idsJSON, err := json.Marshal(chunk)
		if err != nil {
			return "", fmt.Errorf("look up decisions: %w", err)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM decisions WHERE id IN (SELECT value FROM json_each(?))`, string(idsJSON))
		if err != nil {
			return "", classify(ctx, "look up decisions", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return "", classify(ctx, "look up decisions", err)
			}
			found[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", classify(ctx, "look up decisions", err)
		}
	}
	return store.FirstMissing(ids, found), nil
}

type labelKey struct{ decisionID, label string }

// queryPairs runs a query of two text columns inside tx and calls fn for every row.
func queryPairs(ctx context.Context, tx *sql.Tx, query string, arg any, fn func(a, b string)) error {
	rows, err := tx.QueryContext(ctx, query, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	return rows.Err()
}

// DecisionLabels implements store.LabelStore: the decision's labels ordered by label, none
// (and no error) for a decision without labels or one that does not exist.
func (s *Store) DecisionLabels(ctx context.Context, decisionID string) ([]store.OutcomeLabel, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT decision_id, label, tags, created_at, actor FROM outcome_labels
		WHERE decision_id = ? ORDER BY label`, decisionID)
	if err != nil {
		return nil, classify(ctx, "decision labels", err)
	}
	defer rows.Close()
	var out []store.OutcomeLabel
	err = scanLabels(rows, func(l store.OutcomeLabel) { out = append(out, l) })
	if err != nil {
		return nil, classify(ctx, "decision labels", err)
	}
	return out, nil
}

func scanLabels(rows *sql.Rows, fn func(store.OutcomeLabel)) error {
	for rows.Next() {
		var (
			l    store.OutcomeLabel
			tags []byte
			at   int64
		)
		if err := rows.Scan(&l.DecisionID, &l.Label, &tags, &at, &l.Actor); err != nil {
			return err
		}
		if err := json.Unmarshal(tags, &l.Tags); err != nil {
			return fmt.Errorf("decode tags of label %q on decision %q: %w", l.Label, l.DecisionID, err)
		}
		l.CreatedAt = fromMicros(at)
		fn(l)
	}
	return rows.Err()
}

// scanPageSize is how many decisions ScanDecisions reads per query: large enough that the
// per-query cost vanishes, small enough to keep memory flat.
const scanPageSize = 1000

// ScanDecisions implements store.DecisionScanner with keyset pagination: each page is one
// index range scan starting after the last (created_at, id) of the previous page (ids
// compared bytewise), and the page's labels are read with one more query before fn sees
// its decisions. No transaction stays open between pages, so a long scan does not hold back
// WAL checkpoints; decisions written during the scan after its position are seen, earlier
// ones are not. fn runs outside any query and may use the store. Bounds are compared to the
// microsecond, as times are stored.
func (s *Store) ScanDecisions(ctx context.Context, f store.DecisionFilter, fn func(store.LabeledDecision) error) error {
	const op = "scan decisions"
	var (
		conds []string
		args  []any
	)
	if f.Action != "" {
		conds, args = append(conds, "action = ?"), append(args, f.Action)
	}
	if !f.From.IsZero() {
		conds, args = append(conds, "created_at >= ?"), append(args, ceilMicros(f.From))
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "created_at < ?"), append(args, ceilMicros(f.To))
	}
	where := func(after bool) string {
		c := conds
		if after {
			c = append(slices.Clip(c), "(created_at, id) > (?, ?)")
		}
		if len(c) == 0 {
			return ""
		}
		return "WHERE " + strings.Join(c, " AND ")
	}
	const cols = `SELECT id, action, subject_id, outcome, score, reason_codes, policy_version, policy_hash,
		fail_mode, input, response, idempotency_key, request_hash, created_at, actor, correlation_id FROM decisions `
	tail := ` ORDER BY created_at, id LIMIT ` + strconv.Itoa(scanPageSize)
	first, err := s.r.PrepareContext(ctx, cols+where(false)+tail)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer first.Close()
	next, err := s.r.PrepareContext(ctx, cols+where(true)+tail)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer next.Close()
	labels, err := s.r.PrepareContext(ctx, `SELECT decision_id, label, tags, created_at, actor FROM outcome_labels
		WHERE decision_id IN (SELECT value FROM json_each(?)) ORDER BY decision_id, label`)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer labels.Close()

	page := make([]store.LabeledDecision, 0, scanPageSize)
	ids := make([]string, 0, scanPageSize)
	var lastAt int64
	for started := false; ; started = true {
		if err := ctx.Err(); err != nil {
			return classify(ctx, op, err)
		}
		var rows *sql.Rows
		if started {
			rows, err = next.QueryContext(ctx, append(slices.Clip(args), lastAt, page[len(page)-1].ID)...)
		} else {
			rows, err = first.QueryContext(ctx, args...)
		}
		if err != nil {
			return classify(ctx, op, err)
		}
		page, ids = page[:0], ids[:0]
		err = scanDecisionRows(rows, func(d store.DecisionRecord, at int64) {
			page = append(page, store.LabeledDecision{DecisionRecord: d})
			ids = append(ids, d.ID)
			lastAt = at
		})
		if err != nil {
			return classify(ctx, op, err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := s.attachLabels(ctx, labels, page, ids); err != nil {
			return classify(ctx, op, err)
		}
		for _, d := range page {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(page) < scanPageSize {
			return nil
		}
	}
}

// attachLabels reads the labels of the page's decisions (ids, in page order) with one query.
func (s *Store) attachLabels(ctx context.Context, stmt *sql.Stmt, page []store.LabeledDecision, ids []string) error {
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, string(idsJSON))
	if err != nil {
		return err
	}
	defer rows.Close()
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		at[id] = i
	}
	return scanLabels(rows, func(l store.OutcomeLabel) {
		if i, ok := at[l.DecisionID]; ok {
			page[i].Labels = append(page[i].Labels, l)
		}
	})
}

// scanDecisionRows reads every row of a decisions query (the columns of GetDecision), passes
// each with its creation time in microseconds, and closes rows.
func scanDecisionRows(rows *sql.Rows, fn func(store.DecisionRecord, int64)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			r                  store.DecisionRecord
			codes, input, resp []byte
			createdAt          int64
		)
		if err := rows.Scan(&r.ID, &r.Action, &r.SubjectID, &r.Outcome, &r.Score, &codes, &r.PolicyVersion,
			&r.PolicyHash, &r.FailMode, &input, &resp, &r.IdempotencyKey, &r.RequestHash, &createdAt, &r.Actor,
			&r.CorrelationID); err != nil {
			return err
		}
		if err := json.Unmarshal(codes, &r.ReasonCodes); err != nil {
			return fmt.Errorf("decision %q: decode reason codes: %w", r.ID, err)
		}
		// Scanning into []byte copies, so fn may keep the documents.
		r.Input, r.Response, r.CreatedAt = input, resp, fromMicros(createdAt)
		fn(r, createdAt)
	}
	return rows.Err()
}

// ceilMicros is the first whole microsecond at or after t: stored times are whole
// microseconds, so created_at >= t holds exactly when created_at >= ceilMicros(t), and the
// same for <.
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if time.UnixMicro(us).Before(t) && us < math.MaxInt64 {
		us++
	}
	return us
}
