package http_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"
	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/providers/sandbox"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

type env struct {
	srv   *httpapi.Server
	store *sqlite.Store
	dir   string
}

type options struct {
	velocity  signals.Velocity
	committer func(*store.GroupCommitter) httpapi.Committer
	bundle    *engine.PolicySet
	keys      string
	dev       bool
	dir       string
	// verify wires the verification subsystem with the sandbox provider.
	verify bool
	// sandbox configures that provider (default: a random webhook secret).
	sandbox sandbox.Config
	// log receives the server's log (default: discarded).
	log *slog.Logger
	// wrapStore, when set, wraps the store the server reads (not the committer's).
	wrapStore func(store.Store) store.Store
	// requestTimeout is Config.RequestTimeout (default: the server's).
	requestTimeout time.Duration
	// decideTimeout is Config.DecideTimeout (default: the server's).
	decideTimeout time.Duration
	// verifications, when set, is the gatherer's verification source (default: the store).
	verifications signals.VerificationSource
	// shadow is Deps.Shadow (default: none).
	shadow *httpapi.Shadow
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	ctx := context.Background()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	st, err := sqlite.Open(ctx, o.dir)
	if err != nil {
		t.Fatal(err)
	}
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	ring, err := vault.NewRing("test", mk)
	if err != nil {
		t.Fatal(err)
	}
	vlt := vault.New(ring, st)
	pseudonyms, err := pii.NewPseudonymizer(mk)
	if err != nil {
		t.Fatal(err)
	}
	gc := store.NewGroupCommitter(vlt.Writer(st))
	t.Cleanup(func() { _ = gc.Close(context.Background()); _ = st.Close() })
	set := o.bundle
	if set == nil {
		if set, err = engine.Load(policies.Bundle()); err != nil {
			t.Fatal(err)
		}
	}
	lists, err := signals.NewLists(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if o.velocity == nil {
		o.velocity = velocity.NewMemory()
	}
	var committer httpapi.Committer = gc
	if o.committer != nil {
		committer = o.committer(gc)
	}
	keys, err := httpapi.ParseAPIKeys(o.keys)
	if err != nil {
		t.Fatal(err)
	}
	var ver *verification.Service
	if o.verify {
		ver = newVerificationService(t, st, o.dir, vlt, o.sandbox)
	}
	var verSource signals.VerificationSource = st
	if o.verifications != nil {
		verSource = o.verifications
	}
	var read store.Store = st
	if o.wrapStore != nil {
		read = o.wrapStore(st)
	}
	srv := httpapi.New(httpapi.Config{Dev: o.dev || o.keys == "", APIKeys: keys, Logger: o.log, RequestTimeout: o.requestTimeout,
		DecideTimeout: o.decideTimeout},
		httpapi.Deps{
			Engine: engine.New(set), Gatherer: signals.NewGatherer(o.velocity, lists, verSource), Lists: lists,
			Store: read, Committer: committer, Registry: prometheus.NewRegistry(), Verifications: ver,
			Vault: vlt, Pseudonyms: pseudonyms, Shadow: o.shadow,
		})
	return &env{srv: srv, store: st, dir: o.dir}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(t *testing.T, method, path, body string, hdr ...string) resp {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.App().Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

const loginBody = `{"action":"login","subject":{"id":"user-42","country":"DE"},"device":{"id":"dev-1","platform":"ios"},"context":{"ip":"203.0.113.7","country":"DE","auth_method":"password"},"behavior":{"bot_score":0.1}}`

func TestDecideAndReplayWithOPA(t *testing.T) {
	e := newEnv(t, options{})
	for _, body := range []string{
		loginBody,
		`{"action":"payout","subject":{"id":"user-7","account_age_days":400},"device":{"id":"dev-7"},"context":{"ip":"198.51.100.4","amount":25000,"currency":"EUR","payout_method":"crypto","new_beneficiary":true}}`,
		`{"action":"onboarding","subject":{"id":"user-9"},"device":{"id":"dev-9","emulator":true},"context":{"ip":"2001:db8::1","country":"FR"}}`,
	} {
		r := e.do(t, "POST", "/v1/decide", body)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := r.json(t)
		for _, k := range []string{"decision_id", "outcome", "score", "reasons", "policy", "signals_unavailable", "latency_us"} {
			if _, ok := d[k]; !ok {
				t.Fatalf("answer lacks %s: %s", k, r.body)
			}
		}
		g := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "")
		if g.status != 200 {
			t.Fatalf("get: %d %s", g.status, g.body)
		}
		stored := g.json(t)
		if stored["outcome"] != d["outcome"] {
			t.Fatalf("stored outcome %v != %v", stored["outcome"], d["outcome"])
		}
		// Re-evaluate the stored input with plain OPA against the same policy files,
		// as `opa eval -b policies/bundle -i input.json data.verdict.<action>.decision` would.
		action := d["action"].(string)
		outcome, codes := opaEval(t, action, stored["input"])
		if outcome != d["outcome"] {
			t.Fatalf("%s: opa eval outcome %v, verdict %v", action, outcome, d["outcome"])
		}
		if got := reasonCodes(d); !slices.Equal(sorted(codes), sorted(got)) {
			t.Fatalf("%s: opa eval reasons %v, verdict %v", action, codes, got)
		}
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func reasonCodes(d map[string]any) []string {
	var out []string
	for _, r := range d["reasons"].([]any) {
		out = append(out, r.(map[string]any)["code"].(string))
	}
	return out
}

func opaEval(t *testing.T, action string, input any) (string, []string) {
	t.Helper()
	var opts []func(*rego.Rego)
	err := fsWalkRego(func(name string, src []byte) {
		opts = append(opts, rego.Module(name, string(src)))
	})
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, rego.Query("data.verdict."+action+".decision"), rego.Input(input))
	rs, err := rego.New(opts...).Eval(context.Background())
	if err != nil || len(rs) == 0 {
		t.Fatalf("opa eval: %v %v", rs, err)
	}
	dec := rs[0].Expressions[0].Value.(map[string]any)
	var codes []string
	for _, r := range dec["reasons"].([]any) {
		codes = append(codes, r.(map[string]any)["code"].(string))
	}
	return dec["outcome"].(string), codes
}

func TestIdempotency(t *testing.T) {
	// 20 concurrent copies below: on a loaded host the default deadline would answer some
	// of them with an unstored fail-mode decision, which is not what this test is about.
	e := newEnv(t, options{decideTimeout: 5 * time.Second})
	a := e.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "k-1")
	b := e.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "k-1")
	if a.status != 200 || b.status != 200 {
		t.Fatalf("%d %d", a.status, b.status)
	}
	if a.json(t)["decision_id"] != b.json(t)["decision_id"] || b.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay gave another decision: %s / %s", a.body, b.body)
	}
	c := e.do(t, "POST", "/v1/decide", strings.Replace(loginBody, "user-42", "user-43", 1), "Idempotency-Key", "k-1")
	assertProblem(t, c, 422, httpapi.CodeIdempotencyReused)

	// Concurrent requests with one key: one decision.
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "k-concurrent")
			if r.status == 200 {
				ids[i], _ = r.json(t)["decision_id"].(string)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent idempotent requests gave ids %v", ids)
		}
	}
	// Only the request that decided recorded a velocity event: the next decision for the
	// user (after k-1's and k-concurrent's) counts three logins in the minute, itself included.
	next := e.do(t, "POST", "/v1/decide", loginBody).json(t)
	rec, err := e.store.GetDecision(context.Background(), next["decision_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Signals struct {
			Velocity struct {
				User struct {
					Count1m int `json:"count_1m"`
				} `json:"user"`
			} `json:"velocity"`
		} `json:"signals"`
	}
	if err := json.Unmarshal(rec.Input, &in); err != nil {
		t.Fatal(err)
	}
	if got := in.Signals.Velocity.User.Count1m; got != 3 {
		t.Fatalf("after two idempotent decisions (one sent 20 times at once) the user's count_1m is %d, want 3", got)
	}
}

// TestIdempotencyKeysArePerClient: two API keys that send the same Idempotency-Key get
// their own decisions; neither sees the other's.
func TestIdempotencyKeysArePerClient(t *testing.T) {
	e := newEnv(t, options{keys: "shop:shop-secret-0123456789:decide,bank:bank-secret-0123456789:decide"})
	shop := []string{"Authorization", "Bearer shop-secret-0123456789", "Idempotency-Key", "order-123"}
	bank := []string{"Authorization", "Bearer bank-secret-0123456789", "Idempotency-Key", "order-123"}
	a := e.do(t, "POST", "/v1/decide", loginBody, shop...)
	b := e.do(t, "POST", "/v1/decide", loginBody, bank...)
	if a.status != 200 || b.status != 200 || b.header.Get("Idempotent-Replayed") != "" ||
		a.json(t)["decision_id"] == b.json(t)["decision_id"] {
		t.Fatalf("two clients' keys collided: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	if c := e.do(t, "POST", "/v1/decide", strings.Replace(loginBody, "user-42", "user-43", 1), bank[:2]...); c.status != 200 {
		t.Fatalf("without a key: %d %s", c.status, c.body)
	}
	if r := e.do(t, "POST", "/v1/decide", loginBody, shop...); r.header.Get("Idempotent-Replayed") != "true" ||
		r.json(t)["decision_id"] != a.json(t)["decision_id"] {
		t.Fatalf("the shop's retry: %s", r.body)
	}
	assertProblem(t, e.do(t, "POST", "/v1/decide", strings.Replace(loginBody, "user-42", "user-44", 1), bank...), 422, httpapi.CodeIdempotencyReused)
}

func assertProblem(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q: %s", ct, r.body)
	}
	p := r.json(t)
	if p["code"] != code || p["status"] != float64(status) || p["title"] == "" || p["type"] == "" || p["request_id"] == "" {
		t.Fatalf("problem = %s, want code %s", r.body, code)
	}
	if strings.Contains(string(r.body), "goroutine") || strings.Contains(string(r.body), ".go:") {
		t.Fatalf("problem leaks internals: %s", r.body)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, options{})

	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"malformed json", "POST", "/v1/decide", `{"action":`, nil, 400, httpapi.CodeMalformedJSON},
		{"unknown action", "POST", "/v1/decide", `{"action":"wire","subject":{"id":"u"}}`, nil, 422, httpapi.CodeUnknownAction},
		{"wrong types", "POST", "/v1/decide", `{"action":"login","subject":{"id":5}}`, nil, 400, httpapi.CodeInvalidRequest},
		{"missing fields", "POST", "/v1/decide", `{"action":"login"}`, nil, 400, httpapi.CodeInvalidRequest},
		{"wrong media type", "POST", "/v1/decide", loginBody, []string{"Content-Type", "text/plain"}, 415, httpapi.CodeUnsupportedMedia},
		{"bad idempotency key", "POST", "/v1/decide", loginBody, []string{"Idempotency-Key", strings.Repeat("k", 300)}, 400, httpapi.CodeIdempotencyInvalid},
		{"unknown decision", "GET", "/v1/decisions/0192f0c4-1d3e-7000-8000-000000000000", "", nil, 404, httpapi.CodeNotFound},
		{"malformed decision id", "GET", "/v1/decisions/nope", "", nil, 404, httpapi.CodeNotFound},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, httpapi.CodeNotFound},
		{"wrong method", "DELETE", "/v1/decide", "", nil, 405, httpapi.CodeMethodNotAllowed},
		{"bad list name", "PUT", "/v1/lists/blocked/entries/x", "", nil, 400, httpapi.CodeInvalidList},
		{"bad ip value", "PUT", "/v1/lists/deny_ip/entries/not-an-ip", "", nil, 400, httpapi.CodeInvalidList},
		{"bad country value", "PUT", "/v1/lists/deny_country/entries/Germany", "", nil, 400, httpapi.CodeInvalidList},
		{"bad list body", "PUT", "/v1/lists/deny_user/entries/u1", `{"reason":`, nil, 400, httpapi.CodeMalformedJSON},
		{"delete missing entry", "DELETE", "/v1/lists/deny_user/entries/nobody", "", nil, 404, httpapi.CodeNotFound},
		{"list value not UTF-8", "PUT", "/v1/lists/deny_user/entries/bad%ffid", "", nil, 400, httpapi.CodeInvalidList},
		{"delete list value not UTF-8", "DELETE", "/v1/lists/deny_device/entries/%ff", "", nil, 400, httpapi.CodeInvalidList},
		{"media type with a suffix", "POST", "/v1/decide", loginBody, []string{"Content-Type", "application/jsonx"}, 415, httpapi.CodeUnsupportedMedia},
		{"list body with an unknown field", "PUT", "/v1/lists/deny_user/entries/u1", `{"reason":"x","extra":1}`, nil, 400, httpapi.CodeMalformedJSON},
		{"list body not JSON", "PUT", "/v1/lists/deny_user/entries/u1", `reason=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, httpapi.CodeUnsupportedMedia},
		{"gzip body", "POST", "/v1/decide", gzipped(t, loginBody), []string{"Content-Encoding", "gzip"}, 415, httpapi.CodeUnsupportedMedia},
		{"brotli body", "POST", "/v1/decide", loginBody, []string{"Content-Encoding", "br"}, 415, httpapi.CodeUnsupportedMedia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertProblem(t, e.do(t, tc.method, tc.path, tc.body, tc.hdr...), tc.status, tc.code)
		})
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestContentTypeIsCaseInsensitive: media types are case-insensitive and may carry
// parameters (RFC 9110).
func TestContentTypeIsCaseInsensitive(t *testing.T) {
	e := newEnv(t, options{})
	for _, ct := range []string{"Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8"} {
		if r := e.do(t, "POST", "/v1/decide", loginBody, "Content-Type", ct); r.status != 200 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
	if r := e.do(t, "POST", "/v1/decide", loginBody, "Content-Encoding", "identity"); r.status != 200 {
		t.Errorf("Content-Encoding identity: %d %s", r.status, r.body)
	}
}

// TestOversizedBody goes through a real listener: fasthttp rejects the body while
// reading it, before any handler runs, and Fiber must still answer with a problem.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t, options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.App().Listener(ln)
	t.Cleanup(func() { _ = e.srv.App().Shutdown() })
	big := `{"action":"login","subject":{"id":"u"},"behavior":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
	res, err := http.Post("http://"+ln.Addr().String()+"/v1/decide", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	assertProblem(t, resp{status: res.StatusCode, header: res.Header, body: b}, 413, httpapi.CodeBodyTooLarge)

	// Headers too large are refused by the transport before any handler; the problem still
	// carries a request id (assertProblem checks it).
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 9000))
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	b2, _ := io.ReadAll(res2.Body)
	assertProblem(t, resp{status: res2.StatusCode, header: res2.Header, body: b2}, 431, httpapi.CodeInvalidRequest)

	// The transport's refusals are counted like the others: a client whose headers
	// outgrow the limit shows in the error rate.
	res3, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res3.Body.Close()
	m, _ := io.ReadAll(res3.Body)
	for _, want := range []string{`verdict_http_responses_total{code="431",route="unmatched"} 1`, `verdict_http_responses_total{code="413",route="/v1/*"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAuthScopes(t *testing.T) {
	e := newEnv(t, options{keys: "checkout:decide-secret-0123456789:decide,ops:lists-secret-0123456789:lists,root:admin-secret-0123456789:admin"})
	tests := []struct {
		name, method, path, body, key string
		status                        int
	}{
		{"no key", "POST", "/v1/decide", loginBody, "", 401},
		{"wrong key", "POST", "/v1/decide", loginBody, "not-a-key-0123456789", 401},
		{"decide with decide", "POST", "/v1/decide", loginBody, "decide-secret-0123456789", 200},
		{"decide with lists", "POST", "/v1/decide", loginBody, "lists-secret-0123456789", 403},
		{"decide with admin", "POST", "/v1/decide", loginBody, "admin-secret-0123456789", 200},
		{"lists with decide", "GET", "/v1/lists/deny_user", "", "decide-secret-0123456789", 403},
		{"lists with lists", "GET", "/v1/lists/deny_user", "", "lists-secret-0123456789", 200},
		{"health without key", "GET", "/healthz", "", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.key != "" {
				hdr = []string{"Authorization", "Bearer " + tc.key}
			}
			r := e.do(t, tc.method, tc.path, tc.body, hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status >= 400 {
				assertProblem(t, r, tc.status, map[int]string{401: httpapi.CodeUnauthorized, 403: httpapi.CodeForbidden}[tc.status])
			}
		})
	}
	if r := e.do(t, "GET", "/v1/lists/deny_user", "", "X-API-Key", "lists-secret-0123456789"); r.status != 200 {
		t.Fatalf("X-API-Key: %d", r.status)
	}
}

func TestListsFeedDecisions(t *testing.T) {
	e := newEnv(t, options{})
	r := e.do(t, "PUT", "/v1/lists/deny_ip/entries/203.0.113.0%2F24", `{"reason":"proxy range"}`)
	if r.status != 201 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if r = e.do(t, "PUT", "/v1/lists/deny_ip/entries/203.0.113.0%2F24", ``); r.status != 200 {
		t.Fatalf("put again: %d %s", r.status, r.body)
	}
	g := e.do(t, "GET", "/v1/lists/deny_ip", "").json(t)
	entries := g["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["value"] != "203.0.113.0/24" {
		t.Fatalf("list = %v", g)
	}
	d := e.do(t, "POST", "/v1/decide", loginBody).json(t)
	if d["outcome"] != "block" || !slices.Contains(reasonCodes(d), "DENY_LIST_IP") {
		t.Fatalf("decision on a denied IP = %v", d)
	}
	stored := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "").json(t)
	lists := stored["input"].(map[string]any)["signals"].(map[string]any)["lists"].(map[string]any)
	if lists["deny_ip"] != true || lists["deny_user"] != false {
		t.Fatalf("signals.lists = %v", lists)
	}
	if r = e.do(t, "DELETE", "/v1/lists/deny_ip/entries/203.0.113.0%2F24", ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if d = e.do(t, "POST", "/v1/decide", loginBody).json(t); slices.Contains(reasonCodes(d), "DENY_LIST_IP") {
		t.Fatalf("deleted entry still matches: %v", d)
	}
}

// TestEmailDomainListFeedsOnboarding: an email list holds domains; the shipped onboarding
// policy reviews a sign-up whose address is on the operator's disposable_email list, its
// subdomains included, and the stored input keeps no address.
func TestEmailDomainListFeedsOnboarding(t *testing.T) {
	e := newEnv(t, options{})
	if r := e.do(t, "PUT", "/v1/lists/disposable_email/entries/Mailinator.com", `{"reason":"disposable"}`); r.status != 201 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", "/v1/lists/disposable_email/entries/someone@mailinator.com", ``); r.status != 400 {
		t.Fatalf("an address on an email list: %d %s", r.status, r.body)
	}
	body := func(email string) string {
		return `{"action":"onboarding","subject":{"id":"user-e1","email":"` + email + `"},"device":{"id":"dev-e1"},"context":{"ip":"198.51.100.9","country":"DE"}}`
	}
	if r := e.do(t, "PUT", "/v1/lists/disposable_email/entries/xn--wegwerf-mil-t8a.de", ``); r.status != 201 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	for email, want := range map[string]bool{"Jo@MX.mailinator.com": true, "jo@mailinator.com": true, "jo@example.com": false, "not an address": false,
		// An internationalised domain matches its xn-- entry as the address is written.
		"jo@wegwerf-mäil.de": true, "jo@WEGWERF-MÄIL.de": true, "jo@wegwerf-mail.de": false} {
		d := e.do(t, "POST", "/v1/decide", body(email)).json(t)
		if got := slices.Contains(reasonCodes(d), "EMAIL_DISPOSABLE"); got != want {
			t.Errorf("%s: EMAIL_DISPOSABLE %v, want %v (%v)", email, got, want, d)
		}
		stored := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "")
		if low := strings.ToLower(string(stored.body)); strings.Contains(low, "mailinator") || strings.Contains(low, "wegwerf") {
			t.Errorf("%s: the stored decision holds the address: %s", email, stored.body)
		}
	}
}

func TestVelocityIsRecorded(t *testing.T) {
	e := newEnv(t, options{})
	var last map[string]any
	for range 3 {
		d := e.do(t, "POST", "/v1/decide", loginBody).json(t)
		last = e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "").json(t)
	}
	vel := last["input"].(map[string]any)["signals"].(map[string]any)["velocity"].(map[string]any)
	if vel["user"].(map[string]any)["count_1m"] != float64(3) {
		t.Fatalf("velocity = %v", vel)
	}
}

type failingVelocity struct{ err error }

func (f failingVelocity) Observe(ctx context.Context, ev signals.Event) (signals.Observation, error) {
	return signals.Observation{}, f.err
}

type slowVelocity struct{}

func (slowVelocity) Observe(ctx context.Context, ev signals.Event) (signals.Observation, error) {
	<-ctx.Done()
	time.Sleep(5 * time.Millisecond)
	return signals.Observation{}, ctx.Err()
}

func TestFailModes(t *testing.T) {
	payout := `{"action":"payout","subject":{"id":"u1","account_age_days":900},"device":{"id":"d1"},"context":{"amount":10,"payout_method":"bank"}}`
	t.Run("source down, payout fails closed", func(t *testing.T) {
		e := newEnv(t, options{velocity: failingVelocity{errors.New("connection refused")}})
		r := e.do(t, "POST", "/v1/decide", payout)
		d := r.json(t)
		if d["outcome"] != "block" || !slices.Contains(reasonCodes(d), engine.CauseSignalsUnavailable) {
			t.Fatalf("answer = %s", r.body)
		}
		un := d["signals_unavailable"].([]any)
		if !slices.Contains(un, any("velocity")) {
			t.Fatalf("unavailable = %v", un)
		}
		if deg := d["degraded"].(map[string]any); deg["fail_mode"] != "closed" || deg["stored"] != true {
			t.Fatalf("degraded = %v", deg)
		}
	})
	t.Run("source down, logged once, not per decision", func(t *testing.T) {
		var buf bytes.Buffer
		e := newEnv(t, options{velocity: failingVelocity{errors.New("connection refused")},
			log: slog.New(slog.NewJSONHandler(&buf, nil))})
		for i := range 50 {
			if r := e.do(t, "POST", "/v1/decide", payout); r.status != 200 {
				t.Fatalf("decision %d: %d %s", i, r.status, r.body)
			}
		}
		// Velocity down takes the device reputation built on it down too: one line each.
		warned := map[any]int{}
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if m["msg"] == "signal source unavailable" {
				warned[m["source"]]++
				if m["err"] != "connection refused" {
					t.Errorf("log line = %v", m)
				}
			}
		}
		if len(warned) != 2 || warned["velocity"] != 1 || warned["device"] != 1 {
			t.Fatalf("lines per source for 50 decisions with velocity down = %v, want velocity and device once each:\n%s", warned, buf.String())
		}
		// Every failure is still counted.
		if m := e.do(t, "GET", "/metrics", ""); !bytes.Contains(m.body, []byte(`verdict_signal_source_errors_total{source="velocity"} 50`+"\n")) {
			t.Errorf("metrics do not count the 50 failures:\n%s", m.body)
		}
	})
	t.Run("source timeout, login fails to review within the deadline", func(t *testing.T) {
		e := newEnv(t, options{velocity: slowVelocity{}})
		start := time.Now()
		r := e.do(t, "POST", "/v1/decide", loginBody)
		if el := time.Since(start); el > 140*time.Millisecond {
			t.Fatalf("took %v", el)
		}
		d := r.json(t)
		if d["outcome"] != "review" && d["outcome"] != "block" {
			t.Fatalf("answer = %s", r.body)
		}
	})
	t.Run("policy error never approves", func(t *testing.T) {
		set, err := engine.Load(fstest.MapFS{"x/x.cel.yaml": {Data: []byte("action: payout\nfail_mode: closed\nrules:\n  - code: BROKEN\n    outcome: block\n    when: context.nope > 1\n")}})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, options{bundle: set})
		d := e.do(t, "POST", "/v1/decide", payout).json(t)
		if d["outcome"] != "block" || !slices.Contains(reasonCodes(d), engine.CausePolicyError) {
			t.Fatalf("answer = %v", d)
		}
	})
	t.Run("store down: fail mode, said so, not stored", func(t *testing.T) {
		e := newEnv(t, options{committer: func(*store.GroupCommitter) httpapi.Committer {
			return committerFunc(func(context.Context, store.DecisionRecord) error {
				return fmt.Errorf("write: %w", store.ErrUnavailable)
			})
		}})
		d := e.do(t, "POST", "/v1/decide", payout).json(t)
		deg, _ := d["degraded"].(map[string]any)
		if d["outcome"] != "block" || deg == nil || deg["stored"] != false || !slices.Contains(reasonCodes(d), engine.CauseStoreUnavailable) {
			t.Fatalf("answer = %v", d)
		}
		if r := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), ""); r.status != 404 {
			t.Fatalf("unstored decision is readable: %d", r.status)
		}
	})
}

// TestAmbiguousWriteIsSettledByReading: a write reported failed (the deadline or the
// connection ended during COMMIT) that did land is answered as stored, with the stored
// outcome; one that did not land is answered by the fail mode, "stored": false.
func TestAmbiguousWriteIsSettledByReading(t *testing.T) {
	payout := `{"action":"payout","subject":{"id":"user-amb"},"context":{"amount":50,"country":"DE"}}`
	e := newEnv(t, options{committer: func(gc *store.GroupCommitter) httpapi.Committer {
		return committerFunc(func(ctx context.Context, rec store.DecisionRecord) error {
			if err := gc.Commit(ctx, rec); err != nil {
				return err
			}
			return fmt.Errorf("write decisions: %w: timeout: %w", store.ErrUnavailable, context.DeadlineExceeded)
		})
	}})
	d := e.do(t, "POST", "/v1/decide", payout).json(t)
	if d["degraded"] != nil {
		t.Fatalf("a decision stored after all was answered as not stored: %v", d)
	}
	g := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "").json(t)
	if g["outcome"] != d["outcome"] {
		t.Fatalf("answered %v, stored %v", d["outcome"], g["outcome"])
	}
}

type committerFunc func(context.Context, store.DecisionRecord) error

func (f committerFunc) Commit(ctx context.Context, rec store.DecisionRecord) error {
	return f(ctx, rec)
}

func TestDecisionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, options{dir: dir})
	d := e.do(t, "POST", "/v1/decide", loginBody).json(t)
	id := d["decision_id"].(string)
	e.store.Close()
	e2 := newEnv(t, options{dir: dir})
	g := e2.do(t, "GET", "/v1/decisions/"+id, "")
	if g.status != 200 || g.json(t)["decision_id"] != id {
		t.Fatalf("after restart: %d %s", g.status, g.body)
	}
}

func TestMetricsHealthOpenAPI(t *testing.T) {
	e := newEnv(t, options{verify: true})
	e.do(t, "POST", "/v1/decide", loginBody)
	m := e.do(t, "GET", "/metrics", "")
	for _, want := range []string{"verdict_decision_duration_seconds_bucket{action=\"login\"", "verdict_decisions_total", "verdict_reasons_total", "verdict_signal_source_duration_seconds", "verdict_decide_stage_duration_seconds"} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bytes.Contains(m.body, []byte("user-42")) || bytes.Contains(m.body, []byte("203.0.113.7")) {
		t.Error("metrics carry a subject id or IP")
	}
	if r := e.do(t, "GET", "/readyz", ""); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(e.do(t, "GET", "/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, rt := range e.srv.App().GetRoutes(true) {
		if rt.Method == "HEAD" || rt.Path == "/" || strings.HasSuffix(rt.Path, "/*") || rt.Path == "/v1" {
			continue
		}
		p := rt.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		if _, ok := doc.Paths[p][strings.ToLower(rt.Method)]; !ok {
			t.Errorf("openapi.json does not describe %s %s", rt.Method, p)
		}
	}
}

func TestDebugTimings(t *testing.T) {
	e := newEnv(t, options{})
	d := e.do(t, "POST", "/v1/decide?debug=timings", loginBody).json(t)
	tm, ok := d["timings_us"].(map[string]any)
	if !ok {
		t.Fatalf("no timings: %v", d)
	}
	for _, k := range []string{"parse", "signals", "signals_velocity", "evaluate", "persist", "total"} {
		if _, ok := tm[k]; !ok {
			t.Fatalf("timings lack %s: %v", k, tm)
		}
	}
}

// TestServerErrorsLoggedOncePerInterval polls /readyz with the store closed, as a load
// balancer would during an outage: every poll answers 503, one line is logged.
func TestServerErrorsLoggedOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, options{log: slog.New(slog.NewJSONHandler(&buf, nil))})
	if r := e.do(t, "GET", "/readyz", ""); r.status != 200 {
		t.Fatalf("readyz = %d %s", r.status, r.body)
	}
	e.store.Close()
	for i := range 20 {
		if r := e.do(t, "GET", "/readyz", ""); r.status != 503 {
			t.Fatalf("readyz %d with the store closed = %d %s", i, r.status, r.body)
		}
	}
	if n := strings.Count(buf.String(), `"msg":"request failed"`); n != 1 {
		t.Fatalf("%d lines for 20 failed polls, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"route":"/readyz","status":503`) {
		t.Errorf("the line does not name the route and status:\n%s", buf.String())
	}
}

// TestCaseInsensitiveWhereTheStandardsSaySo: the auth scheme (RFC 9110) and a UUID's hex
// digits (RFC 9562) are case-insensitive; a label's tags are a set.
func TestCaseInsensitiveWhereTheStandardsSaySo(t *testing.T) {
	e := newEnv(t, options{keys: "app:app-secret-0123456789:decide+label"})
	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		if r := e.do(t, "POST", "/v1/decide", loginBody, "Authorization", scheme+"app-secret-0123456789"); r.status != 200 {
			t.Fatalf("scheme %q: %d %s", scheme, r.status, r.body)
		}
	}
	auth := []string{"Authorization", "Bearer app-secret-0123456789"}
	id := e.do(t, "POST", "/v1/decide", loginBody, auth...).json(t)["decision_id"].(string)
	if r := e.do(t, "GET", "/v1/decisions/"+strings.ToUpper(id), "", auth...); r.status != 200 || r.json(t)["decision_id"] != id {
		t.Fatalf("GET with the id in upper case: %d %s", r.status, r.body)
	}
	r := e.do(t, "POST", "/v1/decisions/"+strings.ToUpper(id)+"/label", `{"label":"fraud","tags":["ato","ato","mule"]}`, auth...)
	if r.status != 201 {
		t.Fatalf("label with the id in upper case: %d %s", r.status, r.body)
	}
	if tags := r.json(t)["tags"].([]any); len(tags) != 2 || tags[0] != "ato" || tags[1] != "mule" {
		t.Fatalf("tags stored: %v, want [ato mule]", tags)
	}
}

// TestDevModeRefusesOtherOrigins: without API keys, a page of another origin in the
// developer's browser must not drive the API (a no-cors fetch or a form needs no preflight).
func TestDevModeRefusesOtherOrigins(t *testing.T) {
	e := newEnv(t, options{dev: true})
	for _, tc := range []struct {
		hdr  []string
		want int
	}{
		{nil, 200}, // curl, an SDK: no browser headers
		{[]string{"Origin", "http://example.com"}, 200}, // the review page, same origin (httptest's host)
		{[]string{"Sec-Fetch-Site", "same-origin"}, 200},
		{[]string{"Origin", "https://evil.example"}, 403},
		{[]string{"Origin", "null"}, 403},
		{[]string{"Sec-Fetch-Site", "cross-site"}, 403},
		{[]string{"Sec-Fetch-Site", "same-site"}, 403},
	} {
		r := e.do(t, "POST", "/v1/decide", loginBody, tc.hdr...)
		if r.status != tc.want {
			t.Errorf("%v: %d %s, want %d", tc.hdr, r.status, r.body, tc.want)
		}
	}
	// With keys, the key is the authorization; browsers do not send it on their own.
	k := newEnv(t, options{keys: "app:app-secret-0123456789:decide"})
	if r := k.do(t, "POST", "/v1/decide", loginBody, "Authorization", "Bearer app-secret-0123456789", "Origin", "https://app.example"); r.status != 200 {
		t.Errorf("with a key from another origin: %d %s", r.status, r.body)
	}
}

// TestContentEncodingInAnyHeader: a coding in any Content-Encoding header, or listed after
// identity in one, is refused; Fiber would decode by the last one.
func TestContentEncodingInAnyHeader(t *testing.T) {
	e := newEnv(t, options{})
	for _, codings := range [][]string{{"identity", "gzip"}, {"gzip", "identity"}, {"identity, gzip"}, {"identity", "identity, br"}} {
		req := httptest.NewRequest("POST", "/v1/decide", strings.NewReader(gzipped(t, loginBody)))
		req.Header.Set("Content-Type", "application/json")
		for _, c := range codings {
			req.Header.Add("Content-Encoding", c)
		}
		res, err := e.srv.App().Test(req, 10000)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 415 {
			t.Errorf("Content-Encoding %q: %d, want 415", codings, res.StatusCode)
		}
	}
}

// TestOpenAPIListsEveryProblemCode: every stable code the server can answer with is in
// the description's enum of Problem.code.
func TestOpenAPIListsEveryProblemCode(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	e := newEnv(t, options{})
	if err := json.Unmarshal(e.do(t, "GET", "/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{httpapi.CodeUnknownProvider, httpapi.CodeWebhookRejected, httpapi.CodeInvalidState,
		httpapi.CodeReviewClaimed, httpapi.CodeInvalidCSV, httpapi.CodeInvalidPolicy, httpapi.CodeSelfApproval,
		httpapi.CodeUploadURLInvalid, httpapi.CodeUnknownVersion, httpapi.CodeEvidenceMismatch} {
		if !slices.Contains(doc.Components.Schemas.Problem.Properties.Code.Enum, code) {
			t.Errorf("Problem.code enum lacks %q", code)
		}
	}
}

// TestResponsesAreCounted: every answer is counted by route pattern and status, never by
// the path, which can carry ids and list values.
func TestResponsesAreCounted(t *testing.T) {
	e := newEnv(t, options{})
	e.do(t, "POST", "/v1/decide", loginBody)
	e.do(t, "POST", "/v1/decide", loginBody, "Content-Type", "text/plain")
	e.do(t, "GET", "/v1/decisions/0192f0c4-1d3e-7000-8000-000000000000", "")
	e.do(t, "PUT", "/v1/lists/deny_user/entries/secret-user-id", "")
	e.do(t, "GET", "/v1/nothing/here", "")
	e.do(t, "POST", "/v1/decide", loginBody, "Content-Encoding", "gzip")
	m := string(e.do(t, "GET", "/metrics", "").body)
	for _, want := range []string{
		`verdict_http_responses_total{code="200",route="/v1/decide"} 1`,
		`verdict_http_responses_total{code="415",route="/v1/*"} 2`, // refused by the body type and encoding checks
		`verdict_http_responses_total{code="404",route="unmatched"} 1`,
		`verdict_http_responses_total{code="404",route="/v1/decisions/:id"} 1`,
		`verdict_http_responses_total{code="201",route="/v1/lists/:list/entries/:value"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if testing.Verbose() {
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "verdict_http_responses_total") {
				t.Log(l)
			}
		}
	}
	for _, leak := range []string{"secret-user-id", "0192f0c4", "/v1/nothing/here"} {
		if strings.Contains(m, leak) {
			t.Errorf("metrics carry %q", leak)
		}
	}
}

// TestAnswersGiveTheStoredTimes: a time in an answer is the one a later read returns (the
// stores keep microseconds), so a client comparing the two sees the same record.
func TestAnswersGiveTheStoredTimes(t *testing.T) {
	e := newEnv(t, options{})
	d := e.do(t, "POST", "/v1/decide", loginBody).json(t)
	stored := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "").json(t)
	if d["created_at"] == nil || d["created_at"] != stored["stored_at"] {
		t.Errorf("decision created_at: answered %v, stored_at read back %v", d["created_at"], stored["stored_at"])
	}
	put := e.do(t, "PUT", "/v1/lists/deny_ip/entries/192.0.2.1", `{"reason":"abuse"}`)
	if put.status != 201 {
		t.Fatalf("put: %d %s", put.status, put.body)
	}
	list := e.do(t, "GET", "/v1/lists/deny_ip", "")
	var l struct {
		Entries []struct {
			CreatedAt string `json:"created_at"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(list.body, &l); err != nil || len(l.Entries) != 1 {
		t.Fatalf("list: %s (%v)", list.body, err)
	}
	var entry struct {
		Entry struct {
			CreatedAt string `json:"created_at"`
		} `json:"entry"`
		CreatedAt string `json:"created_at"`
	}
	if err := json.Unmarshal(put.body, &entry); err != nil {
		t.Fatal(err)
	}
	answered := entry.CreatedAt + entry.Entry.CreatedAt
	if answered == "" || answered != l.Entries[0].CreatedAt {
		t.Errorf("list entry created_at: answered %q, read back %q (%s)", answered, l.Entries[0].CreatedAt, put.body)
	}
}

// stalledReads is a store whose decision reads hang until their context ends, as behind a
// database that stopped answering.
type stalledReads struct{ store.Store }

func (s stalledReads) GetDecision(ctx context.Context, id string) (store.DecisionRecord, error) {
	<-ctx.Done()
	return s.Store.GetDecision(ctx, id)
}

// TestStalledStoreReadIsBounded: a read the store never answers gets a 503 at the request
// deadline instead of holding the request (and, at shutdown, the exit) for the stall.
func TestStalledStoreReadIsBounded(t *testing.T) {
	e := newEnv(t, options{requestTimeout: 200 * time.Millisecond, wrapStore: func(st store.Store) store.Store { return stalledReads{st} }})
	start := time.Now()
	r := e.do(t, "GET", "/v1/decisions/"+uuid.NewString(), "")
	if took := time.Since(start); r.status != 503 || took > 5*time.Second {
		t.Fatalf("stalled read: %d after %v: %s", r.status, took, r.body)
	}
	// A decision keeps its own deadline and still answers.
	if d := e.do(t, "POST", "/v1/decide", loginBody); d.status != 200 {
		t.Fatalf("decide: %d %s", d.status, d.body)
	}
}

// TestRetryIsCountedOnce: a retry with the same Idempotency-Key after an answer that was
// not stored (or on another replica while the first attempt is in flight) is one event for
// the velocity counters, which ignore an event they already hold.
func TestRetryIsCountedOnce(t *testing.T) {
	vel := velocity.NewMemory()
	down := newEnv(t, options{velocity: vel, committer: func(*store.GroupCommitter) httpapi.Committer { return failingCommitter{} }})
	up := newEnv(t, options{velocity: vel})
	first := down.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "retry-1").json(t)
	if deg, _ := first["degraded"].(map[string]any); deg == nil || deg["stored"] != false {
		t.Fatalf("first attempt: %v, want an answer not stored", first)
	}
	retry := up.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "retry-1").json(t)
	stored := up.do(t, "GET", "/v1/decisions/"+retry["decision_id"].(string), "").json(t)
	user := stored["input"].(map[string]any)["signals"].(map[string]any)["velocity"].(map[string]any)["user"].(map[string]any)
	if user["count_1m"] != float64(1) {
		t.Fatalf("the retry saw count_1m %v, want 1 (one logical request)", user["count_1m"])
	}
	// Another key is another request.
	other := up.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "retry-2").json(t)
	stored = up.do(t, "GET", "/v1/decisions/"+other["decision_id"].(string), "").json(t)
	user = stored["input"].(map[string]any)["signals"].(map[string]any)["velocity"].(map[string]any)["user"].(map[string]any)
	if user["count_1m"] != float64(2) {
		t.Fatalf("a new key saw count_1m %v, want 2", user["count_1m"])
	}
}

// TestContextCountryIsUpperCased: context.country is accepted in any case, matched against
// the lists in upper case, and must reach the policy (and the stored input) the same way:
// a login from "de" by a subject of "DE" is not from another country.
func TestContextCountryIsUpperCased(t *testing.T) {
	e := newEnv(t, options{})
	body := strings.Replace(loginBody, `"country":"DE","auth_method"`, `"country":"de","auth_method"`, 1)
	r := e.do(t, "POST", "/v1/decide", body)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	d := r.json(t)
	if codes := reasonCodes(d); slices.Contains(codes, "UNUSUAL_COUNTRY") {
		t.Fatalf("a lower-case context.country of the subject's own country fired %v: %s", codes, r.body)
	}
	stored := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "").json(t)
	if c := stored["input"].(map[string]any)["context"].(map[string]any)["country"]; c != "DE" {
		t.Fatalf("stored context.country %v, want DE", c)
	}
	// A subject's two-letter country is one spelling too, whatever the case of either.
	for _, tc := range []struct {
		subject, context string
		unusual          bool
	}{{"de", "de", false}, {"de", "DE", false}, {"De", "dE", false}, {"fr", "de", true}, {"France", "FR", true}} {
		body := `{"action":"login","subject":{"id":"user-42","country":"` + tc.subject + `"},"device":{"id":"dev-1"},"context":{"country":"` + tc.context + `"}}`
		r := e.do(t, "POST", "/v1/decide", body)
		if got := slices.Contains(reasonCodes(r.json(t)), "UNUSUAL_COUNTRY"); got != tc.unusual {
			t.Errorf("subject %q, context %q: UNUSUAL_COUNTRY %v, want %v: %s", tc.subject, tc.context, got, tc.unusual, r.body)
		}
	}
}

// TestEmptyIdempotencyKeyIsRefused: an Idempotency-Key header sent empty (a client's
// unset variable) is refused like any other invalid key, not read as no key: each retry
// would get a decision of its own and count again in the velocity signals.
func TestEmptyIdempotencyKeyIsRefused(t *testing.T) {
	e := newEnv(t, options{})
	for _, k := range []string{"", "   "} {
		assertProblem(t, e.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", k), 400, httpapi.CodeIdempotencyInvalid)
	}
	if r := e.do(t, "POST", "/v1/decide", loginBody); r.status != 200 {
		t.Fatalf("without the header: %d %s", r.status, r.body)
	}
}

// lookupsDown is a store that cannot look idempotency keys up, as during a database outage;
// with once set, only its first look-up fails (the store comes back during the request).
type lookupsDown struct {
	store.Store
	once *atomic.Bool
}

func (l lookupsDown) LookupIdempotency(ctx context.Context, key string) (store.Idempotency, error) {
	if l.once != nil && l.once.Swap(true) {
		return l.Store.LookupIdempotency(ctx, key)
	}
	return store.Idempotency{}, fmt.Errorf("lookup idempotency key: %w: connection refused", store.ErrUnavailable)
}

// TestIdempotencyKeyDoesNotBypassFailMode: with the store down, a decision that carries an
// Idempotency-Key (as every payment integration sends) follows the action's fail mode and
// says it was not stored, like one without a key, instead of a 503 with no decision. When
// only the look-up fails, the store still keeps one decision per key: the copy answers as
// the stored one did.
func TestIdempotencyKeyDoesNotBypassFailMode(t *testing.T) {
	payout := `{"action":"payout","subject":{"id":"u-fm"},"device":{"id":"d-fm"},"context":{"amount":10}}`
	t.Run("store down", func(t *testing.T) {
		e := newEnv(t, options{wrapStore: func(st store.Store) store.Store { return lookupsDown{st, nil} },
			committer: func(*store.GroupCommitter) httpapi.Committer {
				return committerFunc(func(context.Context, store.DecisionRecord) error {
					return fmt.Errorf("write: %w", store.ErrUnavailable)
				})
			}})
		r := e.do(t, "POST", "/v1/decide", payout, "Idempotency-Key", "pay-1")
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := r.json(t)
		deg, _ := d["degraded"].(map[string]any)
		if d["outcome"] != "block" || deg == nil || deg["stored"] != false || !slices.Contains(reasonCodes(d), engine.CauseStoreUnavailable) {
			t.Fatalf("answer = %s", r.body)
		}
	})
	t.Run("look-up down, key already used", func(t *testing.T) {
		var failed atomic.Bool
		failed.Store(true)
		e := newEnv(t, options{wrapStore: func(st store.Store) store.Store { return lookupsDown{st, &failed} }})
		first := e.do(t, "POST", "/v1/decide", payout, "Idempotency-Key", "pay-2").json(t)
		failed.Store(false) // the next look-up fails
		r := e.do(t, "POST", "/v1/decide", payout, "Idempotency-Key", "pay-2")
		if r.status != 200 || r.json(t)["decision_id"] != first["decision_id"] {
			t.Fatalf("copy answered %d %s, want the stored decision %v", r.status, r.body, first["decision_id"])
		}
	})
}

// TestListReasonCountsCharacters: a list entry's reason is held to 500 characters, as
// openapi.json's maxLength says, not 500 UTF-8 bytes: 500 "é" (1,000 bytes) are taken.
func TestListReasonCountsCharacters(t *testing.T) {
	e := newEnv(t, options{})
	if r := e.do(t, "PUT", "/v1/lists/deny_user/entries/u-fr", `{"reason":"`+strings.Repeat("é", 500)+`"}`); r.status != 201 {
		t.Fatalf("500 characters: %d %s", r.status, r.body)
	}
	r := e.do(t, "PUT", "/v1/lists/deny_user/entries/u-fr", `{"reason":"`+strings.Repeat("é", 501)+`"}`)
	assertProblem(t, r, 400, httpapi.CodeInvalidRequest)
	if !strings.Contains(string(r.body), `"pointer":"/reason"`) {
		t.Errorf("501 characters: %s", r.body)
	}
}

// TestListPrefixWithHostBits: 10.30.0.5/16 is refused, naming the range and the address
// it may mean, rather than stored as 10.30.0.0/16 without a word: a deny entry meant for
// one address would block 65,536. Both of those are taken.
func TestListPrefixWithHostBits(t *testing.T) {
	e := newEnv(t, options{})
	r := e.do(t, "PUT", "/v1/lists/deny_ip/entries/10.30.0.5%2F16", `{"reason":"one bad host"}`)
	assertProblem(t, r, 400, httpapi.CodeInvalidList)
	for _, want := range []string{"10.30.0.5/16 has host bits set", "10.30.0.0/16 (10.30.0.0%2F16 in the URL)", "the one address 10.30.0.5"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("answer lacks %q: %s", want, r.body)
		}
	}
	if g := e.do(t, "GET", "/v1/lists/deny_ip", "").json(t); len(g["entries"].([]any)) != 0 {
		t.Fatalf("stored: %v", g)
	}
	for _, v := range []string{"10.30.0.0%2F16", "10.30.0.5", "10.30.0.5%2F32"} {
		if r := e.do(t, "PUT", "/v1/lists/deny_ip/entries/"+v, ""); r.status != 201 {
			t.Errorf("%s: %d %s", v, r.status, r.body)
		}
	}
}
