package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdict-engine/verdict/store"
)

// normalizedLabel is what a store returns for l: times in UTC to the microsecond.
func normalizedLabel(l store.OutcomeLabel) store.OutcomeLabel {
	l.CreatedAt = utcMicros(l.CreatedAt)
	return l
}

func mustPutLabels(t *testing.T, s store.Store, want int, labels ...store.OutcomeLabel) {
	t.Helper()
	created, err := s.PutLabels(t.Context(), labels, "req-label")
	if err != nil {
		t.Fatalf("PutLabels: %v", err)
	}
	if created != want {
		t.Fatalf("PutLabels created %d pairs, want %d", created, want)
	}
}

func labelsOf(t *testing.T, s store.Store, decisionID string) []store.OutcomeLabel {
	t.Helper()
	got, err := s.DecisionLabels(t.Context(), decisionID)
	if err != nil {
		t.Fatalf("DecisionLabels(%s): %v", decisionID, err)
	}
	return got
}

func testLabelsRoundTrip(t *testing.T, s store.Store) {
	d1, d2 := decision("lab", 1), decision("lab", 2)
	mustWrite(t, s, d1, d2)
	at := baseTime().Add(time.Hour)
	fraud := store.OutcomeLabel{DecisionID: d1.ID, Label: store.LabelFraud, Tags: []string{"case-77", "friendly_fraud", "src:bank.v2"},
		CreatedAt: at, Actor: "analyst-1"}
	charge := store.OutcomeLabel{DecisionID: d1.ID, Label: store.LabelChargeback, CreatedAt: at.Add(time.Second), Actor: "Zoë"}
	legit := store.OutcomeLabel{DecisionID: d2.ID, Label: store.LabelLegit, Actor: "analyst-2"} // zero time: the store's clock
	before := time.Now().Add(-time.Minute)
	mustPutLabels(t, s, 3, fraud, charge, legit)

	want := []store.OutcomeLabel{normalizedLabel(charge), normalizedLabel(fraud)} // ordered by label
	if diff := cmp.Diff(want, labelsOf(t, s, d1.ID), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("DecisionLabels(%s) (-want +got):\n%s", d1.ID, diff)
	}
	got := labelsOf(t, s, d2.ID)
	if len(got) != 1 || got[0].Label != store.LabelLegit || got[0].CreatedAt.Before(before) || got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("DecisionLabels(%s) = %+v, want one legit label stamped now in UTC", d2.ID, got)
	}
	if got := labelsOf(t, s, "lab-none"); len(got) != 0 {
		t.Errorf("DecisionLabels of an unknown decision = %+v, want none", got)
	}
	if created, err := s.PutLabels(t.Context(), nil, "req"); err != nil || created != 0 {
		t.Errorf("PutLabels(nil) = %d, %v; want 0, nil", created, err)
	}
}

func testLabelsReplaceTags(t *testing.T, s store.Store) {
	d := decision("rep", 1)
	mustWrite(t, s, d)
	at := baseTime().Add(time.Hour)
	mustPutLabels(t, s, 1, store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelFraud, Tags: []string{"a", "b"}, CreatedAt: at, Actor: "x"})
	replaced := store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelFraud, Tags: []string{"c"}, CreatedAt: at.Add(time.Hour), Actor: "y"}
	mustPutLabels(t, s, 0, replaced)
	if diff := cmp.Diff([]store.OutcomeLabel{normalizedLabel(replaced)}, labelsOf(t, s, d.ID)); diff != "" {
		t.Errorf("after replacing, DecisionLabels (-want +got):\n%s", diff)
	}
	// Tags removed altogether, and a pair repeated in one call: the last one wins and
	// counts once.
	cleared := replaced
	cleared.Tags = nil
	last := store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelLegit, Tags: []string{"second"}, CreatedAt: at, Actor: "z"}
	first := last
	first.Tags = []string{"first"}
	mustPutLabels(t, s, 1, cleared, first, last)
	want := []store.OutcomeLabel{normalizedLabel(cleared), normalizedLabel(last)}
	if diff := cmp.Diff(want, labelsOf(t, s, d.ID), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after clearing tags, DecisionLabels (-want +got):\n%s", diff)
	}
	// One event per label stored: the repeated pair's first tags were never stored.
	if n := countType(t, s, store.EventOutcomeLabeled); n != 4 {
		t.Errorf("%d outcome.labeled events, want 4 (one per label stored)", n)
	}
	verifyChain(t, s)
}

func testLabelsUnknownDecision(t *testing.T, s store.Store) {
	d := decision("unk", 1)
	mustWrite(t, s, d)
	seq, _ := verifyChain(t, s)
	_, err := s.PutLabels(t.Context(), []store.OutcomeLabel{
		{DecisionID: d.ID, Label: store.LabelFraud, Actor: "a"},
		{DecisionID: "unk-missing-42", Label: store.LabelFraud, Actor: "a"},
		{DecisionID: "unk-missing-43", Label: store.LabelFraud, Actor: "a"},
	}, "req")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"unk-missing-42"`) {
		t.Fatalf("PutLabels with unknown decisions = %v, want ErrNotFound naming unk-missing-42", err)
	}
	if got := labelsOf(t, s, d.ID); len(got) != 0 {
		t.Errorf("a failed PutLabels stored %+v", got)
	}
	if after, _ := verifyChain(t, s); after != seq {
		t.Errorf("a failed PutLabels moved the audit head from %d to %d", seq, after)
	}
}

func testLabelsInvalid(t *testing.T, s store.Store) {
	d := decision("inv", 1)
	mustWrite(t, s, d)
	seq, _ := verifyChain(t, s)
	ok := store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelFraud, Tags: []string{"ok"}, Actor: "a"}
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	for _, tc := range []struct {
		name string
		edit func(l *store.OutcomeLabel)
	}{
		{"unknown label", func(l *store.OutcomeLabel) { l.Label = "stolen" }},
		{"empty label", func(l *store.OutcomeLabel) { l.Label = "" }},
		{"label in upper case", func(l *store.OutcomeLabel) { l.Label = "FRAUD" }},
		{"empty decision id", func(l *store.OutcomeLabel) { l.DecisionID = "" }},
		{"17 tags", func(l *store.OutcomeLabel) { l.Tags = many }},
		{"empty tag", func(l *store.OutcomeLabel) { l.Tags = []string{"a", ""} }},
		{"65-character tag", func(l *store.OutcomeLabel) { l.Tags = []string{strings.Repeat("x", 65)} }},
		{"tag with a space", func(l *store.OutcomeLabel) { l.Tags = []string{"case 77"} }},
		{"tag with a slash", func(l *store.OutcomeLabel) { l.Tags = []string{"a/b"} }},
		{"tag with a pipe", func(l *store.OutcomeLabel) { l.Tags = []string{"a|b"} }},
		{"non-ASCII tag", func(l *store.OutcomeLabel) { l.Tags = []string{"zoë"} }},
		{"actor with NUL", func(l *store.OutcomeLabel) { l.Actor = "a\x00b" }},
		{"actor not UTF-8", func(l *store.OutcomeLabel) { l.Actor = "a\xffb" }},
	} {
		bad := ok
		tc.edit(&bad)
		// The valid label first: nothing of the call may be written.
		_, err := s.PutLabels(t.Context(), []store.OutcomeLabel{ok, bad}, "req")
		if !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("%s: PutLabels = %v, want ErrInvalidRecord", tc.name, err)
		}
	}
	// The limits themselves are accepted.
	edge := ok
	edge.Tags = append(slices.Clone(many[:16]), strings.Repeat("Z", 64), "A-z_0:9.")[2:]
	mustPutLabels(t, s, 1, edge)
	if got := labelsOf(t, s, d.ID); len(got) != 1 || !slices.Equal(got[0].Tags, edge.Tags) {
		t.Errorf("DecisionLabels = %+v, want only the label with tags at the limits", got)
	}
	if after, _ := verifyChain(t, s); after != seq+1 {
		t.Errorf("audit head moved from %d to %d, want one event for the one valid call", seq, after)
	}
}

func testLabelsAudit(t *testing.T, s store.Store) {
	const subject = "carol.secret@example.com"
	d := decision("aud", 1)
	d.SubjectID = subject
	mustWrite(t, s, d)
	labels := []store.OutcomeLabel{
		{DecisionID: d.ID, Label: store.LabelChargeback, Tags: []string{"case-9"}, Actor: "key_ops"},
		{DecisionID: d.ID, Label: store.LabelFraud, Actor: "key_ops"},
	}
	created, err := s.PutLabels(t.Context(), labels, "req-audit-labels")
	if err != nil || created != 2 {
		t.Fatalf("PutLabels = %d, %v", created, err)
	}
	evs := allEvents(t, s)
	var got []store.AuditEvent
	for _, ev := range evs {
		if ev.Type == store.EventOutcomeLabeled {
			got = append(got, ev)
		}
		fields := strings.Join([]string{ev.Type, ev.Actor, ev.CorrelationID, ev.SubjectRef, string(ev.Payload)}, "\n")
		if strings.Contains(fields, subject) || strings.Contains(fields, "carol") {
			t.Errorf("audit event %d (%s) contains the raw subject id:\n%s", ev.Seq, ev.Type, fields)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d outcome.labeled events, want 2: %+v", len(got), evs)
	}
	for i, ev := range got {
		var p struct {
			DecisionID string   `json:"decision_id"`
			Label      string   `json:"label"`
			Tags       []string `json:"tags"`
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("event %d payload %s: %v", ev.Seq, ev.Payload, err)
		}
		if p.DecisionID != d.ID || p.Label != labels[i].Label || !slices.Equal(p.Tags, labels[i].Tags) || p.Tags == nil {
			t.Errorf("event %d payload = %s, want label %q tags %q (an array) on %s", ev.Seq, ev.Payload, labels[i].Label, labels[i].Tags, d.ID)
		}
		if ev.Actor != "key_ops" || ev.CorrelationID != "req-audit-labels" || ev.SubjectRef != store.SubjectRef(subject) {
			t.Errorf("event %d = actor %q, correlation %q, subject %q; want key_ops, req-audit-labels, %q",
				ev.Seq, ev.Actor, ev.CorrelationID, ev.SubjectRef, store.SubjectRef(subject))
		}
	}
	verifyChain(t, s)
}

// scanFixture writes n decisions, three to a creation time (so ids break ties, also across
// page boundaries), every fifth a payout, in shuffled order, and labels most of them with
// one call of about 2n labels. It returns the decisions in (CreatedAt, ID) order, as
// stored, with their labels.
func scanFixture(t *testing.T, s store.Store, n int) []store.LabeledDecision {
	t.Helper()
	all := make([]store.LabeledDecision, n)
	for i := range all {
		d := decision("scan", i)
		d.ID = fmt.Sprintf("scan-%05d", n-i) // ids do not follow creation order within a tie
		d.CreatedAt = baseTime().Add(time.Duration(i/3) * time.Millisecond)
		if i%5 == 0 {
			d.Action = "payout"
		}
		d.Input = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		all[i].DecisionRecord = d
	}
	shuffled := slices.Clone(all)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	recs := make([]store.DecisionRecord, 0, 1000)
	for i, d := range shuffled {
		recs = append(recs, d.DecisionRecord)
		if len(recs) == cap(recs) || i == len(shuffled)-1 {
			mustWrite(t, s, recs...)
			recs = recs[:0]
		}
	}
	var labels []store.OutcomeLabel
	at := baseTime().Add(24 * time.Hour)
	for i := range all {
		if i%10 == 7 {
			continue
		}
		for _, k := range []int{i % 4, (i + 1) % 4} {
			labels = append(labels, store.OutcomeLabel{DecisionID: all[i].ID, Label: store.Labels[k],
				Tags: []string{fmt.Sprintf("case-%d", i)}, CreatedAt: at, Actor: "bulk"})
		}
	}
	start := time.Now()
	mustPutLabels(t, s, len(labels), labels...)
	t.Logf("PutLabels: %d labels in %v", len(labels), time.Since(start))
	byID := map[string]int{}
	for i := range all {
		all[i].DecisionRecord = normalized(all[i].DecisionRecord)
		byID[all[i].ID] = i
	}
	for _, l := range labels {
		i := byID[l.DecisionID]
		all[i].Labels = append(all[i].Labels, normalizedLabel(l))
	}
	for i := range all {
		slices.SortFunc(all[i].Labels, func(a, b store.OutcomeLabel) int { return strings.Compare(a.Label, b.Label) })
	}
	slices.SortFunc(all, func(a, b store.LabeledDecision) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return all
}

func scan(t *testing.T, s store.Store, f store.DecisionFilter) []store.LabeledDecision {
	t.Helper()
	var got []store.LabeledDecision
	if err := s.ScanDecisions(t.Context(), f, func(d store.LabeledDecision) error {
		got = append(got, d)
		return nil
	}); err != nil {
		t.Fatalf("ScanDecisions(%+v): %v", f, err)
	}
	return got
}

func ids(ds []store.LabeledDecision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func testScanDecisions(t *testing.T, s store.Store) {
	all := scanFixture(t, s, 2100) // pages of 1000 end inside a group of equal times
	start := time.Now()
	got := scan(t, s, store.DecisionFilter{})
	t.Logf("ScanDecisions: %d decisions in %v", len(got), time.Since(start))
	if diff := cmp.Diff(all, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("ScanDecisions of everything (-want +got):\n%s", diff)
	}

	// Bounds: From inclusive, To exclusive, compared with the stored (microsecond) times;
	// bounds with sub-microsecond digits; and the action filter.
	from, to := all[1001].CreatedAt, all[1998].CreatedAt
	for _, f := range []store.DecisionFilter{
		{From: from},
		{To: to},
		{From: from, To: to},
		{From: from.Add(time.Nanosecond), To: to.Add(-time.Nanosecond).In(time.FixedZone("X", -7*3600))},
		{Action: "payout"},
		{Action: "payout", From: from, To: to},
		{Action: "onboarding"},
		{From: to, To: from},
		{Action: "login", From: all[len(all)-1].CreatedAt.Add(time.Microsecond)},
	} {
		var want []store.LabeledDecision
		for _, d := range all {
			if (f.From.IsZero() || !d.CreatedAt.Before(f.From)) && (f.To.IsZero() || d.CreatedAt.Before(f.To)) &&
				(f.Action == "" || f.Action == d.Action) {
				want = append(want, d)
			}
		}
		got := scan(t, s, f)
		if diff := cmp.Diff(ids(want), ids(got)); diff != "" {
			t.Errorf("ScanDecisions(%+v): %d decisions, want %d (-want +got):\n%s", f, len(got), len(want), diff)
		}
	}

	// An error from fn stops the scan, mid-page and at a page boundary, and is returned.
	errStop := errors.New("stop here")
	for _, stopAt := range []int{1, 1000, 1001} {
		calls := 0
		err := s.ScanDecisions(t.Context(), store.DecisionFilter{}, func(store.LabeledDecision) error {
			calls++
			if calls == stopAt {
				return fmt.Errorf("wrapped: %w", errStop)
			}
			return nil
		})
		if !errors.Is(err, errStop) || calls != stopAt {
			t.Errorf("stopping at %d: ScanDecisions = %v after %d calls", stopAt, err, calls)
		}
	}

	// fn may use the store while the scan runs.
	calls := 0
	if err := s.ScanDecisions(t.Context(), store.DecisionFilter{Action: "payout"}, func(d store.LabeledDecision) error {
		calls++
		if calls%200 != 1 {
			return nil
		}
		_, err := s.PutLabels(t.Context(), []store.OutcomeLabel{{DecisionID: d.ID, Label: store.LabelFalsePositive, Actor: "scan"}}, "req")
		return err
	}); err != nil {
		t.Errorf("ScanDecisions with writes from fn: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.ScanDecisions(ctx, store.DecisionFilter{}, func(store.LabeledDecision) error { return nil }); err == nil {
		t.Error("ScanDecisions with a cancelled context succeeded")
	}
	verifyChain(t, s)
}

func testLabelsPersistence(t *testing.T, s store.Store, reopen func(t *testing.T, prev store.Store) store.Store) {
	if reopen == nil {
		t.Skip("the store under test provides no storetest.WithReopen hook")
	}
	d := decision("lp", 1)
	mustWrite(t, s, d)
	l := store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelChargeback, Tags: []string{"cb-1"}, CreatedAt: baseTime(), Actor: "a"}
	mustPutLabels(t, s, 1, l)
	seq, head := verifyChain(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = reopen(t, s)
	if diff := cmp.Diff([]store.OutcomeLabel{normalizedLabel(l)}, labelsOf(t, s, d.ID)); diff != "" {
		t.Errorf("after reopen, DecisionLabels (-want +got):\n%s", diff)
	}
	got := scan(t, s, store.DecisionFilter{})
	if len(got) != 1 || len(got[0].Labels) != 1 {
		t.Errorf("after reopen, ScanDecisions = %+v, want the decision with its label", got)
	}
	if s2, h2 := verifyChain(t, s); s2 != seq || string(h2) != string(head) {
		t.Errorf("after reopen, audit head = %d, want %d", s2, seq)
	}
	mustPutLabels(t, s, 1, store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelFraud, Actor: "a"})
	verifyChain(t, s)
}

// failingLabels is a store whose PutLabels fails from its nth call on: a store that goes
// away in the middle of a bulk import.
type failingLabels struct {
	store.LabelStore
	calls, failFrom int
}

func (f *failingLabels) PutLabels(ctx context.Context, ls []store.OutcomeLabel, corr string) (int, error) {
	f.calls++
	if f.calls >= f.failFrom {
		return 0, fmt.Errorf("put labels: %w", store.ErrUnavailable)
	}
	return f.LabelStore.PutLabels(ctx, ls, corr)
}

// testLabelsImport: a bulk import is checked whole before anything is written (an unknown
// decision anywhere writes nothing), then written in chunks, each its own transaction;
// a failure after the first chunk says how many labels were stored, and importing again
// completes it without duplicates.
func testLabelsImport(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ds []store.DecisionRecord
	var labels []store.OutcomeLabel
	for i := range 25 {
		d := decision("imp", i)
		ds = append(ds, d)
		labels = append(labels, store.OutcomeLabel{DecisionID: d.ID, Label: store.LabelFraud, Tags: []string{"bulk"}, Actor: "analyst"})
	}
	mustWrite(t, s, ds...)
	labels = append(labels, labels[3]) // a pair given twice is stored and audited once

	if got, err := s.MissingDecision(ctx, []string{ds[0].ID, "imp-missing-1", ds[1].ID, "imp-missing-2"}); err != nil || got != "imp-missing-1" {
		t.Fatalf("MissingDecision = %q, %v; want imp-missing-1", got, err)
	}
	if got, err := s.MissingDecision(ctx, []string{ds[0].ID, ds[1].ID}); err != nil || got != "" {
		t.Fatalf("MissingDecision of stored decisions = %q, %v", got, err)
	}
	if got, err := s.MissingDecision(ctx, nil); err != nil || got != "" {
		t.Fatalf("MissingDecision of none = %q, %v", got, err)
	}

	seq, _ := verifyChain(t, s)
	bad := append(slices.Clone(labels), store.OutcomeLabel{DecisionID: "imp-missing-9", Label: store.LabelLegit, Actor: "analyst"})
	if _, err := store.ImportLabels(ctx, s, bad, "req-imp", 10); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"imp-missing-9"`) {
		t.Fatalf("import naming an unknown decision = %v, want ErrNotFound naming imp-missing-9", err)
	}
	if after, _ := verifyChain(t, s); after != seq {
		t.Fatalf("a refused import moved the audit head from %d to %d", seq, after)
	}

	f := &failingLabels{LabelStore: s, failFrom: 2}
	_, err := store.ImportLabels(ctx, f, labels, "req-imp", 10)
	var partial *store.ImportError
	if !errors.As(err, &partial) || partial.Stored != 10 || partial.Total != 25 || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("import failing at its second chunk = %v, want 10 of 25 stored and ErrUnavailable", err)
	}
	if after, _ := verifyChain(t, s); after != seq+10 {
		t.Fatalf("audit head moved by %d, want 10 (the first chunk)", after-seq)
	}
	created, err := store.ImportLabels(ctx, s, labels, "req-imp", 10)
	if err != nil || created != 15 {
		t.Fatalf("import again = %d, %v; want the 15 pairs not stored before", created, err)
	}
	for _, d := range ds {
		if got := labelsOf(t, s, d.ID); len(got) != 1 || got[0].Label != store.LabelFraud {
			t.Fatalf("labels of %s after the import: %+v", d.ID, got)
		}
	}
	if after, _ := verifyChain(t, s); after != seq+10+25 {
		t.Fatalf("audit head moved by %d, want 35 (10, then all 25 again)", after-seq)
	}
}
