package persona

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

var (
	secretNew = []byte("wbhsec_8d6ba9e1-new")
	secretOld = []byte("wbhsec_2f0c7a55-old")
	webhookAt = time.Date(2024, 3, 15, 18, 35, 5, 0, time.UTC)
)

// pii are the personal values of the fixtures; no Event or Update may carry any of them.
var pii = []string{
	"Alexander", "Sample", "Jane", "1977-08-31", "600 California St", "San Francisco",
	"94108", "alexander@example.com", "+14155550123", "Y1234567", "front-photo",
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// eventBody is a webhook delivery shaped like Persona's documented examples
// (docs.withpersona.com/api-reference/webhooks/inquiry-events/webhook-inquiry-approved),
// with the inquiry's personal data present as Persona sends it.
func eventBody(id, name, createdAt, included string) []byte {
	if included == "" {
		included = `[]`
	}
	return []byte(`{
  "data": {
    "type": "event",
    "id": "` + id + `",
    "attributes": {
      "name": "` + name + `",
      "created-at": "` + createdAt + `",
      "redacted-at": null,
      "payload": {
        "data": {
          "type": "inquiry",
          "id": "` + testInquiry + `",
          "attributes": {
            "status": "approved",
            "reference-id": "usr_42",
            "note": null,
            "behaviors": {"request-spoof-attempts": 0, "user-agent-spoof-attempts": 0},
            "tags": [],
            "creator": "API",
            "created-at": "2024-03-15T18:30:00.000Z",
            "started-at": "2024-03-15T18:31:00.000Z",
            "completed-at": "2024-03-15T18:34:00.000Z",
            "decisioned-at": "2024-03-15T18:35:00.000Z",
            "name-first": "Alexander",
            "name-middle": "Jane",
            "name-last": "Sample",
            "birthdate": "1977-08-31",
            "address-street-1": "600 California St",
            "address-city": "San Francisco",
            "address-postal-code": "94108",
            "email-address": "alexander@example.com",
            "phone-number": "+14155550123",
            "identification-number": "Y1234567",
            "fields": {"name-first": {"type": "string", "value": "Alexander"}}
          },
          "relationships": {
            "account": {"data": {"type": "account", "id": "act_ndJNqdhWNi44S4Twf4bqzod2"}},
            "inquiry-template": {"data": {"type": "inquiry-template", "id": "` + testTemplate + `"}},
            "verifications": {"data": [{"type": "verification/government-id", "id": "ver_KnqQRXmxmtquRE65CHTzymhR"}]}
          }
        },
        "included": ` + included + `
      }
    }
  }
}`)
}

const failedGovID = `[
  {"type": "verification/government-id", "id": "ver_KnqQRXmxmtquRE65CHTzymhR",
   "attributes": {"status": "failed", "name-first": "Alexander", "birthdate": "1977-08-31",
     "front-photo-url": "https://files.example/front-photo.jpg",
     "checks": [
       {"name": "id_expired", "status": "failed", "reasons": ["expired"], "requirement": "required", "metadata": {"expiration-date": "1977-08-31"}},
       {"name": "id_compare_name", "status": "failed", "reasons": ["Alexander Sample"], "requirement": "required", "metadata": {}},
       {"name": "id_barcode_detection", "status": "not_applicable", "reasons": [], "requirement": "not_required"},
       {"name": "id_po_box_detection", "status": "passed", "reasons": [], "requirement": "required"}]}},
  {"type": "verification/selfie", "id": "ver_2aguhcwq66zcmqipmrqjxw68",
   "attributes": {"status": "passed", "center-photo-url": "https://files.example/front-photo.jpg",
     "checks": [{"name": "selfie_id_comparison", "status": "failed"}]}},
  {"type": "inquiry-template", "id": "` + testTemplate + `", "attributes": {"name": "KYC"}}
]`

func sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + providers.HexHMAC(providers.SHA256, secret, []byte(ts+"."+string(body)))
}

// v1Of returns the "v1=<hex>" pair of a header made by sign.
func v1Of(h string) string { return strings.Split(h, ",")[1] }

func header(v string) http.Header {
	h := http.Header{}
	h.Set("persona-signature", v) // canonicalized: Get is case-insensitive
	return h
}

func webhookProvider(secrets ...[]byte) *Provider {
	if secrets == nil {
		secrets = [][]byte{secretNew}
	}
	return New(Config{WebhookSecrets: secrets})
}

func TestVerifyWebhookValid(t *testing.T) {
	body := eventBody("evt_XGuYWp7WuDzNxie5z16s7sGJ", "inquiry.approved", "2024-03-15T18:35:01.100Z", "")
	ev, err := webhookProvider().VerifyWebhook(header(sign(secretNew, webhookAt.Unix(), body)), body, webhookAt)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Event{
		ID:          "evt_XGuYWp7WuDzNxie5z16s7sGJ",
		Type:        "inquiry.approved",
		ProviderRef: testInquiry,
		UserID:      "usr_42",
		Status:      store.StatusApproved,
		OccurredAt:  time.Date(2024, 3, 15, 18, 35, 1, 100_000_000, time.UTC),
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if s := fmt.Sprintf("%+v", ev); containsAny(s, pii...) {
		t.Errorf("event carries personal data: %s", s)
	}
}

func TestVerifyWebhookDeclinedCarriesFailedChecks(t *testing.T) {
	for _, tc := range []struct {
		name, included string
		want           []string
	}{
		{"with included verifications", failedGovID, []string{"ID_EXPIRED", "ID_COMPARE_NAME"}},
		{"without", "", []string{"INQUIRY_DECLINED"}},
		{"odd included shapes are skipped", `[1, "x", null, {"type": 5}, {"type": "verification/x", "attributes": []},
			{"type": "verification/x", "attributes": {"status": "failed", "checks": {"a": 1}}},
			{"type": "verification/x", "attributes": {"status": "failed", "checks": [7, {"name": 3, "status": "failed"}, {"name": "ok_check", "status": "failed"}]}}]`,
			[]string{"OK_CHECK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := eventBody("evt_d1", "inquiry.declined", "2024-03-15T18:35:01Z", tc.included)
			ev, err := webhookProvider().VerifyWebhook(header(sign(secretNew, webhookAt.Unix(), body)), body, webhookAt)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != store.StatusRejected {
				t.Errorf("Status = %q", ev.Status)
			}
			if diff := cmp.Diff(tc.want, ev.ReasonCodes); diff != "" {
				t.Errorf("reason codes (-want +got):\n%s", diff)
			}
			if s := fmt.Sprintf("%+v", ev); containsAny(s, pii...) {
				t.Errorf("event carries personal data: %s", s)
			}
		})
	}
}

func TestVerifyWebhookEveryInquiryEvent(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		codes        []string
	}{
		{"inquiry.created", store.StatusInitiated, nil},
		{"inquiry.started", store.StatusCapturing, nil},
		{"inquiry.completed", store.StatusSubmitted, nil},
		{"inquiry.failed", store.StatusPendingReview, []string{"INQUIRY_FAILED"}},
		{"inquiry.expired", store.StatusExpired, []string{"INQUIRY_EXPIRED"}},
		{"inquiry.marked-for-review", store.StatusPendingReview, []string{"INQUIRY_MARKED_FOR_REVIEW"}},
		{"inquiry.approved", store.StatusApproved, nil},
		{"inquiry.declined", store.StatusRejected, []string{"INQUIRY_DECLINED"}},
		{"inquiry.transitioned", "", nil},
		{"inquiry.redacted", "", nil},
		{"inquiry.updated-tags", "", nil},
		{"inquiry.reusable-persona-created", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := eventBody("evt_1", tc.name, "2024-03-15T18:35:01Z", "")
			ev, err := webhookProvider().VerifyWebhook(header(sign(secretNew, webhookAt.Unix(), body)), body, webhookAt)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != tc.status || ev.Type != tc.name || ev.ProviderRef != testInquiry || ev.UserID != "usr_42" {
				t.Errorf("event = %+v", ev)
			}
			if diff := cmp.Diff(tc.codes, ev.ReasonCodes); diff != "" {
				t.Errorf("reason codes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyWebhookSignatureFailures(t *testing.T) {
	body := eventBody("evt_1", "inquiry.approved", "2024-03-15T18:35:01Z", "")
	now := webhookAt
	good := sign(secretNew, now.Unix(), body)
	changed := append([]byte(nil), body...)
	changed[len(changed)/2] ^= 0x01

	for _, tc := range []struct {
		name   string
		h      providers.Header
		body   []byte
		now    time.Time
		secret [][]byte
		want   error
	}{
		{"nil header", nil, body, now, nil, providers.ErrMissingSignature},
		{"no header", http.Header{}, body, now, nil, providers.ErrMissingSignature},
		{"empty header", header(""), body, now, nil, providers.ErrMissingSignature},
		{"blank header", header("  \t "), body, now, nil, providers.ErrMissingSignature},
		{"wrong secret", header(sign([]byte("wbhsec_other"), now.Unix(), body)), body, now, nil, providers.ErrBadSignature},
		{"one changed body byte", header(good), changed, now, nil, providers.ErrBadSignature},
		{"appended byte", header(good), append(append([]byte(nil), body...), ' '), now, nil, providers.ErrBadSignature},
		{"t not the signed one", header(strings.Replace(good, strconv.FormatInt(now.Unix(), 10), strconv.FormatInt(now.Unix()+1, 10), 1)), body, now, nil, providers.ErrBadSignature},
		{"no secret configured", header(good), body, now, [][]byte{}, providers.ErrBadSignature},
		{"unparsable: no t", header("v1=" + strings.Repeat("a", 64)), body, now, nil, providers.ErrBadSignature},
		{"unparsable: no v1", header("t=" + strconv.FormatInt(now.Unix(), 10)), body, now, nil, providers.ErrBadSignature},
		{"unparsable: garbage", header("garbage"), body, now, nil, providers.ErrBadSignature},
		{"unparsable: t not a number", header(strings.Replace(good, "t=", "t=x", 1)), body, now, nil, providers.ErrBadSignature},
		{"unparsable: negative t", header(strings.Replace(good, "t=", "t=-", 1)), body, now, nil, providers.ErrBadSignature},
		{"unparsable: repeated t", header("t=1," + good), body, now, nil, providers.ErrBadSignature},
		{"unparsable: empty v1", header(good + ",v1="), body, now, nil, providers.ErrBadSignature},
		{"unparsable: one bad set of two", header(good + " nonsense"), body, now, nil, providers.ErrBadSignature},
		{"unparsable: five sets", header(strings.Repeat(good+" ", 5)), body, now, nil, providers.ErrBadSignature},
		{"non-hex v1", header("t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=zz"), body, now, nil, providers.ErrBadSignature},
		{"sha1 is not v1", header("t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + providers.HexHMAC(providers.SHA1, secretNew, []byte(strconv.FormatInt(now.Unix(), 10)+"."+string(body)))), body, now, nil, providers.ErrBadSignature},
		{"6 min old", header(sign(secretNew, now.Add(-6*time.Minute).Unix(), body)), body, now, nil, providers.ErrStaleTimestamp},
		{"6 min in the future", header(sign(secretNew, now.Add(6*time.Minute).Unix(), body)), body, now, nil, providers.ErrStaleTimestamp},
		{"a day old", header(sign(secretNew, now.Add(-24*time.Hour).Unix(), body)), body, now, nil, providers.ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webhookProvider(tc.secret...)
			if tc.secret != nil && len(tc.secret) == 0 {
				p = New(Config{})
			}
			ev, err := p.VerifyWebhook(tc.h, tc.body, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{providers.ErrMissingSignature, providers.ErrBadSignature, providers.ErrStaleTimestamp, providers.ErrMalformedPayload} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err %v also wraps %v", err, other)
				}
			}
			if !cmp.Equal(ev, providers.Event{}) {
				t.Errorf("event returned with an error: %+v", ev)
			}
			if strings.Contains(err.Error(), string(secretNew)) || containsAny(err.Error(), pii...) {
				t.Errorf("error quotes a secret or the body: %v", err)
			}
		})
	}
}

func TestVerifyWebhookWithinTolerance(t *testing.T) {
	body := eventBody("evt_1", "inquiry.approved", "2024-03-15T18:35:01Z", "")
	for _, d := range []time.Duration{-4 * time.Minute, 4 * time.Minute, -5 * time.Minute, 5 * time.Minute} {
		if _, err := webhookProvider().VerifyWebhook(header(sign(secretNew, webhookAt.Add(d).Unix(), body)), body, webhookAt); err != nil {
			t.Errorf("signed %s from now: %v", d, err)
		}
	}
	p := New(Config{WebhookSecrets: providers.Secrets{secretNew}, Tolerance: time.Minute})
	if _, err := p.VerifyWebhook(header(sign(secretNew, webhookAt.Add(-2*time.Minute).Unix(), body)), body, webhookAt); !errors.Is(err, providers.ErrStaleTimestamp) {
		t.Errorf("custom tolerance: %v", err)
	}
}

func TestVerifyWebhookRotation(t *testing.T) {
	body := eventBody("evt_1", "inquiry.approved", "2024-03-15T18:35:01Z", "")
	ts := webhookAt.Unix()
	unknown := sign([]byte("wbhsec_someone_else"), ts, body)
	for _, tc := range []struct {
		name    string
		h       string
		secrets [][]byte
	}{
		{"two sets, only the second matches", unknown + " " + sign(secretNew, ts, body), nil},
		{"two sets, only the first matches", sign(secretNew, ts, body) + " " + unknown, nil},
		{"two sets, signed with our old secret", sign(secretOld, ts, body) + " " + unknown, [][]byte{secretNew, secretOld}},
		{"one set, old secret configured second", sign(secretOld, ts, body), [][]byte{secretNew, secretOld}},
		{"multiple v1 in one set", "t=" + strconv.FormatInt(ts, 10) + ",v1=" + strings.Repeat("ab", 32) + "," + v1Of(sign(secretNew, ts, body)), nil},
		{"uppercase hex, v1 before t", "v1=" + strings.ToUpper(strings.TrimPrefix(v1Of(sign(secretNew, ts, body)), "v1=")) + ",t=" + strconv.FormatInt(ts, 10), nil},
		{"stale set and fresh set", sign(secretNew, ts-3600, body) + " " + sign(secretNew, ts, body), nil},
		{"unknown scheme ignored", sign(secretNew, ts, body) + ",v0=deadbeef", nil},
		{"tab and trailing comma", sign(secretNew, ts, body) + ",\t" + unknown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := webhookProvider(tc.secrets...).VerifyWebhook(header(tc.h), body, webhookAt)
			if err != nil {
				t.Fatalf("header %q: %v", tc.h, err)
			}
			if ev.ID != "evt_1" {
				t.Errorf("event = %+v", ev)
			}
		})
	}
}

func TestVerifyWebhookReplayAndOrder(t *testing.T) {
	p := webhookProvider()
	completed := eventBody("evt_completed", "inquiry.completed", "2024-03-15T18:34:00.000Z", "")
	approved := eventBody("evt_approved", "inquiry.approved", "2024-03-15T18:35:00.000Z", "")

	// Persona delivers the later event first, then the earlier one, then a retry of the first.
	var got []providers.Event
	for i, body := range [][]byte{approved, completed, approved} {
		now := webhookAt.Add(time.Duration(i) * time.Minute)
		ev, err := p.VerifyWebhook(header(sign(secretNew, now.Unix(), body)), body, now)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if got[0].ID != got[2].ID || !cmp.Equal(got[0], got[2]) {
		t.Errorf("replay differs: %+v vs %+v", got[0], got[2])
	}
	if got[1].ID == got[0].ID {
		t.Errorf("distinct events share an id")
	}
	if !got[1].OccurredAt.Before(got[0].OccurredAt) {
		t.Errorf("OccurredAt follows delivery, not Persona's created-at: %v, %v", got[0].OccurredAt, got[1].OccurredAt)
	}
	if got[0].Status != store.StatusApproved || got[1].Status != store.StatusSubmitted {
		t.Errorf("statuses = %q, %q", got[0].Status, got[1].Status)
	}
}

func TestVerifyWebhookMalformedPayloads(t *testing.T) {
	base := string(eventBody("evt_1", "inquiry.approved", "2024-03-15T18:35:01Z", ""))
	for name, body := range map[string]string{
		"empty":                  ``,
		"not json":               `{"data": `,
		"trailing data":          base + `{}`,
		"array":                  `[]`,
		"null":                   `null`,
		"no data":                `{}`,
		"data null":              `{"data": null}`,
		"data string":            `{"data": "evt_1"}`,
		"not an event":           strings.Replace(base, `"type": "event"`, `"type": "inquiry"`, 1),
		"event id missing":       strings.Replace(base, `"id": "evt_1",`, ``, 1),
		"event id number":        strings.Replace(base, `"id": "evt_1"`, `"id": 1`, 1),
		"event id with slash":    strings.Replace(base, `"id": "evt_1"`, `"id": "evt/1"`, 1),
		"name missing":           strings.Replace(base, `"name": "inquiry.approved",`, ``, 1),
		"name object":            strings.Replace(base, `"name": "inquiry.approved"`, `"name": {}`, 1),
		"created-at missing":     strings.Replace(base, `"created-at": "2024-03-15T18:35:01Z",`, ``, 1),
		"created-at not a time":  strings.Replace(base, `"created-at": "2024-03-15T18:35:01Z"`, `"created-at": "yesterday"`, 1),
		"created-at zero time":   strings.Replace(base, `"created-at": "2024-03-15T18:35:01Z"`, `"created-at": "0001-01-01T0:00:00Z"`, 1),
		"created-at year 1999":   strings.Replace(base, `"created-at": "2024-03-15T18:35:01Z"`, `"created-at": "1999-12-31T23:59:59Z"`, 1),
		"created-at number":      strings.Replace(base, `"created-at": "2024-03-15T18:35:01Z"`, `"created-at": 1710527701`, 1),
		"payload array":          `{"data": {"type": "event", "id": "evt_1", "attributes": {"name": "inquiry.approved", "created-at": "2024-03-15T18:35:01Z", "payload": []}}}`,
		"no payload":             `{"data": {"type": "event", "id": "evt_1", "attributes": {"name": "inquiry.approved", "created-at": "2024-03-15T18:35:01Z"}}}`,
		"inquiry id missing":     strings.Replace(base, `"id": "`+testInquiry+`",`, ``, 1),
		"inquiry id number":      strings.Replace(base, `"id": "`+testInquiry+`"`, `"id": 7`, 1),
		"payload not an inquiry": strings.Replace(base, `"type": "inquiry",`, `"type": "account",`, 1),
		"reference-id number":    strings.Replace(base, `"reference-id": "usr_42"`, `"reference-id": 42`, 1),
		"status number":          strings.Replace(base, `"status": "approved"`, `"status": 1`, 1),
		"included object":        strings.Replace(base, `"included": []`, `"included": {}`, 1),
		"attributes array":       `{"data": {"type": "event", "id": "evt_1", "attributes": []}}`,
	} {
		t.Run(name, func(t *testing.T) {
			b := []byte(body)
			ev, err := webhookProvider().VerifyWebhook(header(sign(secretNew, webhookAt.Unix(), b)), b, webhookAt)
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("err = %v, want ErrMalformedPayload", err)
			}
			if !cmp.Equal(ev, providers.Event{}) {
				t.Errorf("event returned with an error: %+v", ev)
			}
			if containsAny(err.Error(), pii...) {
				t.Errorf("error quotes the body: %v", err)
			}
		})
	}
}

func TestParseEventOtherInflectionsAndResources(t *testing.T) {
	camel := `{"data": {"type": "event", "id": "evt_c", "attributes": {"name": "inquiry.declined",
		"createdAt": "2024-03-15T18:35:01Z", "payload": {"data": {"type": "inquiry", "id": "` + testInquiry + `",
		"attributes": {"status": "declined", "referenceId": "usr_42", "nameFirst": "Alexander"}},
		"included": [{"type": "verification/government-id", "attributes": {"status": "failed",
		"checks": [{"name": "id_expired", "status": "failed"}]}}]}}}}`
	ev, err := ParseEvent([]byte(camel), false)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Event{ID: "evt_c", Type: "inquiry.declined", ProviderRef: testInquiry, UserID: "usr_42",
		Status: store.StatusRejected, ReasonCodes: []string{"ID_EXPIRED"}, OccurredAt: time.Date(2024, 3, 15, 18, 35, 1, 0, time.UTC)}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("camel (-want +got):\n%s", diff)
	}

	snake := strings.NewReplacer("createdAt", "created_at", "referenceId", "reference_id").Replace(camel)
	if ev2, err := ParseEvent([]byte(snake), false); err != nil || !cmp.Equal(ev, ev2) {
		t.Errorf("snake: %+v, %v", ev2, err)
	}

	verification := `{"data": {"type": "event", "id": "evt_v", "attributes": {"name": "verification.passed",
		"created-at": "2024-03-15T18:33:00Z", "payload": {"data": {"type": "verification/selfie", "id": "ver_1",
		"attributes": {"status": "passed", "name-first": "Alexander"},
		"relationships": {"inquiry": {"data": {"type": "inquiry", "id": "` + testInquiry + `"}}}}}}}}`
	ev, err = ParseEvent([]byte(verification), false)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != "" || ev.ProviderRef != testInquiry || ev.ID != "evt_v" || ev.UserID != "" {
		t.Errorf("verification event = %+v", ev)
	}

	account := `{"data": {"type": "event", "id": "evt_a", "attributes": {"name": "account.created",
		"created-at": "2024-03-15T18:33:00Z", "payload": {"data": {"type": "account", "id": "act_1",
		"attributes": {"reference-id": "usr_42", "name-first": "Alexander"}}}}}}`
	ev, err = ParseEvent([]byte(account), false)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != "" || ev.ProviderRef != "" || ev.Type != "account.created" {
		t.Errorf("account event = %+v", ev)
	}
	if s := fmt.Sprintf("%+v", ev); containsAny(s, pii...) {
		t.Errorf("event carries personal data: %s", s)
	}
}
