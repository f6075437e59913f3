package sqlite

// This file is the part of the verification and review store that does not touch the
// database. store/postgres has the same file (verification_record.go): keep them equal, so
// that a record one store accepts is never refused by the other and both append the same
// audit events for the same change.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/verdict-engine/verdict/store"
)

// expiryChange is who ExpireVerifications says moved a session to expired.
var expiryChange = store.VerificationChange{Actor: "system", Reason: "VERIFICATION_EXPIRED"}

// terminalStatuses returns the statuses a session cannot leave.
func terminalStatuses() []string {
	var out []string
	for _, s := range store.Statuses {
		if store.Terminal(s) {
			out = append(out, s)
		}
	}
	return out
}

// utcMicros returns t in UTC truncated to the microsecond (the precision both stores
// keep); the zero time stays zero.
func utcMicros(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// normalizeVerification returns a deep copy of v with every time in UTC to the
// microsecond: what a store returns after writing v.
func normalizeVerification(v store.Verification) store.Verification {
	v.ReasonCodes = slices.Clone(v.ReasonCodes)
	if v.Evidence != nil {
		ev := make([]store.Evidence, len(v.Evidence))
		for i, e := range v.Evidence {
			e.CreatedAt, e.UploadedAt = utcMicros(e.CreatedAt), utcMicros(e.UploadedAt)
			ev[i] = e
		}
		v.Evidence = ev
	}
	if v.Consent != nil {
		c := *v.Consent
		c.Scope = slices.Clone(c.Scope)
		c.GrantedAt = utcMicros(c.GrantedAt)
		v.Consent = &c
	}
	v.CreatedAt, v.UpdatedAt = utcMicros(v.CreatedAt), utcMicros(v.UpdatedAt)
	v.ExpiresAt, v.LastEventAt = utcMicros(v.ExpiresAt), utcMicros(v.LastEventAt)
	return v
}

func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{store.ErrInvalidRecord}, args...)...)
}

// validateVerification extends store.ValidateVerification with what the session's newer
// fields need: a canonical status; evidence items with a unique non-empty id, a known
// state and a non-negative size; and valid UTF-8 text without NUL bytes in every string of
// the evidence, the consent and the retention policy (Postgres refuses NUL in text and
// jsonb, and encoding/json would replace invalid UTF-8).
func validateVerification(v store.Verification) error {
	if err := store.ValidateVerification(v); err != nil {
		return err
	}
	if !store.ValidStatus(v.Status) {
		return invalid("verification %q: unknown status %q", v.ID, v.Status)
	}
	texts := []string{v.RetentionPolicy}
	seen := make(map[string]struct{}, len(v.Evidence))
	for _, e := range v.Evidence {
		if e.ID == "" {
			return invalid("verification %q: evidence without an id", v.ID)
		}
		if _, dup := seen[e.ID]; dup {
			return invalid("verification %q: evidence %q listed twice", v.ID, e.ID)
		}
		seen[e.ID] = struct{}{}
		if e.State != store.EvidencePending && e.State != store.EvidenceUploaded {
			return invalid("verification %q: evidence %q: unknown state %q", v.ID, e.ID, e.State)
		}
		if e.Size < 0 {
			return invalid("verification %q: evidence %q: negative size", v.ID, e.ID)
		}
		texts = append(texts, e.ID, e.Kind, e.BlobKey, e.SHA256, e.ContentType)
	}
	if c := v.Consent; c != nil {
		texts = append(append(texts, c.PolicyHash, c.Locale), c.Scope...)
	}
	for _, s := range texts {
		if !validText(s) {
			return invalid("verification %q: evidence, consent or retention policy is not valid UTF-8 text", v.ID)
		}
	}
	return nil
}

// prepareNewVerification validates nv and returns the record CreateVerification writes:
// normalized, with a zero CreatedAt or UpdatedAt set to now.
func prepareNewVerification(nv store.NewVerification, now time.Time) (store.Verification, error) {
	v := normalizeVerification(nv.Verification)
	if err := validateVerification(v); err != nil {
		return store.Verification{}, err
	}
	for _, s := range []string{nv.IdempotencyKey, nv.RequestHash, nv.Actor, nv.CorrelationID} {
		if !validText(s) {
			return store.Verification{}, invalid("verification %q: idempotency key, request hash, actor or correlation id is not valid UTF-8 text", v.ID)
		}
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = utcMicros(now)
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = utcMicros(now)
	}
	return v, nil
}

// validateChange checks what UpdateVerification stores besides the record.
func validateChange(ch store.VerificationChange) error {
	for _, s := range []string{ch.Actor, ch.CorrelationID, ch.Reason, ch.EventKey} {
		if !validText(s) {
			return invalid("verification change: actor, correlation id, reason or event key is not valid UTF-8 text")
		}
	}
	if p := ch.Payload; p != nil {
		if p.ID == "" || len(p.Ciphertext) == 0 {
			return invalid("raw payload: id and ciphertext are required")
		}
		if !validText(p.ID) || !validText(p.Provider) {
			return invalid("raw payload %q: id or provider is not valid UTF-8 text", p.ID)
		}
	}
	return nil
}

// applyChange runs fn on a copy of prev (as stored) and returns the record to write, with
// UpdatedAt set to now, and its audit events. It returns fn's error as is, an
// *store.IllegalTransitionError for a status change the state machine refuses, and an
// error wrapping store.ErrInvalidRecord for a change of an immutable field or a record
// validateVerification refuses.
func applyChange(prev store.Verification, ch store.VerificationChange, now time.Time, fn func(v *store.Verification) error) (store.Verification, []store.AuditEvent, error) {
	next := normalizeVerification(prev)
	if err := fn(&next); err != nil {
		return store.Verification{}, nil, err
	}
	if next.ID != prev.ID || next.UserID != prev.UserID || next.Provider != prev.Provider || !next.CreatedAt.Equal(prev.CreatedAt) {
		return store.Verification{}, nil, invalid("verification %q: id, user id, provider and creation time cannot change", prev.ID)
	}
	if err := store.CheckTransition(prev.Status, next.Status); err != nil {
		return store.Verification{}, nil, err
	}
	next = normalizeVerification(next)
	next.CreatedAt, next.UpdatedAt = prev.CreatedAt, utcMicros(now)
	if err := validateVerification(next); err != nil {
		return store.Verification{}, nil, err
	}
	events, err := changeEvents(&prev, next, ch, now)
	if err != nil {
		return store.Verification{}, nil, err
	}
	return next, events, nil
}

// changeEvents returns the audit events for next, which was prev (nil for a new
// session): verification.status_changed when the status changed, consent_recorded when
// consent is set for the first time, then evidence_added for each new evidence id and
// evidence_uploaded for each item that became uploaded, in evidence order.
func changeEvents(prev *store.Verification, next store.Verification, ch store.VerificationChange, at time.Time) ([]store.AuditEvent, error) {
	var (
		events     []store.AuditEvent
		prevStatus string
		prevHasCon bool
		before     = map[string]store.Evidence{}
	)
	if prev != nil {
		prevStatus, prevHasCon = prev.Status, prev.Consent != nil
		for _, e := range prev.Evidence {
			before[e.ID] = e
		}
	}
	add := func(ev store.AuditEvent, err error) error {
		if err != nil {
			return err
		}
		events = append(events, ev)
		return nil
	}
	if prev == nil || prevStatus != next.Status {
		if err := add(store.VerificationStatusChangedEvent(next, prevStatus, ch, at)); err != nil {
			return nil, err
		}
	}
	if next.Consent != nil && !prevHasCon {
		if err := add(store.ConsentRecordedEvent(next, ch, at)); err != nil {
			return nil, err
		}
	}
	for _, e := range next.Evidence {
		old, known := before[e.ID]
		if !known {
			if err := add(store.EvidenceEvent(store.EventEvidenceAdded, next, e, ch, at)); err != nil {
				return nil, err
			}
		}
		if e.State == store.EvidenceUploaded && (!known || old.State != store.EvidenceUploaded) {
			if err := add(store.EvidenceEvent(store.EventEvidenceUploaded, next, e, ch, at)); err != nil {
				return nil, err
			}
		}
	}
	return events, nil
}

// reentersReview reports whether a change moves a session into pending_review: a review
// row left from an earlier round (closed or claimed) is then removed, so the session is
// queued again.
func reentersReview(prev, next store.Verification) bool {
	return next.Status == store.StatusPendingReview && prev.Status != store.StatusPendingReview
}

// encodeEvidence returns the evidence as a JSON array, [] for none.
func encodeEvidence(ev []store.Evidence) (string, error) {
	if len(ev) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("encode evidence: %w", err)
	}
	return string(b), nil
}

// encodeConsent returns the consent as a JSON object, or nil (NULL) for none.
func encodeConsent(c *store.Consent) (any, error) {
	if c == nil {
		return nil, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode consent: %w", err)
	}
	return string(b), nil
}

// decodeVerificationJSON fills the JSON columns of v: reason codes, evidence (nil for
// none) and consent (nil for NULL).
func decodeVerificationJSON(v *store.Verification, codes, evidence, consent []byte) error {
	if err := json.Unmarshal(codes, &v.ReasonCodes); err != nil {
		return fmt.Errorf("decode reason codes of verification %q: %w", v.ID, err)
	}
	v.Evidence = nil
	if len(evidence) > 0 {
		if err := json.Unmarshal(evidence, &v.Evidence); err != nil {
			return fmt.Errorf("decode evidence of verification %q: %w", v.ID, err)
		}
		if len(v.Evidence) == 0 {
			v.Evidence = nil
		}
		for i := range v.Evidence {
			e := &v.Evidence[i]
			e.CreatedAt, e.UploadedAt = utcMicros(e.CreatedAt), utcMicros(e.UploadedAt)
		}
	}
	v.Consent = nil
	if consent != nil && string(consent) != "null" {
		var c store.Consent
		if err := json.Unmarshal(consent, &c); err != nil {
			return fmt.Errorf("decode consent of verification %q: %w", v.ID, err)
		}
		c.GrantedAt = utcMicros(c.GrantedAt)
		v.Consent = &c
	}
	return nil
}

// validateClaim checks ClaimReview's arguments.
func validateClaim(kind, id, reviewer, correlationID string) error {
	if kind != store.ReviewVerification && kind != store.ReviewDecision {
		return invalid("review item kind %q", kind)
	}
	if id == "" || reviewer == "" {
		return invalid("review %s %q: id and reviewer are required", kind, id)
	}
	for _, s := range []string{id, reviewer, correlationID} {
		if !validText(s) {
			return invalid("review %s: id, reviewer or correlation id is not valid UTF-8 text", kind)
		}
	}
	return nil
}

// validateResolution checks a resolution: kind, id and reviewer as for a claim, and an
// outcome the item's kind allows (approved, rejected or needs_resubmission for a
// verification; approve or block for a decision).
func validateResolution(r store.ReviewResolution) error {
	if err := validateClaim(r.Kind, r.ID, r.Reviewer, r.CorrelationID); err != nil {
		return err
	}
	var ok bool
	switch r.Kind {
	case store.ReviewVerification:
		ok = r.Outcome == store.StatusApproved || r.Outcome == store.StatusRejected || r.Outcome == store.StatusNeedsResubmission
	case store.ReviewDecision:
		ok = r.Outcome == "approve" || r.Outcome == "block"
	}
	if !ok {
		return invalid("review %s %q: outcome %q is not allowed", r.Kind, r.ID, r.Outcome)
	}
	if !validText(r.Reason) || !validText(r.NoteSHA256) {
		return invalid("review %s %q: reason or note hash is not valid UTF-8 text", r.Kind, r.ID)
	}
	return nil
}

// validateAuditEvent checks an event AppendAudit is given; LinkEvent checks the payload.
func validateAuditEvent(ev store.AuditEvent) error {
	if ev.Type == "" {
		return invalid("audit event: type is required")
	}
	for _, s := range []string{ev.Type, ev.Actor, ev.CorrelationID, ev.SubjectRef} {
		if !validText(s) {
			return invalid("audit event %q: not valid UTF-8 text", ev.Type)
		}
	}
	return nil
}
