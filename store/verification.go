package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Canonical verification session statuses. Providers' statuses are mapped onto these by
// adapters/providers; policies read them from input.signals.verification.status.
const (
	StatusInitiated         = "initiated"
	StatusCapturing         = "capturing"
	StatusSubmitted         = "submitted"
	StatusPendingReview     = "pending_review"
	StatusApproved          = "approved"
	StatusRejected          = "rejected"
	StatusNeedsResubmission = "needs_resubmission"
	StatusExpired           = "expired"
)

// Statuses lists every canonical status in lifecycle order.
var Statuses = []string{
	StatusInitiated, StatusCapturing, StatusSubmitted, StatusPendingReview,
	StatusApproved, StatusRejected, StatusNeedsResubmission, StatusExpired,
}

// transitions is the one table of legal status changes. A session moves forward through
// capture, submission and review; a provider may report an outcome at any point before
// the session ends (it may finish capture and review on its own side before we hear of
// them), a request for resubmission reopens capture, and approved, rejected and expired
// are final. Staying in the same status is not a transition and is always allowed.
var transitions = map[string][]string{
	StatusInitiated:         {StatusCapturing, StatusSubmitted, StatusPendingReview, StatusApproved, StatusRejected, StatusNeedsResubmission, StatusExpired},
	StatusCapturing:         {StatusSubmitted, StatusPendingReview, StatusApproved, StatusRejected, StatusNeedsResubmission, StatusExpired},
	StatusSubmitted:         {StatusPendingReview, StatusApproved, StatusRejected, StatusNeedsResubmission, StatusExpired},
	StatusPendingReview:     {StatusApproved, StatusRejected, StatusNeedsResubmission, StatusExpired},
	StatusNeedsResubmission: {StatusCapturing, StatusSubmitted, StatusPendingReview, StatusApproved, StatusRejected, StatusExpired},
	StatusApproved:          nil,
	StatusRejected:          nil,
	StatusExpired:           nil,
}

// ValidStatus reports whether s is a canonical status.
func ValidStatus(s string) bool {
	_, ok := transitions[s]
	return ok
}

// Terminal reports whether a session in status s can no longer change.
func Terminal(s string) bool {
	next, ok := transitions[s]
	return ok && len(next) == 0
}

// CanTransition reports whether a session may move from status from to status to. Both must
// be canonical statuses; from == to is allowed (nothing changes).
func CanTransition(from, to string) bool {
	next, ok := transitions[from]
	if !ok || !ValidStatus(to) {
		return false
	}
	if from == to {
		return true
	}
	for _, n := range next {
		if n == to {
			return true
		}
	}
	return false
}

// ErrIllegalTransition is returned when a change would move a session between two statuses
// the state machine does not connect.
var ErrIllegalTransition = errors.New("illegal status transition")

// IllegalTransitionError names the refused transition.
type IllegalTransitionError struct{ From, To string }

func (e *IllegalTransitionError) Error() string {
	return fmt.Sprintf("verification cannot move from %s to %s", e.From, e.To)
}

// Unwrap makes errors.Is(err, ErrIllegalTransition) true.
func (e *IllegalTransitionError) Unwrap() error { return ErrIllegalTransition }

// CheckTransition returns nil when CanTransition(from, to), else an *IllegalTransitionError.
func CheckTransition(from, to string) error {
	if CanTransition(from, to) {
		return nil
	}
	return &IllegalTransitionError{From: from, To: to}
}

// ErrAlreadyApplied is returned by UpdateVerification when the change's EventKey was
// applied before: a redelivered webhook. Nothing is written.
var ErrAlreadyApplied = errors.New("event already applied")

// ErrClaimed is returned when a review item is held by another reviewer's unlapsed claim,
// or when a reviewer resolves an item without holding its claim.
var ErrClaimed = errors.New("review item claimed by another reviewer")

// Evidence states.
const (
	EvidencePending  = "pending"  // upload URL issued, object not yet checked
	EvidenceUploaded = "uploaded" // object present in blob storage with the declared hash
)

// Evidence is a pointer to one uploaded file (document image, selfie) in blob storage. The
// file itself never enters the store.
type Evidence struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`     // document_front, document_back, selfie, ...
	BlobKey     string    `json:"blob_key"` // key in the evidence bucket
	SHA256      string    `json:"sha256"`   // hex SHA-256 the client declared, checked on upload
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	State       string    `json:"state"` // EvidencePending, EvidenceUploaded or EvidenceDeleted (retention, erasure)
	CreatedAt   time.Time `json:"created_at"`
	UploadedAt  time.Time `json:"uploaded_at,omitzero"`
}

// Consent records what the person agreed to before any evidence was collected.
type Consent struct {
	PolicyHash string    `json:"policy_hash"` // hash of the consent text / privacy policy version shown
	Locale     string    `json:"locale"`
	Scope      []string  `json:"scope"` // e.g. identity_verification, biometric_processing
	GrantedAt  time.Time `json:"granted_at"`
}

// Verification is the canonical verification session. It holds ids, statuses, scores,
// reason codes, evidence pointers and hashes: no document data and no personal data beyond
// the caller's user id.
type Verification struct {
	ID              string
	UserID          string
	Provider        string
	ProviderRef     string // the vendor's id for the session (applicant, inquiry, ...), "" until started
	Status          string
	Score           float64
	ReasonCodes     []string
	Evidence        []Evidence
	Consent         *Consent
	RetentionPolicy string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	ExpiresAt       time.Time // a session not final by then becomes expired; zero: never
	LastEventAt     time.Time // the vendor's time of the last applied event; older ones are ignored
}

// VerificationChange describes who changes a verification and why, for the audit event,
// and carries what a webhook delivery stores with the change.
type VerificationChange struct {
	Actor         string // API key id, reviewer, or the provider name for a webhook
	CorrelationID string
	Reason        string // a reason code (UPPER_SNAKE) for reviewer and system changes; optional
	// EventKey, when set, identifies a provider event ("<provider>:<event id>"). It is
	// recorded with the change; a second change with the same key returns ErrAlreadyApplied
	// and writes nothing.
	EventKey string
	// Payload, when set, is the encrypted raw webhook body, stored apart from the canonical
	// record under Payload.ID.
	Payload *RawPayload
}

// RawPayload is a provider's webhook body sealed by the caller under the subject's data key
// (adapters/vault: AES-GCM, bound to the payload's id). The store keeps the bytes as given.
type RawPayload struct {
	ID         string
	Provider   string
	ReceivedAt time.Time
	Ciphertext []byte
}

// NewVerification is what CreateVerification needs besides the record.
type NewVerification struct {
	Verification   Verification
	IdempotencyKey string // optional; with RequestHash
	RequestHash    string
	Actor          string
	CorrelationID  string
}

// VerificationStore keeps verification sessions. Every write appends its audit events in
// the same transaction.
type VerificationStore interface {
	Verifications
	// CreateVerification stores a new session and appends verification.status_changed
	// (previous status ""). When IdempotencyKey is set and was used before it returns the
	// session created then and created=false, or ErrDuplicateIdempotencyKey when the
	// RequestHash differs. When ProviderRef is set and a session of the same provider has
	// it already, it returns that one and created=false (concurrent placeholders from
	// webhooks resolve to one session).
	CreateVerification(ctx context.Context, nv NewVerification) (v Verification, created bool, err error)
	// GetVerification returns the session or ErrNotFound.
	GetVerification(ctx context.Context, id string) (Verification, error)
	// VerificationByProviderRef returns the provider's session with that reference, or
	// ErrNotFound.
	VerificationByProviderRef(ctx context.Context, provider, ref string) (Verification, error)
	// ListVerifications returns the user's sessions, newest first, at most limit.
	ListVerifications(ctx context.Context, userID string, limit int) ([]Verification, error)
	// UpdateVerification reads the session under a write lock, lets fn change it, and
	// writes it back, all in one transaction. If ch.EventKey was applied before it returns
	// ErrAlreadyApplied. If fn returns an error nothing is written and that error is
	// returned. If the status changed it must satisfy CanTransition (else an
	// *IllegalTransitionError) and a verification.status_changed event is appended; a new
	// evidence item appends verification.evidence_added, a consent set for the first time
	// verification.consent_recorded. ID, UserID, Provider and CreatedAt cannot be changed;
	// UpdatedAt is set to the store's clock. ch.Payload, when set, is stored in the same
	// transaction. It returns the session as written.
	UpdateVerification(ctx context.Context, id string, ch VerificationChange, fn func(v *Verification) error) (Verification, error)
	// RawPayload returns a stored encrypted webhook body, or ErrNotFound.
	RawPayload(ctx context.Context, id string) (RawPayload, error)
	// RawPayloadIDs returns the ids of a session's stored webhook bodies, oldest first.
	RawPayloadIDs(ctx context.Context, verificationID string) ([]string, error)
	// ExpireVerifications moves up to limit sessions that are not final and whose ExpiresAt
	// is before now to expired, each with its audit event, and returns them as they now are.
	ExpireVerifications(ctx context.Context, now time.Time, limit int) ([]Verification, error)
}

// Review item kinds.
const (
	ReviewVerification = "verification" // a session in pending_review
	ReviewDecision     = "decision"     // a decision whose outcome was review
)

// ReviewItem is one entry of the manual review queue.
type ReviewItem struct {
	Kind         string // ReviewVerification or ReviewDecision
	ID           string // verification id or decision id
	UserID       string
	Action       string // the decision's action; "" for a verification
	Status       string // the session status or the decision outcome
	Score        float64
	ReasonCodes  []string
	CreatedAt    time.Time
	ClaimedBy    string    // "" when unclaimed
	ClaimedUntil time.Time // a claim lapses after this
}

// ReviewResolution is a reviewer's decision on an item.
type ReviewResolution struct {
	Kind          string
	ID            string
	Reviewer      string
	Outcome       string // for a verification: approved, rejected or needs_resubmission; for a decision: approve or block
	Reason        string // reason code, UPPER_SNAKE
	NoteSHA256    string // keyed digest of the reviewer's free-text note, if any ("hmac-sha256:<hex>", pii.Pseudonymizer.Digest; plain hex SHA-256 in records before 2026-12-08); the note itself is not stored
	CorrelationID string
	DecidedAt     time.Time
}

// Reviews is the manual review queue.
type Reviews interface {
	// ListReviews returns open items (sessions in pending_review; review decisions with no
	// resolution), oldest first and, at equal age, riskiest (highest score) first, at most
	// limit.
	ListReviews(ctx context.Context, limit int) ([]ReviewItem, error)
	// ClaimReview gives the item to reviewer until the given time and appends
	// review.claimed. It returns ErrNotFound for an unknown or closed item and ErrClaimed
	// when another reviewer's claim has not lapsed. A reviewer may renew their own claim.
	ClaimReview(ctx context.Context, kind, id, reviewer string, until time.Time, correlationID string) (ReviewItem, error)
	// ResolveReview records the resolution and appends review.decided, in one
	// transaction. For a verification it also moves the session to r.Outcome (subject to
	// CanTransition) with its status event. The reviewer must hold an unlapsed claim
	// (ErrClaimed otherwise); a closed item is ErrNotFound.
	ResolveReview(ctx context.Context, r ReviewResolution) error
	// GetReviewResolution returns the resolution of a decided item (CorrelationID is not
	// kept, so it is empty), or an error wrapping ErrNotFound when the item has none: never
	// queued, still open, or a session sent back to review since.
	GetReviewResolution(ctx context.Context, kind, id string) (ReviewResolution, error)
}
