package persona

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

const (
	testKey      = "persona_sandbox_test_key"
	testTemplate = "itmpl_Ygs16MKTkA6obnF8C3Rb17dm"
	testInquiry  = "inq_2CVZ4HyVg7qaboXz2PUHknAn"
)

// fakePersona is a local server speaking the part of Persona's API the adapter uses. Each
// request is checked for the headers every Persona call needs; handle answers it.
type fakePersona struct {
	t      *testing.T
	mu     sync.Mutex
	reqs   []recorded
	handle func(w http.ResponseWriter, r *http.Request, n int, body []byte)
}

type recorded struct {
	method, path, idem string
	body               []byte
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int, body []byte)) (*fakePersona, *httptest.Server) {
	t.Helper()
	f := &fakePersona{t: t, handle: handle}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for h, want := range map[string]string{
			"Authorization":   "Bearer " + testKey,
			"Persona-Version": DefaultAPIVersion,
			"Key-Inflection":  "kebab",
			"Accept":          "application/json",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.URL.Path, h, got, want)
			}
		}
		if len(body) > 0 && r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type = %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), body})
		n := len(f.reqs)
		f.mu.Unlock()
		f.handle(w, r, n, body)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakePersona) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func newTestProvider(srv *httptest.Server, mod ...func(*Config)) *Provider {
	c := Config{
		BaseURL:    srv.URL,
		APIKey:     testKey,
		TemplateID: testTemplate,
		Backoff:    time.Millisecond,
		Timeout:    2 * time.Second,
		HTTPClient: srv.Client(),
	}
	for _, m := range mod {
		m(&c)
	}
	return New(c)
}

func writeJSON(w http.ResponseWriter, status int, v string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, v)
}

// inquiryJSON is an inquiry answer shaped like Persona's reference, PII included.
func inquiryJSON(status string, extra string) string {
	return `{"data": {"type": "inquiry", "id": "` + testInquiry + `", "attributes": {
		"status": "` + status + `", "reference-id": "usr_42", "name-first": "Alexander",
		"name-last": "Sample", "birthdate": "1977-08-31", "address-street-1": "600 California St",
		"created-at": "2024-03-15T18:30:00.000Z", "updated-at": "2024-03-15T18:40:00.000Z",
		"started-at": "2024-03-15T18:31:00.000Z", "completed-at": "2024-03-15T18:34:00.000Z",
		"failed-at": null, "expired-at": "2024-03-16T18:30:00.000Z",
		"marked-for-review-at": "2024-03-15T18:36:00.000Z", "decisioned-at": "2024-03-15T18:35:00.000Z"},
		"relationships": {"inquiry-template": {"data": {"type": "inquiry-template", "id": "` + testTemplate + `"}}}}` + extra + `}`
}

func TestStartCreatesInquiry(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/inquiries" {
			t.Errorf("got %s %s, want POST /inquiries", r.Method, r.URL.Path)
		}
		writeJSON(w, http.StatusCreated, inquiryJSON("created", `, "meta": {"session-token": "sess_tok_1"}`))
	})
	p := newTestProvider(srv)
	s, err := p.Start(context.Background(), providers.StartRequest{
		VerificationID: "ver_1", UserID: "usr_42", IdempotencyKey: "idem-1", Locale: "en-US", CallbackURL: "https://example.test/hook",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Session{
		ProviderRef: testInquiry,
		ClientURL:   "https://withpersona.com/verify?inquiry-id=" + testInquiry + "&session-token=sess_tok_1",
		ClientToken: "sess_tok_1",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if reqs[0].idem != "idem-1" {
		t.Errorf("Idempotency-Key = %q", reqs[0].idem)
	}
	// Exactly the JSON:API document of the reference, and nothing personal.
	var got any
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatal(err)
	}
	wantBody := map[string]any{"data": map[string]any{"attributes": map[string]any{
		"inquiry-template-id": testTemplate, "reference-id": "usr_42",
	}}}
	if diff := cmp.Diff(wantBody, got); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
}

func TestStartWithoutSessionTokenAndTemplateKinds(t *testing.T) {
	for _, tc := range []struct{ template, attr string }{
		{"itmpl_abc", "inquiry-template-id"},
		{"itmplv_abc", "inquiry-template-version-id"},
		{"tmpl_abc", "template-id"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				writeJSON(w, http.StatusCreated, inquiryJSON("created", ""))
			})
			p := newTestProvider(srv, func(c *Config) { c.TemplateID = tc.template; c.HostedFlowURL = "https://verify.example.test/verify" })
			s, err := p.Start(context.Background(), providers.StartRequest{VerificationID: "ver_9", UserID: "usr_42"})
			if err != nil {
				t.Fatal(err)
			}
			if s.ClientToken != "" || s.ClientURL != "https://verify.example.test/verify?inquiry-id="+testInquiry {
				t.Errorf("session = %+v", s)
			}
			req := f.requests()[0]
			if req.idem != "verdict-start-ver_9" {
				t.Errorf("derived Idempotency-Key = %q", req.idem)
			}
			var doc struct {
				Data struct {
					Attributes map[string]string `json:"attributes"`
				} `json:"data"`
			}
			if err := json.Unmarshal(req.body, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Data.Attributes[tc.attr] != tc.template || len(doc.Data.Attributes) != 2 {
				t.Errorf("attributes = %v, want %s", doc.Data.Attributes, tc.attr)
			}
		})
	}
}

func TestStartRetriesWithSameIdempotencyKey(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		switch n {
		case 1:
			writeJSON(w, http.StatusInternalServerError, `{"errors": [{"title": "oops"}]}`)
		case 2:
			writeJSON(w, http.StatusServiceUnavailable, `{}`)
		default:
			writeJSON(w, http.StatusCreated, inquiryJSON("created", ""))
		}
	})
	p := newTestProvider(srv)
	s, err := p.Start(context.Background(), providers.StartRequest{UserID: "usr_42", IdempotencyKey: "idem-retry"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ProviderRef != testInquiry {
		t.Errorf("ProviderRef = %q", s.ProviderRef)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.idem != "idem-retry" || string(r.body) != string(reqs[0].body) {
			t.Errorf("attempt %d: key %q body %s", i+1, r.idem, r.body)
		}
	}
}

func TestStartRandomIdempotencyKeyStableAcrossRetries(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		if n == 1 {
			writeJSON(w, http.StatusBadGateway, `{}`)
			return
		}
		writeJSON(w, http.StatusCreated, inquiryJSON("created", ""))
	})
	if _, err := newTestProvider(srv).Start(context.Background(), providers.StartRequest{UserID: "usr_42"}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[0].idem == "" || reqs[0].idem != reqs[1].idem {
		t.Errorf("keys = %q, %q", reqs[0].idem, reqs[len(reqs)-1].idem)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 404, 409, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				// Persona's error bodies can echo input; the error must not quote them.
				writeJSON(w, code, `{"errors": [{"title": "Alexander Sample"}]}`)
			})
			_, err := newTestProvider(srv).Start(context.Background(), providers.StartRequest{UserID: "usr_42", IdempotencyKey: "k"})
			var apiErr *providers.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != code || apiErr.Provider != "persona" {
				t.Fatalf("err = %v, want *providers.APIError %d", err, code)
			}
			if strings.Contains(err.Error(), "Alexander") {
				t.Errorf("error quotes the body: %v", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestStartMalformedAnswer(t *testing.T) {
	for name, answer := range map[string]string{
		"not json":  `<html>`,
		"no id":     `{"data": {"type": "inquiry", "attributes": {"status": "created"}}}`,
		"other":     `{"data": {"type": "account", "id": "act_1"}}`,
		"id number": `{"data": {"type": "inquiry", "id": 12}}`,
		"array":     `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				writeJSON(w, http.StatusCreated, answer)
			})
			_, err := newTestProvider(srv).Start(context.Background(), providers.StartRequest{UserID: "usr_42", IdempotencyKey: "k"})
			if err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestNotConfigured(t *testing.T) {
	p := New(Config{TemplateID: testTemplate})
	ctx := context.Background()
	if _, err := p.Start(ctx, providers.StartRequest{UserID: "u"}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Start: %v", err)
	}
	if _, err := p.Status(ctx, testInquiry); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Status: %v", err)
	}
	if err := p.Cancel(ctx, testInquiry); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Cancel: %v", err)
	}
	if _, err := New(Config{APIKey: "k"}).Start(ctx, providers.StartRequest{UserID: "u"}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Start without template: %v", err)
	}
}

func TestInvalidRefNeverReachesPersona(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, inquiryJSON("created", ""))
	})
	p := newTestProvider(srv)
	for _, ref := range []string{"", "../accounts", "inq_1/expire", "inq 1", "inq_1?x=1"} {
		if _, err := p.Status(context.Background(), ref); err == nil {
			t.Errorf("Status(%q): no error", ref)
		}
		if err := p.Cancel(context.Background(), ref); err == nil {
			t.Errorf("Cancel(%q): no error", ref)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestStatusMapsEveryDocumentedStatus(t *testing.T) {
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	failedChecks := `, "included": [
		{"type": "verification/government-id", "id": "ver_1", "attributes": {"status": "failed",
		 "name-first": "Alexander", "checks": [
		  {"name": "id_expired", "status": "failed", "reasons": ["expired"], "metadata": {"birthdate": "1977-08-31"}},
		  {"name": "id-extraction-inconsistency-detection", "status": "failed", "reasons": []},
		  {"name": "id_barcode_detection", "status": "not_applicable"},
		  {"name": "id_po_box_detection", "status": "passed"}]}},
		{"type": "verification/selfie", "id": "ver_2", "attributes": {"status": "passed",
		 "checks": [{"name": "selfie_liveness_detection", "status": "failed"}]}}]`
	for _, tc := range []struct {
		status, extra string
		approve       bool
		want          providers.Update
	}{
		{"created", "", false, providers.Update{Status: store.StatusInitiated, OccurredAt: ts("2024-03-15T18:30:00Z")}},
		{"pending", "", false, providers.Update{Status: store.StatusCapturing, OccurredAt: ts("2024-03-15T18:31:00Z")}},
		{"completed", "", false, providers.Update{Status: store.StatusSubmitted, OccurredAt: ts("2024-03-15T18:34:00Z")}},
		{"completed", "", true, providers.Update{Status: store.StatusApproved, OccurredAt: ts("2024-03-15T18:34:00Z")}},
		// failed-at is null in the fixture: updated-at dates it.
		{"failed", "", false, providers.Update{Status: store.StatusPendingReview, ReasonCodes: []string{"INQUIRY_FAILED"}, OccurredAt: ts("2024-03-15T18:40:00Z")}},
		{"failed", "", true, providers.Update{Status: store.StatusRejected, ReasonCodes: []string{"INQUIRY_FAILED"}, OccurredAt: ts("2024-03-15T18:40:00Z")}},
		{"expired", "", false, providers.Update{Status: store.StatusExpired, ReasonCodes: []string{"INQUIRY_EXPIRED"}, OccurredAt: ts("2024-03-16T18:30:00Z")}},
		{"needs_review", "", false, providers.Update{Status: store.StatusPendingReview, ReasonCodes: []string{"INQUIRY_MARKED_FOR_REVIEW"}, OccurredAt: ts("2024-03-15T18:36:00Z")}},
		{"approved", failedChecks, false, providers.Update{Status: store.StatusApproved, OccurredAt: ts("2024-03-15T18:35:00Z")}},
		{"declined", "", false, providers.Update{Status: store.StatusRejected, ReasonCodes: []string{"INQUIRY_DECLINED"}, OccurredAt: ts("2024-03-15T18:35:00Z")}},
		{"declined", failedChecks, false, providers.Update{Status: store.StatusRejected, ReasonCodes: []string{"ID_EXPIRED", "ID_EXTRACTION_INCONSISTENCY_DETECTION"}, OccurredAt: ts("2024-03-15T18:35:00Z")}},
		{"some_future_status", "", false, providers.Update{OccurredAt: ts("2024-03-15T18:40:00Z")}},
	} {
		t.Run(fmt.Sprintf("%s/%v/%d", tc.status, tc.approve, len(tc.extra)), func(t *testing.T) {
			_, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
				if r.Method != http.MethodGet || r.URL.Path != "/inquiries/"+testInquiry || r.Header.Get("Idempotency-Key") != "" || len(body) != 0 {
					t.Errorf("got %s %s key %q body %q", r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), body)
				}
				writeJSON(w, 200, inquiryJSON(tc.status, tc.extra))
			})
			p := newTestProvider(srv, func(c *Config) { c.ApproveOnCompleted = tc.approve })
			got, err := p.Status(context.Background(), testInquiry)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.ProviderRef = testInquiry
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if s := fmt.Sprintf("%+v", got); containsAny(s, pii...) {
				t.Errorf("update carries personal data: %s", s)
			}
		})
	}
}

func TestStatusReadsOtherKeyInflections(t *testing.T) {
	_, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, `{"data": {"type": "inquiry", "id": "`+testInquiry+`", "attributes": {
			"status": "approved", "referenceId": "usr_42", "decisionedAt": "2024-03-15T18:35:00.000Z"}}}`)
	})
	got, err := newTestProvider(srv).Status(context.Background(), testInquiry)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusApproved || got.OccurredAt.IsZero() {
		t.Errorf("update = %+v", got)
	}
}

func TestStatusRejectsAnswerAboutAnotherInquiry(t *testing.T) {
	_, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, strings.Replace(inquiryJSON("approved", ""), testInquiry, "inq_other", 1))
	})
	if _, err := newTestProvider(srv).Status(context.Background(), testInquiry); !errors.Is(err, providers.ErrMalformedPayload) {
		t.Errorf("err = %v", err)
	}
}

func TestCancelExpiresInquiry(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, inquiryJSON("expired", ""))
	})
	if err := newTestProvider(srv).Cancel(context.Background(), testInquiry); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/inquiries/"+testInquiry+"/expire" {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestResumeReturnsSessionToken(t *testing.T) {
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, 200, inquiryJSON("pending", `, "meta": {"session-token": "tok/+="}`))
	})
	s, err := newTestProvider(srv).Resume(context.Background(), testInquiry)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Session{
		ProviderRef: testInquiry,
		ClientURL:   "https://withpersona.com/verify?inquiry-id=" + testInquiry + "&session-token=tok%2F%2B%3D",
		ClientToken: "tok/+=",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if r := f.requests()[0]; r.method != http.MethodPost || r.path != "/inquiries/"+testInquiry+"/resume" {
		t.Errorf("request = %+v", r)
	}
}

func TestTimeoutHonoured(t *testing.T) {
	release := make(chan struct{})
	f, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := newTestProvider(srv, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.Retries = 1 })
	start := time.Now()
	_, err := p.Status(context.Background(), testInquiry)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d attempts, want 2 (a timeout is retried)", n)
	}
}

func TestCallerCancellation(t *testing.T) {
	_, srv := newFake(t, func(w http.ResponseWriter, r *http.Request, n int, body []byte) {
		writeJSON(w, http.StatusServiceUnavailable, `{}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	p := newTestProvider(srv, func(c *Config) { c.Backoff = time.Second })
	start := time.Now()
	if _, err := p.Status(ctx, testInquiry); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("took %s", d)
	}
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	p, err := FromEnv(env())
	if p != nil || err != nil {
		t.Errorf("empty env: %v, %v", p, err)
	}
	// Settings of a Persona that is not enabled are refused, not ignored.
	p, err = FromEnv(env(EnvBaseURL, "https://x.test", EnvTemplateID, testTemplate))
	if p != nil || err == nil || !strings.Contains(err.Error(), "Persona is not enabled") {
		t.Errorf("no secret nor key: %v, %v", p, err)
	}
	if p, err = FromEnv(env(EnvWebhookSecret, ",,,")); p != nil || err == nil {
		t.Errorf("a secret list with no secret: %v, %v", p, err)
	}

	p, err = FromEnv(env(EnvWebhookSecret, " wbhsec_new , wbhsec_old "))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(providers.Secrets{[]byte("wbhsec_new"), []byte("wbhsec_old")}, p.cfg.WebhookSecrets); diff != "" {
		t.Errorf("secrets: %s", diff)
	}
	if p.cfg.BaseURL != DefaultBaseURL || p.cfg.Tolerance != DefaultTolerance || p.Name() != "persona" {
		t.Errorf("defaults: %+v", p.cfg)
	}

	p, err = FromEnv(env(EnvAPIKey, "k1", EnvTemplateID, testTemplate, EnvBaseURL, "http://127.0.0.1:9/api/v1/"))
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.BaseURL != "http://127.0.0.1:9/api/v1" || p.cfg.APIKey != "k1" || p.cfg.TemplateID != testTemplate {
		t.Errorf("cfg = %+v", p.cfg)
	}

	for name, e := range map[string]func(string) string{
		"three secrets":     env(EnvWebhookSecret, "a,b,c"),
		"secret with space": env(EnvWebhookSecret, "a b"),
		"key with space":    env(EnvAPIKey, "k 1", EnvTemplateID, testTemplate),
		"key no template":   env(EnvAPIKey, "k1"),
		"bad template":      env(EnvAPIKey, "k1", EnvTemplateID, "itmpl/../x"),
		"relative URL":      env(EnvAPIKey, "k1", EnvTemplateID, testTemplate, EnvBaseURL, "/api/v1"),
		"ftp URL":           env(EnvWebhookSecret, "s", EnvBaseURL, "ftp://x.test"),
		"URL with query":    env(EnvWebhookSecret, "s", EnvBaseURL, "https://x.test/?a=b"),
		"unparsable URL":    env(EnvWebhookSecret, "s", EnvBaseURL, "https://x.test/%zz"),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := FromEnv(e)
			if err == nil || p != nil {
				t.Fatalf("FromEnv = %v, %v; want an error", p, err)
			}
			for _, secret := range []string{"k 1", "a b", "a,b,c"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes a value: %v", err)
				}
			}
		})
	}
}

func TestStatusTables(t *testing.T) {
	for name, want := range map[string]string{
		"inquiry.created": store.StatusInitiated, "inquiry.started": store.StatusCapturing,
		"inquiry.completed": store.StatusSubmitted, "inquiry.failed": store.StatusPendingReview,
		"inquiry.expired": store.StatusExpired, "inquiry.marked-for-review": store.StatusPendingReview,
		"inquiry.approved": store.StatusApproved, "inquiry.declined": store.StatusRejected,
		"inquiry.transitioned": "", "inquiry.redacted": "", "inquiry.updated-tags": "",
		"verification.passed": "", "account.created": "", "": "",
	} {
		if got := StatusFromEvent(name, false); got != want {
			t.Errorf("StatusFromEvent(%q) = %q, want %q", name, got, want)
		}
		if got := StatusFromEvent(name, false); got != "" && !store.ValidStatus(got) {
			t.Errorf("%q maps to non-canonical %q", name, got)
		}
	}
	if got := StatusFromEvent("inquiry.completed", true); got != store.StatusApproved {
		t.Errorf("completed with ApproveOnCompleted = %q", got)
	}
	if got := StatusFromEvent("inquiry.failed", true); got != store.StatusRejected {
		t.Errorf("failed with ApproveOnCompleted = %q", got)
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		"id_expired":                            "ID_EXPIRED",
		"id-extraction-inconsistency-detection": "ID_EXTRACTION_INCONSISTENCY_DETECTION",
		"  selfie  liveness--detection ":        "SELFIE_LIVENESS_DETECTION",
		"Ünïcode name":                          "N_CODE_NAME",
		"---":                                   "",
	} {
		if got := normalizeCode(in); got != want {
			t.Errorf("normalizeCode(%q) = %q, want %q", in, got, want)
		}
	}
	long := normalizeCode(strings.Repeat("ab_", 40))
	if len(long) > maxCodeLen || !strings.HasPrefix(long, "AB_AB_") || strings.HasSuffix(long, "_") {
		t.Errorf("long code = %q", long)
	}
}
