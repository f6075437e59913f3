package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Both stores validate with these functions so that a record one accepts is never refused
// by the other: Postgres rejects NUL bytes and invalid UTF-8 in text, SQLite would store
// them, and neither should see a decision whose input is not JSON.

// ValidateDecision returns an error wrapping ErrInvalidRecord when rec cannot be stored: an
// empty ID, Action or Outcome; a string field or reason code that is not valid UTF-8 or
// contains a NUL byte; an Input or Response that is not valid JSON in UTF-8; or a Score that
// is NaN or infinite.
func ValidateDecision(rec DecisionRecord) error {
	for _, f := range []struct{ name, v string }{{"id", rec.ID}, {"action", rec.Action}, {"outcome", rec.Outcome}} {
		if f.v == "" {
			return fmt.Errorf("%w: decision %q: %s is empty", ErrInvalidRecord, rec.ID, f.name)
		}
	}
	fields := []struct{ name, v string }{
		{"id", rec.ID}, {"action", rec.Action}, {"subject_id", rec.SubjectID}, {"outcome", rec.Outcome},
		{"policy_version", rec.PolicyVersion}, {"policy_hash", rec.PolicyHash}, {"fail_mode", rec.FailMode},
		{"idempotency_key", rec.IdempotencyKey}, {"request_hash", rec.RequestHash}, {"actor", rec.Actor},
		{"correlation_id", rec.CorrelationID},
	}
	for _, f := range fields {
		if !validText(f.v) {
			return fmt.Errorf("%w: decision %q: %s is not valid UTF-8 text", ErrInvalidRecord, rec.ID, f.name)
		}
	}
	for _, c := range rec.ReasonCodes {
		if !validText(c) {
			return fmt.Errorf("%w: decision %q: reason code is not valid UTF-8 text", ErrInvalidRecord, rec.ID)
		}
	}
	if !validJSON(rec.Input) {
		return fmt.Errorf("%w: decision %q: input is not valid JSON", ErrInvalidRecord, rec.ID)
	}
	if !validJSON(rec.Response) {
		return fmt.Errorf("%w: decision %q: response is not valid JSON", ErrInvalidRecord, rec.ID)
	}
	if k := rec.NewSubjectKey; k != nil && (k.UserID != rec.SubjectID || k.UserID == "" || len(k.Wrapped) == 0 || !validText(k.KEKID)) {
		return fmt.Errorf("%w: decision %q: new subject key is not the subject's, or empty", ErrInvalidRecord, rec.ID)
	}
	if rec.PIIPlain != nil {
		return fmt.Errorf("%w: decision %q: personal data is not sealed", ErrInvalidRecord, rec.ID)
	}
	if math.IsNaN(rec.Score) || math.IsInf(rec.Score, 0) {
		return fmt.Errorf("%w: decision %q: score is not a finite number", ErrInvalidRecord, rec.ID)
	}
	return nil
}

// ValidateListEntry returns an error wrapping ErrInvalidRecord when the list name or value is
// empty, or when any field is not valid UTF-8 text without NUL bytes.
func ValidateListEntry(e ListEntry) error {
	if e.List == "" || e.Value == "" {
		return fmt.Errorf("%w: list entry: list and value are required", ErrInvalidRecord)
	}
	for _, v := range []string{e.List, e.Value, e.Reason, e.Actor} {
		if !validText(v) {
			return fmt.Errorf("%w: list entry on %q: not valid UTF-8 text", ErrInvalidRecord, e.List)
		}
	}
	return nil
}

// ValidateVerification returns an error wrapping ErrInvalidRecord when the ID or UserID is
// empty, when a string field or reason code is not valid UTF-8 text without NUL bytes, or
// when the Score is NaN or infinite.
func ValidateVerification(v Verification) error {
	if v.ID == "" || v.UserID == "" {
		return fmt.Errorf("%w: verification %q: id and user id are required", ErrInvalidRecord, v.ID)
	}
	for _, s := range append([]string{v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status}, v.ReasonCodes...) {
		if !validText(s) {
			return fmt.Errorf("%w: verification %q: not valid UTF-8 text", ErrInvalidRecord, v.ID)
		}
	}
	if math.IsNaN(v.Score) || math.IsInf(v.Score, 0) {
		return fmt.Errorf("%w: verification %q: score is not a finite number", ErrInvalidRecord, v.ID)
	}
	return nil
}

func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func validJSON(b []byte) bool {
	return len(b) > 0 && utf8.Valid(b) && json.Valid(b)
}

// ValidText reports whether s is valid UTF-8 without NUL bytes: text both stores can keep.
func ValidText(s string) bool { return validText(s) }
