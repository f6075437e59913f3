package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/policysync"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

const (
	aliceKey = "alice-secret-0123456789"
	bobKey   = "bob-secret-0123456789ab"
	shopKey  = "shop-secret-0123456789a"
)

// policyEnv is a replica with the policy lifecycle wired as serve wires it: the embedded
// store, a syncer over it and the shadow evaluator.
type policyEnv struct {
	*env
	eng    *engine.Engine
	syncer *policysync.Syncer
	shadow *httpapi.Shadow
	reg    *prometheus.Registry
	users  int
	// pokes counts Deps.PoliciesChanged calls.
	pokes *atomic.Int32
}

// policyEnvOptions change how newPolicyEnv wires shadow evaluation.
type policyEnvOptions struct {
	writer httpapi.ShadowWriter                            // default: the store
	source func(httpapi.ShadowSource) httpapi.ShadowSource // wraps the syncer
	rate   float64                                         // shadow sampling rate; 0: every decision
}

// newPolicyEnv builds the replica.
func newPolicyEnv(t testing.TB, opts ...policyEnvOptions) *policyEnv {
	t.Helper()
	var o policyEnvOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	gc := store.NewGroupCommitter(st)
	base, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	lists, err := signals.NewLists(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := httpapi.ParseAPIKeys("alice:" + aliceKey + ":admin,bob:" + bobKey + ":admin,shop:" + shopKey + ":decide")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	eng := engine.New(base)
	syncer := policysync.New(st, eng, base, policysync.WithRegisterer(reg))
	var writer httpapi.ShadowWriter = st
	if o.writer != nil {
		writer = o.writer
	}
	var source httpapi.ShadowSource = syncer
	if o.source != nil {
		source = o.source(syncer)
	}
	shadow := httpapi.NewShadow(eng, source, writer, httpapi.WithShadowRegisterer(reg), httpapi.WithShadowRate(o.rate))
	shadow.Start()
	t.Cleanup(func() {
		_ = shadow.Close(context.Background())
		_ = gc.Close(context.Background())
		_ = st.Close()
	})
	pokes := &atomic.Int32{}
	srv := httpapi.New(httpapi.Config{APIKeys: keys}, httpapi.Deps{
		Engine: eng, Gatherer: signals.NewGatherer(velocity.NewMemory(), lists, st), Lists: lists,
		Store: st, Committer: gc, Registry: reg, Shadow: shadow,
		PoliciesChanged: func(context.Context) { pokes.Add(1) },
	})
	return &policyEnv{env: &env{srv: srv, store: st, dir: dir}, eng: eng, syncer: syncer, shadow: shadow, reg: reg, pokes: pokes}
}

func (e *policyEnv) as(t testing.TB, key, method, path, body string) resp {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := e.srv.App().Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *policyEnv) sync(t testing.TB) {
	t.Helper()
	if err := e.syncer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// payoutVersion returns the embedded bundle, tests included, with payout.rego edited.
func payoutVersion(t testing.TB, replace ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(policies.Bundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.Bundle(), p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	src := files["payout/payout.rego"]
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(src, replace[i]) {
			t.Fatalf("payout.rego lacks %q", replace[i])
		}
		src = strings.Replace(src, replace[i], replace[i+1], 1)
	}
	files["payout/payout.rego"] = src
	return files
}

func publishBody(t testing.TB, label string, files map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"label": label, "changelog": "why: " + label, "files": files})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// payoutBody: an unverified subject's small payout asks for a document
// (step_up) under the shipped policy; with max_amount_established 100 it goes to review.
// Each goes for another user, so that velocity rules stay quiet.
const payoutBody = `{"action":"payout","subject":{"id":"user-%d","account_age_days":400},"device":{"id":"dev-5"},"context":{"ip":"198.51.100.9","amount":150,"currency":"EUR","payout_method":"bank"}}`

func decidePolicy(t *testing.T, e *policyEnv) (outcome, version, hash string) {
	t.Helper()
	e.users++
	r := e.as(t, shopKey, "POST", "/v1/decide", fmt.Sprintf(payoutBody, e.users))
	if r.status != 200 {
		t.Fatalf("decide: %d %s", r.status, r.body)
	}
	d := r.json(t)
	p := d["policy"].(map[string]any)
	return d["outcome"].(string), p["version"].(string), p["hash"].(string)
}

func TestPolicyLifecycleAPI(t *testing.T) {
	e := newPolicyEnv(t)
	_, baseVersion, baseHash := decidePolicy(t, e)

	// Only admins.
	if r := e.as(t, shopKey, "GET", "/v1/policies", ""); r.status != 403 {
		t.Fatalf("decide key lists policies: %d", r.status)
	}

	// A version that does not compile is refused with file:line.
	bad := payoutVersion(t, "decision := lib.decide(reasons)", "decision := lib.decide(reasons\n")
	r := e.as(t, aliceKey, "POST", "/v1/policies", publishBody(t, "broken", bad))
	if r.status != 400 || r.json(t)["code"] != "invalid_policy" {
		t.Fatalf("publish broken: %d %s", r.status, r.body)
	}
	errs := r.json(t)["errors"].([]any)
	first := errs[0].(map[string]any)
	if first["pointer"] != "/files/payout~1payout.rego" || !strings.HasPrefix(first["detail"].(string), "payout/payout.rego:") {
		t.Fatalf("problem does not name file:line: %s", r.body)
	}

	// As `verdict policy publish` (lint): a reason code missing from reason_codes.yaml, or
	// not UPPER_SNAKE, is refused with file:line, though it compiles.
	for code, want := range map[string]string{"NEW_PAYEE": "is not in reason_codes.yaml", "new_beneficiary": "must be UPPER_SNAKE"} {
		files := payoutVersion(t, `lib.step_up_at("NEW_BENEFICIARY"`, `lib.step_up_at("`+code+`"`)
		r = e.as(t, aliceKey, "POST", "/v1/policies", publishBody(t, "unlisted", files))
		if r.status != 400 || r.json(t)["code"] != "invalid_policy" || !strings.Contains(string(r.body), "payout/payout.rego:140: reason code") ||
			!strings.Contains(string(r.body), want) {
			t.Fatalf("publish with reason code %s: %d %s", code, r.status, r.body)
		}
	}

	// A valid version, the whole bundle with its tests: more than the API's 64 KiB limit.
	v2Files := payoutVersion(t, "version: payout-2026.12.1", "version: payout-2026.12.2")
	body := publishBody(t, "payout-2026.12.2", v2Files)
	if len(body) <= 64<<10 {
		t.Fatalf("bundle body is %d bytes; the test wants one above 64 KiB", len(body))
	}
	r = e.as(t, aliceKey, "POST", "/v1/policies", body)
	if r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	v2 := r.json(t)["hash"].(string)
	if r.json(t)["author"] != "alice" || len(r.json(t)["policies"].([]any)) != 3 {
		t.Errorf("publish answer %s", r.body)
	}
	if r = e.as(t, bobKey, "POST", "/v1/policies", body); r.status != 200 || r.json(t)["hash"] != v2 {
		t.Fatalf("publish again: %d %s", r.status, r.body)
	}
	if r = e.as(t, aliceKey, "GET", "/v1/policies", ""); r.status != 200 || !strings.Contains(string(r.body), v2) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r = e.as(t, aliceKey, "GET", "/v1/policies/"+url.PathEscape(v2), "")
	if r.status != 200 || r.json(t)["files"].(map[string]any)["payout/payout.rego"] != v2Files["payout/payout.rego"] {
		t.Fatalf("get: %d %.300s", r.status, r.body)
	}
	if r = e.as(t, aliceKey, "GET", "/v1/policies/sha256:"+strings.Repeat("0", 64), ""); r.status != 404 {
		t.Fatalf("get unknown: %d %s", r.status, r.body)
	}

	// Activate: the next decision, once synced, names the version. The replica's own sync
	// is told at once rather than waiting for its next poll.
	pokes := e.pokes.Load()
	r = e.as(t, aliceKey, "POST", "/v1/policies/payout/activate", `{"version":"`+v2+`"}`)
	if r.status != 200 || r.json(t)["status"] != "active" {
		t.Fatalf("activate: %d %s", r.status, r.body)
	}
	if e.pokes.Load() != pokes+1 {
		t.Fatalf("activation told the policy sync %d times, want once", e.pokes.Load()-pokes)
	}
	e.sync(t)
	if _, version, hash := decidePolicy(t, e); hash != v2 || version != "payout-2026.12.2" {
		t.Fatalf("after activation decided by %s %s, want payout-2026.12.2 %s", version, hash, v2)
	}
	if r = e.as(t, aliceKey, "POST", "/v1/policies/refund/activate", `{"version":"`+v2+`"}`); r.status != 422 || r.json(t)["code"] != "invalid_policy" {
		t.Fatalf("activate for an action the version lacks: %d %s", r.status, r.body)
	}
	if r = e.as(t, aliceKey, "POST", "/v1/policies/payout/activate", `{"version":"sha256:`+strings.Repeat("1", 64)+`"}`); r.status != 422 || r.json(t)["code"] != "unknown_policy_version" {
		t.Fatalf("activate unknown version: %d %s", r.status, r.body)
	}

	// Roll back to the default bundle.
	if r = e.as(t, aliceKey, "POST", "/v1/policies/payout/rollback", ""); r.status != 200 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	e.sync(t)
	if _, version, hash := decidePolicy(t, e); hash != baseHash || version != baseVersion {
		t.Fatalf("after rollback decided by %s %s, want the bundle's %s", version, hash, baseHash)
	}
	if r = e.as(t, aliceKey, "POST", "/v1/policies/payout/rollback", ""); r.status != 404 {
		t.Fatalf("rollback of the default bundle: %d %s", r.status, r.body)
	}

	// Four eyes: the requester cannot approve, another admin can.
	r = e.as(t, aliceKey, "POST", "/v1/policies/payout/activate", `{"version":"`+v2+`","require_approval":true}`)
	if r.status != 202 || r.json(t)["status"] != "pending" {
		t.Fatalf("activate with approval: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	e.sync(t)
	if _, _, hash := decidePolicy(t, e); hash != baseHash {
		t.Fatal("a pending activation went live")
	}
	if r = e.as(t, aliceKey, "POST", "/v1/policies/activations/"+id+"/approve", ""); r.status != 409 || r.json(t)["code"] != "self_approval" {
		t.Fatalf("self approval: %d %s", r.status, r.body)
	}
	if r = e.as(t, bobKey, "POST", "/v1/policies/activations/"+id+"/approve", ""); r.status != 200 || r.json(t)["approver"] != "bob" {
		t.Fatalf("approval: %d %s", r.status, r.body)
	}
	if r = e.as(t, bobKey, "POST", "/v1/policies/activations/"+id+"/approve", ""); r.status != 404 {
		t.Fatalf("second approval: %d %s", r.status, r.body)
	}
	e.sync(t)
	if _, _, hash := decidePolicy(t, e); hash != v2 {
		t.Fatalf("after approval decided by %s, want %s", hash, v2)
	}
	if r = e.as(t, aliceKey, "GET", "/v1/policies/payout/activations", ""); r.status != 200 || len(r.json(t)["activations"].([]any)) != 3 {
		t.Fatalf("activations: %d %s", r.status, r.body)
	}

	// Shadow: a stricter version disagrees, a relabelled one agrees.
	strict := payoutVersion(t, "version: payout-2026.12.1", "version: payout-2026.12.3", `"max_amount_established": 10000,`, `"max_amount_established": 100,`)
	r = e.as(t, aliceKey, "POST", "/v1/policies", publishBody(t, "payout-2026.12.3", strict))
	if r.status != 201 {
		t.Fatalf("publish strict: %d %s", r.status, r.body)
	}
	v3 := r.json(t)["hash"].(string)
	if r = e.as(t, aliceKey, "PUT", "/v1/policies/payout/shadow", fmt.Sprintf(`{"versions":[%q,%q]}`, v3, baseHashVersion(t, e))); r.status != 200 {
		t.Fatalf("set shadow: %d %s", r.status, r.body)
	}
	if r = e.as(t, aliceKey, "PUT", "/v1/policies/payout/shadow", fmt.Sprintf(`{"versions":[%q,%q]}`, v3, v3)); r.status != 400 {
		t.Fatalf("shadow listed twice: %d %s", r.status, r.body)
	}
	e.sync(t)
	since := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	const n = 10
	for range n {
		if outcome, _, hash := decidePolicy(t, e); outcome != "step_up" || hash != v2 {
			t.Fatalf("live answer %s by %s, want step_up by the active version", outcome, hash)
		}
	}
	if err := e.shadow.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = e.as(t, aliceKey, "GET", "/v1/policies/payout/shadow?since="+url.QueryEscape(since), "")
	if r.status != 200 {
		t.Fatalf("shadow report: %d %s", r.status, r.body)
	}
	var report struct {
		Versions []struct {
			Version   string                      `json:"version"`
			Total     int64                       `json:"total"`
			Agree     int64                       `json:"agree"`
			Agreement *float64                    `json:"agreement"`
			Confusion map[string]map[string]int64 `json:"confusion"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(r.body, &report); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range report.Versions {
		got[v.Version] = fmt.Sprintf("total=%d agree=%d agreement=%v confusion=%v", v.Total, v.Agree, *v.Agreement, v.Confusion)
	}
	want := map[string]string{
		v3:                    fmt.Sprintf("total=%d agree=0 agreement=0 confusion=map[step_up:map[review:%d]]", n, n),
		baseHashVersion(t, e): fmt.Sprintf("total=%d agree=%d agreement=1 confusion=map[step_up:map[step_up:%d]]", n, n, n),
	}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("shadow %s: %s, want %s (report %s)", h, got[h], w, r.body)
		}
	}
	if r = e.as(t, aliceKey, "GET", "/v1/policies/payout/shadow?since=yesterday", ""); r.status != 400 {
		t.Errorf("bad since: %d", r.status)
	}
	m := e.do(t, "GET", "/metrics", "")
	for _, want := range []string{`verdict_shadow_evaluations_total{action="payout"} 20`, `verdict_shadow_disagreements_total{action="payout"} 10`, "verdict_policy_generation"} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// baseHashVersion publishes the embedded bundle unchanged as a version and returns its
// hash: it decides as the default bundle does.
func baseHashVersion(t *testing.T, e *policyEnv) string {
	t.Helper()
	r := e.as(t, aliceKey, "POST", "/v1/policies", publishBody(t, "bundle", payoutVersion(t)))
	if r.status != 201 && r.status != 200 {
		t.Fatalf("publish bundle: %d %s", r.status, r.body)
	}
	return r.json(t)["hash"].(string)
}

func TestPolicyRoutesInOpenAPI(t *testing.T) {
	e := newPolicyEnv(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(e.do(t, "GET", "/openapi.json", "").body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, rt := range e.srv.App().GetRoutes(true) {
		if !strings.HasPrefix(rt.Path, "/v1/policies") || rt.Method == "HEAD" {
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

// TestPublishLimitsCountCharacters: label, author and changelog are held to their
// openapi.json maxLength in characters, not UTF-8 bytes: 128 CJK characters (384 bytes)
// are a valid label, 129 are not.
func TestPublishLimitsCountCharacters(t *testing.T) {
	e := newPolicyEnv(t)
	pointers := func(label, author, changelog string) []string {
		b, _ := json.Marshal(map[string]any{"label": label, "author": author, "changelog": changelog, "files": map[string]string{}})
		r := e.as(t, aliceKey, "POST", "/v1/policies", string(b))
		if r.status != 400 {
			t.Fatalf("publish: %d %s", r.status, r.body)
		}
		var p struct{ Errors []struct{ Pointer string } }
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range p.Errors {
			out = append(out, f.Pointer)
		}
		return out
	}
	// files is empty in both: only its error is expected at the limits.
	if got := pointers(strings.Repeat("政", 128), strings.Repeat("é", 128), strings.Repeat("é", 4000)); !slices.Equal(got, []string{"/files"}) {
		t.Errorf("at the limits in characters: errors at %v, want only /files", got)
	}
	if got := pointers(strings.Repeat("政", 129), strings.Repeat("é", 129), strings.Repeat("é", 4001)); !slices.Equal(got, []string{"/label", "/changelog", "/author", "/files"}) {
		t.Errorf("a character over the limits: errors at %v", got)
	}
}
