package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSubjectRef(t *testing.T) {
	sum := sha256.Sum256([]byte("alice@example.com"))
	if got, want := SubjectRef("alice@example.com"), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("SubjectRef = %q, want %q", got, want)
	}
	if got := SubjectRef(""); got != "" {
		t.Errorf("SubjectRef(\"\") = %q, want empty", got)
	}
}

func TestEventPayloadsCarryNoRawIDs(t *testing.T) {
	const subject, value, providerRef = "alice@example.com", "203.0.113.7", "applicant-8831"
	rec := DecisionRecord{
		ID: "d1", Action: "login", SubjectID: subject, Outcome: "block", ReasonCodes: []string{"IP_DENIED"},
		PolicyHash: "ph", Input: json.RawMessage(`{"user":{"email":"alice@example.com"}}`), Response: json.RawMessage(`{}`),
		Actor: "key_1", CorrelationID: "req-1",
	}
	dec, err := DecisionCreatedEvent(rec, t0)
	if err != nil {
		t.Fatal(err)
	}
	put, err := ListEntryEvent(EventListEntryPut, "deny_ip", value, "key_1", "req-2", t0)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := VerificationStatusChangedEvent(Verification{ID: "v1", UserID: subject, Provider: "onfido", ProviderRef: providerRef, Status: "approved"}, "submitted", VerificationChange{CorrelationID: "req-3", EventKey: "onfido:evt-1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := EvidenceEvent(EventEvidenceAdded, Verification{ID: "v1", UserID: subject}, Evidence{ID: "e1", Kind: "selfie", SHA256: "ab"}, VerificationChange{Actor: "key_1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	rej, err := WebhookRejectedEvent("onfido", "bad_signature", []byte(`{"name":"`+subject+`"}`), "req-4", t0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := ReviewDecidedEvent(ReviewResolution{Kind: ReviewVerification, ID: "v1", Reviewer: "alice", Outcome: "approved", Reason: "DOCUMENT_OK"}, subject, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []AuditEvent{dec, put, ver, ev, rej, rev} {
		raw := string(CanonicalEvent(ev))
		for _, secret := range []string{subject, value, providerRef} {
			if strings.Contains(raw, secret) {
				t.Errorf("%s event contains %q: %s", ev.Type, secret, raw)
			}
		}
		canon, err := CanonicalJSON(ev.Payload)
		if err != nil || string(canon) != string(ev.Payload) {
			t.Errorf("%s payload is not canonical as built: %s", ev.Type, ev.Payload)
		}
	}
	var p map[string]any
	if err := json.Unmarshal(dec.Payload, &p); err != nil {
		t.Fatal(err)
	}
	inputSum := sha256.Sum256(rec.Input)
	want := map[string]any{
		"action": "login", "decision_id": "d1", "input_sha256": hex.EncodeToString(inputSum[:]), "outcome": "block",
		"policy_hash": "ph", "reason_codes": []any{"IP_DENIED"}, "response_sha256": sha256Hex([]byte(`{}`)),
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("decision payload (-want +got):\n%s", diff)
	}
	if dec.SubjectRef != SubjectRef(subject) || put.SubjectRef != SubjectRef(value) || ver.SubjectRef != SubjectRef(subject) {
		t.Errorf("subject refs = %q, %q, %q", dec.SubjectRef, put.SubjectRef, ver.SubjectRef)
	}
}

func TestValidateDecision(t *testing.T) {
	valid := DecisionRecord{ID: "d1", Action: "login", Outcome: "approve", Input: json.RawMessage(`{}`), Response: json.RawMessage(`{"ok":true}`)}
	tests := []struct {
		name   string
		mutate func(*DecisionRecord)
		ok     bool
	}{
		{name: "valid", mutate: func(*DecisionRecord) {}, ok: true},
		{name: "no id", mutate: func(r *DecisionRecord) { r.ID = "" }},
		{name: "no action", mutate: func(r *DecisionRecord) { r.Action = "" }},
		{name: "no outcome", mutate: func(r *DecisionRecord) { r.Outcome = "" }},
		{name: "nul in subject", mutate: func(r *DecisionRecord) { r.SubjectID = "a\x00b" }},
		{name: "invalid utf-8 actor", mutate: func(r *DecisionRecord) { r.Actor = "\xff" }},
		{name: "invalid reason code", mutate: func(r *DecisionRecord) { r.ReasonCodes = []string{"OK", "\xfe"} }},
		{name: "input not json", mutate: func(r *DecisionRecord) { r.Input = json.RawMessage(`{`) }},
		{name: "input empty", mutate: func(r *DecisionRecord) { r.Input = nil }},
		{name: "input invalid utf-8", mutate: func(r *DecisionRecord) { r.Input = json.RawMessage("\"\xff\"") }},
		{name: "response not json", mutate: func(r *DecisionRecord) { r.Response = json.RawMessage(`nope`) }},
		{name: "score nan", mutate: func(r *DecisionRecord) { r.Score = math.NaN() }},
		{name: "score inf", mutate: func(r *DecisionRecord) { r.Score = math.Inf(1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := valid
			tt.mutate(&rec)
			err := ValidateDecision(rec)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidRecord)) {
				t.Errorf("ValidateDecision = %v, want ok=%v or ErrInvalidRecord", err, tt.ok)
			}
		})
	}
}

func TestValidateListEntryAndVerification(t *testing.T) {
	for _, e := range []ListEntry{{List: "", Value: "x"}, {List: "l", Value: ""}, {List: "l", Value: "a\x00"}, {List: "l", Value: "v", Reason: "\xff"}} {
		if err := ValidateListEntry(e); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("ValidateListEntry(%+v) = %v, want ErrInvalidRecord", e, err)
		}
	}
	if err := ValidateListEntry(ListEntry{List: "deny_ip", Value: "203.0.113.7"}); err != nil {
		t.Errorf("ValidateListEntry(valid) = %v", err)
	}
	for _, v := range []Verification{{UserID: "u"}, {ID: "v"}, {ID: "v", UserID: "u", Status: "\x00"}, {ID: "v", UserID: "u", Score: math.NaN()}} {
		if err := ValidateVerification(v); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("ValidateVerification(%+v) = %v, want ErrInvalidRecord", v, err)
		}
	}
	if err := ValidateVerification(Verification{ID: "v", UserID: "u", ReasonCodes: []string{"X"}}); err != nil {
		t.Errorf("ValidateVerification(valid) = %v", err)
	}
}
