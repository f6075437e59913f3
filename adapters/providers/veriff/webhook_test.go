package veriff

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

const (
	hookSecret    = "webhook-secret-new"
	hookSecretOld = "webhook-secret-old"
)

var received = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// pii lists every personal value in decisionFixture; none may reach an Event.
var pii = []string{
	"SARAH", "MORGAN", "1967-03-30", "1967", "MADRID", "38508260000", "1234 Snowy Ridge Road", "Indiana", "56789",
	"MORGA753116SM9IJ", "2022-04-20", "2015-03-21", "186.153.67.122", "Physical document not used",
	"Mozilla/5.0", "e30122d1-740b-4764-853f-470374a7abf4",
}

// decisionFixture is a decision webhook shaped like Veriff's documented sample, with its
// person, document and technical data.
func decisionFixture(status string, code int, reasonCode, decisionTime string) string {
	return `{
  "status": "success",
  "verification": {
    "id": "12df6045-3846-3e45-946a-14fa6136d78b",
    "attemptId": "e30122d1-740b-4764-853f-470374a7abf4",
    "vendorData": "user-1",
    "endUserId": null,
    "status": "` + status + `",
    "code": ` + fmt.Sprint(code) + `,
    "reason": "Physical document not used",
    "reasonCode": ` + reasonCode + `,
    "decisionTime": ` + decisionTime + `,
    "acceptanceTime": "2019-11-06T07:15:27.000Z",
    "submissionTime": "2019-11-06T07:16:02.000Z",
    "person": {
      "firstName": "SARAH",
      "lastName": "MORGAN",
      "dateOfBirth": "1967-03-30",
      "yearOfBirth": "1967",
      "placeOfBirth": "MADRID",
      "gender": null,
      "idNumber": "38508260000",
      "nationality": null,
      "addresses": [{"fullAddress": "1234 Snowy Ridge Road, Indiana, 56789 USA",
        "parsedAddress": {"city": null, "state": "Indiana", "street": "1234 Snowy Ridge Road", "country": "USA", "postcode": "56789"}}],
      "pepSanctionMatch": null
    },
    "document": {
      "type": "DRIVERS_LICENSE",
      "number": "MORGA753116SM9IJ",
      "country": "GB",
      "validFrom": null,
      "validUntil": "2022-04-20",
      "firstIssue": "2015-03-21",
      "placeOfIssue": "MADRID"
    },
    "additionalVerifiedData": {},
    "riskLabels": [{"label": "document_integration_level_crosslinked_with_fraud", "category": "document", "sessionIds": ["5a2358e7-fd31-4fcb-a23f-4d76651ba68a"]}],
    "biometricAuthentication": {"matchedSessionId": null, "matchedSessionVendorData": null},
    "comments": []
  },
  "technicalData": {"ip": "186.153.67.122", "userAgent": "Mozilla/5.0"}
}`
}

func eventFixture(action string, code int) string {
	return `{"id":"f04bdb47-d3be-4b28-b028-a652feb060b5","attemptId":"e30122d1-740b-4764-853f-470374a7abf4","feature":"selfid",` +
		`"code":` + fmt.Sprint(code) + `,"action":"` + action + `","vendorData":"user-1","endUserId":"a1b2c35d-e8f7-6d5e-3cd2-a1b2c35db3d4"}`
}

func hookProvider() *Provider {
	return New(Config{
		APIKey:         testAPIKey,
		SharedSecret:   hookSecret,
		WebhookSecrets: providers.Secrets{[]byte(hookSecret), []byte(hookSecretOld)},
	})
}

func signed(secret, body string) http.Header {
	h := http.Header{}
	h.Set("X-HMAC-SIGNATURE", providers.HexHMAC(providers.SHA256, []byte(secret), []byte(body)))
	h.Set("X-AUTH-CLIENT", testAPIKey)
	h.Set("Content-Type", "application/json")
	return h
}

func TestVerifyWebhookDecision(t *testing.T) {
	p := hookProvider()
	body := decisionFixture("declined", 9102, "101", `"2019-11-06T07:18:36.916Z"`)
	ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Event{
		ID:          ev.ID, // checked below
		Type:        "decision.declined",
		ProviderRef: "12df6045-3846-3e45-946a-14fa6136d78b",
		UserID:      "user-1",
		Status:      store.StatusRejected,
		ReasonCodes: []string{"DOCUMENT_NOT_PHYSICAL"},
		OccurredAt:  time.Date(2019, 11, 6, 7, 18, 36, 916_000_000, time.UTC),
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if wantID := digest("decision", "12df6045-3846-3e45-946a-14fa6136d78b", "declined", "9102", "2019-11-06T07:18:36.916Z", "2019-11-06T07:15:27.000Z"); ev.ID != wantID || len(ev.ID) != 64 {
		t.Errorf("ID = %q, want %q", ev.ID, wantID)
	}
	assertNoPII(t, ev)
}

func assertNoPII(t *testing.T, ev providers.Event) {
	t.Helper()
	s := fmt.Sprintf("%+v", ev)
	for _, v := range pii {
		if strings.Contains(s, v) {
			t.Errorf("event carries %q: %s", v, s)
		}
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	p := hookProvider()
	body := decisionFixture("approved", 9001, "null", `"2019-11-06T07:18:36.916Z"`)
	changed := []byte(body)
	changed[strings.Index(body, "approved")] = 'A'

	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		wantErr error
	}{
		{"valid", signed(hookSecret, body), []byte(body), nil},
		{"rotation: old secret", signed(hookSecretOld, body), []byte(body), nil},
		{"upper-case hex", upper(signed(hookSecret, body)), []byte(body), nil},
		{"wrong secret", signed("another-secret", body), []byte(body), providers.ErrBadSignature},
		{"one byte changed", signed(hookSecret, body), changed, providers.ErrBadSignature},
		{"missing signature", without(signed(hookSecret, body), "X-HMAC-SIGNATURE"), []byte(body), providers.ErrMissingSignature},
		{"blank signature", with(signed(hookSecret, body), "X-HMAC-SIGNATURE", "  "), []byte(body), providers.ErrMissingSignature},
		{"not hex", with(signed(hookSecret, body), "X-HMAC-SIGNATURE", "zz"), []byte(body), providers.ErrBadSignature},
		{"signature of the session id", with(signed(hookSecret, body), "X-HMAC-SIGNATURE",
			providers.HexHMAC(providers.SHA256, []byte(hookSecret), []byte("12df6045-3846-3e45-946a-14fa6136d78b"))), []byte(body), providers.ErrBadSignature},
		{"wrong X-AUTH-CLIENT", with(signed(hookSecret, body), "X-AUTH-CLIENT", "other-key"), []byte(body), providers.ErrBadSignature},
		{"missing X-AUTH-CLIENT", without(signed(hookSecret, body), "X-AUTH-CLIENT"), []byte(body), providers.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := p.VerifyWebhook(tt.header, tt.body, received)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if ev.Status != store.StatusApproved {
					t.Errorf("status %q", ev.Status)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if ev.ID != "" || ev.Status != "" {
				t.Errorf("event returned with an error: %+v", ev)
			}
			for _, s := range []string{hookSecret, hookSecretOld, testAPIKey, "SARAH"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error quotes %q: %v", s, err)
				}
			}
		})
	}
}

func TestVerifyWebhookWithoutAPIKey(t *testing.T) {
	// With no API key configured X-AUTH-CLIENT is not checked; with no webhook secret
	// nothing verifies.
	body := eventFixture("started", 7001)
	p := New(Config{WebhookSecrets: providers.Secrets{[]byte(hookSecret)}})
	if _, err := p.VerifyWebhook(without(signed(hookSecret, body), "X-AUTH-CLIENT"), []byte(body), received); err != nil {
		t.Errorf("no API key configured: %v", err)
	}
	p = New(Config{})
	if _, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received); !errors.Is(err, providers.ErrBadSignature) {
		t.Errorf("no secret configured: %v, want ErrBadSignature", err)
	}
}

func TestVerifyWebhookReplayAndOrder(t *testing.T) {
	p := hookProvider()
	first := decisionFixture("resubmission_requested", 9103, "204", `"2019-11-06T07:18:36.916Z"`)
	second := decisionFixture("approved", 9001, "null", `"2019-11-06T09:00:00.000Z"`)

	a1, err := p.VerifyWebhook(signed(hookSecret, first), []byte(first), received)
	if err != nil {
		t.Fatal(err)
	}
	// Replayed an hour later, signed with the old secret during a rotation: same event.
	a2, err := p.VerifyWebhook(signed(hookSecretOld, first), []byte(first), received.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a1, a2); diff != "" {
		t.Errorf("replay differs (-first +replay):\n%s", diff)
	}
	// Delivered out of order: the later decision arrives first; each keeps Veriff's time.
	b, err := p.VerifyWebhook(signed(hookSecret, second), []byte(second), received.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == a1.ID {
		t.Error("two decisions share an ID")
	}
	if !b.OccurredAt.After(a1.OccurredAt) {
		t.Errorf("approved at %v is not after resubmission at %v", b.OccurredAt, a1.OccurredAt)
	}
	if a1.Status != store.StatusNeedsResubmission || b.Status != store.StatusApproved {
		t.Errorf("statuses %q, %q", a1.Status, b.Status)
	}
}

func TestDecisionMapping(t *testing.T) {
	decided := `"2019-11-06T07:18:36.916Z"`
	decidedAt := time.Date(2019, 11, 6, 7, 18, 36, 916_000_000, time.UTC)
	tests := []struct {
		status     string
		code       int
		reasonCode string
		wantStatus string
		wantType   string
		wantReason []string
	}{
		{"approved", 9001, "null", store.StatusApproved, "decision.approved", nil},
		{"declined", 9102, "102", store.StatusRejected, "decision.declined", []string{"DOCUMENT_TAMPERED"}},
		{"declined", 9102, "103", store.StatusRejected, "decision.declined", []string{"FACE_MISMATCH"}},
		{"declined", 9102, `"106"`, store.StatusRejected, "decision.declined", []string{"KNOWN_FRAUD"}},
		{"declined", 9102, "533", store.StatusRejected, "decision.declined", []string{"AGE_UNDER_18"}},
		{"declined", 9102, "999", store.StatusRejected, "decision.declined", []string{"VERIFF_999"}},
		{"declined", 9102, `""`, store.StatusRejected, "decision.declined", nil},
		{"resubmission_requested", 9103, "207", store.StatusNeedsResubmission, "decision.resubmission_requested", []string{"DOCUMENT_EXPIRED"}},
		{"resubmission_requested", 9103, "202", store.StatusNeedsResubmission, "decision.resubmission_requested", []string{"FACE_NOT_VISIBLE"}},
		{"expired", 9104, "null", store.StatusExpired, "decision.expired", []string{"SESSION_EXPIRED"}},
		{"abandoned", 9104, "null", store.StatusExpired, "decision.abandoned", []string{"SESSION_ABANDONED"}},
		{"abandoned", 9121, "null", store.StatusExpired, "decision.abandoned", []string{"SESSION_ABANDONED"}},
		{"review", 9121, "null", store.StatusPendingReview, "decision.review", nil},
		// The status wins over the code; the code stands in for a missing or unknown status.
		{"approved", 9102, "null", store.StatusApproved, "decision.approved", nil},
		{"", 9001, "null", store.StatusApproved, "decision.approved", nil},
		{"", 9102, "105", store.StatusRejected, "decision.declined", []string{"SUSPICIOUS_BEHAVIOUR"}},
		{"", 9103, "null", store.StatusNeedsResubmission, "decision.resubmission_requested", nil},
		{"", 9104, "null", store.StatusExpired, "decision.expired", []string{"SESSION_EXPIRED"}},
		{"", 9121, "null", store.StatusPendingReview, "decision.review", nil},
		{"something_new", 9999, "null", "", "decision.unknown", nil},
	}
	p := hookProvider()
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%s", tt.status, tt.code, tt.reasonCode), func(t *testing.T) {
			body := decisionFixture(tt.status, tt.code, tt.reasonCode, decided)
			ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != tt.wantStatus || ev.Type != tt.wantType || !cmp.Equal(ev.ReasonCodes, tt.wantReason) {
				t.Errorf("got status %q type %q reasons %v, want %q %q %v", ev.Status, ev.Type, ev.ReasonCodes, tt.wantStatus, tt.wantType, tt.wantReason)
			}
			if !ev.OccurredAt.Equal(decidedAt) || ev.ProviderRef != "12df6045-3846-3e45-946a-14fa6136d78b" || ev.UserID != "user-1" {
				t.Errorf("event %+v", ev)
			}
			assertNoPII(t, ev)
		})
	}
}

func TestDecisionWithoutDecisionTime(t *testing.T) {
	p := hookProvider()
	body := decisionFixture("expired", 9104, "null", "null")
	ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	// Unknown: neither the receipt time (our clock, not Veriff's) nor acceptanceTime (the
	// session's creation) may stand in for when Veriff decided.
	if !ev.OccurredAt.IsZero() {
		t.Errorf("OccurredAt = %v, want zero (unknown)", ev.OccurredAt)
	}
	again, _ := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received.Add(time.Hour))
	if again.ID != ev.ID {
		t.Error("replay without decisionTime changes the ID")
	}
}

func TestEventWebhooks(t *testing.T) {
	p := hookProvider()
	tests := []struct {
		action     string
		code       int
		wantStatus string
		wantType   string
	}{
		{"started", 7001, store.StatusCapturing, "event.started"},
		{"submitted", 7002, store.StatusSubmitted, "event.submitted"},
		{"", 7001, store.StatusCapturing, "event.started"},
		{"", 7002, store.StatusSubmitted, "event.submitted"},
		{"something_new", 7999, "", "event.unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.wantType+"/"+tt.action, func(t *testing.T) {
			body := eventFixture(tt.action, tt.code)
			ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
			if err != nil {
				t.Fatal(err)
			}
			want := providers.Event{
				ID:          digest("event", "f04bdb47-d3be-4b28-b028-a652feb060b5", tt.action, fmt.Sprint(tt.code), "e30122d1-740b-4764-853f-470374a7abf4", ""),
				Type:        tt.wantType,
				ProviderRef: "f04bdb47-d3be-4b28-b028-a652feb060b5",
				UserID:      "user-1",
				Status:      tt.wantStatus,
				// Veriff sends no time with these events: unknown, not our receipt time.
			}
			if diff := cmp.Diff(want, ev); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
	// A "time" field, when Veriff sends one, is the event's time.
	body := `{"id":"f04bdb47-d3be-4b28-b028-a652feb060b5","attemptId":"a","feature":"selfid","code":7002,"action":"submitted","vendorData":"user-1","time":"2023-10-27T10:00:02.998Z"}`
	ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2023, 10, 27, 10, 0, 2, 998_000_000, time.UTC); !ev.OccurredAt.Equal(want) {
		t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
	}
	// The same event redelivered later has the same ID.
	start := eventFixture("started", 7001)
	e1, _ := p.VerifyWebhook(signed(hookSecret, start), []byte(start), received)
	e2, _ := p.VerifyWebhook(signed(hookSecret, start), []byte(start), received.Add(2*time.Hour))
	if e1.ID == "" || e1.ID != e2.ID {
		t.Errorf("redelivered event IDs %q, %q", e1.ID, e2.ID)
	}
}

func TestOtherWebhookAcknowledged(t *testing.T) {
	p := hookProvider()
	body := `{"data":{"verification":{"id":"a1c68aea-7f4d-478d-80ab-ca9356074f69","userDefinedData":{"reason":"Looks like velocity abuse"}}},"time":"2023-10-27T10:00:02.998Z","eventType":"user-status.created"}`
	ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != "" || ev.ID == "" || ev.Type != "other" || ev.ProviderRef != "" {
		t.Errorf("event %+v, want an acknowledged event with no status", ev)
	}
}

func TestMalformedPayloads(t *testing.T) {
	p := hookProvider()
	for name, body := range map[string]string{
		"empty":                 ``,
		"not json":              `approved`,
		"array":                 `[]`,
		"null":                  `null`,
		"string":                `"x"`,
		"trailing data":         `{"action":"started","id":"f04bdb47"} {}`,
		"verification null":     `{"status":"success","verification":null}`,
		"verification string":   `{"verification":"approved"}`,
		"no verification id":    `{"verification":{"status":"approved","code":9001}}`,
		"empty id":              `{"verification":{"id":"","status":"approved"}}`,
		"id with slash":         `{"verification":{"id":"../x","status":"approved"}}`,
		"id number":             `{"verification":{"id":42,"status":"approved"}}`,
		"status number":         `{"verification":{"id":"abc","status":9001}}`,
		"code string":           `{"verification":{"id":"abc","status":"approved","code":"9001"}}`,
		"code fraction":         `{"verification":{"id":"abc","status":"approved","code":9001.5}}`,
		"reasonCode bool":       `{"verification":{"id":"abc","status":"declined","reasonCode":true}}`,
		"reasonCode text":       `{"verification":{"id":"abc","status":"declined","reasonCode":"face"}}`,
		"reasonCode negative":   `{"verification":{"id":"abc","status":"declined","reasonCode":-1}}`,
		"reasonCode float":      `{"verification":{"id":"abc","status":"declined","reasonCode":1.5}}`,
		"decisionTime garbage":  `{"verification":{"id":"abc","status":"approved","decisionTime":"yesterday"}}`,
		"decisionTime number":   `{"verification":{"id":"abc","status":"approved","decisionTime":1700000000}}`,
		"vendorData object":     `{"verification":{"id":"abc","status":"approved","vendorData":{"email":"a@b"}}}`,
		"event without id":      `{"action":"started","code":7001}`,
		"event id number":       `{"id":7,"action":"started","code":7001}`,
		"event action number":   `{"id":"abc","action":7001}`,
		"event code string":     `{"id":"abc","action":"started","code":"7001"}`,
		"event time garbage":    `{"id":"abc","action":"started","time":"soon"}`,
		"vendorData control":    `{"verification":{"id":"abc","status":"approved","vendorData":"user\n1"}}`,
		"event vendorData long": `{"id":"abc","action":"started","vendorData":"` + strings.Repeat("u", 257) + `"}`,
		"too large":             `{"id":"abc","action":"started","pad":"` + strings.Repeat(" ", 1<<20) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := p.VerifyWebhook(signed(hookSecret, body), []byte(body), received)
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("err = %v, event %+v; want ErrMalformedPayload", err, ev)
			}
			if strings.Contains(err.Error(), "a@b") {
				t.Errorf("error quotes the body: %v", err)
			}
		})
	}
}

func upper(h http.Header) http.Header {
	h.Set("X-HMAC-SIGNATURE", strings.ToUpper(h.Get("X-HMAC-SIGNATURE")))
	return h
}

func with(h http.Header, k, v string) http.Header { h.Set(k, v); return h }

func without(h http.Header, k string) http.Header { h.Del(k); return h }
