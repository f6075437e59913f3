package onfido

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
	testToken      = "api_sandbox.test-token"
	testWorkflowID = "8b74cd2b-5d9a-4d39-9e2b-0c3a3e7b1f11"
	testApplicant  = "7e2c5b9e-1f0a-4b55-9d7e-3c1b2a4f6e01"
	testRunID      = "c4f2d1a0-6b3e-4e8a-9a57-2d9c1b0e7f42"
	testCheckID    = "f2302f45-227d-413d-ad61-09ec077a086a"
)

// fakeOnfido speaks the slice of Onfido's API v3.6 the adapter uses. Handlers can be
// replaced per test; every request is recorded.
type fakeOnfido struct {
	t    *testing.T
	mu   sync.Mutex
	reqs []recorded
	// fail, when set, answers the n-th call (0-based) of a path with a status instead of
	// the normal answer.
	fail    func(path string, n int) int
	counts  map[string]int
	runBody map[string]any // answer of POST /workflow_runs
	runs    map[string]map[string]any
	checks  map[string]map[string]any
	reports map[string][]map[string]any
	delay   time.Duration
}

type recorded struct {
	Method, Path, Query, Auth, IdemKey, ContentType string
	Body                                            map[string]any
}

func newFake(t *testing.T) (*fakeOnfido, *httptest.Server) {
	f := &fakeOnfido{
		t:      t,
		counts: map[string]int{},
		runBody: map[string]any{
			"id": testRunID, "applicant_id": testApplicant, "workflow_id": testWorkflowID,
			"status": "awaiting_input", "sdk_token": "sdk-token-from-run",
			"link": map[string]any{"url": "https://eu.onfido.app/l/abc123"},
		},
		runs:    map[string]map[string]any{},
		checks:  map[string]map[string]any{},
		reports: map[string][]map[string]any{},
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeOnfido) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			f.t.Errorf("%s %s: body is not JSON: %v", r.Method, r.URL.Path, err)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), IdemKey: r.Header.Get("Idempotency-Key"),
		ContentType: r.Header.Get("Content-Type"), Body: body,
	})
	n := f.counts[r.URL.Path]
	f.counts[r.URL.Path]++
	fail, delay := f.fail, f.delay
	f.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("Authorization") != "Token token="+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if fail != nil {
		if code := fail(r.URL.Path, n); code != 0 {
			w.WriteHeader(code)
			io.WriteString(w, `{"error":{"type":"validation_error","message":"Jane Doe is invalid"}}`)
			return
		}
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/applicants":
		reply(http.StatusCreated, map[string]any{"id": testApplicant, "first_name": body["first_name"], "last_name": body["last_name"]})
	case r.Method == http.MethodPost && r.URL.Path == "/workflow_runs":
		reply(http.StatusCreated, f.runBody)
	case r.Method == http.MethodPost && r.URL.Path == "/sdk_token":
		reply(http.StatusOK, map[string]any{"token": "sdk-token-from-endpoint"})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/workflow_runs/"):
		if run, ok := f.runs[strings.TrimPrefix(r.URL.Path, "/workflow_runs/")]; ok {
			reply(http.StatusOK, run)
			return
		}
		reply(http.StatusNotFound, map[string]any{"error": map[string]any{"type": "resource_not_found"}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/checks/"):
		if c, ok := f.checks[strings.TrimPrefix(r.URL.Path, "/checks/")]; ok {
			reply(http.StatusOK, c)
			return
		}
		reply(http.StatusNotFound, map[string]any{"error": map[string]any{"type": "resource_not_found"}})
	case r.Method == http.MethodGet && r.URL.Path == "/reports":
		reply(http.StatusOK, map[string]any{"reports": f.reports[r.URL.Query().Get("check_id")]})
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeOnfido) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[path]
}

func (f *fakeOnfido) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func newTestProvider(srv *httptest.Server, mod ...func(*Config)) *Provider {
	c := Config{
		BaseURL: srv.URL, APIToken: testToken, WorkflowID: testWorkflowID,
		WebhookSecrets: providers.Secrets{[]byte("secret")},
		Timeout:        2 * time.Second, Backoff: time.Millisecond, HTTPClient: srv.Client(),
	}
	for _, m := range mod {
		m(&c)
	}
	return New(c)
}

var startReq = providers.StartRequest{
	VerificationID: "ver_123", UserID: "usr_42", IdempotencyKey: "idem-1", Locale: "en-US",
}

func TestStart(t *testing.T) {
	f, srv := newFake(t)
	p := newTestProvider(srv)
	s, err := p.Start(context.Background(), startReq)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Session{ProviderRef: testRunID, ClientURL: "https://eu.onfido.app/l/abc123", ClientToken: "sdk-token-from-run"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	wantReqs := []recorded{
		{Method: "POST", Path: "/applicants", Auth: "Token token=" + testToken, IdemKey: "idem-1:applicant", ContentType: "application/json",
			Body: map[string]any{"first_name": placeholderFirstName, "last_name": placeholderLastName}},
		{Method: "POST", Path: "/workflow_runs", Auth: "Token token=" + testToken, IdemKey: "idem-1:workflow_run", ContentType: "application/json",
			Body: map[string]any{"workflow_id": testWorkflowID, "applicant_id": testApplicant, "customer_user_id": "usr_42",
				"link": map[string]any{"language": "en_US"}}},
	}
	if diff := cmp.Diff(wantReqs, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestStartSDKTokenFallback(t *testing.T) {
	f, srv := newFake(t)
	f.runBody = map[string]any{"id": testRunID, "applicant_id": testApplicant, "status": "awaiting_input"}
	p := newTestProvider(srv)
	s, err := p.Start(context.Background(), providers.StartRequest{UserID: "usr_42", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientToken != "sdk-token-from-endpoint" || s.ClientURL != "" || s.ProviderRef != testRunID {
		t.Errorf("session = %+v", s)
	}
	reqs := f.requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/sdk_token" || last.IdemKey != "k:sdk_token" || last.Body["applicant_id"] != testApplicant {
		t.Errorf("sdk token request = %+v", last)
	}
	if _, ok := reqs[1].Body["link"]; ok {
		t.Errorf("workflow run sent a link without a locale: %v", reqs[1].Body)
	}
}

func TestStartRetries5xxWithSameKey(t *testing.T) {
	f, srv := newFake(t)
	f.fail = func(path string, n int) int {
		if path == "/applicants" && n == 0 {
			return http.StatusInternalServerError
		}
		return 0
	}
	p := newTestProvider(srv)
	if _, err := p.Start(context.Background(), startReq); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range f.requests() {
		if r.Path == "/applicants" {
			keys = append(keys, r.IdemKey)
		}
	}
	if diff := cmp.Diff([]string{"idem-1:applicant", "idem-1:applicant"}, keys); diff != "" {
		t.Errorf("applicant attempts' keys (-want +got):\n%s", diff)
	}
	if f.count("/workflow_runs") != 1 {
		t.Errorf("workflow runs created = %d, want 1", f.count("/workflow_runs"))
	}
}

func TestStart422NotRetried(t *testing.T) {
	f, srv := newFake(t)
	f.fail = func(path string, n int) int {
		if path == "/workflow_runs" {
			return http.StatusUnprocessableEntity
		}
		return 0
	}
	p := newTestProvider(srv)
	_, err := p.Start(context.Background(), startReq)
	var apiErr *providers.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Provider != "onfido" {
		t.Fatalf("err = %v, want *APIError 422", err)
	}
	if strings.Contains(err.Error(), "Jane") {
		t.Errorf("error quotes the vendor's body: %v", err)
	}
	if f.count("/workflow_runs") != 1 {
		t.Errorf("workflow run attempts = %d, want 1", f.count("/workflow_runs"))
	}
}

func TestTimeoutHonoured(t *testing.T) {
	f, srv := newFake(t)
	f.delay = 2 * time.Second
	p := newTestProvider(srv, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.Retries = 1 })
	start := time.Now()
	_, err := p.Start(context.Background(), startReq)
	if err == nil {
		t.Fatal("Start succeeded against a server slower than the timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Start took %v with a 50 ms timeout and one retry", d)
	}
	// The server sees at most the first attempt and one retry (under heavy load an attempt
	// can time out before it reaches the handler).
	if got := f.count("/applicants"); got < 1 || got > 2 {
		t.Errorf("attempts = %d, want 1..2 (first + one retry)", got)
	}
}

func TestNotConfigured(t *testing.T) {
	p := New(Config{WebhookSecrets: providers.Secrets{[]byte("s")}})
	if _, err := p.Start(context.Background(), startReq); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Start err = %v", err)
	}
	if _, err := p.Status(context.Background(), testRunID); !errors.Is(err, providers.ErrNotConfigured) {
		t.Errorf("Status err = %v", err)
	}
	if err := p.Cancel(context.Background(), testRunID); err != nil {
		t.Errorf("Cancel err = %v", err)
	}
	if p.Name() != "onfido" {
		t.Errorf("Name = %q", p.Name())
	}
}

func TestStatusWorkflowRun(t *testing.T) {
	updated := "2024-04-04T09:21:21Z"
	at := time.Date(2024, 4, 4, 9, 21, 21, 0, time.UTC)
	tests := []struct {
		status  string
		reasons []any
		want    providers.Update
	}{
		{"awaiting_input", nil, providers.Update{Status: store.StatusCapturing}},
		{"processing", nil, providers.Update{Status: store.StatusSubmitted}},
		{"awaiting_client_input", nil, providers.Update{Status: store.StatusPendingReview, ReasonCodes: []string{"WORKFLOW_AWAITING_CLIENT_INPUT"}}},
		{"review", []any{"document consider"}, providers.Update{Status: store.StatusPendingReview, ReasonCodes: []string{"WORKFLOW_REVIEW", "WORKFLOW_REASON_DOCUMENT_CONSIDER"}}},
		{"approved", nil, providers.Update{Status: store.StatusApproved}},
		{"declined", []any{"face-mismatch", "Document: expired!"}, providers.Update{Status: store.StatusRejected,
			ReasonCodes: []string{"WORKFLOW_DECLINED", "WORKFLOW_REASON_FACE_MISMATCH", "WORKFLOW_REASON_DOCUMENT_EXPIRED"}}},
		{"abandoned", nil, providers.Update{Status: store.StatusExpired, ReasonCodes: []string{"WORKFLOW_ABANDONED"}}},
		{"error", nil, providers.Update{Status: store.StatusPendingReview, ReasonCodes: []string{"WORKFLOW_ERROR"}}},
		{"something_new", nil, providers.Update{}},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			f, srv := newFake(t)
			f.runs[testRunID] = map[string]any{
				"id": testRunID, "status": tt.status, "reasons": tt.reasons, "updated_at": updated,
				"output": map[string]any{"first_name": "Jane", "last_name": "Doe"},
			}
			p := newTestProvider(srv)
			got, err := p.Status(context.Background(), testRunID)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.ProviderRef, want.OccurredAt = testRunID, at
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if r := f.requests()[0]; r.Method != "GET" || r.Path != "/workflow_runs/"+testRunID || r.IdemKey != "" {
				t.Errorf("request = %+v", r)
			}
		})
	}
}

func TestStatusCheck(t *testing.T) {
	docConsider := map[string]any{
		"name": "document", "result": "consider", "sub_result": "suspected",
		"breakdown": map[string]any{
			"data_validation": map[string]any{"result": "consider", "breakdown": map[string]any{
				"document_expiration": map[string]any{"result": "consider", "properties": map[string]any{}},
				"mrz":                 map[string]any{"result": "clear"},
			}},
			"visual_authenticity": map[string]any{"result": "clear"},
			"police_record":       map[string]any{"result": "consider"},
		},
		"properties": map[string]any{"first_name": "Jane", "last_name": "Doe", "date_of_birth": "1990-01-01"},
	}
	faceConsider := map[string]any{
		"name": "facial_similarity_photo", "result": "consider",
		"breakdown": map[string]any{"face_comparison": map[string]any{"result": "consider"}},
	}
	watchlist := map[string]any{
		"name": "watchlist_standard", "result": "consider",
		"breakdown": map[string]any{"sanction": map[string]any{"result": "consider"}, "politically_exposed_person": map[string]any{"result": "clear"}},
	}
	docRejected := map[string]any{"name": "document", "result": "consider", "sub_result": "rejected",
		"breakdown": map[string]any{"image_integrity": map[string]any{"result": "consider", "breakdown": map[string]any{
			"image_quality": map[string]any{"result": "consider"}}}}}
	device := map[string]any{"name": "device_intelligence", "result": "consider",
		"breakdown": map[string]any{"breakdown": map[string]any{"device": 1}, "properties": []any{"x"}}}
	tests := []struct {
		name           string
		status, result string
		reports        []map[string]any
		want           string
		wantCodes      []string
	}{
		{"in progress", "in_progress", "", nil, store.StatusSubmitted, nil},
		{"awaiting applicant", "awaiting_applicant", "", nil, store.StatusCapturing, nil},
		{"paused", "paused", "", nil, store.StatusPendingReview, []string{"CHECK_PAUSED"}},
		{"reopened", "reopened", "", nil, store.StatusPendingReview, []string{"CHECK_REOPENED"}},
		{"withdrawn", "withdrawn", "", nil, store.StatusExpired, []string{"CHECK_WITHDRAWN"}},
		{"clear", "complete", "clear", nil, store.StatusApproved, nil},
		{"consider", "complete", "consider", []map[string]any{docConsider, faceConsider, watchlist, device}, store.StatusPendingReview, []string{
			"CHECK_CONSIDER", "DOCUMENT_CONSIDER", "DOCUMENT_SUSPECTED", "DOCUMENT_DATA_INVALID", "DOCUMENT_EXPIRED",
			"DOCUMENT_POLICE_RECORD", "FACE_CONSIDER", "FACE_MISMATCH", "WATCHLIST_CONSIDER", "WATCHLIST_SANCTION", "DEVICE_CONSIDER"}},
		{"rejected document", "complete", "consider", []map[string]any{docRejected}, store.StatusNeedsResubmission, []string{
			"CHECK_CONSIDER", "DOCUMENT_CONSIDER", "DOCUMENT_REJECTED", "DOCUMENT_IMAGE_INTEGRITY", "DOCUMENT_IMAGE_QUALITY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFake(t)
			f.checks[testCheckID] = map[string]any{"id": testCheckID, "status": tt.status, "result": tt.result, "applicant_id": testApplicant}
			f.reports[testCheckID] = tt.reports
			p := newTestProvider(srv)
			got, err := p.Status(context.Background(), testCheckID)
			if err != nil {
				t.Fatal(err)
			}
			want := providers.Update{ProviderRef: testCheckID, Status: tt.want, ReasonCodes: tt.wantCodes}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if s := fmt.Sprintf("%+v", got); strings.Contains(s, "Jane") {
				t.Errorf("update carries PII: %s", s)
			}
		})
	}
}

func TestStatusUnknownRef(t *testing.T) {
	_, srv := newFake(t)
	p := newTestProvider(srv)
	_, err := p.Status(context.Background(), "00000000-0000-0000-0000-000000000000")
	var apiErr *providers.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Op != "get workflow run" {
		t.Errorf("err = %v, want the workflow run's 404", err)
	}
	if _, err := p.Status(context.Background(), "../applicants"); err == nil {
		t.Error("Status accepted a reference with a slash")
	}
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	p, err := FromEnv(env(nil))
	if p != nil || err != nil {
		t.Errorf("empty env: %v, %v; want nil, nil", p, err)
	}
	p, err = FromEnv(env(map[string]string{EnvWebhookSecret: " new , old ", EnvAPIToken: testToken, EnvWorkflowID: testWorkflowID,
		EnvBaseURL: "https://api.us.onfido.com/v3.6/"}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(providers.Secrets{[]byte("new"), []byte("old")}, p.cfg.WebhookSecrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if p.cfg.BaseURL != "https://api.us.onfido.com/v3.6" || p.cfg.APIToken != testToken || p.cfg.WorkflowID != testWorkflowID {
		t.Errorf("config = %+v", p.cfg)
	}
	p, err = FromEnv(env(map[string]string{EnvWebhookSecret: "only-webhooks"}))
	if err != nil || p == nil || p.cfg.BaseURL != DefaultBaseURL {
		t.Errorf("webhook-only: %v, %v", p, err)
	}
	bad := []map[string]string{
		{EnvWebhookSecret: "a,b,c"},
		{EnvWebhookSecret: " , "},
		{EnvAPIToken: "tok en", EnvWorkflowID: testWorkflowID},
		{EnvAPIToken: testToken},
		{EnvAPIToken: testToken, EnvWorkflowID: "not-a-uuid"},
		{EnvAPIToken: testToken, EnvWorkflowID: testWorkflowID, EnvBaseURL: "api.eu.onfido.com/v3.6"},
		{EnvAPIToken: testToken, EnvWorkflowID: testWorkflowID, EnvBaseURL: "ftp://x"},
		{EnvAPIToken: testToken, EnvWorkflowID: testWorkflowID, EnvBaseURL: "http://evil.example.com/v3.6"}, // token in clear
		{EnvWebhookSecret: "x", EnvBaseURL: "https://user:pw@api.eu.onfido.com/v3.6"},
		{EnvWorkflowID: testWorkflowID}, // a setting of an Onfido that is not enabled
		{EnvBaseURL: "https://api.us.onfido.com/v3.6"},
	}
	for _, m := range bad {
		p, err := FromEnv(env(m))
		if err == nil || p != nil {
			t.Errorf("FromEnv(%v) = %v, %v; want an error", m, p, err)
			continue
		}
		for _, v := range m {
			if strings.TrimSpace(v) != "" && v != testToken && strings.Contains(err.Error(), v) {
				t.Errorf("error %q quotes the value %q", err, v)
			}
		}
	}
}
