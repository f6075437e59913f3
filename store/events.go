package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Audit event types appended by the stores.
const (
	EventDecisionCreated           = "decision.created"
	EventListEntryPut              = "list.entry_put"
	EventListEntryDeleted          = "list.entry_deleted"
	EventVerificationStatusChanged = "verification.status_changed"
	EventEvidenceAdded             = "verification.evidence_added"
	EventEvidenceUploaded          = "verification.evidence_uploaded"
	EventConsentRecorded           = "verification.consent_recorded"
	EventWebhookRejected           = "webhook.rejected"
	EventReviewClaimed             = "review.claimed"
	EventReviewDecided             = "review.decided"
)

// SubjectRef returns the reference an audit event keeps for a subject id, list value or
// user id: "sha256:" followed by the hex SHA-256 of id, or "" for an empty id. It is stable,
// so every event about one subject can be found from its id, and keeps the raw id out of
// the log. It is a plain hash: ids from a small space (phone numbers, IPv4 addresses) can be
// recovered by brute force, so it is pseudonymisation, not anonymisation.
func SubjectRef(id string) string {
	if id == "" {
		return ""
	}
	return "sha256:" + sha256Hex([]byte(id))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// decisionCreatedPayload lists its fields in key order so the encoding is already canonical.
type decisionCreatedPayload struct {
	Action         string   `json:"action"`
	DecisionID     string   `json:"decision_id"`
	InputSHA256    string   `json:"input_sha256"`
	Outcome        string   `json:"outcome"`
	PolicyHash     string   `json:"policy_hash"`
	ReasonCodes    []string `json:"reason_codes"`
	ResponseSHA256 string   `json:"response_sha256"`
}

// DecisionCreatedEvent returns the unlinked audit event for a stored decision: type
// decision.created, the subject as SubjectRef(rec.SubjectID) and the payload
// {action, decision_id, input_sha256, outcome, policy_hash, reason_codes, response_sha256}
// where the hashes are the hex SHA-256 of rec.Input and rec.Response exactly as stored, so
// the decision row can be checked against the chain. It returns an error only if the
// payload cannot be encoded.
func DecisionCreatedEvent(rec DecisionRecord, at time.Time) (AuditEvent, error) {
	codes := rec.ReasonCodes
	if codes == nil {
		codes = []string{}
	}
	return newEvent(EventDecisionCreated, rec.Actor, rec.CorrelationID, SubjectRef(rec.SubjectID), at,
		decisionCreatedPayload{
			Action:         rec.Action,
			DecisionID:     rec.ID,
			InputSHA256:    sha256Hex(rec.Input),
			Outcome:        rec.Outcome,
			PolicyHash:     rec.PolicyHash,
			ReasonCodes:    codes,
			ResponseSHA256: sha256Hex(rec.Response),
		})
}

type listEntryPayload struct {
	List        string `json:"list"`
	ValueSHA256 string `json:"value_sha256"`
}

// ListEntryEvent returns the unlinked audit event for a list change: typ is
// EventListEntryPut or EventListEntryDeleted, the subject is SubjectRef(value) and the
// payload {list, value_sha256}; list values are emails, IPs and user ids, so only their hash
// is kept. It returns an error only if the payload cannot be encoded.
func ListEntryEvent(typ, list, value, actor, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(typ, actor, correlationID, SubjectRef(value), at,
		listEntryPayload{List: list, ValueSHA256: sha256Hex([]byte(value))})
}

type verificationPayload struct {
	EventKey       string `json:"event_key,omitempty"`
	PreviousStatus string `json:"previous_status"`
	Provider       string `json:"provider"`
	Reason         string `json:"reason,omitempty"`
	Status         string `json:"status"`
	VerificationID string `json:"verification_id"`
}

// VerificationStatusChangedEvent returns the unlinked audit event for a verification whose
// status changed from previousStatus ("" when it is new) to v.Status: type
// verification.status_changed, the subject as SubjectRef(v.UserID), ch.Actor as actor (the
// provider's name for a webhook, when ch.Actor is empty) and the payload {event_key,
// previous_status, provider, reason, status, verification_id}. The provider's own reference
// is left out: it leads to the person's documents at the vendor. It returns an error only
// if the payload cannot be encoded.
func VerificationStatusChangedEvent(v Verification, previousStatus string, ch VerificationChange, at time.Time) (AuditEvent, error) {
	actor := ch.Actor
	if actor == "" {
		actor = v.Provider
	}
	return newEvent(EventVerificationStatusChanged, actor, ch.CorrelationID, SubjectRef(v.UserID), at,
		verificationPayload{
			EventKey:       ch.EventKey,
			PreviousStatus: previousStatus,
			Provider:       v.Provider,
			Reason:         ch.Reason,
			Status:         v.Status,
			VerificationID: v.ID,
		})
}

type evidencePayload struct {
	EvidenceID     string `json:"evidence_id"`
	Kind           string `json:"kind"`
	SHA256         string `json:"sha256"`
	VerificationID string `json:"verification_id"`
}

// EvidenceEvent returns the unlinked audit event for an evidence item added to (typ
// EventEvidenceAdded) or uploaded for (EventEvidenceUploaded) verification v: the payload
// {evidence_id, kind, sha256, verification_id}. The file's hash is kept, never its content.
func EvidenceEvent(typ string, v Verification, e Evidence, ch VerificationChange, at time.Time) (AuditEvent, error) {
	return newEvent(typ, ch.Actor, ch.CorrelationID, SubjectRef(v.UserID), at,
		evidencePayload{EvidenceID: e.ID, Kind: e.Kind, SHA256: e.SHA256, VerificationID: v.ID})
}

type consentPayload struct {
	GrantedAt      time.Time `json:"granted_at"`
	Locale         string    `json:"locale"`
	PolicyHash     string    `json:"policy_hash"`
	Scope          []string  `json:"scope"`
	VerificationID string    `json:"verification_id"`
}

// ConsentRecordedEvent returns the unlinked audit event for the consent recorded on v
// (which must be set): the payload {granted_at, locale, policy_hash, scope, verification_id}.
func ConsentRecordedEvent(v Verification, ch VerificationChange, at time.Time) (AuditEvent, error) {
	c := v.Consent
	if c == nil {
		return AuditEvent{}, fmt.Errorf("encode %s payload: no consent", EventConsentRecorded)
	}
	scope := c.Scope
	if scope == nil {
		scope = []string{}
	}
	return newEvent(EventConsentRecorded, ch.Actor, ch.CorrelationID, SubjectRef(v.UserID), at,
		consentPayload{GrantedAt: c.GrantedAt.UTC(), Locale: c.Locale, PolicyHash: c.PolicyHash, Scope: scope, VerificationID: v.ID})
}

type webhookRejectedPayload struct {
	BodySHA256 string `json:"body_sha256"`
	Provider   string `json:"provider"`
	Reason     string `json:"reason"`
	Suppressed int64  `json:"suppressed,omitempty"`
}

// WebhookRejectedEvent returns the unlinked audit event for a webhook delivery that was
// refused (bad signature, stale timestamp, malformed payload, unknown provider): actor
// "webhook", no subject (an unverified body names nobody we trust), and the payload
// {body_sha256, provider, reason} where reason is a short fixed code such as
// "bad_signature". The body is not kept.
func WebhookRejectedEvent(provider, reason string, body []byte, correlationID string, at time.Time) (AuditEvent, error) {
	return WebhookRejectionsEvent(provider, reason, body, 0, correlationID, at)
}

// WebhookRejectionsEvent is WebhookRejectedEvent for a refusal that also stands for
// suppressed earlier refusals of the same provider and reason that were not audited one by
// one; the payload then carries "suppressed": that count (omitted when 0).
func WebhookRejectionsEvent(provider, reason string, body []byte, suppressed int64, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventWebhookRejected, "webhook", correlationID, "", at,
		webhookRejectedPayload{BodySHA256: sha256Hex(body), Provider: provider, Reason: reason, Suppressed: suppressed})
}

type reviewPayload struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	NoteSHA256 string `json:"note_sha256,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Until      string `json:"until,omitempty"`
}

// ReviewClaimedEvent returns the unlinked audit event for a claim on a review item:
// actor the reviewer, subject SubjectRef(userID), payload {id, kind, until}.
func ReviewClaimedEvent(kind, id, userID, reviewer string, until time.Time, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventReviewClaimed, reviewer, correlationID, SubjectRef(userID), at,
		reviewPayload{ID: id, Kind: kind, Until: until.UTC().Format(time.RFC3339Nano)})
}

// ReviewDecidedEvent returns the unlinked audit event for a resolution: actor the
// reviewer, subject SubjectRef(userID), payload {id, kind, note_sha256, outcome, reason}.
func ReviewDecidedEvent(r ReviewResolution, userID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventReviewDecided, r.Reviewer, r.CorrelationID, SubjectRef(userID), at,
		reviewPayload{ID: r.ID, Kind: r.Kind, NoteSHA256: r.NoteSHA256, Outcome: r.Outcome, Reason: r.Reason})
}

func newEvent(typ, actor, correlationID, subjectRef string, at time.Time, payload any) (AuditEvent, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return AuditEvent{
		Time:          at,
		Type:          typ,
		Actor:         actor,
		CorrelationID: correlationID,
		SubjectRef:    subjectRef,
		Payload:       p,
	}, nil
}

// EventOutcomeLabeled is appended for every outcome label stored.
const EventOutcomeLabeled = "outcome.labeled"

type labelPayload struct {
	DecisionID string   `json:"decision_id"`
	Label      string   `json:"label"`
	Tags       []string `json:"tags"`
}

// OutcomeLabeledEvent returns the unlinked audit event for a label on a decision about
// subjectID: actor l.Actor, subject SubjectRef(subjectID), payload {decision_id, label,
// tags}. Tags are the labeller's free-form codes; callers keep personal data out of them.
func OutcomeLabeledEvent(l OutcomeLabel, subjectID, correlationID string, at time.Time) (AuditEvent, error) {
	tags := l.Tags
	if tags == nil {
		tags = []string{}
	}
	return newEvent(EventOutcomeLabeled, l.Actor, correlationID, SubjectRef(subjectID), at,
		labelPayload{DecisionID: l.DecisionID, Label: l.Label, Tags: tags})
}

// EventPIIUnmasked is appended when a reviewer asks to see unmasked personal data.
const EventPIIUnmasked = "review.pii_unmasked"

type piiUnmaskedPayload struct {
	Items []string `json:"items"`
	View  string   `json:"view"`
}

// PIIUnmaskedEvent returns the unlinked audit event for a reviewer who viewed the personal
// data of the given review items (ids only) unmasked, through view (e.g. "GET /v1/reviews").
func PIIUnmaskedEvent(reviewer string, items []string, view, correlationID string, at time.Time) (AuditEvent, error) {
	if items == nil {
		items = []string{}
	}
	return newEvent(EventPIIUnmasked, reviewer, correlationID, "", at, piiUnmaskedPayload{Items: items, View: view})
}

// EventSubjectErased is appended when a subject is erased (crypto-shredded).
const EventSubjectErased = "subject.erased"

type subjectErasedPayload struct {
	Decisions    int  `json:"decisions"`
	Evidence     int  `json:"evidence"`
	KeyDestroyed bool `json:"key_destroyed"`
	RawPayloads  int  `json:"raw_payloads"`
	Verify       int  `json:"verifications"`
}

// SubjectErasedEvent returns the unlinked audit event for an erasure: the subject as
// SubjectRef, and what was destroyed as counts.
func SubjectErasedEvent(e Erasure, actor, correlationID string) (AuditEvent, error) {
	return newEvent(EventSubjectErased, actor, correlationID, SubjectRef(e.UserID), e.ErasedAt, subjectErasedPayload{
		Decisions: e.Decisions, Evidence: len(e.Evidence), KeyDestroyed: e.KeyDestroyed,
		RawPayloads: e.RawPayloads, Verify: e.Verify,
	})
}

// EventSubjectEvidenceDeleted is appended when the evidence objects of an erased subject
// have been deleted and their pointers marked EvidenceDeleted.
const EventSubjectEvidenceDeleted = "subject.evidence_deleted"

type subjectEvidenceDeletedPayload struct {
	Count int `json:"count"`
}

// SubjectEvidenceDeletedEvent returns the unlinked audit event for count evidence pointers
// of the subject marked deleted after an erasure deleted their blobs: the subject as
// SubjectRef, and the count only.
func SubjectEvidenceDeletedEvent(userID string, count int, actor, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventSubjectEvidenceDeleted, actor, correlationID, SubjectRef(userID), at,
		subjectEvidenceDeletedPayload{Count: count})
}
