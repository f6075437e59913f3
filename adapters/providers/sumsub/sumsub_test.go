package sumsub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
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
	testToken = "sbx:test-app-token"
	testKey   = "test-secret-key"
	testLevel = "basic kyc+level" // a space and a plus: both must be escaped and signed as sent
)

// request is what the fake server saw.
type request struct {
	Method, URI, Ts string
	Body            []byte
}

// fakeSumsub speaks the part of Sumsub's API the adapter uses and checks every request's
// X-App-Token and X-App-Access-Sig the way Sumsub documents them.
type fakeSumsub struct {
	t *testing.T

	mu         sync.Mutex
	requests   []request
	byExternal map[string]string // externalUserId → applicant id
	statuses   map[string]string // applicant id → status JSON
	nextID     int

	fail5xx    atomic.Int32 // answer this many requests with 500 first
	createCode int          // when set, answer create with this status
	delay      time.Duration
}

func newFake(t *testing.T) (*fakeSumsub, *httptest.Server) {
	f := &fakeSumsub{t: t, byExternal: map[string]string{}, statuses: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeSumsub) seen() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeSumsub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	ts := r.Header.Get("X-App-Access-Ts")
	f.mu.Lock()
	f.requests = append(f.requests, request{Method: r.Method, URI: r.RequestURI, Ts: ts, Body: body})
	f.mu.Unlock()

	// Authentication, as documented: the signature covers ts + METHOD + URI as sent + body.
	if r.Header.Get("X-App-Token") != testToken {
		http.Error(w, `{"code":401}`, http.StatusUnauthorized)
		return
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		http.Error(w, `{"code":401}`, http.StatusUnauthorized)
		return
	}
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte(ts + r.Method + r.RequestURI))
	m.Write(body)
	if want := hex.EncodeToString(m.Sum(nil)); r.Header.Get("X-App-Access-Sig") != want {
		f.t.Errorf("%s %s: bad signature", r.Method, r.RequestURI)
		http.Error(w, `{"code":401,"description":"Request signature mismatch"}`, http.StatusUnauthorized)
		return
	}
	if f.fail5xx.Add(-1) >= 0 {
		http.Error(w, `{"code":500}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")

	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/resources/applicants":
		if r.URL.Query().Get("levelName") != testLevel {
			http.Error(w, `{"code":400}`, http.StatusBadRequest)
			return
		}
		if f.createCode != 0 {
			http.Error(w, `{"code":`+strconv.Itoa(f.createCode)+`}`, f.createCode)
			return
		}
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, `{"code":400}`, http.StatusBadRequest)
			return
		}
		if len(in) != 1 { // only externalUserId: no personal data
			f.t.Errorf("create applicant body has %d fields: %s", len(in), body)
		}
		ext, _ := in["externalUserId"].(string)
		f.mu.Lock()
		defer f.mu.Unlock()
		if id, ok := f.byExternal[ext]; ok {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"code":409,"description":"Applicant with external user id '`+ext+`' already exists: `+id+`"}`)
			return
		}
		f.nextID++
		id := "63e096c51b6b40000000000" + strconv.Itoa(f.nextID)
		f.byExternal[ext] = id
		json.NewEncoder(w).Encode(map[string]any{
			"id": id, "createdAt": "2024-07-09 05:11:41", "externalUserId": ext, "inspectionId": "insp",
			"review": map[string]any{"reviewStatus": "init"},
		})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/resources/applicants/-;externalUserId=") && strings.HasSuffix(path, "/one"):
		ext := strings.TrimSuffix(strings.TrimPrefix(path, "/resources/applicants/-;externalUserId="), "/one")
		f.mu.Lock()
		id, ok := f.byExternal[ext]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"code":404}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"id": id, "externalUserId": ext})
	case r.Method == http.MethodPost && path == "/resources/accessTokens/sdk":
		var in accessTokenRequest
		if err := json.Unmarshal(body, &in); err != nil || in.UserID == "" || in.LevelName != testLevel || in.TTLInSecs <= 0 {
			http.Error(w, `{"code":400}`, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"token": "_act-sbx-" + in.UserID, "userId": in.UserID})
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/status"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/resources/applicants/"), "/status")
		f.mu.Lock()
		st, ok := f.statuses[id]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"code":404}`, http.StatusNotFound)
			return
		}
		io.WriteString(w, st)
	default:
		http.Error(w, `{"code":404}`, http.StatusNotFound)
	}
}

// tickingClock returns a clock that moves one second per call, so each signed attempt has its
// own timestamp.
func tickingClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

func newTestProvider(srv *httptest.Server, mod ...func(*Config)) *Provider {
	c := Config{
		BaseURL: srv.URL, AppToken: testToken, SecretKey: testKey, LevelName: testLevel,
		WebhookSecrets: providers.Secrets{[]byte(webhookSecret)},
		Backoff:        time.Millisecond, Timeout: 2 * time.Second, HTTPClient: srv.Client(), Now: tickingClock(),
	}
	for _, m := range mod {
		m(&c)
	}
	return New(c)
}

func TestStartCreatesApplicantAndToken(t *testing.T) {
	f, srv := newFake(t)
	p := newTestProvider(srv)
	user := "user/42 ü;x&y=z" // characters that must be escaped in path and query
	s, err := p.Start(context.Background(), providers.StartRequest{UserID: user, VerificationID: "ver-1", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ProviderRef == "" || s.ClientToken != "_act-sbx-"+user || s.ClientURL != "" {
		t.Fatalf("session = %+v", s)
	}
	reqs := f.seen()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[0].Method != http.MethodPost || reqs[0].URI != "/resources/applicants?levelName=basic%20kyc%2Blevel" {
		t.Errorf("create = %s %s", reqs[0].Method, reqs[0].URI)
	}
	if reqs[1].Method != http.MethodPost || reqs[1].URI != "/resources/accessTokens/sdk" {
		t.Errorf("token = %s %s", reqs[1].Method, reqs[1].URI)
	}
}

func TestStartRetriesWithFreshSignature(t *testing.T) {
	f, srv := newFake(t)
	f.fail5xx.Store(1)
	p := newTestProvider(srv)
	s, err := p.Start(context.Background(), providers.StartRequest{UserID: "u-1"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.seen()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (500, create, token)", len(reqs))
	}
	if reqs[0].URI != reqs[1].URI || reqs[0].Ts == reqs[1].Ts {
		t.Errorf("retry: %q ts %s then %q ts %s; want the same request with a new timestamp", reqs[0].URI, reqs[0].Ts, reqs[1].URI, reqs[1].Ts)
	}
	if s.ProviderRef == "" {
		t.Fatal("no ref")
	}
}

func TestStartTwiceReturnsSameApplicant(t *testing.T) {
	f, srv := newFake(t)
	p := newTestProvider(srv)
	user := "user/42 ü;x"
	first, err := p.Start(context.Background(), providers.StartRequest{UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Start(context.Background(), providers.StartRequest{UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	if first.ProviderRef != second.ProviderRef {
		t.Fatalf("refs %q and %q, want one applicant", first.ProviderRef, second.ProviderRef)
	}
	var uris []string
	for _, r := range f.seen() {
		uris = append(uris, r.Method+" "+r.URI)
	}
	want := []string{
		"POST /resources/applicants?levelName=basic%20kyc%2Blevel",
		"POST /resources/accessTokens/sdk",
		"POST /resources/applicants?levelName=basic%20kyc%2Blevel", // 409
		"GET /resources/applicants/-;externalUserId=" + url.PathEscape(user) + "/one",
		"POST /resources/accessTokens/sdk",
	}
	if d := cmp.Diff(want, uris); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

func TestStartClientErrorNotRetried(t *testing.T) {
	f, srv := newFake(t)
	f.createCode = http.StatusBadRequest
	p := newTestProvider(srv)
	_, err := p.Start(context.Background(), providers.StartRequest{UserID: "u-1"})
	apiErr, ok := errors.AsType[*providers.APIError](err)
	if !ok || apiErr.Status != http.StatusBadRequest || apiErr.Provider != Name {
		t.Fatalf("err = %v, want *providers.APIError 400", err)
	}
	if n := len(f.seen()); n != 1 {
		t.Errorf("%d requests, want 1 (4xx is not retried)", n)
	}
}

func TestStartServerErrorsExhaustRetries(t *testing.T) {
	f, srv := newFake(t)
	f.fail5xx.Store(100)
	p := newTestProvider(srv, func(c *Config) { c.Retries = 2 })
	_, err := p.Start(context.Background(), providers.StartRequest{UserID: "u-1"})
	if apiErr, ok := errors.AsType[*providers.APIError](err); !ok || apiErr.Status != 500 {
		t.Fatalf("err = %v, want APIError 500", err)
	}
	if n := len(f.seen()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestTimeoutHonoured(t *testing.T) {
	f, srv := newFake(t)
	f.delay = 2 * time.Second
	p := newTestProvider(srv, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.Retries = -1 })
	start := time.Now()
	_, err := p.Status(context.Background(), "abc")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v", el)
	}
}

func TestNotConfigured(t *testing.T) {
	p := New(Config{WebhookSecrets: providers.Secrets{[]byte("s")}})
	if _, err := p.Start(context.Background(), providers.StartRequest{UserID: "u"}); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Start err = %v", err)
	}
	if _, err := p.Status(context.Background(), "a"); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Status err = %v", err)
	}
	if err := p.Cancel(context.Background(), "a"); err != nil {
		t.Errorf("Cancel err = %v", err)
	}
	if p.Name() != "sumsub" {
		t.Errorf("Name = %q", p.Name())
	}
}

func TestStatusMapping(t *testing.T) {
	f, srv := newFake(t)
	p := newTestProvider(srv)
	tests := []struct {
		name, json string
		want       providers.Update
	}{
		{"init", `{"reviewStatus":"init","createDate":"2024-07-09 10:24:26+0000"}`,
			providers.Update{Status: store.StatusInitiated, OccurredAt: time.Date(2024, 7, 9, 10, 24, 26, 0, time.UTC)}},
		{"pending", `{"reviewStatus":"pending"}`, providers.Update{Status: store.StatusSubmitted}},
		{"prechecked", `{"reviewStatus":"prechecked"}`, providers.Update{Status: store.StatusSubmitted}},
		{"queued", `{"reviewStatus":"queued"}`, providers.Update{Status: store.StatusSubmitted}},
		{"onHold", `{"reviewStatus":"onHold"}`, providers.Update{Status: store.StatusPendingReview}},
		{"green", `{"reviewStatus":"completed","reviewDate":"2024-07-09 10:30:00+0000","reviewResult":{"reviewAnswer":"GREEN"}}`,
			providers.Update{Status: store.StatusApproved, OccurredAt: time.Date(2024, 7, 9, 10, 30, 0, 0, time.UTC)}},
		{"red final", `{"reviewStatus":"completed","reviewResult":{"reviewAnswer":"RED","reviewRejectType":"FINAL","rejectLabels":["FORGERY","SELFIE_MISMATCH"],"clientComment":"secret note","moderationComment":"John Doe forged"}}`,
			providers.Update{Status: store.StatusRejected, ReasonCodes: []string{"DOCUMENT_FORGERY", "FACE_MISMATCH"}}},
		{"red retry", `{"reviewStatus":"completed","reviewResult":{"reviewAnswer":"RED","reviewRejectType":"RETRY","rejectLabels":["UNSATISFACTORY_PHOTOS","SCREENSHOTS"]}}`,
			providers.Update{Status: store.StatusNeedsResubmission, ReasonCodes: []string{"DOCUMENT_IMAGE_QUALITY", "DOCUMENT_SCREENSHOT"}}},
		{"red unknown type", `{"reviewStatus":"completed","reviewResult":{"reviewAnswer":"RED","reviewRejectType":"EXTERNAL"}}`,
			providers.Update{Status: store.StatusPendingReview}},
		{"completed no answer", `{"reviewStatus":"completed"}`, providers.Update{}},
		{"unknown status", `{"reviewStatus":"somethingNew"}`, providers.Update{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "app" + strconv.Itoa(i)
			f.mu.Lock()
			f.statuses[id] = tt.json
			f.mu.Unlock()
			got, err := p.Status(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ProviderRef = id
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if _, err := p.Status(context.Background(), "missing"); err == nil {
		t.Error("unknown applicant: no error")
	} else if apiErr, ok := errors.AsType[*providers.APIError](err); !ok || apiErr.Status != 404 {
		t.Errorf("err = %v", err)
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
	if p, err := FromEnv(env()); p != nil || err != nil {
		t.Errorf("nothing set: %v, %v", p, err)
	}
	p, err := FromEnv(env(EnvWebhookSecret, " new , old "))
	if err != nil || p == nil || len(p.cfg.WebhookSecrets) != 2 || p.configured {
		t.Fatalf("webhook only: %+v, %v", p, err)
	}
	p, err = FromEnv(env(EnvWebhookSecret, "s", EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "lvl",
		EnvBaseURL, "https://api.sumsub.com/"))
	if err != nil || !p.configured || p.cfg.BaseURL != "https://api.sumsub.com" {
		t.Fatalf("full: %+v, %v", p, err)
	}
	if p, err = FromEnv(env(EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "lvl")); err != nil || p.cfg.BaseURL != DefaultBaseURL {
		t.Fatalf("default base: %+v, %v", p, err)
	}
	bad := map[string]func(string) string{
		"three secrets":      env(EnvWebhookSecret, "a,b,c"),
		"blank secrets":      env(EnvWebhookSecret, " , "),
		"token without key":  env(EnvAppToken, "t", EnvLevelName, "l"),
		"key without token":  env(EnvSecretKey, "k", EnvLevelName, "l"),
		"no level":           env(EnvAppToken, "t", EnvSecretKey, "k"),
		"level only":         env(EnvWebhookSecret, "s", EnvLevelName, "l"),
		"base only":          env(EnvBaseURL, "https://api.sumsub.com"),
		"http base":          env(EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "l", EnvBaseURL, "http://api.sumsub.com"),
		"relative base":      env(EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "l", EnvBaseURL, "api.sumsub.com"),
		"base with userinfo": env(EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "l", EnvBaseURL, "https://u:p@api.sumsub.com"),
	}
	for name, g := range bad {
		if p, err := FromEnv(g); err == nil {
			t.Errorf("%s: no error (%+v)", name, p)
		} else if strings.Contains(err.Error(), "secret-value") {
			t.Errorf("%s: error quotes a value", name)
		}
	}
	if _, err := FromEnv(env(EnvAppToken, "t", EnvSecretKey, "k", EnvLevelName, "l", EnvBaseURL, "http://127.0.0.1:8080")); err != nil {
		t.Errorf("http localhost: %v", err)
	}
}
