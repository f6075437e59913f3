// Package store declares Verdict's persistence ports and the records that cross them.
//
// Implementations live in sub-packages: store/sqlite is the embedded default (pure Go,
// a file in the data directory), store/postgres the production store. Both pass the same
// conformance suite in store/storetest. Nothing outside store/ imports a database driver.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned when a requested record does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicateIdempotencyKey is returned for a decision whose idempotency key was already
// stored by another decision. The caller reads the stored one with LookupIdempotency.
var ErrDuplicateIdempotencyKey = errors.New("idempotency key already used")

// ErrSubjectKeyExists is returned for a decision carrying a NewSubjectKey for a subject that
// has a data key already (created meanwhile by another writer). The record is not written;
// the caller seals its personal data again under the stored key.
var ErrSubjectKeyExists = errors.New("subject already has a data key")

// ErrUnavailable wraps errors that mean the backing database cannot be reached or did not
// answer in time, as opposed to a rejected request. Callers apply their fail mode.
var ErrUnavailable = errors.New("store unavailable")

// DecisionRecord is one decision as stored: indexed columns, the policy input document
// without personal data (engine/pii.Split: kept after erasure, replayable), the personal
// data Split took out sealed under the subject's data key, and the answer given.
type DecisionRecord struct {
	ID            string          // globally unique, time-ordered (UUIDv7)
	Action        string          // login, payout, onboarding, ...
	SubjectID     string          // the subject's id as posted
	Outcome       string          // approve, step_up, review, block
	Score         float64         // 0..100
	ReasonCodes   []string        // every fired reason code, most severe first
	PolicyVersion string          // human label of the policy version
	PolicyHash    string          // content hash of the policy version
	FailMode      string          // non-empty when a fail mode shaped the outcome
	Input         json.RawMessage // the policy input document, personal data removed (pii.Split)
	// PII is the personal data removed from Input (a JSON array of pii.Field), sealed
	// with AES-GCM under the subject's data key and bound to this decision; nil when there
	// was none, or after erasure.
	PII []byte
	// PIIPlain is the personal data before sealing. It is never stored: a writer that seals
	// (adapters/vault) turns it into PII, and the stores refuse a record that still has it.
	PIIPlain json.RawMessage
	// NewSubjectKey, when set, is the subject's data key PII was sealed under, to be stored
	// in the same transaction as the record. If the subject has another key already, the
	// record is not written and gets ErrSubjectKeyExists.
	NewSubjectKey  *SubjectKey
	Response       json.RawMessage // the answer returned to the caller
	IdempotencyKey string          // optional
	RequestHash    string          // SHA-256 hex of the request body, with IdempotencyKey
	CreatedAt      time.Time
	Actor          string // API key id (or "dev") that asked for the decision
	CorrelationID  string // request id
}

// Idempotency is the stored binding of an Idempotency-Key to the decision it produced.
type Idempotency struct {
	Key         string
	RequestHash string
	DecisionID  string
}

// DecisionWriter durably writes decisions with their audit events.
type DecisionWriter interface {
	// WriteDecisions writes every record, its idempotency key (if any) and one audit event
	// per record in a single transaction: all or nothing. A record whose idempotency key
	// is already stored (or repeated earlier in the same batch) is not written; its slot in
	// the returned slice holds ErrDuplicateIdempotencyKey. The returned slice has one entry
	// per record (nil when written). A non-nil error means nothing was written.
	WriteDecisions(ctx context.Context, recs []DecisionRecord) ([]error, error)
}

// DecisionReader reads stored decisions.
type DecisionReader interface {
	// GetDecision returns the decision with the given id, or ErrNotFound.
	GetDecision(ctx context.Context, id string) (DecisionRecord, error)
	// LookupIdempotency returns the binding for key, or ErrNotFound.
	LookupIdempotency(ctx context.Context, key string) (Idempotency, error)
}

// ListEntry is one value on a named list (deny_user, allow_ip, ...).
type ListEntry struct {
	List      string
	Value     string
	Reason    string
	CreatedAt time.Time
	Actor     string
}

// Lists stores deny/allow/watch lists. Every change writes an audit event in the same
// transaction.
type Lists interface {
	// PutListEntry adds or replaces an entry. It reports whether the entry is new.
	PutListEntry(ctx context.Context, e ListEntry, correlationID string) (created bool, err error)
	// DeleteListEntry removes an entry, or returns ErrNotFound.
	DeleteListEntry(ctx context.Context, list, value, actor, correlationID string) error
	// ListEntries returns the entries of one list ordered by value.
	ListEntries(ctx context.Context, list string) ([]ListEntry, error)
	// AllListEntries returns every entry of every list, for building an in-memory matcher.
	AllListEntries(ctx context.Context) ([]ListEntry, error)
	// ListsVersion returns a number that changes whenever any list changes, so replicas
	// can cheaply poll for changes.
	ListsVersion(ctx context.Context) (int64, error)
}

// Verifications reads verification sessions.
type Verifications interface {
	// LatestVerification returns the most recently updated verification of a user, or
	// ErrNotFound.
	LatestVerification(ctx context.Context, userID string) (Verification, error)
	// LatestVerifications is LatestVerification for many users in one read: the latest
	// verification of every user in userIDs that has one, keyed by user id. Users without
	// a verification are absent; repeated ids are read once.
	LatestVerifications(ctx context.Context, userIDs []string) (map[string]Verification, error)
}

// AuditEvent is one link of the hash chain. Payload holds ids and hashes only.
type AuditEvent struct {
	Seq           int64
	Time          time.Time
	Type          string // decision.created, list.entry_put, list.entry_deleted, ...
	Actor         string
	CorrelationID string
	SubjectRef    string          // an id or a hash, never raw PII
	Payload       json.RawMessage // canonical JSON object, ids and hashes only
	PrevHash      []byte
	Hash          []byte
}

// AuditLog reads the hash-chained audit log. Appends happen inside the writes above.
type AuditLog interface {
	// AuditEvents returns the events with Seq > after, in order, for up to limit sequence
	// numbers: every stored event of a returned sequence number, so that a sequence number
	// stored twice (a forged row) is returned twice and VerifyChain reports it.
	AuditEvents(ctx context.Context, after int64, limit int) ([]AuditEvent, error)
	// AuditHead returns the last event's sequence and hash (0, nil for an empty log).
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)
}

// AuditAppender appends events that belong to no other write.
type AuditAppender interface {
	// AppendAudit links and appends one event on its own, for what happens without a
	// stored change (a refused webhook). Seq, PrevHash and Hash are set by the store.
	AppendAudit(ctx context.Context, ev AuditEvent) error
}

// Store is everything a Verdict server needs from persistence.
type Store interface {
	DecisionWriter
	DecisionReader
	Lists
	VerificationStore
	Reviews
	PolicyStore
	LabelStore
	DecisionScanner
	Retention
	SubjectKeys
	KeyChecks
	AuditLog
	AuditAppender
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	// Close releases resources.
	Close() error
}
