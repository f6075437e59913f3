package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// SubjectKey is a subject's data key as stored: wrapped (AES-GCM encrypted) under one of the
// deployment's master keys, never in the clear. Personal data of the subject (the personal
// part of decision inputs, raw provider payloads, evidence objects) is encrypted under the
// unwrapped key; destroying the stored key makes all of it unreadable wherever a copy
// lives (crypto-shredding).
type SubjectKey struct {
	UserID    string
	KEKID     string // id of the master key that wrapped it
	Wrapped   []byte
	CreatedAt time.Time
}

// Erasure reports what EraseSubject did.
type Erasure struct {
	UserID       string `json:"user_id"`
	KeyDestroyed bool   `json:"key_destroyed"` // false when the subject had no key (nothing was ever sealed, or erased before)
	Decisions    int    `json:"decisions"`     // decisions whose sealed personal data was deleted
	Verify       int    `json:"verifications"` // verification sessions of the subject (kept: ids, statuses, hashes)
	RawPayloads  int    `json:"raw_payloads"`  // raw provider payloads deleted
	// Evidence lists the subject's evidence pointers not yet deleted, with their blob
	// keys, for the caller to delete and then mark with MarkSubjectEvidenceDeleted.
	Evidence []DueEvidence `json:"-"`
	ErasedAt time.Time     `json:"erased_at"`
}

// SubjectKeys stores subjects' data keys and erases subjects.
type SubjectKeys interface {
	// EnsureSubjectKeys stores every candidate whose user has no key yet and returns the
	// stored key of each candidate's user, in the candidates' order: the existing key when
	// there was one (a concurrent writer may have won), the candidate otherwise.
	EnsureSubjectKeys(ctx context.Context, candidates []SubjectKey) ([]SubjectKey, error)
	// LookupSubjectKeys returns the stored keys of those of the users that have one, in no
	// particular order.
	LookupSubjectKeys(ctx context.Context, userIDs []string) ([]SubjectKey, error)
	// GetSubjectKey returns a user's stored key, or an error wrapping ErrNotFound (never
	// had one, or erased).
	GetSubjectKey(ctx context.Context, userID string) (SubjectKey, error)
	// SampleSubjectKeys returns up to perKEK stored keys for each master key id that wraps
	// any, so that a process can check at start that its master keys are the ones the
	// stored keys were wrapped under. It reads an index, not the table: cheap however many
	// subjects there are.
	SampleSubjectKeys(ctx context.Context, perKEK int) ([]SubjectKey, error)
	// RewrapSubjectKeys calls rewrap for every key not wrapped under kekID and stores what
	// it returns, in batches, each batch in its own transaction. It returns how many keys
	// were rewrapped.
	RewrapSubjectKeys(ctx context.Context, kekID string, rewrap func(SubjectKey) (SubjectKey, error)) (int, error)
	// EraseSubject, in one transaction, destroys the user's key, deletes the sealed
	// personal data of the user's decisions and the raw payloads of the user's verification
	// sessions, and appends one subject.erased audit event (counts only). Ids, outcomes,
	// PII-free snapshots, hashes and the audit log stay. It returns the blob keys of the
	// user's evidence for the caller to delete. Erasing a user with nothing stored succeeds
	// with zero counts and is audited too.
	EraseSubject(ctx context.Context, userID, actor, correlationID string) (Erasure, error)
	// MarkSubjectEvidenceDeleted sets the state of the given evidence pointers of the
	// user's verification sessions to EvidenceDeleted once the caller has deleted their
	// blobs (after EraseSubject), changing nothing else, with one subject.evidence_deleted
	// audit event (the subject as SubjectRef and the count) in the same transaction. It
	// returns how many it marked: pointers already deleted or gone, and those of another
	// user's sessions, are skipped; when none is marked nothing is written.
	MarkSubjectEvidenceDeleted(ctx context.Context, userID, actor, correlationID string, items []DueEvidence) (int, error)
}

// KeyChecks records check values of the deployment's secret keys, so that a process can
// tell at start whether its keys are the ones the store's data was written with.
type KeyChecks interface {
	// ClaimKeyCheck stores value under name unless a value is stored there already, and
	// returns the stored value: value itself for the first caller, the first caller's for
	// every later one, concurrent callers included.
	ClaimKeyCheck(ctx context.Context, name string, value []byte) ([]byte, error)
}

// LiveEvidence returns the evidence pointers of verification verificationID, whose
// evidence column the stores keep as raw (a JSON array of Evidence), that have a blob key
// and are not deleted yet: the blobs an erasure deletes.
func LiveEvidence(verificationID string, raw []byte) ([]DueEvidence, error) {
	var ev []Evidence
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("decode evidence: %w", err)
	}
	out := make([]DueEvidence, 0, len(ev))
	for _, e := range ev {
		if e.BlobKey != "" && e.State != EvidenceDeleted {
			out = append(out, DueEvidence{VerificationID: verificationID, EvidenceID: e.ID, BlobKey: e.BlobKey})
		}
	}
	return out, nil
}
