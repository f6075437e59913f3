package veriff

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// VerifyWebhook checks X-HMAC-SIGNATURE, the hex HMAC-SHA256 of the raw body under the
// shared secret key, against every configured webhook secret in constant time, and, when an
// API key is configured, that X-AUTH-CLIENT equals it. Only then it parses the body: a
// decision webhook (a "verification" object) or an event webhook (an "action"). Veriff
// signs no timestamp, so nothing is stale; a redelivery yields the same Event.ID. A valid
// delivery of any other shape (another webhook type pointed at the same URL) returns an
// Event with empty Status. The Event carries ids, codes and times only: the person,
// document, technical data and the free-text reason in the body are never read into it.
// Errors wrap providers.ErrMissingSignature, providers.ErrBadSignature or
// providers.ErrMalformedPayload.
func (p *Provider) VerifyWebhook(h providers.Header, body []byte, now time.Time) (providers.Event, error) {
	sig := h.Get(headerSignature)
	if len(bytes.TrimSpace([]byte(sig))) == 0 {
		return providers.Event{}, fmt.Errorf("veriff webhook: %s: %w", headerSignature, providers.ErrMissingSignature)
	}
	if !providers.MatchHexHMAC(providers.SHA256, p.secrets, body, sig) {
		return providers.Event{}, fmt.Errorf("veriff webhook: %s: %w", headerSignature, providers.ErrBadSignature)
	}
	if p.apiKey != "" && subtle.ConstantTimeCompare([]byte(h.Get(headerAuthClient)), []byte(p.apiKey)) != 1 {
		return providers.Event{}, fmt.Errorf("veriff webhook: %s is not the configured API key: %w", headerAuthClient, providers.ErrBadSignature)
	}
	ev, err := parsePayload(body, now)
	if err != nil {
		return providers.Event{}, fmt.Errorf("veriff webhook: %w", err)
	}
	return ev, nil
}

// verification is the part of a decision (webhook or GET .../decision answer) the adapter
// reads. person, document, address, reason, technicalData and the rest are left undecoded.
type verification struct {
	ID             string     `json:"id"`
	Code           *int64     `json:"code"`
	Status         string     `json:"status"`
	ReasonCode     reasonCode `json:"reasonCode"`
	DecisionTime   *string    `json:"decisionTime"`
	AcceptanceTime *string    `json:"acceptanceTime"`
	VendorData     *string    `json:"vendorData"`
}

// event is an event webhook: the session's progress (started, submitted).
type event struct {
	ID         string  `json:"id"` // the session id
	AttemptID  string  `json:"attemptId"`
	Code       *int64  `json:"code"`
	Action     string  `json:"action"`
	VendorData *string `json:"vendorData"`
	// Time is not in Veriff's documented event webhook; read when present (Veriff's newer
	// webhooks carry one).
	Time *string `json:"time"`
}

// reasonCode is verification.reasonCode: an integer in Veriff's examples, described as a
// string in its tables; both are accepted, as is null.
type reasonCode struct {
	set  bool
	code int64
}

func (r *reasonCode) UnmarshalJSON(b []byte) error {
	*r = reasonCode{}
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("reasonCode: not a non-negative integer")
	}
	r.set, r.code = true, n
	return nil
}

// maxBody caps what is parsed; Veriff's decision webhooks are a few kilobytes.
const maxBody = 1 << 20

// parsePayload maps a verified webhook body onto an Event. Every error wraps
// providers.ErrMalformedPayload and quotes nothing from the body.
func parsePayload(body []byte, now time.Time) (providers.Event, error) {
	if len(body) > maxBody {
		return providers.Event{}, malformed("body larger than 1 MiB")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return providers.Event{}, malformed("body is not a JSON object")
	}
	if raw, ok := top["verification"]; ok && !isNull(raw) {
		var v verification
		if err := json.Unmarshal(raw, &v); err != nil {
			return providers.Event{}, malformed("verification: wrong shape or types")
		}
		d, err := mapDecision(&v, now)
		if err != nil {
			return providers.Event{}, err
		}
		return providers.Event{
			ID:          d.id,
			Type:        d.typ,
			ProviderRef: d.ref,
			UserID:      d.userID,
			Status:      d.status,
			ReasonCodes: d.reasons,
			OccurredAt:  d.occurredAt,
		}, nil
	}
	if raw, ok := top["action"]; ok && !isNull(raw) {
		var e event
		if err := json.Unmarshal(body, &e); err != nil {
			return providers.Event{}, malformed("event: wrong shape or types")
		}
		return mapEvent(&e, now)
	}
	if _, ok := top["verification"]; ok {
		return providers.Event{}, malformed("verification is null")
	}
	// Another webhook type (watchlist screening, user-defined status, ...) sent to this
	// URL: acknowledged, nothing to apply.
	return providers.Event{ID: digest("other", string(body)), Type: "other"}, nil
}

// decision is a mapped verification object.
type decision struct {
	id, typ, ref, userID, status string
	reasons                      []string
	occurredAt                   time.Time
}

func mapDecision(v *verification, now time.Time) (decision, error) {
	if !validRef(v.ID) {
		return decision{}, malformed("verification.id missing or invalid")
	}
	decisionTime, err := parseTime(v.DecisionTime)
	if err != nil {
		return decision{}, malformed("verification.decisionTime: not an RFC 3339 time")
	}
	acceptanceTime, err := parseTime(v.AcceptanceTime)
	if err != nil {
		return decision{}, malformed("verification.acceptanceTime: not an RFC 3339 time")
	}
	var code int64
	if v.Code != nil {
		code = *v.Code
	}
	if !validUserID(str(v.VendorData)) {
		return decision{}, malformed("verification.vendorData: not a user id")
	}
	status, vendorStatus := decisionStatus(v.Status, code)
	d := decision{
		id:     digest("decision", v.ID, v.Status, strconv.FormatInt(code, 10), str(v.DecisionTime), str(v.AcceptanceTime)),
		typ:    "decision." + vendorStatus,
		ref:    v.ID,
		userID: str(v.VendorData),
		status: status,
	}
	if v.ReasonCode.set {
		d.reasons = append(d.reasons, reasonFor(v.ReasonCode.code))
	}
	if r := statusReason[vendorStatus]; r != "" {
		d.reasons = append(d.reasons, r)
	}
	// decisionTime is when Veriff decided. Without it (Veriff gives it for every decision
	// in its examples) the event time is left zero, "unknown": the service then orders the
	// event by the state machine alone. Neither acceptanceTime (when the session was
	// created, older than anything applied since) nor our receipt time (another clock than
	// Veriff's, so a late retry would make a real decision look stale) may stand in.
	if !decisionTime.IsZero() {
		d.occurredAt = decisionTime
	}
	_ = acceptanceTime
	return d, nil
}

func mapEvent(e *event, now time.Time) (providers.Event, error) {
	if !validRef(e.ID) {
		return providers.Event{}, malformed("id missing or invalid")
	}
	at, err := parseTime(e.Time)
	if err != nil {
		return providers.Event{}, malformed("time: not an RFC 3339 time")
	}
	var code int64
	if e.Code != nil {
		code = *e.Code
	}
	if !validUserID(str(e.VendorData)) {
		return providers.Event{}, malformed("vendorData: not a user id")
	}
	status, action := eventStatus(e.Action, code)
	// Veriff's event webhook carries no time. The event time stays zero, "unknown", so the
	// service orders it by the state machine alone and it never advances the session's
	// last event time: stamping it with our receipt time would compare our clock with
	// Veriff's decisionTime and could drop a real decision as stale.
	return providers.Event{
		ID:          digest("event", e.ID, e.Action, strconv.FormatInt(code, 10), e.AttemptID, str(e.Time)),
		Type:        "event." + action,
		ProviderRef: e.ID,
		UserID:      str(e.VendorData),
		Status:      status,
		OccurredAt:  at,
	}, nil
}

// decisionStatuses maps verification.status onto canonical statuses. Veriff's
// session-progress statuses are included for GET .../decision answers.
var decisionStatuses = map[string]string{
	"created":                store.StatusInitiated,
	"started":                store.StatusCapturing,
	"submitted":              store.StatusSubmitted,
	"review":                 store.StatusPendingReview,
	"approved":               store.StatusApproved,
	"declined":               store.StatusRejected,
	"resubmission_requested": store.StatusNeedsResubmission,
	"expired":                store.StatusExpired,
	"abandoned":              store.StatusExpired,
}

// decisionCodes maps verification.code when the status is missing or unknown. Veriff's
// pages disagree on 9121 (review in the status-code table, abandoned in the decision
// endpoint's reference), so it maps to pending_review: a person looks at it, where
// expired would end the session for good.
var decisionCodes = map[int64]string{
	9001: "approved",
	9102: "declined",
	9103: "resubmission_requested",
	9104: "expired",
	9121: "review",
}

// statusReason adds a reason the canonical status alone loses.
var statusReason = map[string]string{
	"expired":   "SESSION_EXPIRED",
	"abandoned": "SESSION_ABANDONED",
}

// decisionStatus returns the canonical status and the Veriff status it came from
// ("unknown" when neither the status nor the code is known: the Event then has no Status).
func decisionStatus(vendor string, code int64) (canonical, from string) {
	if s, ok := decisionStatuses[vendor]; ok {
		return s, vendor
	}
	if v, ok := decisionCodes[code]; ok {
		return decisionStatuses[v], v
	}
	return "", "unknown"
}

var eventActions = map[string]string{
	"started":   store.StatusCapturing,
	"submitted": store.StatusSubmitted,
}

var eventCodes = map[int64]string{
	7001: "started",
	7002: "submitted",
}

func eventStatus(action string, code int64) (canonical, from string) {
	if s, ok := eventActions[action]; ok {
		return s, action
	}
	if a, ok := eventCodes[code]; ok {
		return eventActions[a], a
	}
	return "", "unknown"
}

// digest is a stable event id: hex SHA-256 of the length-prefixed parts.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func parseTime(s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// validUserID accepts what we send as vendorData (our user id), or nothing: at most 256
// bytes of valid UTF-8 without control characters.
func validUserID(s string) bool {
	if len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func malformed(what string) error {
	return fmt.Errorf("%s: %w", what, providers.ErrMalformedPayload)
}
