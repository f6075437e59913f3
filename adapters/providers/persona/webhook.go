package persona

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
)

// SignatureHeader is the header Persona signs webhook deliveries in.
const SignatureHeader = "Persona-Signature"

// Bounds on a signature header, far above what Persona sends (one set, two during a
// secret rotation, one v1 each) and low enough that a forged header cannot make us hash
// the body many times.
const (
	maxHeaderLen = 2048
	maxSets      = 4
	maxV1PerSet  = 4
	maxTDigits   = 12
)

// sigSet is one "t=<unix>,v1=<hex>[,v1=<hex>…]" set of a Persona-Signature header.
type sigSet struct {
	t  string // as sent: it is part of the signed message
	ts int64
	v1 []string
}

// parseSignatureHeader parses a Persona-Signature header: one or more sets separated by
// whitespace (several during a secret rotation), each a comma-separated list of key=value
// pairs with exactly one t (unix seconds, decimal digits) and at least one v1. Empty pairs
// are skipped and keys other than t and v1 (a future scheme) are ignored. Anything else —
// a pair without '=', a repeated or non-numeric t, an empty v1, no v1, too many sets or
// signatures, an over-long header — makes the whole header unparsable.
func parseSignatureHeader(v string) ([]sigSet, error) {
	if len(v) > maxHeaderLen {
		return nil, fmt.Errorf("header longer than %d bytes", maxHeaderLen)
	}
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return nil, fmt.Errorf("no signature set")
	}
	if len(fields) > maxSets {
		return nil, fmt.Errorf("more than %d signature sets", maxSets)
	}
	sets := make([]sigSet, 0, len(fields))
	for _, f := range fields {
		var s sigSet
		for _, pair := range strings.Split(f, ",") {
			if pair == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf("pair without '='")
			}
			switch k {
			case "t":
				if s.t != "" {
					return nil, fmt.Errorf("repeated t")
				}
				ts, err := parseUnix(val)
				if err != nil {
					return nil, err
				}
				s.t, s.ts = val, ts
			case "v1":
				if val == "" {
					return nil, fmt.Errorf("empty v1")
				}
				if len(s.v1) == maxV1PerSet {
					return nil, fmt.Errorf("more than %d v1 in a set", maxV1PerSet)
				}
				s.v1 = append(s.v1, val)
			}
		}
		if s.t == "" {
			return nil, fmt.Errorf("set without t")
		}
		if len(s.v1) == 0 {
			return nil, fmt.Errorf("set without v1")
		}
		sets = append(sets, s)
	}
	return sets, nil
}

func parseUnix(s string) (int64, error) {
	if s == "" || len(s) > maxTDigits {
		return 0, fmt.Errorf("t is not a unix time")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("t is not a unix time")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// VerifyWebhook checks the Persona-Signature header over the raw body and, only when it is
// valid, parses the body into an Event. The header carries one or more sets
// "t=<unix>,v1=<hex>"; v1 is the hex HMAC-SHA256 of "<t>.<body>" under the webhook secret
// (https://docs.withpersona.com/docs/webhooks-best-practices). The delivery is accepted when
// any v1 of any set matches any configured secret (compared in constant time) and that set's
// t is within Tolerance of now, in either direction.
//
// Errors: providers.ErrMissingSignature for an absent or blank header;
// providers.ErrBadSignature for an unparsable header, no configured secret (also wrapping
// providers.ErrNotConfigured) or no matching signature; providers.ErrStaleTimestamp when a
// signature matches but only with a t outside the tolerance; providers.ErrMalformedPayload
// (see ParseEvent) for a correctly signed body that is not a Persona event.
func (p *Provider) VerifyWebhook(h providers.Header, body []byte, now time.Time) (providers.Event, error) {
	var raw string
	if h != nil {
		raw = h.Get(SignatureHeader)
	}
	if strings.TrimSpace(raw) == "" {
		return providers.Event{}, fmt.Errorf("persona webhook: %w", providers.ErrMissingSignature)
	}
	sets, err := parseSignatureHeader(raw)
	if err != nil {
		return providers.Event{}, fmt.Errorf("persona webhook: unparsable %s header (%v): %w", SignatureHeader, err, providers.ErrBadSignature)
	}
	if len(p.cfg.WebhookSecrets) == 0 {
		return providers.Event{}, fmt.Errorf("persona webhook: no webhook secret: %w: %w", providers.ErrBadSignature, providers.ErrNotConfigured)
	}
	matched, fresh := false, false
	for _, s := range sets {
		msg := make([]byte, 0, len(s.t)+1+len(body))
		msg = append(append(append(msg, s.t...), '.'), body...)
		ok := false
		for _, sig := range s.v1 {
			// Every signature is checked, so the time taken does not say which matched.
			if providers.MatchHexHMAC(providers.SHA256, p.cfg.WebhookSecrets, msg, sig) {
				ok = true
			}
		}
		if ok {
			matched = true
			if d := now.Sub(time.Unix(s.ts, 0)); d.Abs() <= p.cfg.Tolerance {
				fresh = true
			}
		}
	}
	if !matched {
		return providers.Event{}, fmt.Errorf("persona webhook: %w", providers.ErrBadSignature)
	}
	if !fresh {
		return providers.Event{}, fmt.Errorf("persona webhook: signed more than %s from now: %w", p.cfg.Tolerance, providers.ErrStaleTimestamp)
	}
	ev, err := ParseEvent(body, p.cfg.ApproveOnCompleted)
	if err != nil {
		return providers.Event{}, fmt.Errorf("persona webhook: %w", err)
	}
	return ev, nil
}

// ParseEvent maps a Persona webhook body (already verified) onto an Event:
//
//	{"data": {"type": "event", "id": "evt_…", "attributes": {"name": "inquiry.approved",
//	  "created-at": "…", "payload": {"data": {"type": "inquiry", "id": "inq_…",
//	  "attributes": {"status": …, "reference-id": …, …}}, "included": [...]}}}}
//
// ID is the event id, Type its name, OccurredAt its created-at (Persona's documented order
// of events), ProviderRef the inquiry id and UserID the inquiry's reference-id. Status comes
// from the event name (StatusFromEvent); other events (account.*, verification.*, case.*,
// inquiry.transitioned, …) give an empty Status, with ProviderRef taken from the payload's
// inquiry or its relationships.inquiry when there is one. ReasonCodes, for rejected,
// review and expired, are the failed verification checks of payload.included, else
// INQUIRY_DECLINED, INQUIRY_FAILED, INQUIRY_MARKED_FOR_REVIEW or INQUIRY_EXPIRED. Keys are
// read in any of Persona's key inflections. Nothing personal is copied.
//
// Errors wrap providers.ErrMalformedPayload: invalid JSON; a member of the wrong type; a
// missing event id, name or created-at (RFC 3339, not before 2000); an inquiry.* event without an inquiry
// id, or whose payload is not an inquiry.
func ParseEvent(body []byte, approveOnCompleted bool) (providers.Event, error) {
	root, err := decodeObject(body)
	if err != nil || root == nil {
		return providers.Event{}, errMalformed("body is not a JSON object")
	}
	data, err := root.obj("data")
	if err != nil {
		return providers.Event{}, err
	}
	if data == nil {
		return providers.Event{}, errMalformed("no data")
	}
	typ, err := data.str("type")
	if err != nil {
		return providers.Event{}, err
	}
	if typ != "" && typ != "event" {
		return providers.Event{}, errMalformed("data is not an event")
	}
	var ev providers.Event
	if ev.ID, err = data.str("id"); err != nil {
		return providers.Event{}, err
	}
	if !validID(ev.ID) {
		return providers.Event{}, errMalformed("missing or invalid event id")
	}
	attrs, err := data.obj("attributes")
	if err != nil {
		return providers.Event{}, err
	}
	if ev.Type, err = attrs.str("name"); err != nil {
		return providers.Event{}, err
	}
	if !validName(ev.Type) {
		return providers.Event{}, errMalformed("missing or invalid event name")
	}
	created, err := attrs.str("created-at")
	if err != nil {
		return providers.Event{}, err
	}
	var ok bool
	if ev.OccurredAt, ok = parseTime(created); !ok {
		return providers.Event{}, errMalformed("missing or invalid created-at")
	}
	payload, err := attrs.obj("payload")
	if err != nil {
		return providers.Event{}, err
	}
	pdata, err := payload.obj("data")
	if err != nil {
		return providers.Event{}, err
	}
	included, err := payload.arr("included")
	if err != nil {
		return providers.Event{}, err
	}

	if strings.HasPrefix(ev.Type, "inquiry.") {
		if pdata == nil {
			return providers.Event{}, errMalformed("inquiry event without an inquiry")
		}
		inq, err := parseInquiry(pdata, included)
		if err != nil {
			return providers.Event{}, err
		}
		ev.ProviderRef, ev.UserID = inq.id, inq.referenceID
		ev.Status = StatusFromEvent(ev.Type, approveOnCompleted)
		ev.ReasonCodes = reasonCodes(ev.Status, inq.failedChecks, inquiryStatusCodes[eventInquiryStatus[ev.Type]])
		return ev, nil
	}

	// Another resource's event: acknowledged, nothing to apply. Name the inquiry it
	// belongs to when the payload says so, for logs.
	ptype, err := pdata.str("type")
	if err != nil {
		return providers.Event{}, err
	}
	if ptype == "inquiry" {
		inq, err := parseInquiry(pdata, nil)
		if err != nil {
			return providers.Event{}, err
		}
		ev.ProviderRef, ev.UserID = inq.id, inq.referenceID
		return ev, nil
	}
	rels, err := pdata.obj("relationships")
	if err != nil {
		return providers.Event{}, err
	}
	rel, err := rels.obj("inquiry")
	if err != nil {
		return providers.Event{}, err
	}
	relData, err := rel.obj("data")
	if err != nil {
		return providers.Event{}, err
	}
	id, err := relData.str("id")
	if err != nil {
		return providers.Event{}, err
	}
	if validID(id) {
		ev.ProviderRef = id
	}
	return ev, nil
}

// validName accepts event names such as inquiry.marked-for-review.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
