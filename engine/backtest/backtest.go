// Package backtest computes what a backtest reports: outcome mixes of the live decisions
// and of a candidate policy on the same history, the change matrix between them,
// precision and recall against outcome labels, review load and a threshold sweep. It is
// pure arithmetic over rows the caller produced (see cmd/verdict backtest): no I/O, no
// policy evaluation.
//
// Labels: a decision labelled fraud or chargeback is a positive; one labelled legit or
// false_positive (and neither of the former) is a negative; an unlabelled decision counts
// in the outcome mixes but not in precision and recall.
package backtest

import (
	"encoding/json"
	"math"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// Class is what the labels say about a decision.
type Class uint8

// The classes.
const (
	Unlabelled Class = iota
	Positive         // fraud or chargeback
	Negative         // legit or false_positive, and no positive label
)

// ClassOf returns the class of a decision with the given labels (store.Label* names).
// Unknown labels are ignored.
func ClassOf(labels []string) Class {
	c := Unlabelled
	for _, l := range labels {
		switch l {
		case "fraud", "chargeback":
			return Positive
		case "legit", "false_positive":
			c = Negative
		}
	}
	return c
}

// Row is one replayed decision: what was answered live, what the candidate answers, and
// for decisions of the swept action, what the candidate answers at each swept value.
type Row struct {
	Action    string
	At        time.Time
	Live      engine.Outcome
	Candidate engine.Outcome
	Class     Class
	// Sweep holds the candidate's outcome at each swept value, in the order of
	// Sweep.Values; nil for decisions of other actions or without a sweep.
	Sweep []engine.Outcome
}

// numOutcomes sizes arrays indexed by engine.Outcome (Approve..Block; 0 unused).
const numOutcomes = int(engine.Block) + 1

// confusion counts decisions by predicted outcome and class.
type confusion [numOutcomes][3]int64

func (c *confusion) add(o engine.Outcome, cl Class) { c[o][cl]++ }

func (c *confusion) merge(o *confusion) {
	for i := range c {
		for j := range c[i] {
			c[i][j] += o[i][j]
		}
	}
}

// Tally accumulates rows. It is not safe for concurrent use: give each worker its own
// and Merge them.
type Tally struct {
	sweepN        int
	live, cand    confusion
	changes       [numOutcomes][numOutcomes]int64
	sweep         []confusion
	liveReviews   map[int64]int64 // UTC day (days since epoch) → reviews
	candReviews   map[int64]int64
	sweepReviews  []map[int64]int64 // per sweep value, as liveReviews
	first, last   time.Time
	unknownAction int64
}

// NewTally returns an empty Tally for a sweep of sweepN values (0: no sweep).
func NewTally(sweepN int) *Tally {
	t := &Tally{sweepN: sweepN, sweep: make([]confusion, sweepN), liveReviews: map[int64]int64{}, candReviews: map[int64]int64{},
		sweepReviews: make([]map[int64]int64, sweepN)}
	for i := range t.sweepReviews {
		t.sweepReviews[i] = map[int64]int64{}
	}
	return t
}

func day(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 86400)) }

// Add counts one row. Rows with an invalid live or candidate outcome are ignored.
func (t *Tally) Add(r Row) {
	if !r.Live.Valid() || !r.Candidate.Valid() || r.Class > Negative {
		return
	}
	t.live.add(r.Live, r.Class)
	t.cand.add(r.Candidate, r.Class)
	t.changes[r.Live][r.Candidate]++
	if r.Live == engine.Review {
		t.liveReviews[day(r.At)]++
	}
	if r.Candidate == engine.Review {
		t.candReviews[day(r.At)]++
	}
	for i, o := range r.Sweep {
		if i < t.sweepN && o.Valid() {
			t.sweep[i].add(o, r.Class)
			if o == engine.Review {
				t.sweepReviews[i][day(r.At)]++
			}
		}
	}
	if t.first.IsZero() || r.At.Before(t.first) {
		t.first = r.At
	}
	if r.At.After(t.last) {
		t.last = r.At
	}
}

// Merge adds o's counts to t. Both must have been made for the same sweep.
func (t *Tally) Merge(o *Tally) {
	t.live.merge(&o.live)
	t.cand.merge(&o.cand)
	for i := range t.changes {
		for j := range t.changes[i] {
			t.changes[i][j] += o.changes[i][j]
		}
	}
	for i := range t.sweep {
		if i < len(o.sweep) {
			t.sweep[i].merge(&o.sweep[i])
		}
		if i < len(o.sweepReviews) {
			for d, n := range o.sweepReviews[i] {
				t.sweepReviews[i][d] += n
			}
		}
	}
	for d, n := range o.liveReviews {
		t.liveReviews[d] += n
	}
	for d, n := range o.candReviews {
		t.candReviews[d] += n
	}
	if !o.first.IsZero() && (t.first.IsZero() || o.first.Before(t.first)) {
		t.first = o.first
	}
	if o.last.After(t.last) {
		t.last = o.last
	}
}

// Ratio is a rate or a ratio. An undefined ratio (0/0) is NaN, written as null in JSON
// and "-" in tables.
type Ratio float64

// MarshalJSON writes the ratio, or null when undefined.
func (r Ratio) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(r)) || math.IsInf(float64(r), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(r))
}

// UnmarshalJSON reads a ratio; null reads as NaN.
func (r *Ratio) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = Ratio(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*r = Ratio(f)
	return nil
}

// Defined reports whether r is a number.
func (r Ratio) Defined() bool { return !math.IsNaN(float64(r)) }

func ratio(n, d int64) Ratio {
	if d == 0 {
		return Ratio(math.NaN())
	}
	return Ratio(float64(n) / float64(d))
}

// Outcomes counts decisions by outcome.
type Outcomes struct {
	Approve int64 `json:"approve"`
	StepUp  int64 `json:"step_up"`
	Review  int64 `json:"review"`
	Block   int64 `json:"block"`
}

// Total is the number of decisions counted.
func (o Outcomes) Total() int64 { return o.Approve + o.StepUp + o.Review + o.Block }

// Of returns the count of outcome x.
func (o Outcomes) Of(x engine.Outcome) int64 {
	switch x {
	case engine.Approve:
		return o.Approve
	case engine.StepUp:
		return o.StepUp
	case engine.Review:
		return o.Review
	case engine.Block:
		return o.Block
	}
	return 0
}

// PR is precision and recall of one way of flagging decisions (block; block or review)
// against the labels. TP: flagged positives; FP: flagged negatives; FN: positives not
// flagged; TN: negatives not flagged. Unlabelled decisions are in none of them.
type PR struct {
	TP        int64 `json:"tp"`
	FP        int64 `json:"fp"`
	FN        int64 `json:"fn"`
	TN        int64 `json:"tn"`
	Precision Ratio `json:"precision"` // TP / (TP + FP)
	Recall    Ratio `json:"recall"`    // TP / (TP + FN)
}

func newPR(tp, fp, fn, tn int64) PR {
	return PR{TP: tp, FP: fp, FN: fn, TN: tn, Precision: ratio(tp, tp+fp), Recall: ratio(tp, tp+fn)}
}

// Summary describes one policy's answers over the replayed decisions.
type Summary struct {
	Outcomes    Outcomes `json:"outcomes"`
	ApproveRate Ratio    `json:"approve_rate"`
	StepUpRate  Ratio    `json:"step_up_rate"`
	ReviewRate  Ratio    `json:"review_rate"`
	BlockRate   Ratio    `json:"block_rate"`
	// Block flags block outcomes; BlockReview flags block and review outcomes.
	Block       PR `json:"block"`
	BlockReview PR `json:"block_or_review"`
	// ReviewsPerDay is reviews divided by the days the history spans (see Report.Days);
	// MaxReviewsPerDay the most reviews of one UTC day.
	ReviewsPerDay    float64 `json:"reviews_per_day"`
	MaxReviewsPerDay int64   `json:"max_reviews_per_day"`
}

func summarize(c *confusion, reviews map[int64]int64, days int64) Summary {
	var s Summary
	var pos, neg [numOutcomes]int64
	for o := engine.Approve; o <= engine.Block; o++ {
		n := c[o][Unlabelled] + c[o][Positive] + c[o][Negative]
		pos[o], neg[o] = c[o][Positive], c[o][Negative]
		switch o {
		case engine.Approve:
			s.Outcomes.Approve = n
		case engine.StepUp:
			s.Outcomes.StepUp = n
		case engine.Review:
			s.Outcomes.Review = n
		case engine.Block:
			s.Outcomes.Block = n
		}
	}
	total := s.Outcomes.Total()
	s.ApproveRate = ratio(s.Outcomes.Approve, total)
	s.StepUpRate = ratio(s.Outcomes.StepUp, total)
	s.ReviewRate = ratio(s.Outcomes.Review, total)
	s.BlockRate = ratio(s.Outcomes.Block, total)
	allPos := pos[engine.Approve] + pos[engine.StepUp] + pos[engine.Review] + pos[engine.Block]
	allNeg := neg[engine.Approve] + neg[engine.StepUp] + neg[engine.Review] + neg[engine.Block]
	tp, fp := pos[engine.Block], neg[engine.Block]
	s.Block = newPR(tp, fp, allPos-tp, allNeg-fp)
	tp, fp = pos[engine.Block]+pos[engine.Review], neg[engine.Block]+neg[engine.Review]
	s.BlockReview = newPR(tp, fp, allPos-tp, allNeg-fp)
	if days > 0 {
		s.ReviewsPerDay = float64(s.Outcomes.Review) / float64(days)
	}
	for _, n := range reviews {
		s.MaxReviewsPerDay = max(s.MaxReviewsPerDay, n)
	}
	return s
}

// Sweep names a swept threshold, data.thresholds.<Action>.<Name>, and its values.
type Sweep struct {
	Action string    `json:"action"`
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

// SweepPoint is the candidate's result, on the swept action's decisions, with the
// threshold at Value.
type SweepPoint struct {
	Value float64 `json:"value"`
	Summary
}

// SweepReport is the result of a sweep.
type SweepReport struct {
	Sweep
	Decisions int64        `json:"decisions"` // decisions of the swept action
	Points    []SweepPoint `json:"points"`
}

// Labels counts decisions by class.
type Labels struct {
	Positive   int64 `json:"positive"`
	Negative   int64 `json:"negative"`
	Unlabelled int64 `json:"unlabelled"`
}

// Report is everything a backtest reports.
type Report struct {
	Decisions int64     `json:"decisions"`
	From      time.Time `json:"from"` // first replayed decision
	To        time.Time `json:"to"`   // last replayed decision
	// Days is the number of UTC calendar days from the first to the last decision,
	// both included: the divisor of reviews per day.
	Days      int64   `json:"days"`
	Labels    Labels  `json:"labels"`
	Live      Summary `json:"live"`
	Candidate Summary `json:"candidate"`
	// Changes[i][j] counts decisions answered Outcomes()[i] live and Outcomes()[j] by
	// the candidate.
	Changes [4][4]int64  `json:"changes"`
	Sweep   *SweepReport `json:"sweep,omitempty"`
}

// AllOutcomes lists the outcomes in the order of Report.Changes, least severe first.
func AllOutcomes() []engine.Outcome {
	return []engine.Outcome{engine.Approve, engine.StepUp, engine.Review, engine.Block}
}

// Report computes the report of everything added to t. sweep describes the sweep t was
// made for (nil or empty Values for none).
func (t *Tally) Report(sweep *Sweep) Report {
	r := Report{From: t.first, To: t.last}
	if !t.first.IsZero() {
		r.Days = day(t.last) - day(t.first) + 1
	}
	for o := engine.Approve; o <= engine.Block; o++ {
		r.Labels.Unlabelled += t.live[o][Unlabelled]
		r.Labels.Positive += t.live[o][Positive]
		r.Labels.Negative += t.live[o][Negative]
	}
	r.Decisions = r.Labels.Unlabelled + r.Labels.Positive + r.Labels.Negative
	r.Live = summarize(&t.live, t.liveReviews, r.Days)
	r.Candidate = summarize(&t.cand, t.candReviews, r.Days)
	for i, a := range AllOutcomes() {
		for j, b := range AllOutcomes() {
			r.Changes[i][j] = t.changes[a][b]
		}
	}
	if sweep != nil && len(sweep.Values) > 0 {
		sr := &SweepReport{Sweep: *sweep}
		for i, v := range sweep.Values {
			if i >= len(t.sweep) {
				break
			}
			// Reviews per day of a sweep point are over the same days as the report.
			p := SweepPoint{Value: v, Summary: summarize(&t.sweep[i], t.sweepReviews[i], r.Days)}
			sr.Points = append(sr.Points, p)
			sr.Decisions = max(sr.Decisions, p.Outcomes.Total())
		}
		r.Sweep = sr
	}
	return r
}

// SweepValues expands from:to:step into its values, from included and to included when
// a whole number of steps away (within rounding), each rounded to 12 significant digits
// (values that rounding makes equal are kept once). It returns nil for a non-positive step,
// to before from, a bound or step that is not a finite number, or more than limit values.
func SweepValues(from, to, step float64, limit int) []float64 {
	if !finite(from) || !finite(to) || !finite(step) || !(step > 0) || to < from {
		return nil
	}
	// to-from may overflow, and a tiny step makes the count overflow an int: both are
	// +Inf here, and more than limit.
	span := (to - from) / step
	if !(span < float64(limit)) {
		return nil
	}
	n := int(math.Floor(span+1e-9)) + 1
	if n > limit {
		return nil
	}
	out := make([]float64, 0, n)
	for i := range n {
		// Round away binary noise (0.1 steps) to 12 significant digits.
		v := roundSig(from + float64(i)*step)
		if len(out) > 0 && v <= out[len(out)-1] {
			continue
		}
		out = append(out, v)
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func roundSig(v float64) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, 12-math.Ceil(math.Log10(math.Abs(v))))
	r := math.Round(v*p) / p
	if !finite(r) { // v near the ends of float64's range: p or v*p is out of it
		return v
	}
	return r
}
