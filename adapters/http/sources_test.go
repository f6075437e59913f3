package http_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/store"
)

// failingVerifications is a verification source that always fails, as Postgres does
// while the verifications table is locked past the source timeout.
type failingVerifications struct {
	mu    sync.Mutex
	asked int
}

func (f *failingVerifications) LatestVerification(context.Context, string) (store.Verification, error) {
	f.mu.Lock()
	f.asked++
	f.mu.Unlock()
	return store.Verification{}, errors.New("canceling statement due to lock timeout")
}

func (f *failingVerifications) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

func strs(v any) []string {
	out := []string{}
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// A failing signal source degrades only the decisions whose policy reads it: login reads
// no verification, so a verification lookup that fails does not send logins to review;
// onboarding reads it and still follows its fail mode.
func TestUnreadSourceDoesNotDegrade(t *testing.T) {
	ver := &failingVerifications{}
	e := newEnv(t, options{verifications: ver})

	r := e.do(t, "POST", "/v1/decide", `{"action":"login","subject":{"id":"vu-1"},"device":{"id":"d1"},"context":{"ip":"203.0.113.7"}}`)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	d := r.json(t)
	if codes := reasonCodes(d); slices.Contains(codes, engine.CauseSignalsUnavailable) || d["degraded"] != nil ||
		len(d["signals_unavailable"].([]any)) != 0 || d["outcome"] != "step_up" {
		t.Fatalf("login degraded by a source it does not read: %s", r.body)
	}
	if n := ver.count(); n != 0 {
		t.Errorf("login asked for the verification %d times", n)
	}
	// The stored input says verification was not gathered, rather than "none", and
	// replays to the same answer with plain OPA.
	g := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "")
	in := g.json(t)["input"].(map[string]any)
	sig := in["signals"].(map[string]any)
	if _, ok := sig["verification"]; ok || !slices.Equal(strs(sig["not_gathered"]), []string{"verification"}) {
		t.Fatalf("stored signals: %v", sig)
	}
	if outcome, codes := opaEval(t, "login", in); outcome != d["outcome"] || !slices.Equal(sorted(codes), sorted(reasonCodes(d))) {
		t.Fatalf("opa eval: %s %v; verdict %v %v", outcome, codes, d["outcome"], reasonCodes(d))
	}

	// A source the policy reads still degrades it.
	r = e.do(t, "POST", "/v1/decide", `{"action":"onboarding","subject":{"id":"vu-1"},"device":{"id":"d1"},"context":{"ip":"203.0.113.7"}}`)
	d = r.json(t)
	if !slices.Contains(reasonCodes(d), engine.CauseSignalsUnavailable) || d["outcome"] != "review" ||
		!slices.Equal(strs(d["signals_unavailable"]), []string{"verification"}) {
		t.Fatalf("onboarding not degraded by its verification: %s", r.body)
	}
}

// A shadow version that reads a source the live policy does not gets it gathered; its
// failure degrades the shadow outcome, not the live answer.
func TestShadowSourcesAreGathered(t *testing.T) {
	base, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	version, err := engine.LoadVersion("", map[string][]byte{"login.rego": []byte(`# METADATA
# custom:
#   fail_mode: review
package verdict.login

decision := {"outcome": "approve", "score": 0, "reasons": []} if input.signals.verification.status != "rejected"
`)})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := version.Policy("login")
	if p.Reads() != engine.SourceVerification {
		t.Fatalf("shadow reads %v", p.Reads())
	}
	var mu sync.Mutex
	var results []store.ShadowResult
	sh := httpapi.NewShadow(engine.New(base), shadowSource{"login": {p}}, shadowWriter{write: func(rs []store.ShadowResult) error {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, rs...)
		return nil
	}}, httpapi.WithShadowRate(0), httpapi.WithShadowRegisterer(prometheus.NewRegistry()))
	sh.Start()
	ver := &failingVerifications{}
	e := newEnv(t, options{verifications: ver, shadow: sh})

	r := e.do(t, "POST", "/v1/decide", `{"action":"login","subject":{"id":"vu-1"},"device":{"id":"d1"},"context":{"ip":"203.0.113.7"}}`)
	d := r.json(t)
	if ver.count() != 1 || d["degraded"] != nil || len(d["signals_unavailable"].([]any)) != 0 {
		t.Fatalf("asked %d times; answer %s", ver.count(), r.body)
	}
	g := e.do(t, "GET", "/v1/decisions/"+d["decision_id"].(string), "")
	sig := g.json(t)["input"].(map[string]any)["signals"].(map[string]any)
	if _, ok := sig["not_gathered"]; ok || !slices.Equal(strs(sig["unavailable"]), []string{"verification"}) {
		t.Fatalf("stored signals: %v", sig)
	}
	if err := sh.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Outcome != "review" || !slices.Contains(results[0].ReasonCodes, engine.CauseSignalsUnavailable) {
		t.Fatalf("shadow results %+v", results)
	}
}
