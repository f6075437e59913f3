package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

// regoPolicy is a Rego action "a" whose decision fires X when body holds, with helpers
// the bodies can call.
func regoPolicy(body string) string {
	return `# METADATA
# custom:
#   fail_mode: review
package verdict.a

import data.verdict.lib

reasons contains lib.reason("XX", "review", 10, "x") if {
	` + body + `
}

decision := lib.decide(reasons)

helper_reads_device if input.signals.device.known == false

whole_signals := input.signals

status := object.get(input, ["signals", "verification", "status"], "none")
`
}

func readsOf(t *testing.T, files map[string]string, action string) engine.Sources {
	t.Helper()
	set, err := engine.Load(bundle(files))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := set.Policy(action)
	if !ok {
		t.Fatalf("no policy for %s", action)
	}
	return p.Reads()
}

func TestRegoReads(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       engine.Sources
	}{
		{"one source", `input.signals.lists.deny_user == true`, engine.SourceLists},
		{"no signals", `input.context.amount > 10`, 0},
		{"unavailable is not a source", `"velocity" in input.signals.unavailable`, 0},
		{"not_gathered is not a source", `count(input.signals.not_gathered) > 0`, 0},
		{"through a helper rule", `helper_reads_device`, engine.SourceDevice},
		{"two sources", "input.signals.velocity.user.count_1h > 3\n\tinput.signals.verification.status == \"approved\"", engine.SourceVelocity | engine.SourceVerification},
		// Partial evaluation at load inlines the helper: only velocity is left.
		{"signals through a helper", `whole_signals.velocity.user.count_1h > 3`, engine.SourceVelocity},
		{"signals whole", `count(input.signals) > 3`, engine.AllSources},
		{"signals as a value", `is_object(input.signals)`, engine.AllSources},
		{"input whole", `count(input) > 3`, engine.AllSources},
		{"object.get on a constant path", `object.get(input, ["signals", "lists", "deny_user"], false)`, engine.SourceLists},
		{"object.get on a constant key", `count(object.get(input, "signals", {})) > 3`, engine.AllSources},
		{"object.get through a helper", `status == "approved"`, engine.SourceVerification},
		{"object.get on a path from the request", `object.get(input, input.context.path, false)`, engine.AllSources},
		{"dynamic key", `some k; input.signals[k].deny_user == true`, engine.AllSources},
		// Partial evaluation folds the constant key, and the condition below.
		{"variable source name", `s := "lists"; input.signals[s].deny_user == true`, engine.SourceLists},
		{"with modifier", `helper_reads_device with input.context as {}`, engine.AllSources},
		// Folded away at load: a constant-false condition reads nothing it guards.
		{"dead branch", "1 == 2\n\tinput.signals.verification.status == \"none\"", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readsOf(t, map[string]string{"a/a.rego": regoPolicy(tc.body)}, "a")
			if got != tc.want {
				t.Errorf("reads = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRegoReadsAnotherPackage(t *testing.T) {
	lib := `package verdict.helpers

velocity_high if input.signals.velocity.ip.count_1m > 20
`
	got := readsOf(t, map[string]string{"a/a.rego": regoPolicy(`data.verdict.helpers.velocity_high`), "helpers/h.rego": lib}, "a")
	if got != engine.SourceVelocity {
		t.Errorf("reads = %v, want velocity", got)
	}
}

func celPolicy(exprs ...string) string {
	var b strings.Builder
	b.WriteString("action: a\nfail_mode: review\nthresholds: {n: 1}\nrules:\n")
	for i, e := range exprs {
		b.WriteString("  - code: R" + string(rune('A'+i)) + "\n    outcome: review\n    score: 1\n    message: m\n    when: '" + strings.ReplaceAll(e, "'", "''") + "'\n")
	}
	return b.String()
}

func TestCELReads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		exprs []string
		want  engine.Sources
	}{
		{"one source", []string{`signals.lists.deny_user == true`}, engine.SourceLists},
		{"has", []string{`has(signals.device.known)`}, engine.SourceDevice},
		{"no signals", []string{`context.amount > thresholds.n`}, 0},
		{"unavailable is not a source", []string{`"velocity" in signals.unavailable`}, 0},
		{"across rules", []string{`signals.velocity.ip.count_1m > 1.0`, `signals.verification.status == "approved"`}, engine.SourceVelocity | engine.SourceVerification},
		{"index", []string{`signals["lists"].deny_user == true`}, engine.AllSources},
		{"iterated", []string{`signals.exists(k, k == "lists")`}, engine.AllSources},
		{"whole", []string{`size(signals) > 0`}, engine.AllSources},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readsOf(t, map[string]string{"a.cel.yaml": celPolicy(tc.exprs...)}, "a")
			if got != tc.want {
				t.Errorf("reads = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestShippedPolicyReads pins what the shipped policies read: login reads no verification,
// so a verification lookup that fails cannot degrade a login.
func TestShippedPolicyReads(t *testing.T) {
	set, err := engine.Load(os.DirFS("../policies/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	login, _ := set.Policy("login")
	if got, want := login.Reads(), engine.SourceVelocity|engine.SourceDevice|engine.SourceLists; got != want {
		t.Errorf("login reads %v, want %v", got, want)
	}
	cel, err := engine.Load(os.DirFS("../policies/cel"))
	if err != nil {
		t.Fatal(err)
	}
	celLogin, _ := cel.Policy("login")
	if got, want := celLogin.Reads(), login.Reads(); got != want {
		t.Errorf("CEL login reads %v, Rego login %v", got, want)
	}
	for _, a := range []string{"onboarding", "payout"} {
		p, _ := set.Policy(a)
		if !p.Reads().Has(engine.SourceVerification) {
			t.Errorf("%s reads %v: no verification", a, p.Reads())
		}
	}
}

// A source not gathered is absent from the document the policy sees, in JSON, Rego and
// CEL alike, and a policy reading it decides degraded.
func TestNotGathered(t *testing.T) {
	in := input("a")
	in.Signals.NotGathered = []string{"verification"}
	js, err := in.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	std, _ := json.Marshal(in)
	if string(js) != string(std) {
		t.Fatalf("AppendJSON\n%s\njson.Marshal\n%s", js, std)
	}
	if strings.Contains(string(js), `"verification"`) && !strings.Contains(string(js), `"not_gathered":["verification"]`) ||
		strings.Contains(string(js), `"verification":{`) {
		t.Fatalf("verification not left out: %s", js)
	}
	var back engine.Input
	if err := json.Unmarshal(js, &back); err != nil || !slices.Equal(back.Signals.NotGathered, []string{"verification"}) {
		t.Fatalf("round trip: %v %+v", err, back.Signals)
	}

	rego := regoPolicy(`not input.signals.verification`)
	cel := celPolicy(`!has(signals.verification)`)
	for name, files := range map[string]map[string]string{"rego": {"a/a.rego": rego}, "cel": {"a.cel.yaml": cel}} {
		t.Run(name, func(t *testing.T) {
			set, err := engine.Load(bundle(files))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := set.Policy("a")
			d, err := engine.New(set).Evaluate(context.Background(), p, in)
			if err != nil || d.Outcome != engine.Review {
				t.Fatalf("verification visible to the policy: %+v %v", d, err)
			}
			if got := engine.Degraded(p, &in.Signals); !slices.Equal(got, []string{"verification"}) {
				t.Errorf("Degraded = %v, want [verification]", got)
			}
		})
	}
}

func TestDegraded(t *testing.T) {
	set, err := engine.Load(os.DirFS("../policies/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	login, _ := set.Policy("login")
	onboarding, _ := set.Policy("onboarding")
	s := engine.Signals{Unavailable: []string{"verification"}}
	if got := engine.Degraded(login, &s); got != nil {
		t.Errorf("login degraded by %v", got)
	}
	if got := engine.Degraded(onboarding, &s); !slices.Equal(got, []string{"verification"}) {
		t.Errorf("onboarding degraded by %v, want [verification]", got)
	}
	s = engine.Signals{Unavailable: []string{"lists"}, NotGathered: []string{"verification"}}
	if got := engine.Degraded(login, &s); !slices.Equal(got, []string{"lists"}) {
		t.Errorf("login degraded by %v, want [lists]", got)
	}
}
