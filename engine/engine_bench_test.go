package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

// payoutInput is a typical payout: established account, known device, bank transfer.
func payoutInput() *engine.Input {
	return &engine.Input{
		Action:   "payout",
		Subject:  map[string]any{"id": "user-1", "account_age_days": 400.0, "country": "DE", "email_verified": true},
		Device:   map[string]any{"id": "dev-1", "platform": "ios"},
		Context:  map[string]any{"ip": "10.1.2.3", "country": "DE", "amount": 1800.0, "currency": "EUR", "payout_method": "bank", "new_beneficiary": true},
		Behavior: map[string]any{"bot_score": 0.1, "session_age_seconds": 300.0},
		Signals: engine.Signals{
			Verification: engine.Verification{Status: "approved", Provider: "sandbox", Score: 0.93, ReasonCodes: []string{}, AgeDays: 40},
			Velocity:     engine.Velocity{User: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctDevices24h: 1}, Device: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctUsers24h: 1}, IP: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctUsers24h: 1}},
			Device:       engine.DeviceReputation{Known: true, AgeHours: 900, UsersSeen: 1},
			Lists:        map[string]bool{"deny_user": false, "deny_device": false, "deny_ip": false, "deny_country": false, "allow_user": false, "allow_device": false, "allow_ip": false, "watch_user": false, "watch_device": false, "watch_ip": false},
			Unavailable:  []string{},
		},
	}
}

func benchDecide(b *testing.B, set *engine.PolicySet, in *engine.Input) {
	e := engine.New(set)
	ctx := context.Background()
	if _, err := e.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecidePayoutRego: the shipped payout policy (Rego), one decision.
func BenchmarkDecidePayoutRego(b *testing.B) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		b.Fatal(err)
	}
	benchDecide(b, set, payoutInput())
}

// BenchmarkDecideLoginRego and BenchmarkDecideLoginCEL: the same login policy in both
// languages, on the same input.
func BenchmarkDecideLoginRego(b *testing.B) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		b.Fatal(err)
	}
	in := payoutInput()
	in.Action = "login"
	benchDecide(b, set, in)
}

func BenchmarkDecideLoginCEL(b *testing.B) {
	set, err := engine.Load(policies.CEL())
	if err != nil {
		b.Fatal(err)
	}
	in := payoutInput()
	in.Action = "login"
	benchDecide(b, set, in)
}

// BenchmarkDecideTrivialRego is the fixed cost of a Rego decision: a one-line policy that
// reads nothing.
func BenchmarkDecideTrivialRego(b *testing.B) {
	set, err := engine.Load(fstest.MapFS{"payout/payout.rego": {Data: []byte(
		"# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.payout\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n")}})
	if err != nil {
		b.Fatal(err)
	}
	benchDecide(b, set, payoutInput())
}

// BenchmarkDecideOtherPayoutsRego: payouts on which no reason fires, and three.
func BenchmarkDecideOtherPayoutsRego(b *testing.B) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("no-reason", func(b *testing.B) {
		in := payoutInput()
		in.Context["new_beneficiary"] = false
		benchDecide(b, set, in)
	})
	b.Run("three-reasons", func(b *testing.B) {
		in := payoutInput()
		in.Signals.Device = engine.DeviceReputation{Known: false}
		in.Signals.Velocity.User.Count1h = 9
		benchDecide(b, set, in)
	})
}

// BenchmarkLoadBundle: compiling the shipped bundle, as on every publish.
func BenchmarkLoadBundle(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.Load(policies.Bundle()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRegoEvaluationMatchesOPA guards the evaluation strategy the engine uses for speed
// (partial evaluation at load, an input document holding only what a policy reads, its
// own caches): on many variations of a request, every shipped Rego policy must decide
// through the engine exactly as plain OPA decides on the full input, as `opa eval`
// would on a stored decision.
func TestRegoEvaluationMatchesOPA(t *testing.T) {
	for _, data := range []map[string]any{
		nil,
		// Overrides loaded with the bundle are folded into the policies at load.
		{"thresholds": map[string]any{
			"payout":     map[string]any{"max_amount_established": 1000, "max_user_1h": 1, "new_device_hours": 1000},
			"login":      map[string]any{"max_user_1h": 1, "bot_score_review": 0.05},
			"onboarding": map[string]any{"max_ip_signups_24h": 3},
		}},
	} {
		t.Run(fmt.Sprintf("data=%v", data != nil), func(t *testing.T) { testMatchesOPA(t, data) })
	}
}

func testMatchesOPA(t *testing.T, data map[string]any) {
	var opts []engine.LoadOption
	if data != nil {
		opts = append(opts, engine.WithData(data))
	}
	set, err := engine.Load(policies.Bundle(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set, engine.WithEvalTimeout(5*time.Second))
	rng := rand.New(rand.NewPCG(1, 2))
	type tc struct {
		in   *engine.Input
		want decisionSummary
	}
	var cases []tc
	for _, action := range set.Actions() {
		pq := plainOPA(t, action, data)
		seen := map[string]bool{}
		for i := range 400 {
			in := payoutInput()
			in.Action = action
			for range 1 + i%4 {
				mutations[rng.IntN(len(mutations))](in)
			}
			want := evalPlain(t, pq, in)
			if got := decide(t, e, in); fmt.Sprint(got) != fmt.Sprint(want) {
				b, _ := json.Marshal(in)
				t.Fatalf("%s: engine decided %+v, OPA %+v\ninput: %s", action, got, want, b)
			}
			seen[strings.Join(want.Codes, ",")] = true
			cases = append(cases, tc{in, want})
		}
		if len(seen) < 10 {
			t.Errorf("%s: the variations only produced %d distinct decisions", action, len(seen))
		}
	}
	// The same decisions, concurrently: the policies and what they share between
	// requests are read-only.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(cases); i += 4 {
				if got := decide(t, e, cases[i].in); fmt.Sprint(got) != fmt.Sprint(cases[i].want) {
					t.Errorf("concurrent: engine decided %+v, OPA %+v", got, cases[i].want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func decide(t *testing.T, e *engine.Engine, in *engine.Input) decisionSummary {
	t.Helper()
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Errorf("%s: engine: %v", in.Action, err)
		return decisionSummary{}
	}
	out := decisionSummary{Outcome: d.Outcome.String(), Score: d.Score, StepUp: d.StepUp, Codes: []string{}}
	for _, r := range d.Reasons {
		out.Codes = append(out.Codes, r.Code)
	}
	return out
}

// TestRegoDecisionShapes: a decision may be one rule, rules with else, an object built
// key by key or from rules defining its parts, partially evaluated at load or not.
func TestRegoDecisionShapes(t *testing.T) {
	// to_number("x") fails partial evaluation, which computes it ahead and raises the
	// builtin error; the policies using it are evaluated as written, where it is never
	// reached on this input.
	for name, src := range map[string]string{
		"complete":         `decision := {"outcome": "approve", "reasons": [], "score": 0}`,
		"else":             `decision := {"outcome": "block", "reasons": [{"code": "NEVER", "outcome": "block"}]} if input.context.amount > 1000 else := {"outcome": "approve", "reasons": []}`,
		"default":          `default decision := {"outcome": "approve", "reasons": []}`,
		"by key":           `decision[k] := v if some k, v in {"outcome": "approve", "reasons": [], "score": 0}`,
		"parts":            "decision.outcome := \"approve\"\ndecision.reasons := []\ndecision.score := 0",
		"parts, unfolded":  "decision.outcome := \"approve\"\ndecision.reasons := []\ndecision.score := to_number(\"x\") if input.context.amount > 1000",
		"by key, unfolded": "decision[k] := v if {\n\tsome k, v in {\"outcome\": \"approve\", \"reasons\": []}\n}\n\ndecision.score := to_number(\"x\") if input.context.amount > 1000",
		"complete, unfolded": `decision := {"outcome": "approve", "reasons": [], "score": s} if s := score
score := 0 if input.context.amount < 1000
score := to_number("x") if input.context.amount > 1000`,
	} {
		t.Run(name, func(t *testing.T) {
			set, err := engine.Load(fstest.MapFS{"x/x.rego": {Data: []byte("# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\n" + src + "\n")}})
			if err != nil {
				t.Fatal(err)
			}
			in := payoutInput()
			in.Action = "x"
			in.Context["amount"] = 50.0
			d, err := engine.New(set).Decide(context.Background(), in)
			if err != nil || d.Outcome != engine.Approve {
				t.Fatalf("decision %+v, %v", d, err)
			}
		})
	}
}

type decisionSummary struct {
	Outcome string
	Score   float64
	StepUp  string
	Codes   []string
}

func plainOPA(t *testing.T, action string, data map[string]any) rego.PreparedEvalQuery {
	t.Helper()
	if data == nil {
		data = map[string]any{}
	}
	opts := []func(*rego.Rego){
		rego.Query("data.verdict." + action + ".decision"),
		rego.Store(inmem.NewFromObject(data)),
		rego.Capabilities(engine.SandboxCapabilities()),
		rego.StrictBuiltinErrors(true),
	}
	fsys := policies.Bundle()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(fsys, p)
		opts = append(opts, rego.Module(p, string(src)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

func evalPlain(t *testing.T, pq rego.PreparedEvalQuery, in *engine.Input) decisionSummary {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalInput(doc))
	if err != nil || len(rs) != 1 {
		t.Fatalf("opa: %v %v", rs, err)
	}
	raw, _ := json.Marshal(rs[0].Expressions[0].Value)
	var d struct {
		Outcome string      `json:"outcome"`
		Score   json.Number `json:"score"`
		StepUp  string      `json:"step_up"`
		Reasons []struct {
			Code string `json:"code"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	out := decisionSummary{Outcome: d.Outcome, StepUp: d.StepUp, Codes: []string{}}
	out.Score, _ = d.Score.Float64()
	for _, r := range d.Reasons {
		out.Codes = append(out.Codes, r.Code)
	}
	return out
}

// mutations each change one aspect of a request, including malformed posted values.
var mutations = func() []func(*engine.Input) {
	var ms []func(*engine.Input)
	posted := func(field func(*engine.Input) map[string]any, key string, values ...any) {
		ms = append(ms, func(in *engine.Input) { delete(field(in), key) })
		for _, v := range values {
			ms = append(ms, func(in *engine.Input) { field(in)[key] = v })
		}
	}
	subject := func(in *engine.Input) map[string]any { return in.Subject }
	device := func(in *engine.Input) map[string]any { return in.Device }
	ctxt := func(in *engine.Input) map[string]any { return in.Context }
	behavior := func(in *engine.Input) map[string]any { return in.Behavior }
	posted(subject, "account_age_days", 0.0, 10.0, 29.0, 30.0, 179.0, 180.0, "400", nil, false)
	posted(subject, "country", "FR", "DE", nil)
	posted(subject, "email_verified", false, true, "no")
	posted(device, "emulator", true, false)
	posted(device, "rooted", true, false)
	posted(ctxt, "amount", 0.0, -5.0, 150.0, 200.0, 201.0, 500.0, 501.0, 999.5, 1001.0, 2501.0, 10001.0, 25000.0, "1200", nil, false, true, []any{1.0})
	posted(ctxt, "payout_method", "crypto", "card", nil)
	posted(ctxt, "new_beneficiary", true, false, "yes")
	posted(ctxt, "country", "FR", "DE")
	posted(ctxt, "failed_attempts", 0.0, 3.0, 4.0, "9")
	posted(ctxt, "auth_method", "passkey", "password")
	posted(behavior, "bot_score", 0.0, 0.49, 0.5, 0.69, 0.7, 0.79, 0.8, 0.89, 0.9, 0.99, "0.95", nil)
	for _, s := range []string{"approved", "rejected", "none", "initiated", "capturing", "submitted", "pending_review", "needs_resubmission", "expired", "", "weird"} {
		ms = append(ms, func(in *engine.Input) { in.Signals.Verification.Status = s })
	}
	for _, n := range []int64{0, 3, 4, 5, 6, 10, 11, 20, 21, 40} {
		ms = append(ms,
			func(in *engine.Input) { in.Signals.Velocity.User.Count1h = n },
			func(in *engine.Input) { in.Signals.Velocity.User.Count24h = n },
			func(in *engine.Input) { in.Signals.Velocity.IP.Count1m = n },
			func(in *engine.Input) { in.Signals.Velocity.IP.Count24h = n },
			func(in *engine.Input) { in.Signals.Velocity.IP.DistinctUsers24h = n },
			func(in *engine.Input) { in.Signals.Velocity.Device.DistinctUsers24h = n },
		)
	}
	for _, d := range []engine.DeviceReputation{{Known: false}, {Known: true, AgeHours: 3}, {Known: true, AgeHours: 24}, {Known: true, AgeHours: 23.5, Flagged: true}} {
		ms = append(ms, func(in *engine.Input) { in.Signals.Device = d })
	}
	for _, l := range []string{"deny_user", "deny_device", "deny_ip", "deny_country", "allow_user", "watch_device", "disposable_email"} {
		ms = append(ms,
			func(in *engine.Input) { in.Signals.Lists[l] = true },
			func(in *engine.Input) { delete(in.Signals.Lists, l) },
		)
	}
	ms = append(ms, func(in *engine.Input) { in.Signals.Lists = nil })
	for _, u := range [][]string{nil, {"device"}, {"verification"}, {"velocity", "lists"}, {"other"}} {
		ms = append(ms, func(in *engine.Input) { in.Signals.Unavailable = slices.Clone(u) })
	}
	return ms
}()
