// Package providers declares the one interface every identity-verification vendor adapter
// implements (start, status, cancel, verify-and-parse webhook) and the helpers they share:
// HMAC signature checks against rotating secrets and an HTTP client with timeouts, retries
// with backoff and idempotency keys. Each vendor lives in its own sub-package
// (adapters/providers/onfido, persona, sumsub, veriff, sandbox) and maps the vendor's
// payloads onto the canonical statuses of store.Status*.
package providers

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provider is one identity-verification vendor.
type Provider interface {
	// Name is the provider's id in URLs, configuration and records: "onfido", "persona",
	// "sumsub", "veriff", "sandbox".
	Name() string
	// Start opens a verification at the vendor for the user and returns the vendor's
	// reference and what the client needs to capture documents.
	Start(ctx context.Context, req StartRequest) (Session, error)
	// Status asks the vendor for the current state of a session.
	Status(ctx context.Context, providerRef string) (Update, error)
	// Cancel ends a session at the vendor (where the vendor supports it; otherwise it
	// returns nil and the session is only expired on our side).
	Cancel(ctx context.Context, providerRef string) error
	// VerifyWebhook checks the delivery's signature over the raw body with the vendor's
	// documented scheme (constant-time, against every configured secret) and, only when it
	// is valid, parses the body into an Event. Errors wrap ErrMissingSignature,
	// ErrBadSignature, ErrStaleTimestamp or ErrMalformedPayload. A valid delivery of an
	// event type that says nothing about a session's status returns an Event with empty
	// Status (acknowledged, nothing to apply).
	VerifyWebhook(h Header, body []byte, now time.Time) (Event, error)
}

// Header reads request headers; net/http.Header and a Fiber adapter satisfy it. Get must be
// case-insensitive.
type Header interface {
	Get(key string) string
}

// StartRequest asks a vendor to open a verification.
type StartRequest struct {
	VerificationID string // our id; sent to the vendor as its reference where it has one
	UserID         string // our user id; sent as the vendor's user reference (reference-id, externalUserId, vendorData)
	IdempotencyKey string // sent on the create call so a retried request opens one session
	Locale         string // optional, e.g. "en-US"
	// CallbackURL is where the vendor (or the sandbox) should send webhooks, when the vendor
	// takes it per session.
	CallbackURL string
}

// Session is a vendor's answer to Start.
type Session struct {
	ProviderRef string // the vendor's id for the session: applicant, inquiry, workflow run, ...
	// ClientURL is a hosted-flow URL the person opens to capture documents, when the vendor
	// offers one; ClientToken is an SDK token for an embedded flow. Both are short-lived and
	// handed to the caller only, never stored.
	ClientURL   string
	ClientToken string
}

// Update is a session's state as a vendor reports it, mapped to canonical terms.
type Update struct {
	ProviderRef string
	Status      string   // a canonical status (store.Status*), "" when nothing changed
	Score       *float64 // 0..100 when the vendor gives one
	ReasonCodes []string // normalized reason codes, UPPER_SNAKE
	OccurredAt  time.Time
}

// Event is one verified webhook delivery, mapped to canonical terms. It carries ids, codes
// and times only: no personal or document data from the body.
type Event struct {
	// ID identifies the event for de-duplication: the vendor's event id where it sends one,
	// else a stable digest of what identifies the delivery (resource id, action, time).
	ID string
	// Type is the vendor's event name (check.completed, inquiry.approved, applicantReviewed,
	// ...), for metrics and logs.
	Type string
	// ProviderRef is the vendor's id of the session the event is about.
	ProviderRef string
	// UserID is our user id when the vendor echoes it (Persona reference-id, Sumsub
	// externalUserId, Veriff vendorData); "" otherwise. With it, an event for an unknown
	// ProviderRef creates the session as a placeholder.
	UserID string
	// Status is the canonical status the event moves the session to; "" for an event that
	// changes nothing.
	Status string
	// Score is 0..100 when the vendor gives one.
	Score *float64
	// ReasonCodes are normalized (UPPER_SNAKE) reasons, e.g. DOCUMENT_EXPIRED, FACE_MISMATCH.
	// nil with a new Status clears the session's reasons; nil with its current one keeps them.
	ReasonCodes []string
	// OccurredAt is the vendor's own time for the event; an event older than the session's
	// last applied one is not applied.
	OccurredAt time.Time
	// Fetch is true when the event says the session changed but not how (Onfido's check
	// and workflow-run notifications): the caller asks Status for the result.
	Fetch bool
}

// Webhook verification errors. Adapters wrap them with detail that names no secret and
// quotes no body content.
var (
	ErrMissingSignature = errors.New("missing signature header")
	ErrBadSignature     = errors.New("signature does not match")
	ErrStaleTimestamp   = errors.New("timestamp outside the accepted window")
	ErrMalformedPayload = errors.New("malformed payload")
)

// ErrNotConfigured is returned by a vendor call when no API credentials were configured.
var ErrNotConfigured = errors.New("provider not configured")

// APIError is a vendor API answer with a non-success status after retries.
type APIError struct {
	Provider string
	Op       string
	Status   int
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: vendor answered HTTP %d", e.Provider, e.Op, e.Status)
}
