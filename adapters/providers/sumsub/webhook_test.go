package sumsub

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

const (
	webhookSecret = "whsec-current"
	oldSecret     = "whsec-previous"
)

// Free text from the fixtures that must never reach an Event.
var freeText = []string{
	"We do not accept screenshots",
	"Jane Roe",
	"passport number X1234567",
}

// Payloads shaped like Sumsub's documented webhooks ("Receive results via API", "User
// verification webhooks").
const (
	reviewedGreen = `{
  "applicantId": "5cb56e8e0a975a35f333cb83",
  "inspectionId": "5cb56e8e0a975a35f333cb84",
  "correlationId": "req-a260b669-4f14-4bb5-a4c5-ac0218acb9a4",
  "externalUserId": "user-42",
  "levelName": "id-and-liveness",
  "type": "applicantReviewed",
  "reviewResult": {"reviewAnswer": "GREEN"},
  "reviewStatus": "completed",
  "createdAtMs": "2020-02-21 13:23:19.321",
  "sandboxMode": false
}`
	reviewedRedRetry = `{
  "applicantId": "5cb744200a975a67ed1798a4",
  "inspectionId": "5cb744200a975a67ed1798a5",
  "correlationId": "req-fa94263f-0b23-42d7-9393-ab10b28ef42d",
  "externalUserId": "user-43",
  "levelName": "id-and-liveness",
  "type": "applicantReviewed",
  "reviewResult": {
    "moderationComment": "We do not accept screenshots. Please upload an original photo.",
    "clientComment": "Screenshots are not accepted. Applicant Jane Roe, passport number X1234567.",
    "reviewAnswer": "RED",
    "rejectLabels": ["UNSATISFACTORY_PHOTOS", "SCREENSHOTS"],
    "reviewRejectType": "RETRY",
    "buttonIds": ["badPhoto_screenshot"]
  },
  "reviewStatus": "completed",
  "createdAtMs": "2020-02-21 13:23:19.001",
  "sandboxMode": true
}`
	reviewedRedFinal = `{
  "applicantId": "5cb744200a975a67ed1798a4",
  "inspectionId": "5cb744200a975a67ed1798a5",
  "correlationId": "req-0b9d1a5e-4f4a-4a53-9c61-2f7d3e0c0a11",
  "externalUserId": "user-43",
  "levelName": "id-and-liveness",
  "type": "applicantReviewed",
  "reviewResult": {
    "moderationComment": "We do not accept screenshots",
    "clientComment": "Jane Roe: passport number X1234567 found forged",
    "reviewAnswer": "RED",
    "rejectLabels": ["FORGERY", "SELFIE_MISMATCH", "FORGERY", "Brand-New label!"],
    "reviewRejectType": "FINAL"
  },
  "reviewStatus": "completed",
  "createdAtMs": "2020-02-22 08:00:00.000"
}`
)

func simple(typ, status string) string {
	return fmt.Sprintf(`{"applicantId":"5cb56e8e0a975a35f333cb83","inspectionId":"5cb56e8e0a975a35f333cb84",`+
		`"correlationId":"req-%s","externalUserId":"user-42","levelName":"id-and-liveness","type":%q,`+
		`"reviewStatus":%q,"createdAtMs":"2020-02-21 13:20:00.000","sandboxMode":false}`, typ, typ, status)
}

func signed(alg, secret, body string) http.Header {
	h := http.Header{}
	var a string
	switch alg {
	case AlgSHA1:
		a = providers.SHA1
	case AlgSHA512:
		a = providers.SHA512
	default:
		a = providers.SHA256
	}
	h.Set(HeaderDigest, providers.HexHMAC(a, []byte(secret), []byte(body)))
	if alg != "" {
		h.Set(HeaderDigestAlg, alg)
	}
	return h
}

func webhookProvider() *Provider {
	return New(Config{WebhookSecrets: providers.Secrets{[]byte(webhookSecret), []byte(oldSecret)}})
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestVerifyWebhookAlgorithms(t *testing.T) {
	p := webhookProvider()
	for _, alg := range []string{AlgSHA1, AlgSHA256, AlgSHA512, "", "hmac_sha512_hex"} {
		t.Run("alg="+alg, func(t *testing.T) {
			h := signed(strings.ToUpper(alg), webhookSecret, reviewedGreen)
			if alg != "" {
				h.Set(HeaderDigestAlg, alg) // header value as sent, case preserved
			}
			ev, err := p.VerifyWebhook(h, []byte(reviewedGreen), now)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != store.StatusApproved || ev.ProviderRef != "5cb56e8e0a975a35f333cb83" || ev.UserID != "user-42" {
				t.Errorf("event = %+v", ev)
			}
		})
	}
}

func TestVerifyWebhookRejects(t *testing.T) {
	p := webhookProvider()
	body := reviewedGreen
	changed := []byte(body)
	changed[strings.Index(body, "GREEN")] = 'g'

	sha512Header := signed(AlgSHA512, webhookSecret, body)
	sha512Header.Set(HeaderDigestAlg, AlgSHA256) // digest computed with another algorithm

	tests := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"wrong secret", signed(AlgSHA256, "not-the-secret", body), []byte(body), providers.ErrBadSignature},
		{"changed byte", signed(AlgSHA256, webhookSecret, body), changed, providers.ErrBadSignature},
		{"missing digest", http.Header{HeaderDigestAlg: {AlgSHA256}}, []byte(body), providers.ErrMissingSignature},
		{"blank digest", http.Header{HeaderDigest: {"  "}}, []byte(body), providers.ErrMissingSignature},
		{"unknown alg", func() http.Header {
			h := signed(AlgSHA256, webhookSecret, body)
			h.Set(HeaderDigestAlg, "HMAC_MD5_HEX")
			return h
		}(), []byte(body), providers.ErrBadSignature},
		{"alg mismatch", sha512Header, []byte(body), providers.ErrBadSignature},
		{"not hex", http.Header{HeaderDigest: {"zz"}}, []byte(body), providers.ErrBadSignature},
		{"truncated digest", func() http.Header {
			h := signed(AlgSHA256, webhookSecret, body)
			h.Set(HeaderDigest, h.Get(HeaderDigest)[:32])
			return h
		}(), []byte(body), providers.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := p.VerifyWebhook(tt.h, tt.body, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !cmp.Equal(ev, providers.Event{}) {
				t.Errorf("event returned with error: %+v", ev)
			}
			if strings.Contains(err.Error(), webhookSecret) || strings.Contains(err.Error(), "GREEN") {
				t.Errorf("error quotes a secret or body: %v", err)
			}
		})
	}
}

func TestVerifyWebhookNoSecret(t *testing.T) {
	p := New(Config{})
	_, err := p.VerifyWebhook(signed(AlgSHA256, "", reviewedGreen), []byte(reviewedGreen), now)
	if !errors.Is(err, providers.ErrBadSignature) || !errors.Is(err, providers.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyWebhookRotation(t *testing.T) {
	p := webhookProvider()
	for _, s := range []string{webhookSecret, oldSecret} {
		if _, err := p.VerifyWebhook(signed(AlgSHA256, s, reviewedGreen), []byte(reviewedGreen), now); err != nil {
			t.Errorf("secret %q: %v", s, err)
		}
	}
}

func TestVerifyWebhookReplaySameID(t *testing.T) {
	p := webhookProvider()
	h := signed(AlgSHA256, webhookSecret, reviewedRedRetry)
	a, err := p.VerifyWebhook(h, []byte(reviewedRedRetry), now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.VerifyWebhook(h, []byte(reviewedRedRetry), now.Add(18*time.Hour)) // Sumsub's last retry
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("replay differs (-first +replay):\n%s", d)
	}
	// Same applicant, different event: a different id.
	c, err := p.VerifyWebhook(signed(AlgSHA256, webhookSecret, reviewedRedFinal), []byte(reviewedRedFinal), now)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == a.ID {
		t.Error("two events share an id")
	}
}

func TestVerifyWebhookOutOfOrder(t *testing.T) {
	p := webhookProvider()
	// The final rejection is delivered before the earlier resubmission request.
	final, err := p.VerifyWebhook(signed(AlgSHA256, webhookSecret, reviewedRedFinal), []byte(reviewedRedFinal), now)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := p.VerifyWebhook(signed(AlgSHA256, webhookSecret, reviewedRedRetry), []byte(reviewedRedRetry), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2020, 2, 22, 8, 0, 0, 0, time.UTC); !final.OccurredAt.Equal(want) {
		t.Errorf("final OccurredAt = %v, want %v", final.OccurredAt, want)
	}
	if want := time.Date(2020, 2, 21, 13, 23, 19, 1e6, time.UTC); !retry.OccurredAt.Equal(want) {
		t.Errorf("retry OccurredAt = %v, want %v", retry.OccurredAt, want)
	}
	if !retry.OccurredAt.Before(final.OccurredAt) {
		t.Error("the earlier event does not sort before the later one")
	}
}

func TestWebhookMapping(t *testing.T) {
	p := webhookProvider()
	green := time.Date(2020, 2, 21, 13, 23, 19, 321e6, time.UTC)
	other := time.Date(2020, 2, 21, 13, 20, 0, 0, time.UTC)
	tests := []struct {
		name, body string
		want       providers.Event
	}{
		{"reviewed green", reviewedGreen, providers.Event{Type: "applicantReviewed", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Status: store.StatusApproved, OccurredAt: green}},
		{"reviewed red retry", reviewedRedRetry, providers.Event{Type: "applicantReviewed", ProviderRef: "5cb744200a975a67ed1798a4", UserID: "user-43",
			Status: store.StatusNeedsResubmission, ReasonCodes: []string{"DOCUMENT_IMAGE_QUALITY", "DOCUMENT_SCREENSHOT"}, OccurredAt: time.Date(2020, 2, 21, 13, 23, 19, 1e6, time.UTC)}},
		{"reviewed red final", reviewedRedFinal, providers.Event{Type: "applicantReviewed", ProviderRef: "5cb744200a975a67ed1798a4", UserID: "user-43",
			Status: store.StatusRejected, ReasonCodes: []string{"DOCUMENT_FORGERY", "FACE_MISMATCH", "SUMSUB_BRAND_NEW_LABEL"}, OccurredAt: time.Date(2020, 2, 22, 8, 0, 0, 0, time.UTC)}},
		{"reviewed red no type", strings.Replace(reviewedRedFinal, `"reviewRejectType": "FINAL"`, `"reviewRejectType": ""`, 1),
			providers.Event{Type: "applicantReviewed", ProviderRef: "5cb744200a975a67ed1798a4", UserID: "user-43",
				Status: store.StatusPendingReview, ReasonCodes: []string{"DOCUMENT_FORGERY", "FACE_MISMATCH", "SUMSUB_BRAND_NEW_LABEL"}, OccurredAt: time.Date(2020, 2, 22, 8, 0, 0, 0, time.UTC)}},
		{"reviewed no answer", simple("applicantReviewed", "completed"), providers.Event{Type: "applicantReviewed", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Fetch: true, OccurredAt: other}},
		{"created", simple("applicantCreated", "init"), providers.Event{Type: "applicantCreated", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Status: store.StatusInitiated, OccurredAt: other}},
		{"pending", simple("applicantPending", "pending"), providers.Event{Type: "applicantPending", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Status: store.StatusSubmitted, OccurredAt: other}},
		{"prechecked", simple("applicantPrechecked", "prechecked"), providers.Event{Type: "applicantPrechecked", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Status: store.StatusSubmitted, OccurredAt: other}},
		{"on hold", simple("applicantOnHold", "onHold"), providers.Event{Type: "applicantOnHold", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", Status: store.StatusPendingReview, OccurredAt: other}},
		{"reset", simple("applicantReset", "init"), providers.Event{Type: "applicantReset", ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42",
			Status: store.StatusNeedsResubmission, ReasonCodes: []string{"APPLICANT_RESET"}, OccurredAt: other}},
	}
	for _, typ := range []string{"applicantPersonalInfoChanged", "applicantActionPending", "applicantActionReviewed",
		"applicantActionOnHold", "applicantTagsChanged", "applicantLevelChanged", "applicantActivated", "applicantDeactivated",
		"applicantDeleted", "applicantWorkflowCompleted", "videoIdentStatusChanged", "somethingNew"} {
		tests = append(tests, struct {
			name, body string
			want       providers.Event
		}{typ, simple(typ, "init"), providers.Event{Type: typ, ProviderRef: "5cb56e8e0a975a35f333cb83", UserID: "user-42", OccurredAt: other}})
	}
	ids := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.VerifyWebhook(signed(AlgSHA256, webhookSecret, tt.body), []byte(tt.body), now)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.ID) != 64 {
				t.Errorf("ID = %q", got.ID)
			}
			if prev, dup := ids[got.ID]; dup {
				t.Errorf("ID shared with %s", prev)
			}
			ids[got.ID] = tt.name
			if d := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(providers.Event{}, "ID")); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			dump := fmt.Sprintf("%+v", got)
			for _, s := range freeText {
				if strings.Contains(dump, s) {
					t.Errorf("event carries free text %q: %s", s, dump)
				}
			}
		})
	}
}

// TestWebhookMissingCreatedAtIsUndated: an event without Sumsub's time is not dated by our
// clock, which would make a later delivery of an earlier-dated result look stale.
func TestWebhookMissingCreatedAtIsUndated(t *testing.T) {
	body := `{"applicantId":"a1","type":"applicantPending","reviewStatus":"pending"}`
	ev, err := webhookProvider().VerifyWebhook(signed(AlgSHA256, webhookSecret, body), []byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.OccurredAt.IsZero() || ev.UserID != "" {
		t.Errorf("event = %+v", ev)
	}
}

func TestWebhookMalformed(t *testing.T) {
	p := webhookProvider()
	bodies := map[string]string{
		"not json":               `{"applicantId":`,
		"array":                  `[]`,
		"null":                   `null`,
		"empty":                  ``,
		"trailing data":          reviewedGreen + `{}`,
		"missing applicantId":    `{"type":"applicantPending","createdAtMs":"2020-02-21 13:23:19.321"}`,
		"missing type":           `{"applicantId":"a1","createdAtMs":"2020-02-21 13:23:19.321"}`,
		"applicantId number":     `{"applicantId":5,"type":"applicantPending"}`,
		"type object":            `{"applicantId":"a1","type":{}}`,
		"reviewResult string":    `{"applicantId":"a1","type":"applicantReviewed","reviewResult":"GREEN"}`,
		"rejectLabels string":    `{"applicantId":"a1","type":"applicantReviewed","reviewResult":{"reviewAnswer":"RED","rejectLabels":"FORGERY"}}`,
		"sandboxMode string":     `{"applicantId":"a1","type":"applicantPending","sandboxMode":"yes"}`,
		"createdAtMs number":     `{"applicantId":"a1","type":"applicantPending","createdAtMs":1582291399321}`,
		"createdAtMs iso":        `{"applicantId":"a1","type":"applicantPending","createdAtMs":"2020-02-21T13:23:19Z"}`,
		"createdAtMs bad month":  `{"applicantId":"a1","type":"applicantPending","createdAtMs":"2020-13-21 13:23:19.321"}`,
		"control char in id":     `{"applicantId":"a\u0000b","type":"applicantPending"}`,
		"invalid utf8 in user":   "{\"applicantId\":\"a1\",\"type\":\"applicantPending\",\"externalUserId\":\"\xff\"}",
		"applicantId too long":   `{"applicantId":"` + strings.Repeat("a", 300) + `","type":"applicantPending"}`,
		"correlationId too long": `{"applicantId":"a1","type":"applicantPending","correlationId":"` + strings.Repeat("c", 300) + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			_, err := p.VerifyWebhook(signed(AlgSHA256, webhookSecret, body), []byte(body), now)
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("err = %v, want ErrMalformedPayload", err)
			}
			if len(body) > 2 && strings.Contains(err.Error(), body) {
				t.Errorf("error quotes the body")
			}
		})
	}
}

func TestReasonCodes(t *testing.T) {
	got := reasonCodes([]string{"FORGERY", "DOCUMENT_TEMPLATE", " ", "weird label/ü", "BAD_PROOF_OF_IDENTITY", "DOCUMENT_PAGE_MISSING", "OTHER", "___"})
	want := []string{"DOCUMENT_FORGERY", "SUMSUB_WEIRD_LABEL", "BAD_PROOF_OF_IDENTITY", "DOCUMENT_PAGE_MISSING", "SUMSUB_OTHER"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("L%d", i)
	}
	if n := len(reasonCodes(many)); n != maxReasonCodes {
		t.Errorf("%d codes, want %d", n, maxReasonCodes)
	}
	for label, code := range labelCodes {
		if !validCode(code) {
			t.Errorf("%s → %q is not UPPER_SNAKE", label, code)
		}
	}
	if labelCode(strings.Repeat("x", 500)) != "SUMSUB_"+strings.Repeat("X", maxLabelLen) {
		t.Error("long label not truncated")
	}
	if !slices.Equal(reasonCodes(nil), nil) {
		t.Error("nil labels")
	}
}

func validCode(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func TestParseCreatedAt(t *testing.T) {
	for s, want := range map[string]time.Time{
		"2021-05-14 16:00:25.032": time.Date(2021, 5, 14, 16, 0, 25, 32e6, time.UTC),
		"2021-05-14 16:00:25":     time.Date(2021, 5, 14, 16, 0, 25, 0, time.UTC),
		"2021-05-14 16:00:25.5":   time.Date(2021, 5, 14, 16, 0, 25, 5e8, time.UTC),
	} {
		got, err := parseCreatedAt(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%q: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2021-05-14", "2021-05-14T16:00:25.032Z", "2021-05-14 16:00:25.032+0100", "2021-02-30 00:00:00.000", " 2021-05-14 16:00:25.032"} {
		if _, err := parseCreatedAt(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}
