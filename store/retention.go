package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// EvidenceDeleted is the state of an evidence pointer whose blob retention or an erasure
// deleted. The pointer keeps its id, kind, blob key, hash, type and size, so the audit
// chain's evidence events can still be matched to it; the file itself is gone.
const EvidenceDeleted = "deleted"

// EventRetentionDeleted is appended once per retention deletion batch.
const EventRetentionDeleted = "retention.deleted"

// DefaultRetentionPolicy is the policy of a verification session whose RetentionPolicy is
// empty.
const DefaultRetentionPolicy = "kyc-default"

// Retention data classes.
const (
	// ClassRawEvidence: evidence blobs and their pointers' state. Deleting marks the
	// pointer EvidenceDeleted after the caller deleted the blob.
	ClassRawEvidence = "raw_evidence"
	// ClassRawPayloads: sealed provider webhook bodies (raw_payloads), by received time.
	ClassRawPayloads = "raw_payloads"
	// ClassVerificationOutcomes: whole session rows (status, score, reason codes, evidence
	// pointers, consent), with their webhook event keys, idempotency keys, raw payloads
	// and review rows. A session that still has evidence not yet deleted is never due.
	ClassVerificationOutcomes = "verification_outcomes"
	// ClassConsentRecords: the consent recorded on a session (set to none).
	ClassConsentRecords = "consent_records"
	// ClassReviewNotes: review rows (claim, resolution, note hash) of closed verification
	// review items, by decision time. Review rows of decisions go with their decision.
	ClassReviewNotes = "review_notes"
	// ClassDecisions: decision rows with their input snapshot, with their idempotency
	// keys, shadow results, outcome labels and review rows.
	ClassDecisions = "decisions"
	// ClassLabels: outcome labels, by label time.
	ClassLabels = "labels"
)

// SessionClasses are the classes whose records belong to a verification session and so
// follow the session's retention policy.
var SessionClasses = []string{ClassRawEvidence, ClassRawPayloads, ClassConsentRecords, ClassReviewNotes, ClassVerificationOutcomes}

// RetentionClasses lists every class, in the order a retention run processes them: what
// hangs off a session before the session, labels before decisions.
var RetentionClasses = []string{ClassRawEvidence, ClassRawPayloads, ClassConsentRecords, ClassReviewNotes,
	ClassVerificationOutcomes, ClassLabels, ClassDecisions}

// IsSessionClass reports whether class follows a session's retention policy.
func IsSessionClass(class string) bool {
	for _, c := range SessionClasses {
		if c == class {
			return true
		}
	}
	return false
}

// RetentionScope selects the records of one class that are due.
type RetentionScope struct {
	Class string
	// Policy is the retention policy's name. For a session class only sessions whose
	// RetentionPolicy is Policy are in scope (and, when IncludeUnset, those with none);
	// for decisions and labels it is recorded in the audit event only.
	Policy       string
	IncludeUnset bool
	// Cutoff: records older than this (strictly) are due.
	Cutoff time.Time
	// Limit bounds one deletion batch; values below 1 mean 500.
	Limit int
	// Actor and CorrelationID go into the audit event.
	Actor         string
	CorrelationID string
}

// BatchLimit returns the scope's batch size.
func (s RetentionScope) BatchLimit() int {
	if s.Limit < 1 {
		return 500
	}
	return s.Limit
}

// DueEvidence is one evidence pointer with the blob key to delete: due under a retention
// policy, or of an erased subject.
type DueEvidence struct {
	VerificationID string
	EvidenceID     string
	BlobKey        string
}

// Retention finds and deletes what retention policies say is due. Every deletion batch
// appends exactly one retention.deleted event in the same transaction; nothing about the
// people concerned goes into it. The audit log itself is never deleted.
//
// The age of a record is: for raw_evidence, consent_records and verification_outcomes the
// session's CreatedAt; for raw_payloads the payload's ReceivedAt; for review_notes the
// resolution's time; for decisions and labels their CreatedAt.
type Retention interface {
	// CountRetentionDue returns how many records of the scope are due (Limit is ignored).
	// For raw_evidence it counts evidence pointers not yet deleted.
	CountRetentionDue(ctx context.Context, scope RetentionScope) (int, error)
	// DeleteRetentionDue deletes up to Limit due records of the scope with one
	// retention.deleted event (none when nothing was due) and returns how many it deleted.
	// It refuses raw_evidence (use RetentionDueEvidence and MarkEvidenceDeleted).
	DeleteRetentionDue(ctx context.Context, scope RetentionScope) (int, error)
	// RetentionDueEvidence returns up to Limit due evidence pointers (not yet deleted),
	// oldest session first.
	RetentionDueEvidence(ctx context.Context, scope RetentionScope) ([]DueEvidence, error)
	// MarkEvidenceDeleted sets the state of the given pointers to EvidenceDeleted (changing
	// nothing else, not even the session's UpdatedAt) with one retention.deleted event of
	// class raw_evidence, and returns how many it marked: pointers already deleted or gone
	// are skipped.
	MarkEvidenceDeleted(ctx context.Context, scope RetentionScope, items []DueEvidence) (int, error)
	// RetentionPolicyNames returns how many verification sessions name each retention
	// policy ("" for none), so a run can report sessions under a policy its file does not
	// define: those are never deleted.
	RetentionPolicyNames(ctx context.Context) (map[string]int, error)
}

type retentionPayload struct {
	Class  string `json:"class"`
	Count  int    `json:"count"`
	Cutoff string `json:"cutoff"`
	Policy string `json:"policy"`
}

// RetentionDeletedEvent returns the unlinked audit event for one retention batch: type
// retention.deleted, actor scope.Actor (default "retention"), no subject, and the payload
// {class, count, cutoff, policy} with cutoff in RFC 3339 UTC. It names no record and no
// person.
func RetentionDeletedEvent(scope RetentionScope, count int, at time.Time) (AuditEvent, error) {
	actor := scope.Actor
	if actor == "" {
		actor = "retention"
	}
	return newEvent(EventRetentionDeleted, actor, scope.CorrelationID, "", at, retentionPayload{
		Class: scope.Class, Count: count, Cutoff: scope.Cutoff.UTC().Format(time.RFC3339Nano), Policy: scope.Policy,
	})
}

// DueEvidenceGroup is the due evidence of one session.
type DueEvidenceGroup struct {
	VerificationID string
	EvidenceIDs    []string
}

// GroupDueEvidence groups items by session, in the order sessions first appear.
func GroupDueEvidence(items []DueEvidence) []DueEvidenceGroup {
	var out []DueEvidenceGroup
	idx := map[string]int{}
	for _, it := range items {
		i, ok := idx[it.VerificationID]
		if !ok {
			i = len(out)
			idx[it.VerificationID] = i
			out = append(out, DueEvidenceGroup{VerificationID: it.VerificationID})
		}
		out[i].EvidenceIDs = append(out[i].EvidenceIDs, it.EvidenceID)
	}
	return out
}

// MarkEvidence sets the state of the listed items of a session's evidence column (a JSON
// array of Evidence) to EvidenceDeleted and returns the new column and how many items
// changed. Items already deleted or not present are left as they are; every other field
// is kept.
func MarkEvidence(column string, ids []string) (string, int, error) {
	var ev []Evidence
	if err := json.Unmarshal([]byte(column), &ev); err != nil {
		return "", 0, fmt.Errorf("decode evidence: %w", err)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for i := range ev {
		if want[ev[i].ID] && ev[i].State != EvidenceDeleted {
			ev[i].State = EvidenceDeleted
			n++
		}
	}
	if n == 0 {
		return column, 0, nil
	}
	out, err := EncodeEvidence(ev)
	return out, n, err
}
