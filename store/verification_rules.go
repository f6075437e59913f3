package store

// The rules of the verification and review stores that do not touch a database: both
// store/sqlite and store/postgres apply them, so that a record one accepts is never refused
// by the other and both append the same audit events for the same change.

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// ExpiryChange is who ExpireVerifications says moved a session to expired.
var ExpiryChange = VerificationChange{Actor: "system", Reason: "VERIFICATION_EXPIRED"}

// TerminalStatuses returns the statuses a session cannot leave.
func TerminalStatuses() []string {
	var out []string
	for _, s := range Statuses {
		if Terminal(s) {
			out = append(out, s)
		}
	}
	return out
}

// UTCMicros returns t in UTC truncated to the microsecond (the precision both stores
// keep); the zero time stays zero.
func UTCMicros(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// normalizeVerification returns a deep copy of v with every time in UTC to the
// microsecond: what a store returns after writing v.
func normalizeVerification(v Verification) Verification {
	v.ReasonCodes = slices.Clone(v.ReasonCodes)
	if v.Evidence != nil {
		ev := make([]Evidence, len(v.Evidence))
		for i, e := range v.Evidence {
			e.CreatedAt, e.UploadedAt = UTCMicros(e.CreatedAt), UTCMicros(e.UploadedAt)
			ev[i] = e
		}
		v.Evidence = ev
	}
	if v.Consent != nil {
		c := *v.Consent
		c.Scope = slices.Clone(c.Scope)
		c.GrantedAt = UTCMicros(c.GrantedAt)
		v.Consent = &c
	}
	v.CreatedAt, v.UpdatedAt = UTCMicros(v.CreatedAt), UTCMicros(v.UpdatedAt)
	v.ExpiresAt, v.LastEventAt = UTCMicros(v.ExpiresAt), UTCMicros(v.LastEventAt)
	return v
}

func InvalidRecordf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRecord}, args...)...)
}

// validateVerificationRecord extends ValidateVerification with what the session's newer
// fields need: a canonical status; evidence items with a unique non-empty id, a known
// state and a non-negative size; and valid UTF-8 text without NUL bytes in every string of
// the evidence, the consent and the retention policy (Postgres refuses NUL in text and
// jsonb, and encoding/json would replace InvalidRecordf UTF-8).
func validateVerificationRecord(v Verification) error {
	if err := ValidateVerification(v); err != nil {
		return err
	}
	if !ValidStatus(v.Status) {
		return InvalidRecordf("verification %q: unknown status %q", v.ID, v.Status)
	}
	texts := []string{v.RetentionPolicy}
	seen := make(map[string]struct{}, len(v.Evidence))
	for _, e := range v.Evidence {
		if e.ID == "" {
			return InvalidRecordf("verification %q: evidence without an id", v.ID)
		}
		if _, dup := seen[e.ID]; dup {
			return InvalidRecordf("verification %q: evidence %q listed twice", v.ID, e.ID)
		}
		seen[e.ID] = struct{}{}
		if e.State != EvidencePending && e.State != EvidenceUploaded && e.State != EvidenceDeleted {
			return InvalidRecordf("verification %q: evidence %q: unknown state %q", v.ID, e.ID, e.State)
		}
		if e.Size < 0 {
			return InvalidRecordf("verification %q: evidence %q: negative size", v.ID, e.ID)
		}
		texts = append(texts, e.ID, e.Kind, e.BlobKey, e.SHA256, e.ContentType)
	}
	if c := v.Consent; c != nil {
		texts = append(append(texts, c.PolicyHash, c.Locale), c.Scope...)
	}
	for _, s := range texts {
		if !validText(s) {
			return InvalidRecordf("verification %q: evidence, consent or retention policy is not valid UTF-8 text", v.ID)
		}
	}
	return nil
}

// PrepareNewVerification validates nv and returns the record CreateVerification writes:
// normalized, with a zero CreatedAt or UpdatedAt set to now.
func PrepareNewVerification(nv NewVerification, now time.Time) (Verification, error) {
	v := normalizeVerification(nv.Verification)
	if err := validateVerificationRecord(v); err != nil {
		return Verification{}, err
	}
	for _, s := range []string{nv.IdempotencyKey, nv.RequestHash, nv.Actor, nv.CorrelationID} {
		if !validText(s) {
			return Verification{}, InvalidRecordf("verification %q: idempotency key, request hash, actor or correlation id is not valid UTF-8 text", v.ID)
		}
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = UTCMicros(now)
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = UTCMicros(now)
	}
	return v, nil
}

// ValidateVerificationChange checks what UpdateVerification stores besides the record.
func ValidateVerificationChange(ch VerificationChange) error {
	for _, s := range []string{ch.Actor, ch.CorrelationID, ch.Reason, ch.EventKey} {
		if !validText(s) {
			return InvalidRecordf("verification change: actor, correlation id, reason or event key is not valid UTF-8 text")
		}
	}
	if p := ch.Payload; p != nil {
		if p.ID == "" || len(p.Ciphertext) == 0 {
			return InvalidRecordf("raw payload: id and ciphertext are required")
		}
		if !validText(p.ID) || !validText(p.Provider) {
			return InvalidRecordf("raw payload %q: id or provider is not valid UTF-8 text", p.ID)
		}
	}
	return nil
}

// ApplyVerificationChange runs fn on a copy of prev (as stored) and returns the record to write, with
// UpdatedAt set to now, and its audit events. It returns fn's error as is, an
// *IllegalTransitionError for a status change the state machine refuses, and an
// error wrapping ErrInvalidRecord for a change of an immutable field or a record
// validateVerificationRecord refuses.
func ApplyVerificationChange(prev Verification, ch VerificationChange, now time.Time, fn func(v *Verification) error) (Verification, []AuditEvent, error) {
	next := normalizeVerification(prev)
	if err := fn(&next); err != nil {
		return Verification{}, nil, err
	}
	if next.ID != prev.ID || next.UserID != prev.UserID || next.Provider != prev.Provider || !next.CreatedAt.Equal(prev.CreatedAt) {
		return Verification{}, nil, InvalidRecordf("verification %q: id, user id, provider and creation time cannot change", prev.ID)
	}
	if err := CheckTransition(prev.Status, next.Status); err != nil {
		return Verification{}, nil, err
	}
	next = normalizeVerification(next)

	next.CreatedAt, next.UpdatedAt = prev.CreatedAt, UTCMicros(now)
	if err := validateVerificationRecord(next); err != nil {
		return Verification{}, nil, err
	}
	events, err := VerificationChangeEvents(&prev, next, ch, now)
	if err != nil {
		return Verification{}, nil, err
	}
	return next, events, nil
}

// resultChanged reports whether next holds another result than prev: status, score or
// reason codes.
func resultChanged(prev, next Verification) bool {
	return prev.Status != next.Status || prev.Score != next.Score || !slices.Equal(prev.ReasonCodes, next.ReasonCodes)
}

// VerificationChangeEvents returns the audit events for next, which was prev (nil for a new
// session): verification.status_changed when the status, score or reason codes changed
// (previous_status equals status when only the result within the status changed), consent_recorded when
// consent is set for the first time, then evidence_added for each new evidence id and
// evidence_uploaded for each item that became uploaded, in evidence order.
func VerificationChangeEvents(prev *Verification, next Verification, ch VerificationChange, at time.Time) ([]AuditEvent, error) {
	var (
		events     []AuditEvent
		prevStatus string
		prevHasCon bool
		before     = map[string]Evidence{}
	)
	if prev != nil {
		prevStatus, prevHasCon = prev.Status, prev.Consent != nil
		for _, e := range prev.Evidence {
			before[e.ID] = e
		}
	}
	add := func(ev AuditEvent, err error) error {
		if err != nil {
			return err
		}
		events = append(events, ev)
		return nil
	}
	if prev == nil || resultChanged(*prev, next) {
		if err := add(VerificationStatusChangedEvent(next, prevStatus, ch, at)); err != nil {
			return nil, err
		}
	}
	if next.Consent != nil && !prevHasCon {
		if err := add(ConsentRecordedEvent(next, ch, at)); err != nil {
			return nil, err
		}
	}
	for _, e := range next.Evidence {
		old, known := before[e.ID]
		if !known {
			if err := add(EvidenceEvent(EventEvidenceAdded, next, e, ch, at)); err != nil {
				return nil, err
			}
		}
		if e.State == EvidenceUploaded && (!known || old.State != EvidenceUploaded) {
			if err := add(EvidenceEvent(EventEvidenceUploaded, next, e, ch, at)); err != nil {
				return nil, err
			}
		}
	}
	return events, nil
}

// ReentersReview reports whether a change puts a session before its reviewers anew: it
// moves into pending_review, or, already there, gets another score or other reason codes
// (a provider's new finding). A review row left from an earlier round (closed or claimed)
// is then removed, so the session is queued again, and a claim taken on what the session
// said before no longer lets its holder decide it: they claim it again, on what it says now.
func ReentersReview(prev, next Verification) bool {
	if next.Status != StatusPendingReview {
		return false
	}
	return prev.Status != StatusPendingReview || prev.Score != next.Score || !slices.Equal(prev.ReasonCodes, next.ReasonCodes)
}

// EncodeEvidence returns the evidence as a JSON array, [] for none.
func EncodeEvidence(ev []Evidence) (string, error) {
	if len(ev) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("encode evidence: %w", err)
	}
	return string(b), nil
}

// EncodeConsent returns the consent as a JSON object, or nil (NULL) for none.
func EncodeConsent(c *Consent) (any, error) {
	if c == nil {
		return nil, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode consent: %w", err)
	}
	return string(b), nil
}

// DecodeVerificationJSON fills the JSON columns of v: reason codes, evidence (nil for
// none) and consent (nil for NULL).
func DecodeVerificationJSON(v *Verification, codes, evidence, consent []byte) error {
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
			e.CreatedAt, e.UploadedAt = UTCMicros(e.CreatedAt), UTCMicros(e.UploadedAt)
		}
	}
	v.Consent = nil
	if consent != nil && string(consent) != "null" {
		var c Consent
		if err := json.Unmarshal(consent, &c); err != nil {
			return fmt.Errorf("decode consent of verification %q: %w", v.ID, err)
		}
		c.GrantedAt = UTCMicros(c.GrantedAt)
		v.Consent = &c
	}
	return nil
}

// ValidateClaim checks ClaimReview's arguments.
func ValidateClaim(kind, id, reviewer, correlationID string) error {
	if kind != ReviewVerification && kind != ReviewDecision {
		return InvalidRecordf("review item kind %q", kind)
	}
	if id == "" || reviewer == "" {
		return InvalidRecordf("review %s %q: id and reviewer are required", kind, id)
	}
	for _, s := range []string{id, reviewer, correlationID} {
		if !validText(s) {
			return InvalidRecordf("review %s: id, reviewer or correlation id is not valid UTF-8 text", kind)
		}
	}
	return nil
}

// ValidateResolution checks a resolution: kind, id and reviewer as for a claim, and an
// outcome the item's kind allows (approved, rejected or needs_resubmission for a
// verification; approve or block for a decision).
func ValidateResolution(r ReviewResolution) error {
	if err := ValidateClaim(r.Kind, r.ID, r.Reviewer, r.CorrelationID); err != nil {
		return err
	}
	var ok bool
	switch r.Kind {
	case ReviewVerification:
		ok = r.Outcome == StatusApproved || r.Outcome == StatusRejected || r.Outcome == StatusNeedsResubmission
	case ReviewDecision:
		ok = r.Outcome == "approve" || r.Outcome == "block"
	}
	if !ok {
		return InvalidRecordf("review %s %q: outcome %q is not allowed", r.Kind, r.ID, r.Outcome)
	}
	if !validText(r.Reason) || !validText(r.NoteSHA256) {
		return InvalidRecordf("review %s %q: reason or note hash is not valid UTF-8 text", r.Kind, r.ID)
	}
	return nil
}

// ApplyResolution sets the session's result from a reviewer's resolution: the outcome
// becomes its status, and its reason codes follow the same rule as a provider's event.
// An approval clears the review's reasons (policies must not read an approved session
// with them); a rejection or a request for resubmission takes the reviewer's reason code
// when one is given, and otherwise keeps the reasons the reviewer acted on.
func ApplyResolution(v *Verification, r ReviewResolution) {
	changed := v.Status != r.Outcome
	v.Status = r.Outcome
	switch {
	case r.Outcome == StatusApproved && changed:
		v.ReasonCodes = []string{}
	case r.Outcome != StatusApproved && r.Reason != "":
		v.ReasonCodes = []string{r.Reason}
	}
}

// ValidateAuditEvent checks an event AppendAudit is given; LinkEvent checks the payload.
func ValidateAuditEvent(ev AuditEvent) error {
	if ev.Type == "" {
		return InvalidRecordf("audit event: type is required")
	}
	for _, s := range []string{ev.Type, ev.Actor, ev.CorrelationID, ev.SubjectRef} {
		if !validText(s) {
			return InvalidRecordf("audit event %q: not valid UTF-8 text", ev.Type)
		}
	}
	return nil
}
