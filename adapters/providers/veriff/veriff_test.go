package veriff

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

const (
	testAPIKey  = "api-key-1"
	testShared  = "shared-secret-1"
	testSession = "12df6045-3846-3e45-946a-14fa6136d78b"
)

// fakeVeriff speaks the part of Veriff's API the adapter uses, checking authentication as
// Veriff documents it: X-AUTH-CLIENT is the API key; X-HMAC-SIGNATURE is the hex
// HMAC-SHA256 under the shared secret of the body (POST) or of the session id (GET).
type fakeVeriff struct {
	t *testing.T
	// create answers POST /v1/sessions; nil: 201 with a session.
	create func(attempt int, body map[string]any) (int, string)
	// decision answers GET /v1/sessions/{id}/decision.
	decision func(id string) (int, string)
	delay    time.Duration

	mu       sync.Mutex
	creates  int
	gets     int
	authFail []string
	bodies   []string
	idemKeys []string
}

func (f *fakeVeriff) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // read first: the server notices a gone client only after the body
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	fail := func(why string) {
		f.mu.Lock()
		f.authFail = append(f.authFail, why)
		f.mu.Unlock()
		http.Error(w, `{"status":"fail","code":"1102","message":"Mandatory X-HMAC-SIGNATURE header containing the SHA256 hash of the payload."}`, http.StatusUnauthorized)
	}
	if r.Header.Get("X-AUTH-CLIENT") != testAPIKey {
		fail("x-auth-client")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/sessions":
		if r.Header.Get("Content-Type") != "application/json" {
			fail("content-type")
			return
		}
		if got := r.Header.Get("X-HMAC-SIGNATURE"); got != providers.HexHMAC(providers.SHA256, []byte(testShared), body) {
			fail("signature of body")
			return
		}
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.creates++
		n := f.creates
		f.bodies = append(f.bodies, string(body))
		f.idemKeys = append(f.idemKeys, r.Header.Get("Idempotency-Key"))
		f.mu.Unlock()
		status, out := http.StatusCreated, `{"status":"success","verification":{"id":"`+testSession+`","url":"https://alchemy.veriff.com/v/sometoken","vendorData":"user-1","host":"https://alchemy.veriff.com","status":"created","sessionToken":"sometoken"}}`
		if f.create != nil {
			status, out = f.create(n, in)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, out)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/sessions/") && strings.HasSuffix(r.URL.Path, "/decision"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/sessions/"), "/decision")
		if got := r.Header.Get("X-HMAC-SIGNATURE"); got != providers.HexHMAC(providers.SHA256, []byte(testShared), []byte(id)) {
			fail("signature of session id")
			return
		}
		f.mu.Lock()
		f.gets++
		f.mu.Unlock()
		status, out := f.decision(id)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, out)
	default:
		http.NotFound(w, r)
	}
}

func newFake(t *testing.T, f *fakeVeriff) (*Provider, *fakeVeriff) {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p := New(Config{
		BaseURL:        srv.URL,
		APIKey:         testAPIKey,
		SharedSecret:   testShared,
		WebhookSecrets: providers.Secrets{[]byte(testShared)},
		CallbackURL:    "https://app.example.com/verified",
		Timeout:        2 * time.Second,
		Backoff:        time.Millisecond,
	})
	return p, f
}

func TestStart(t *testing.T) {
	p, f := newFake(t, &fakeVeriff{})
	s, err := p.Start(context.Background(), providers.StartRequest{
		VerificationID: "ver_1", UserID: "user-1", IdempotencyKey: "idem-1",
		CallbackURL: "https://verdict.example.com/v1/webhooks/veriff",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Session{ProviderRef: testSession, ClientURL: "https://alchemy.veriff.com/v/sometoken", ClientToken: "sometoken"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if len(f.authFail) > 0 {
		t.Errorf("auth failures at the fake: %v", f.authFail)
	}
	if len(f.idemKeys) != 1 || f.idemKeys[0] != "" {
		t.Errorf("Idempotency-Key headers %q: Veriff documents none, so none is sent", f.idemKeys)
	}
	// Only the redirect URL and our user id: no person data, no webhook URL.
	wantBody := `{"verification":{"callback":"https://app.example.com/verified","vendorData":"user-1"}}`
	if len(f.bodies) != 1 || f.bodies[0] != wantBody {
		t.Errorf("request bodies = %q, want [%q]", f.bodies, wantBody)
	}
}

func TestStartRetries5xx(t *testing.T) {
	p, f := newFake(t, &fakeVeriff{create: func(attempt int, _ map[string]any) (int, string) {
		if attempt == 1 {
			return http.StatusInternalServerError, `{"status":"fail"}`
		}
		return http.StatusCreated, `{"status":"success","verification":{"id":"` + testSession + `","url":"https://u","sessionToken":"tok"}}`
	}})
	s, err := p.Start(context.Background(), providers.StartRequest{UserID: "user-1", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ProviderRef != testSession || f.creates != 2 {
		t.Errorf("ref %q after %d attempts, want %q after 2", s.ProviderRef, f.creates, testSession)
	}
}

func TestStart4xxNotRetried(t *testing.T) {
	p, f := newFake(t, &fakeVeriff{create: func(int, map[string]any) (int, string) {
		return http.StatusBadRequest, `{"status":"fail","code":"1104","message":"Request includes invalid parameters: person.firstName MORGAN"}`
	}})
	_, err := p.Start(context.Background(), providers.StartRequest{UserID: "user-1"})
	var apiErr *providers.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Provider != "veriff" {
		t.Fatalf("err = %v, want *providers.APIError 400", err)
	}
	if strings.Contains(err.Error(), "MORGAN") {
		t.Errorf("error quotes the vendor's body: %v", err)
	}
	if f.creates != 1 {
		t.Errorf("%d attempts, want 1", f.creates)
	}
}

func TestStartBadAnswer(t *testing.T) {
	p, _ := newFake(t, &fakeVeriff{create: func(int, map[string]any) (int, string) {
		return http.StatusCreated, `{"status":"success","verification":{"id":"../other"}}`
	}})
	if _, err := p.Start(context.Background(), providers.StartRequest{UserID: "u"}); !errors.Is(err, providers.ErrMalformedPayload) {
		t.Fatalf("err = %v, want ErrMalformedPayload", err)
	}
}

func TestWrongCredentialsRejectedByFake(t *testing.T) {
	f := &fakeVeriff{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p := New(Config{BaseURL: srv.URL, APIKey: testAPIKey, SharedSecret: "not-the-secret", Backoff: time.Millisecond})
	_, err := p.Start(context.Background(), providers.StartRequest{UserID: "u"})
	var apiErr *providers.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want 401 from a wrong signature", err)
	}
}

func TestNotConfigured(t *testing.T) {
	p := New(Config{WebhookSecrets: providers.Secrets{[]byte("s")}})
	if _, err := p.Start(context.Background(), providers.StartRequest{UserID: "u"}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Start: %v, want ErrNotConfigured", err)
	}
	if _, err := p.Status(context.Background(), testSession); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Status: %v, want ErrNotConfigured", err)
	}
	// An API key without a shared secret cannot sign a GET.
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	p = New(Config{BaseURL: srv.URL, APIKey: testAPIKey})
	if _, err := p.Status(context.Background(), testSession); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Status without shared secret: %v, want ErrNotConfigured", err)
	}
	if err := p.Cancel(context.Background(), testSession); err != nil {
		t.Errorf("Cancel: %v", err)
	}
}

func TestStatus(t *testing.T) {
	decisionAt := "2019-11-06T07:18:36.916Z"
	tests := []struct {
		name   string
		answer string
		want   providers.Update
	}{
		{"no decision yet", `{"status":"success","verification":null}`,
			providers.Update{ProviderRef: testSession}},
		{"approved", decisionAnswer("approved", 9001, "null"),
			providers.Update{ProviderRef: testSession, Status: store.StatusApproved, OccurredAt: mustTime(decisionAt)}},
		{"declined", decisionAnswer("declined", 9102, "103"),
			providers.Update{ProviderRef: testSession, Status: store.StatusRejected, ReasonCodes: []string{"FACE_MISMATCH"}, OccurredAt: mustTime(decisionAt)}},
		{"resubmission", decisionAnswer("resubmission_requested", 9103, "207"),
			providers.Update{ProviderRef: testSession, Status: store.StatusNeedsResubmission, ReasonCodes: []string{"DOCUMENT_EXPIRED"}, OccurredAt: mustTime(decisionAt)}},
		{"expired", decisionAnswer("expired", 9104, "null"),
			providers.Update{ProviderRef: testSession, Status: store.StatusExpired, ReasonCodes: []string{"SESSION_EXPIRED"}, OccurredAt: mustTime(decisionAt)}},
		{"abandoned", decisionAnswer("abandoned", 9104, "null"),
			providers.Update{ProviderRef: testSession, Status: store.StatusExpired, ReasonCodes: []string{"SESSION_ABANDONED"}, OccurredAt: mustTime(decisionAt)}},
		{"review", decisionAnswer("review", 9121, "null"),
			providers.Update{ProviderRef: testSession, Status: store.StatusPendingReview, OccurredAt: mustTime(decisionAt)}},
		{"submitted, no decision", decisionAnswer("submitted", 7002, "null"),
			providers.Update{ProviderRef: testSession, Status: store.StatusSubmitted, OccurredAt: mustTime(decisionAt)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f := newFake(t, &fakeVeriff{decision: func(id string) (int, string) {
				if id != testSession {
					return http.StatusNotFound, `{"status":"fail"}`
				}
				return http.StatusOK, tt.answer
			}})
			got, err := p.Status(context.Background(), testSession)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if len(f.authFail) > 0 {
				t.Errorf("auth failures at the fake: %v", f.authFail)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	var gets atomic.Int32
	p, _ := newFake(t, &fakeVeriff{decision: func(id string) (int, string) {
		gets.Add(1)
		if id == "11111111-1111-1111-1111-111111111111" {
			return http.StatusOK, decisionAnswer("approved", 9001, "null") // about testSession
		}
		return http.StatusNotFound, `{"status":"fail"}`
	}})
	_, err := p.Status(context.Background(), "00000000-0000-0000-0000-000000000000")
	var apiErr *providers.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("unknown session: %v, want APIError 404", err)
	}
	if gets.Load() != 1 {
		t.Errorf("404 retried: %d attempts", gets.Load())
	}
	if _, err := p.Status(context.Background(), "11111111-1111-1111-1111-111111111111"); !errors.Is(err, providers.ErrMalformedPayload) {
		t.Errorf("answer about another session: %v, want ErrMalformedPayload", err)
	}
	for _, ref := range []string{"", "../admin", "a/b", "id?x=1", strings.Repeat("a", 200)} {
		if _, err := p.Status(context.Background(), ref); err == nil {
			t.Errorf("Status(%q) = nil error", ref)
		}
	}
}

func TestTimeout(t *testing.T) {
	f := &fakeVeriff{delay: 2 * time.Second}
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p := New(Config{BaseURL: srv.URL, APIKey: testAPIKey, SharedSecret: testShared, Timeout: 50 * time.Millisecond, Retries: -1})
	start := time.Now()
	_, err := p.Start(context.Background(), providers.StartRequest{UserID: "u"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with a 50ms timeout", d)
	}
	// The caller's deadline ends the retries too.
	p = New(Config{BaseURL: srv.URL, APIKey: testAPIKey, SharedSecret: testShared, Timeout: 50 * time.Millisecond, Retries: 5, Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := p.Status(ctx, testSession); err == nil {
		t.Error("Status against a hanging server: nil error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with a 150ms deadline", d)
	}
}

func TestSignGET(t *testing.T) {
	// The signature of a GET is over the session id even behind a path prefix.
	p := New(Config{BaseURL: "https://proxy.example.com/veriff", APIKey: testAPIKey, SharedSecret: testShared})
	req, _ := http.NewRequest(http.MethodGet, "https://proxy.example.com/veriff/v1/sessions/"+testSession+"/decision", nil)
	if err := p.sign(req, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := req.Header.Get("X-HMAC-SIGNATURE"), providers.HexHMAC(providers.SHA256, []byte(testShared), []byte(testSession)); got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	p, err := FromEnv(env())
	if p != nil || err != nil {
		t.Errorf("nothing set: %v, %v; want nil, nil", p, err)
	}
	p, err = FromEnv(env(EnvWebhookSecret, " new , old ", EnvAPIKey, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.sharedSecret) != "new" || len(p.secrets) != 2 || p.apiKey != "key" {
		t.Errorf("shared %q, %d secrets, key %q", p.sharedSecret, len(p.secrets), p.apiKey)
	}
	p, err = FromEnv(env(EnvSharedSecret, "shared", EnvAPIKey, "key", EnvBaseURL, "http://localhost:8080"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.secrets) != 1 || string(p.secrets[0]) != "shared" {
		t.Errorf("webhook secrets %q, want the shared secret", p.secrets)
	}
	for name, getenv := range map[string]func(string) string{
		"three secrets":  env(EnvWebhookSecret, "a,b,c"),
		"empty list":     env(EnvWebhookSecret, " , "),
		"key, no secret": env(EnvAPIKey, "key"),
		"base url http":  env(EnvWebhookSecret, "s", EnvBaseURL, "http://stationapi.veriff.com"),
		"base url junk":  env(EnvWebhookSecret, "s", EnvBaseURL, "stationapi.veriff.com"),
		"base url query": env(EnvWebhookSecret, "s", EnvBaseURL, "https://stationapi.veriff.com?x=1"),
		"only base url":  env(EnvBaseURL, "https://stationapi.veriff.com"),
	} {
		if p, err := FromEnv(getenv); err == nil {
			t.Errorf("%s: %v, nil error", name, p)
		} else if strings.Contains(err.Error(), "a,b") {
			t.Errorf("%s: error quotes the secrets: %v", name, err)
		}
	}
}

func decisionAnswer(status string, code int, reasonCode string) string {
	return `{"status":"success","verification":{"id":"` + testSession + `","code":` + itoa(code) + `,"status":"` + status + `",` +
		`"reason":null,"reasonCode":` + reasonCode + `,"decisionTime":"2019-11-06T07:18:36.916Z","acceptanceTime":"2019-11-06T07:15:27.000Z",` +
		`"vendorData":"user-1","person":{"firstName":"SARAH","lastName":"MORGAN","dateOfBirth":"1967-03-30"},` +
		`"document":{"number":"MORGA753116SM9IJ","type":"DRIVERS_LICENSE","country":"GB"}},"technicalData":{"ip":"186.153.67.122"}}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}
