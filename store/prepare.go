package store

import (
	"fmt"
	"slices"
	"time"
)

// PrepareDecisions is the part of WriteDecisions that is the same for every store and
// needs no lock on the audit chain: it validates each record (a failure goes to its slot of
// results, wrapping ErrInvalidRecord), fills a zero CreatedAt with now, builds the record's
// decision.created audit event, and marks every repeat of an idempotency key already used
// earlier in the batch with ErrDuplicateIdempotencyKey. It returns a copy of recs (the
// caller's records stay as they are), the events (indexed like recs) and the results; the
// records still to write are those whose result is nil.
func PrepareDecisions(recs []DecisionRecord, now time.Time) ([]DecisionRecord, []AuditEvent, []error, error) {
	recs = slices.Clone(recs)
	results := make([]error, len(recs))
	events := make([]AuditEvent, len(recs))
	seen := make(map[string]struct{})
	for i := range recs {
		if results[i] = ValidateDecision(recs[i]); results[i] != nil {
			continue
		}
		if key := recs[i].IdempotencyKey; key != "" {
			if _, dup := seen[key]; dup {
				results[i] = ErrDuplicateIdempotencyKey
				continue
			}
			seen[key] = struct{}{}
		}
		if recs[i].CreatedAt.IsZero() {
			recs[i].CreatedAt = now
		}
		ev, err := DecisionCreatedEvent(recs[i], now)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("prepare decision %q: %w", recs[i].ID, err)
		}
		events[i] = ev
	}
	return recs, events, results, nil
}
