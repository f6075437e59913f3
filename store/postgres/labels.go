package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

var (
	_ store.LabelStore      = (*Store)(nil)
	_ store.DecisionScanner = (*Store)(nil)
)

// PutLabels implements store.LabelStore in one transaction and three round trips whatever
// the number of labels: it locks the audit head and reads the labels' decisions and the
// pairs already stored; upserts the labels (a (decision, label) pair already stored gets
// the new tags, actor and creation time; a zero CreatedAt is set to the store's clock) and
// inserts one outcome.labeled audit event per label, in the order given; and commits.
// Holding the head serializes label writes, so the count of new pairs cannot race. A pair
// given twice is stored once, with its last tags, and audited once. It returns an error wrapping
// store.ErrNotFound that names the first unknown decision id, or store.ErrInvalidRecord for
// an unknown label, an invalid tag or actor, and then writes nothing. It returns how many
// pairs were new.
func (s *Store) PutLabels(ctx context.Context, labels []store.OutcomeLabel, correlationID string) (int, error) {
	if len(labels) == 0 {
		return 0, nil
	}
	now := s.now()
	labels, ids, err := store.PrepareLabels(labels, now)
	if err != nil {
		return 0, fmt.Errorf("put labels: %w", err)
	}
	subjects := make(map[string]string, len(ids))
	stored := map[labelKey]bool{}
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		b.Queue(`SELECT id, subject_id FROM decisions WHERE id = ANY($1::text[])`, ids).Query(func(rows pgx.Rows) error {
			return eachPair(rows, func(id, subject string) { subjects[id] = subject })
		})
		b.Queue(`SELECT decision_id, label FROM outcome_labels WHERE decision_id = ANY($1::text[])`, ids).Query(func(rows pgx.Rows) error {
			return eachPair(rows, func(id, label string) { stored[labelKey{id, label}] = true })
		})
	})
	if err != nil {
		return 0, classify(ctx, "put labels", err)
	}
	defer w.rollback(ctx)
	for _, id := range ids {
		if _, ok := subjects[id]; !ok {
			return 0, fmt.Errorf("put labels: decision %q: %w", id, store.ErrNotFound)
		}
	}
	n := len(labels)
	decisionIDs, names, tags, actors := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	created := 0
	for i, l := range labels {
		decisionIDs[i], names[i], tags[i], times[i], actors[i] = l.DecisionID, l.Label, store.TagsJSON(l.Tags), l.CreatedAt, l.Actor
		if k := (labelKey{l.DecisionID, l.Label}); !stored[k] {
			stored[k] = true
			created++
		}
		ev, err := store.OutcomeLabeledEvent(l, subjects[l.DecisionID], correlationID, now)
		if err != nil {
			return 0, fmt.Errorf("put labels: %w", err)
		}
		if err := w.append(ev); err != nil {
			return 0, fmt.Errorf("put labels: %w", err)
		}
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO outcome_labels (decision_id, label, tags, created_at, actor)
			SELECT decision_id, label, tags::jsonb, created_at, actor
			FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
				AS l(decision_id, label, tags, created_at, actor)
			ON CONFLICT (decision_id, label) DO UPDATE SET
			tags = excluded.tags, created_at = excluded.created_at, actor = excluded.actor`,
			decisionIDs, names, tags, times, actors)
	})
	if err != nil {
		return 0, classify(ctx, "put labels", err)
	}
	return created, nil
}

// MissingDecision implements store.LabelStore: ids are looked up 10,000 at a time.
func (s *Store) MissingDecision(ctx context.Context, ids []string) (string, error) {
	found := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(ids, 10_000) {
		rows, err := s.pool.Query(ctx, `SELECT id FROM decisions WHERE id = ANY($1::text[])`, chunk)
		if err != nil {
			return "", classify(ctx, "look up decisions", err)
		}
		stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", classify(ctx, "look up decisions", err)
		}
		for _, id := range stored {
			found[id] = true
		}
	}
	return store.FirstMissing(ids, found), nil
}

type labelKey struct{ decisionID, label string }

// eachPair calls fn for every row of a query of two text columns.
func eachPair(rows pgx.Rows, fn func(a, b string)) error {
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

// DecisionLabels implements store.LabelStore: the decision's labels ordered by label
// (bytewise), none (and no error) for a decision without labels or one that does not exist.
func (s *Store) DecisionLabels(ctx context.Context, decisionID string) ([]store.OutcomeLabel, error) {
	rows, err := s.pool.Query(ctx, `SELECT decision_id, label, tags::text, created_at, actor FROM outcome_labels
		WHERE decision_id = $1 ORDER BY label COLLATE "C"`, decisionID)
	if err != nil {
		return nil, classify(ctx, "decision labels", err)
	}
	var out []store.OutcomeLabel
	if err := scanLabels(rows, func(l store.OutcomeLabel) { out = append(out, l) }); err != nil {
		return nil, classify(ctx, "decision labels", err)
	}
	return out, nil
}

func scanLabels(rows pgx.Rows, fn func(store.OutcomeLabel)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			l    store.OutcomeLabel
			tags []byte
		)
		if err := rows.Scan(&l.DecisionID, &l.Label, &tags, &l.CreatedAt, &l.Actor); err != nil {
			return err
		}
		if err := json.Unmarshal(tags, &l.Tags); err != nil {
			return fmt.Errorf("decode tags of label %q on decision %q: %w", l.Label, l.DecisionID, err)
		}
		l.CreatedAt = l.CreatedAt.UTC()
		fn(l)
	}
	return rows.Err()
}

// scanPageSize is how many decisions ScanDecisions reads per query: large enough that the
// per-query cost vanishes, small enough to keep memory flat.
const scanPageSize = 1000

// ScanDecisions implements store.DecisionScanner with keyset pagination: each page is one
// index range scan starting after the last (created_at, id) of the previous page (ids
// compared bytewise, COLLATE "C", as in the embedded store), and the page's labels are read
// with one more query before fn sees its decisions. No transaction or connection is held
// between pages; decisions written during the scan after its position are seen, earlier
// ones are not. fn runs outside any query and may use the store. Bounds are compared to the
// microsecond, as times are stored.
func (s *Store) ScanDecisions(ctx context.Context, f store.DecisionFilter, fn func(store.LabeledDecision) error) error {
	const op = "scan decisions"
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Action != "" {
		conds = append(conds, "action = "+arg(f.Action))
	}
	if !f.From.IsZero() {
		conds = append(conds, "created_at >= "+arg(time.UnixMicro(ceilMicros(f.From))))
	}
	if !f.To.IsZero() {
		conds = append(conds, "created_at < "+arg(time.UnixMicro(ceilMicros(f.To))))
	}
	base := len(args)
	const cols = `SELECT id, action, subject_id, outcome, score, reason_codes::text, policy_version, policy_hash,
		fail_mode, input::text, response::text, idempotency_key, request_hash, created_at, actor, correlation_id
		FROM decisions `
	tail := ` ORDER BY created_at, id COLLATE "C" LIMIT ` + fmt.Sprint(scanPageSize)
	where := func(c []string) string {
		if len(c) == 0 {
			return ""
		}
		return "WHERE " + strings.Join(c, " AND ")
	}
	first := cols + where(conds) + tail
	next := cols + where(append(slices.Clip(conds),
		fmt.Sprintf(`(created_at, id COLLATE "C") > ($%d, $%d)`, base+1, base+2))) + tail

	page := make([]store.LabeledDecision, 0, scanPageSize)
	ids := make([]string, 0, scanPageSize)
	var lastAt time.Time
	for started := false; ; started = true {
		if err := ctx.Err(); err != nil {
			return classify(ctx, op, err)
		}
		var (
			rows pgx.Rows
			err  error
		)
		if started {
			rows, err = s.pool.Query(ctx, next, append(slices.Clip(args), lastAt, page[len(page)-1].ID)...)
		} else {
			rows, err = s.pool.Query(ctx, first, args...)
		}
		if err != nil {
			return classify(ctx, op, err)
		}
		page, ids = page[:0], ids[:0]
		err = scanDecisionRows(rows, func(d store.DecisionRecord) {
			page = append(page, store.LabeledDecision{DecisionRecord: d})
			ids = append(ids, d.ID)
			lastAt = d.CreatedAt
		})
		if err != nil {
			return classify(ctx, op, err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := s.attachLabels(ctx, page, ids); err != nil {
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
func (s *Store) attachLabels(ctx context.Context, page []store.LabeledDecision, ids []string) error {
	rows, err := s.pool.Query(ctx, `SELECT decision_id, label, tags::text, created_at, actor FROM outcome_labels
		WHERE decision_id = ANY($1::text[]) ORDER BY decision_id, label COLLATE "C"`, ids)
	if err != nil {
		return err
	}
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

// scanDecisionRows reads every row of a decisions query (the columns of GetDecision) and
// closes rows.
func scanDecisionRows(rows pgx.Rows, fn func(store.DecisionRecord)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			r                  store.DecisionRecord
			codes, input, resp []byte
		)
		if err := rows.Scan(&r.ID, &r.Action, &r.SubjectID, &r.Outcome, &r.Score, &codes, &r.PolicyVersion,
			&r.PolicyHash, &r.FailMode, &input, &resp, &r.IdempotencyKey, &r.RequestHash, &r.CreatedAt, &r.Actor,
			&r.CorrelationID); err != nil {
			return err
		}
		if err := json.Unmarshal(codes, &r.ReasonCodes); err != nil {
			return fmt.Errorf("decision %q: decode reason codes: %w", r.ID, err)
		}
		r.Input, r.Response, r.CreatedAt = input, resp, r.CreatedAt.UTC()
		fn(r)
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
