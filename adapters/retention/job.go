package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// Blobs deletes evidence objects; a missing object is not an error.
// *adapters/evidence.Store implements it.
type Blobs interface {
	Delete(ctx context.Context, key string) error
}

// Job applies a policy file to a store and an evidence bucket.
type Job struct {
	Store    store.Retention
	Blobs    Blobs // may be nil only if no evidence is ever due
	Policies *Policies
	// BatchSize bounds one deletion transaction (default 500).
	BatchSize int
	// Actor and CorrelationID go into the audit events (defaults "retention" and "").
	Actor         string
	CorrelationID string
	Logger        *slog.Logger // default: discard
}

// Result is what one run found and deleted for one class under one policy.
type Result struct {
	Class   string
	Policy  string // the policy's name; TopLevel for decisions and labels
	Period  Period
	Cutoff  time.Time // zero when kept
	Due     int       // before the run
	Deleted int       // 0 in a dry run
}

// scopes returns the run's scopes in processing order, with the period of each.
func (j *Job) scopes(now time.Time) ([]store.RetentionScope, []Period) {
	var (
		out     []store.RetentionScope
		periods []Period
	)
	add := func(class, policy string, unset bool, p Period) {
		sc := store.RetentionScope{Class: class, Policy: policy, IncludeUnset: unset, Limit: j.BatchSize,
			Actor: j.Actor, CorrelationID: j.CorrelationID}
		sc.Cutoff, _ = p.Cutoff(now)
		out, periods = append(out, sc), append(periods, p)
	}
	for _, class := range store.RetentionClasses {
		switch class {
		case store.ClassDecisions:
			add(class, TopLevel, false, j.Policies.Decisions)
		case store.ClassLabels:
			add(class, TopLevel, false, j.Policies.Labels)
		default:
			for _, p := range j.Policies.Policies {
				add(class, p.Name, p.Name == j.Policies.DefaultPolicy, p.Periods[class])
			}
		}
	}
	return out, periods
}

// Run counts what is due at now under every policy and class and, unless dryRun, deletes
// it in batches: evidence blobs first (then their pointers), then payloads, consent,
// review rows and sessions, then labels and decisions. It stops at the first error,
// returning the results so far with it; a later run continues where it stopped.
func (j *Job) Run(ctx context.Context, now time.Time, dryRun bool) ([]Result, error) {
	if j.Policies == nil {
		return nil, errors.New("retention: no policies")
	}
	log := j.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scopes, periods := j.scopes(now)
	var results []Result
	for i, sc := range scopes {
		r := Result{Class: sc.Class, Policy: sc.Policy, Period: periods[i], Cutoff: sc.Cutoff}
		if periods[i].Kept() {
			results = append(results, r)
			continue
		}
		due, err := j.Store.CountRetentionDue(ctx, sc)
		if err != nil {
			return results, fmt.Errorf("retention: count %s (%s): %w", sc.Class, sc.Policy, err)
		}
		r.Due = due
		if !dryRun && due > 0 {
			if sc.Class == store.ClassRawEvidence {
				r.Deleted, err = j.deleteEvidence(ctx, sc)
			} else {
				r.Deleted, err = j.deleteBatches(ctx, sc)
			}
			if r.Deleted > 0 {
				log.Info("retention deleted", "class", sc.Class, "policy", sc.Policy, "count", r.Deleted,
					"cutoff", sc.Cutoff.UTC().Format(time.RFC3339))
			}
			if err != nil {
				return append(results, r), fmt.Errorf("retention: delete %s (%s): %w", sc.Class, sc.Policy, err)
			}
		}
		results = append(results, r)
	}
	return results, nil
}

// maxBatches bounds one class's batches in one run, so that a run always ends (records
// that became due while it ran wait for the next one).
const maxBatches = 100000

func (j *Job) deleteBatches(ctx context.Context, sc store.RetentionScope) (int, error) {
	total := 0
	for range maxBatches {
		n, err := j.Store.DeleteRetentionDue(ctx, sc)
		total += n
		if err != nil || n < sc.BatchLimit() {
			return total, err
		}
	}
	return total, nil
}

// deleteEvidence deletes the blobs of each batch of due evidence, then marks their
// pointers deleted. A blob that cannot be deleted stops the run with its pointer left as
// it was, so it is retried next time.
func (j *Job) deleteEvidence(ctx context.Context, sc store.RetentionScope) (int, error) {
	if j.Blobs == nil {
		return 0, errors.New("no evidence bucket configured")
	}
	total := 0
	for range maxBatches {
		due, err := j.Store.RetentionDueEvidence(ctx, sc)
		if err != nil || len(due) == 0 {
			return total, err
		}
		for _, d := range due {
			if d.BlobKey == "" {
				continue
			}
			if err := j.Blobs.Delete(ctx, d.BlobKey); err != nil {
				return total, fmt.Errorf("delete evidence blob of %s: %w", d.EvidenceID, err)
			}
		}
		n, err := j.Store.MarkEvidenceDeleted(ctx, sc, due)
		total += n
		if err != nil {
			return total, err
		}
		if len(due) < sc.BatchLimit() {
			return total, nil
		}
		if n == 0 {
			return total, errors.New("evidence pointers could not be marked deleted")
		}
	}
	return total, nil
}

// Undefined returns how many verification sessions name a retention policy the file does
// not define (sessions naming none fall under the default policy). Retention never
// deletes them; an operator should add the policy.
func (j *Job) Undefined(ctx context.Context) (map[string]int, error) {
	names, err := j.Store.RetentionPolicyNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: policy names: %w", err)
	}
	defined := map[string]bool{"": j.Policies.DefaultPolicy != ""}
	for _, p := range j.Policies.Policies {
		defined[p.Name] = true
	}
	out := map[string]int{}
	for name, n := range names {
		if !defined[name] {
			out[name] = n
		}
	}
	return out, nil
}

// RunEvery runs the job at once and then every interval until ctx ends, logging each
// run's deletions and errors.
func (j *Job) RunEvery(ctx context.Context, every time.Duration, now func() time.Time) {
	log := j.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := j.Run(ctx, now(), false); err != nil && ctx.Err() == nil {
			log.Warn("retention run failed", "err", err)
		}
		if undefined, err := j.Undefined(ctx); err == nil {
			for name, n := range undefined {
				log.Warn("verification sessions name a retention policy the file does not define; they are never deleted",
					"policy", name, "sessions", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// TopLevel is the policy name decisions and labels are reported and audited under.
const TopLevel = "top-level"
