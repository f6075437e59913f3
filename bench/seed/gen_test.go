package seed_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/bench/seed"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/store"
)

// TestGenerator checks that events come in time order within the history, that a seed
// reproduces them, and that every scenario is represented.
func TestGenerator(t *testing.T) {
	t.Parallel()
	cfg := seed.Config{Decisions: 20000, Days: 14, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Seed: 9}
	collect := func() []seed.Event {
		g, err := seed.NewGenerator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var evs []seed.Event
		for {
			ev, ok := g.Next()
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		}
	}
	a, b := collect(), collect()
	if len(a) != cfg.Decisions || len(b) != len(a) {
		t.Fatalf("%d and %d events, want %d", len(a), len(b), cfg.Decisions)
	}
	start := cfg.End.Add(-14 * 24 * time.Hour)
	scen := map[string]int{}
	for i, ev := range a {
		if ev.At.Before(start) || !ev.At.Before(cfg.End) {
			t.Fatalf("event %d at %s, outside the history", i, ev.At)
		}
		if i > 0 && ev.At.Before(a[i-1].At) {
			t.Fatalf("event %d at %s before event %d at %s", i, ev.At, i-1, a[i-1].At)
		}
		if !reflect.DeepEqual(ev, b[i]) {
			t.Fatalf("event %d differs between two runs with one seed", i)
		}
		scen[ev.Scenario]++
	}
	for _, s := range []string{seed.ScenarioLegit, seed.ScenarioATO, seed.ScenarioFarm, seed.ScenarioAbuse, seed.ScenarioStuffing} {
		if scen[s] == 0 {
			t.Errorf("no %s event in %v", s, scen)
		}
	}
	if share := float64(scen[seed.ScenarioLegit]) / float64(len(a)); share < 0.85 || share > 0.97 {
		t.Errorf("legitimate share %.2f, want about 0.93", share)
	}
}

// TestRun checks decisions and labels: time-ordered UUIDv7 ids of the event time, inputs
// that are complete policy documents, and labels that follow the rules.
func TestRun(t *testing.T) {
	t.Parallel()
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	var got []store.LabeledDecision
	st, err := seed.Run(context.Background(), seed.Config{Decisions: 3000, Days: 5, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Seed: 1}, set,
		func(_ context.Context, b []store.LabeledDecision) error { got = append(got, b...); return nil }, seed.Options{BatchSize: 700})
	if err != nil {
		t.Fatal(err)
	}
	if st.Decisions != 3000 || len(got) != 3000 {
		t.Fatalf("%d decisions reported, %d received", st.Decisions, len(got))
	}
	for i, d := range got {
		if err := store.ValidateDecision(d.DecisionRecord); err != nil {
			t.Fatal(err)
		}
		if i > 0 && (d.CreatedAt.Before(got[i-1].CreatedAt) || d.CreatedAt.Equal(got[i-1].CreatedAt) && d.ID < got[i-1].ID && d.ID[:13] != got[i-1].ID[:13]) {
			t.Fatalf("decision %d out of order", i)
		}
		if d.ID[14] != '7' {
			t.Fatalf("id %s is not a UUIDv7", d.ID)
		}
		for _, l := range d.Labels {
			if l.Label == store.LabelFalsePositive && d.Outcome != "review" && d.Outcome != "block" {
				t.Errorf("false_positive on a %s decision", d.Outcome)
			}
			if l.Label == store.LabelChargeback && d.Action != "payout" {
				t.Errorf("chargeback on a %s", d.Action)
			}
		}
	}
	if st.Labels[store.LabelFraud] == 0 || st.Labels[store.LabelLegit] == 0 {
		t.Errorf("labels %v", st.Labels)
	}
}
