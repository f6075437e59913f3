package store

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Audit event types appended by PolicyStore writes.
const (
	EventPolicyPublished           = "policy.published"
	EventPolicyActivationRequested = "policy.activation_requested"
	EventPolicyActivated           = "policy.activated"
	EventPolicyRolledBack          = "policy.rolled_back"
	EventPolicyShadowSet           = "policy.shadow_set"
)

type policyPublishedPayload struct {
	ChangelogSHA256 string `json:"changelog_sha256"`
	Files           int    `json:"files"`
	Hash            string `json:"hash"`
	Label           string `json:"label"`
}

// PolicyPublishedEvent returns the unlinked audit event for a published version: type
// policy.published, actor v.Author, no subject, payload {changelog_sha256, files, hash,
// label}. The changelog is free text and is kept as its hash only; files is how many files
// the version holds.
func PolicyPublishedEvent(v PolicyVersion, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventPolicyPublished, v.Author, correlationID, "", at, policyPublishedPayload{
		ChangelogSHA256: sha256Hex([]byte(v.Changelog)),
		Files:           len(v.Files),
		Hash:            v.Hash,
		Label:           v.Label,
	})
}

type policyActivationPayload struct {
	Action       string `json:"action"`
	ActivationID string `json:"activation_id"`
	Approver     string `json:"approver,omitempty"`
	Hash         string `json:"hash"`
	Previous     string `json:"previous"`
	RolledBack   string `json:"rolled_back,omitempty"`
}

// PolicyActivationRequestedEvent returns the unlinked audit event for an activation that
// waits for approval: type policy.activation_requested, actor a.Actor, payload {action,
// activation_id, hash, previous} where previous is the version live when it was asked for
// ("" for the default bundle).
func PolicyActivationRequestedEvent(a PolicyActivation, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventPolicyActivationRequested, a.Actor, correlationID, "", at, policyActivationPayload{
		Action: a.Action, ActivationID: a.ID, Hash: a.Hash, Previous: a.Previous,
	})
}

// PolicyActivatedEvent returns the unlinked audit event for a version made live: type
// policy.activated, actor the approver when there is one (else a.Actor), payload {action,
// activation_id, approver, hash, previous}.
func PolicyActivatedEvent(a PolicyActivation, correlationID string, at time.Time) (AuditEvent, error) {
	actor := a.Actor
	if a.Approver != "" {
		actor = a.Approver
	}
	return newEvent(EventPolicyActivated, actor, correlationID, "", at, policyActivationPayload{
		Action: a.Action, ActivationID: a.ID, Approver: a.Approver, Hash: a.Hash, Previous: a.Previous,
	})
}

// PolicyRolledBackEvent returns the unlinked audit event for a rollback: type
// policy.rolled_back, actor a.Actor, payload {action, activation_id, hash, previous,
// rolled_back} where a is the activation the rollback created (a.Hash is live now, "" for
// the default bundle) and rolledBack the version it replaced.
func PolicyRolledBackEvent(a PolicyActivation, rolledBack, correlationID string, at time.Time) (AuditEvent, error) {
	return newEvent(EventPolicyRolledBack, a.Actor, correlationID, "", at, policyActivationPayload{
		Action: a.Action, ActivationID: a.ID, Hash: a.Hash, Previous: a.Previous, RolledBack: rolledBack,
	})
}

type policyShadowPayload struct {
	Action string   `json:"action"`
	Hashes []string `json:"hashes"`
}

// PolicyShadowSetEvent returns the unlinked audit event for a change of an action's shadow
// versions: type policy.shadow_set, actor actor, payload {action, hashes} with every shadow
// version now set ([] when cleared).
func PolicyShadowSetEvent(action string, hashes []string, actor, correlationID string, at time.Time) (AuditEvent, error) {
	if hashes == nil {
		hashes = []string{}
	}
	return newEvent(EventPolicyShadowSet, actor, correlationID, "", at, policyShadowPayload{Action: action, Hashes: hashes})
}

// The validators below are shared by both stores so that a policy record one accepts is
// never refused by the other.

// ValidatePolicyVersion returns an error wrapping ErrInvalidRecord when v cannot be
// published: an empty Hash, no files, a file path that is empty, absolute, not clean
// (path.Clean) or leaves the bundle (".."), or a string field that is not valid UTF-8 text
// without NUL bytes. File contents are bytes and are not checked.
func ValidatePolicyVersion(v PolicyVersion) error {
	if v.Hash == "" {
		return fmt.Errorf("%w: policy version: hash is required", ErrInvalidRecord)
	}
	for _, s := range []string{v.Hash, v.Label, v.Author, v.Changelog} {
		if !validText(s) {
			return fmt.Errorf("%w: policy version %q: not valid UTF-8 text", ErrInvalidRecord, v.Hash)
		}
	}
	if len(v.Files) == 0 {
		return fmt.Errorf("%w: policy version %q: no files", ErrInvalidRecord, v.Hash)
	}
	for p := range v.Files {
		if p == "" || !validText(p) || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
			return fmt.Errorf("%w: policy version %q: file path %q is not a clean relative path", ErrInvalidRecord, v.Hash, p)
		}
	}
	return nil
}

// ValidatePolicyActivation returns an error wrapping ErrInvalidRecord when a cannot be
// requested: an empty Action, Hash or Actor, or a string field that is not valid UTF-8 text
// without NUL bytes.
func ValidatePolicyActivation(a PolicyActivation) error {
	if a.Action == "" || a.Hash == "" || a.Actor == "" {
		return fmt.Errorf("%w: policy activation: action, hash and actor are required", ErrInvalidRecord)
	}
	for _, s := range []string{a.ID, a.Action, a.Hash, a.Actor, a.Approver} {
		if !validText(s) {
			return fmt.Errorf("%w: policy activation of %q: not valid UTF-8 text", ErrInvalidRecord, a.Action)
		}
	}
	return nil
}

// ValidateShadowResult returns an error wrapping ErrInvalidRecord when r cannot be stored:
// an empty DecisionID, Action, Hash or Outcome, or a string field or reason code that is
// not valid UTF-8 text without NUL bytes.
func ValidateShadowResult(r ShadowResult) error {
	if r.DecisionID == "" || r.Action == "" || r.Hash == "" || r.Outcome == "" {
		return fmt.Errorf("%w: shadow result: decision id, action, hash and outcome are required", ErrInvalidRecord)
	}
	for _, s := range append([]string{r.DecisionID, r.Action, r.Hash, r.Outcome}, r.ReasonCodes...) {
		if !validText(s) {
			return fmt.Errorf("%w: shadow result of %q: not valid UTF-8 text", ErrInvalidRecord, r.DecisionID)
		}
	}
	return nil
}
