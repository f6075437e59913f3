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
	PreviousStatus string `json:"previous_status"`
	Provider       string `json:"provider"`
	Status         string `json:"status"`
	VerificationID string `json:"verification_id"`
}

// VerificationStatusChangedEvent returns the unlinked audit event for a verification whose
// status changed from previousStatus ("" when it is new) to v.Status: type
// verification.status_changed, the subject as SubjectRef(v.UserID), the provider as actor
// (it reported the change) and the payload {previous_status, provider, status,
// verification_id}. The provider's own reference is left out: it leads to the person's
// documents at the vendor. It returns an error only if the payload cannot be encoded.
func VerificationStatusChangedEvent(v Verification, previousStatus, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventVerificationStatusChanged, v.Provider, correlationID, SubjectRef(v.UserID), at,
		verificationPayload{
			PreviousStatus: previousStatus,
			Provider:       v.Provider,
			Status:         v.Status,
			VerificationID: v.ID,
		})
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
