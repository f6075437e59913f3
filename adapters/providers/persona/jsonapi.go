package persona

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Persona's API and webhooks are JSON:API documents whose attribute keys follow the key
// inflection chosen on the API key or the webhook (kebab by default, camel or snake on
// request: https://docs.withpersona.com/api-key-inflection). Members are therefore looked up
// inflection-insensitively, and only the members this adapter needs are ever decoded: the
// inquiry's personal data (names, birthdate, address, document numbers) is never read.

// object is a decoded JSON object.
type object map[string]json.RawMessage

// decodeObject decodes raw as a JSON object; null gives a nil object and no error.
func decodeObject(raw []byte) (object, error) {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	return o, nil
}

// normKey folds the kebab, camel and snake spellings of a key together.
func normKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '-' || c == '_':
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// member returns the member spelled name in any inflection. When several spellings are
// present the exact one wins, else the smallest key, so the choice is deterministic.
func (o object) member(name string) (json.RawMessage, bool) {
	if v, ok := o[name]; ok {
		return v, true
	}
	want := normKey(name)
	best, found := "", false
	for k := range o {
		if normKey(k) == want && (!found || k < best) {
			best, found = k, true
		}
	}
	if !found {
		return nil, false
	}
	return o[best], true
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// str returns a string member; "" when absent or null; an error for another type.
func (o object) str(name string) (string, error) {
	raw, ok := o.member(name)
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errMalformed(name + " is not a string")
	}
	return s, nil
}

// obj returns an object member; nil when absent or null; an error for another type.
func (o object) obj(name string) (object, error) {
	raw, ok := o.member(name)
	if !ok || isNull(raw) {
		return nil, nil
	}
	v, err := decodeObject(raw)
	if err != nil {
		return nil, errMalformed(name + " is not an object")
	}
	return v, nil
}

// arr returns an array member; nil when absent or null; an error for another type.
func (o object) arr(name string) ([]json.RawMessage, error) {
	raw, ok := o.member(name)
	if !ok || isNull(raw) {
		return nil, nil
	}
	var v []json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errMalformed(name + " is not an array")
	}
	return v, nil
}

// inquiry is what this adapter keeps of an inquiry resource: ids, status, times and the
// names of failed verification checks. Nothing personal.
type inquiry struct {
	id           string
	status       string
	referenceID  string
	sessionToken string // from the document's meta, on create and resume
	times        map[string]time.Time
	failedChecks []string
}

// parseInquiryDocument reads an API answer {"data": inquiry, "included": [...], "meta": {...}}.
func parseInquiryDocument(raw []byte) (inquiry, error) {
	root, err := decodeObject(raw)
	if err != nil || root == nil {
		return inquiry{}, errMalformed("answer is not a JSON object")
	}
	data, err := root.obj("data")
	if err != nil {
		return inquiry{}, err
	}
	if data == nil {
		return inquiry{}, errMalformed("no data")
	}
	included, err := root.arr("included")
	if err != nil {
		return inquiry{}, err
	}
	inq, err := parseInquiry(data, included)
	if err != nil {
		return inquiry{}, err
	}
	meta, err := root.obj("meta")
	if err != nil {
		return inquiry{}, err
	}
	if inq.sessionToken, err = meta.str("session-token"); err != nil {
		return inquiry{}, err
	}
	return inq, nil
}

// inquiryTimes are the inquiry attributes read as times.
var inquiryTimes = []string{
	"created-at", "started-at", "completed-at", "failed-at", "expired-at",
	"marked-for-review-at", "decisioned-at", "updated-at",
}

// parseInquiry reads an inquiry resource object and the document's included resources.
func parseInquiry(data object, included []json.RawMessage) (inquiry, error) {
	typ, err := data.str("type")
	if err != nil {
		return inquiry{}, err
	}
	if typ != "" && typ != "inquiry" {
		return inquiry{}, errMalformed("data is not an inquiry")
	}
	var inq inquiry
	if inq.id, err = data.str("id"); err != nil {
		return inquiry{}, err
	}
	if !validID(inq.id) {
		return inquiry{}, errMalformed("missing or invalid inquiry id")
	}
	attrs, err := data.obj("attributes")
	if err != nil {
		return inquiry{}, err
	}
	if inq.status, err = attrs.str("status"); err != nil {
		return inquiry{}, err
	}
	if inq.referenceID, err = attrs.str("reference-id"); err != nil {
		return inquiry{}, err
	}
	// reference-id is our user id; bound it as the other adapters bound theirs.
	if len(inq.referenceID) > 256 || !utf8.ValidString(inq.referenceID) || (inq.referenceID != "" && !printable(inq.referenceID)) {
		return inquiry{}, errMalformed("reference-id is not a user id")
	}
	for _, name := range inquiryTimes {
		s, err := attrs.str(name)
		if err != nil {
			return inquiry{}, err
		}
		if t, ok := parseTime(s); ok {
			if inq.times == nil {
				inq.times = make(map[string]time.Time, len(inquiryTimes))
			}
			inq.times[name] = t
		}
	}
	inq.failedChecks = failedChecks(included)
	return inq, nil
}

// parseTime parses an RFC 3339 time from Persona. Times before 2000 (the zero time, year 1)
// are refused: they can only be garbage and would corrupt the ordering of events.
func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}, false
	}
	return t, true
}

// statusTimes names, per inquiry status, the attributes that date it, best first.
var statusTimes = map[string][]string{
	inqCreated:     {"created-at"},
	inqPending:     {"started-at"},
	inqCompleted:   {"completed-at"},
	inqFailed:      {"failed-at"},
	inqExpired:     {"expired-at"},
	inqNeedsReview: {"marked-for-review-at", "decisioned-at"},
	inqApproved:    {"decisioned-at"},
	inqDeclined:    {"decisioned-at"},
}

// statusTime is when the inquiry reached its status, else when it last changed.
func (inq inquiry) statusTime() time.Time {
	for _, names := range [][]string{statusTimes[inq.status], {"updated-at", "created-at"}} {
		for _, name := range names {
			if t, ok := inq.times[name]; ok {
				return t
			}
		}
	}
	return time.Time{}
}

// Bounds on what is taken from a payload.
const (
	maxReasonCodes = 16
	maxCodeLen     = 64
)

// failedChecks returns the normalized names of the failed checks of failed verifications
// among a document's included resources (verification/government-id, verification/selfie,
// …; https://docs.withpersona.com/verification-checks), in order, without duplicates. Only
// check names are read: a check's reasons and metadata can quote the person's data.
// Included resources are optional enrichment, so ones of an unexpected shape are skipped.
func failedChecks(included []json.RawMessage) []string {
	var codes []string
	seen := map[string]bool{}
	for _, raw := range included {
		res, err := decodeObject(raw)
		if err != nil {
			continue
		}
		typ, _ := res.str("type")
		if !strings.HasPrefix(typ, "verification/") {
			continue
		}
		attrs, _ := res.obj("attributes")
		if st, _ := attrs.str("status"); st != "failed" {
			continue
		}
		checks, _ := attrs.arr("checks")
		for _, c := range checks {
			check, err := decodeObject(c)
			if err != nil {
				continue
			}
			if st, _ := check.str("status"); st != "failed" {
				continue
			}
			name, _ := check.str("name")
			code := normalizeCode(name)
			if code == "" || seen[code] {
				continue
			}
			if len(codes) == maxReasonCodes {
				return codes
			}
			seen[code] = true
			codes = append(codes, code)
		}
	}
	return codes
}

// normalizeCode turns a Persona slug (id_expired, id-extraction-inconsistency-detection)
// into UPPER_SNAKE (ID_EXPIRED): ASCII letters and digits kept, runs of anything else
// become one '_', at most maxCodeLen characters.
func normalizeCode(s string) string {
	b := make([]byte, 0, min(len(s), maxCodeLen))
	sep := false
	for i := 0; i < len(s) && len(b) < maxCodeLen; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			sep = len(b) > 0
			continue
		}
		if sep {
			if len(b)+1 >= maxCodeLen {
				break
			}
			b = append(b, '_')
			sep = false
		}
		b = append(b, c)
	}
	return string(b)
}
