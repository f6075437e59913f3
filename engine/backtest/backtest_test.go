package backtest_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/backtest"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		labels []string
		want   backtest.Class
	}{
		{nil, backtest.Unlabelled},
		{[]string{"fraud"}, backtest.Positive},
		{[]string{"chargeback"}, backtest.Positive},
		{[]string{"legit"}, backtest.Negative},
		{[]string{"false_positive"}, backtest.Negative},
		{[]string{"legit", "chargeback"}, backtest.Positive},
		{[]string{"something_else"}, backtest.Unlabelled},
	} {
		if got := backtest.ClassOf(tc.labels); got != tc.want {
			t.Errorf("ClassOf(%v) = %d, want %d", tc.labels, got, tc.want)
		}
	}
}

// TestReportSmall checks every figure of a report on a handful of rows counted by hand.
func TestReportSmall(t *testing.T) {
	d0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	A, S, R, B := engine.Approve, engine.StepUp, engine.Review, engine.Block
	P, N, U := backtest.Positive, backtest.Negative, backtest.Unlabelled
	rows := []backtest.Row{
		{At: d0, Live: B, Candidate: B, Class: P},                     // block TP both
		{At: d0, Live: R, Candidate: B, Class: P},                     // live b+r TP; cand block TP
		{At: d0.Add(24 * time.Hour), Live: A, Candidate: R, Class: P}, // live FN; cand b+r TP
		{At: d0.Add(24 * time.Hour), Live: B, Candidate: A, Class: N}, // live block FP; cand TN
		{At: d0.Add(48 * time.Hour), Live: R, Candidate: R, Class: N}, // b+r FP both
		{At: d0.Add(48 * time.Hour), Live: A, Candidate: A, Class: U},
		{At: d0.Add(48 * time.Hour), Live: S, Candidate: S, Class: U},
		{At: d0.Add(48 * time.Hour), Live: R, Candidate: A, Class: U},
	}
	// Two workers' tallies merged give the same as one.
	t1, t2 := backtest.NewTally(0), backtest.NewTally(0)
	for i, r := range rows {
		if i%2 == 0 {
			t1.Add(r)
		} else {
			t2.Add(r)
		}
	}
	t1.Merge(t2)
	rep := t1.Report(nil)
	if rep.Decisions != 8 || rep.Days != 3 || rep.Labels != (backtest.Labels{Positive: 3, Negative: 2, Unlabelled: 3}) {
		t.Fatalf("decisions %d, days %d, labels %+v", rep.Decisions, rep.Days, rep.Labels)
	}
	if got, want := rep.Live.Outcomes, (backtest.Outcomes{Approve: 2, StepUp: 1, Review: 3, Block: 2}); got != want {
		t.Errorf("live outcomes %+v, want %+v", got, want)
	}
	if got, want := rep.Candidate.Outcomes, (backtest.Outcomes{Approve: 3, StepUp: 1, Review: 2, Block: 2}); got != want {
		t.Errorf("candidate outcomes %+v, want %+v", got, want)
	}
	// Live block: TP 1, FP 1, FN 2, TN 1. Live b+r: TP 2, FP 2, FN 1, TN 0.
	checkPR(t, "live block", rep.Live.Block, 1, 1, 2, 1)
	checkPR(t, "live block+review", rep.Live.BlockReview, 2, 2, 1, 0)
	// Candidate block: TP 2, FP 0, FN 1, TN 2. Candidate b+r: TP 3, FP 1, FN 0, TN 1.
	checkPR(t, "candidate block", rep.Candidate.Block, 2, 0, 1, 2)
	checkPR(t, "candidate block+review", rep.Candidate.BlockReview, 3, 1, 0, 1)
	if rep.Live.ApproveRate != 0.25 || rep.Candidate.ApproveRate != 0.375 {
		t.Errorf("approve rates %v, %v", rep.Live.ApproveRate, rep.Candidate.ApproveRate)
	}
	if rep.Live.ReviewsPerDay != 1 || rep.Live.MaxReviewsPerDay != 2 || rep.Candidate.MaxReviewsPerDay != 1 {
		t.Errorf("reviews per day: live %v (max %d), candidate max %d", rep.Live.ReviewsPerDay, rep.Live.MaxReviewsPerDay, rep.Candidate.MaxReviewsPerDay)
	}
	want := [4][4]int64{{1, 0, 1, 0}, {0, 1, 0, 0}, {1, 0, 1, 1}, {1, 0, 0, 1}}
	if rep.Changes != want {
		t.Errorf("changes %v, want %v", rep.Changes, want)
	}
}

func checkPR(t *testing.T, name string, pr backtest.PR, tp, fp, fn, tn int64) {
	t.Helper()
	if pr.TP != tp || pr.FP != fp || pr.FN != fn || pr.TN != tn {
		t.Errorf("%s: %+v, want tp %d fp %d fn %d tn %d", name, pr, tp, fp, fn, tn)
	}
	wantP, wantR := float64(tp)/float64(tp+fp), float64(tp)/float64(tp+fn)
	if math.Abs(float64(pr.Precision)-wantP) > 1e-12 || math.Abs(float64(pr.Recall)-wantR) > 1e-12 {
		t.Errorf("%s: precision %v recall %v, want %v %v", name, pr.Precision, pr.Recall, wantP, wantR)
	}
}

// TestReportRandom compares a report with counts made by plain loops over random rows.
func TestReportRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sweep := &backtest.Sweep{Action: "payout", Name: "x", Values: []float64{1, 2, 3}}
	tl := backtest.NewTally(3)
	var rows []backtest.Row
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 5000 {
		at = at.Add(time.Duration(r.IntN(120)) * time.Minute)
		row := backtest.Row{Action: []string{"login", "payout"}[r.IntN(2)], At: at,
			Live: engine.Outcome(1 + r.IntN(4)), Candidate: engine.Outcome(1 + r.IntN(4)), Class: backtest.Class(r.IntN(3))}
		if row.Action == "payout" {
			row.Sweep = []engine.Outcome{engine.Outcome(1 + r.IntN(4)), engine.Outcome(1 + r.IntN(4)), engine.Outcome(1 + r.IntN(4))}
		}
		rows = append(rows, row)
		tl.Add(row)
	}
	rep := tl.Report(sweep)
	var tp, fp, fn, tn, blocks, sweepPayouts, sweepBlocks1 int64
	days := map[int]int64{}
	sweepDays := map[int]int64{} // reviews at the sweep's third value, by day
	for _, row := range rows {
		if row.Candidate == engine.Block {
			blocks++
		}
		if row.Candidate == engine.Review {
			days[row.At.YearDay()]++
		}
		if row.Action == "payout" {
			sweepPayouts++
			if row.Sweep[1] == engine.Block {
				sweepBlocks1++
			}
			if row.Sweep[2] == engine.Review {
				sweepDays[row.At.YearDay()]++
			}
		}
		flagged := row.Candidate >= engine.Review
		switch {
		case row.Class == backtest.Positive && flagged:
			tp++
		case row.Class == backtest.Negative && flagged:
			fp++
		case row.Class == backtest.Positive:
			fn++
		case row.Class == backtest.Negative:
			tn++
		}
	}
	checkPR(t, "candidate block+review", rep.Candidate.BlockReview, tp, fp, fn, tn)
	if rep.Candidate.Outcomes.Block != blocks {
		t.Errorf("candidate blocks %d, want %d", rep.Candidate.Outcomes.Block, blocks)
	}
	var maxDay int64
	for _, n := range days {
		maxDay = max(maxDay, n)
	}
	if rep.Candidate.MaxReviewsPerDay != maxDay {
		t.Errorf("max reviews per day %d, want %d", rep.Candidate.MaxReviewsPerDay, maxDay)
	}
	if rep.Sweep == nil || len(rep.Sweep.Points) != 3 || rep.Sweep.Decisions != sweepPayouts || rep.Sweep.Points[1].Outcomes.Block != sweepBlocks1 {
		t.Fatalf("sweep %+v, want %d decisions, %d blocks at 2", rep.Sweep, sweepPayouts, sweepBlocks1)
	}
	var maxSweepDay int64
	for _, n := range sweepDays {
		maxSweepDay = max(maxSweepDay, n)
	}
	if got := rep.Sweep.Points[2].MaxReviewsPerDay; got != maxSweepDay || got == 0 {
		t.Errorf("sweep point 3: max reviews per day %d, want %d", got, maxSweepDay)
	}
}

func TestSweepValues(t *testing.T) {
	for _, tc := range []struct {
		from, to, step float64
		want           []float64
	}{
		{100, 500, 100, []float64{100, 200, 300, 400, 500}},
		{0.5, 0.9, 0.1, []float64{0.5, 0.6, 0.7, 0.8, 0.9}},
		{1, 2.5, 1, []float64{1, 2}},
		{3, 3, 1, []float64{3}},
		{5, 1, 1, nil},
		{1, 5, 0, nil},
		{0, 1000, 1, nil},         // too many
		{math.Inf(-1), 5, 1, nil}, // the count would be infinite (this made a slice of negative length)
		{-1e308, 1e308, 1e300, nil},
		{0, 1, 1e-320, nil},
		{math.NaN(), 1, 1, nil},
		{0, math.NaN(), 1, nil},
		{0, 1, math.Inf(1), nil},
		{1e15, 1e15 + 3, 1, []float64{1e15}}, // one value once rounded to 12 digits
	} {
		got := backtest.SweepValues(tc.from, tc.to, tc.step, 200)
		if len(got) != len(tc.want) {
			t.Errorf("SweepValues(%v, %v, %v) = %v, want %v", tc.from, tc.to, tc.step, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("SweepValues(%v, %v, %v) = %v, want %v", tc.from, tc.to, tc.step, got, tc.want)
				break
			}
		}
	}
}

func TestRenderings(t *testing.T) {
	tl := backtest.NewTally(2)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tl.Add(backtest.Row{Action: "payout", At: at, Live: engine.Block, Candidate: engine.Review, Class: backtest.Positive, Sweep: []engine.Outcome{engine.Block, engine.Approve}})
	tl.Add(backtest.Row{Action: "payout", At: at, Live: engine.Approve, Candidate: engine.Approve, Class: backtest.Unlabelled, Sweep: []engine.Outcome{engine.Approve, engine.Approve}})
	rep := tl.Report(&backtest.Sweep{Action: "payout", Name: "max_unverified_amount", Values: []float64{100, 200}})
	meta := backtest.Meta{Policies: "candidate/<x>", Source: "test"}

	var txt bytes.Buffer
	if err := backtest.WriteText(&txt, rep, meta); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"approve rate", "block precision", "live \\ candidate", "sweep of data.thresholds.payout.max_unverified_amount"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}

	var html bytes.Buffer
	if err := backtest.WriteHTML(&html, rep, meta); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	if strings.Count(h, "<svg") != 2 || !strings.Contains(h, "<polyline") || !strings.Contains(h, "<rect") {
		t.Error("HTML report lacks its two inline SVG charts")
	}
	if strings.Contains(h, "<script") || strings.Contains(h, "src=") || strings.Contains(h, "<link") {
		t.Error("HTML report is not self-contained")
	}
	if !strings.Contains(h, "candidate/&lt;x&gt;") {
		t.Error("HTML report does not escape the bundle name")
	}

	// Undefined ratios are null in JSON.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"precision":null`) {
		t.Errorf("JSON has no null precision for an undefined ratio: %s", b)
	}
}

// FuzzSweepValues: any three numbers (a --sweep flag's from:to:step) give nil or at most
// limit finite values, strictly ascending, from the rounded from up to to.
func FuzzSweepValues(f *testing.F) {
	f.Add(100.0, 500.0, 100.0)
	f.Add(0.5, 0.9, 0.1)
	f.Add(math.Inf(-1), 5.0, 1.0)
	f.Add(-1e308, 1e308, 1e-300)
	f.Add(5e-324, 5e-324, 1.0)
	f.Fuzz(func(t *testing.T, from, to, step float64) {
		const limit = 200
		got := backtest.SweepValues(from, to, step, limit)
		if got == nil {
			return
		}
		if len(got) == 0 || len(got) > limit {
			t.Fatalf("SweepValues(%v, %v, %v): %d values", from, to, step, len(got))
		}
		for i, v := range got {
			if math.IsNaN(v) || math.IsInf(v, 0) || (i > 0 && v <= got[i-1]) {
				t.Fatalf("SweepValues(%v, %v, %v) = %v: value %d", from, to, step, got, i)
			}
		}
		tol := 1e-9 * max(math.Abs(from), math.Abs(to), math.SmallestNonzeroFloat64)
		if math.Abs(got[0]-from) > tol || got[len(got)-1] > to+tol {
			t.Fatalf("SweepValues(%v, %v, %v) = %v: outside [from, to]", from, to, step, got)
		}
	})
}
