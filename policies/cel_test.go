package policies_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"

	"github.com/verdict-engine/verdict/policies"
)

// celPolicy is a policies/cel/<action>.cel.yaml file.
type celPolicy struct {
	Action     string         `yaml:"action"`
	Version    string         `yaml:"version"`
	FailMode   string         `yaml:"fail_mode"`
	Thresholds map[string]any `yaml:"thresholds"`
	Rules      []celRule      `yaml:"rules"`
}

type celRule struct {
	Code      string  `yaml:"code"`
	Outcome   string  `yaml:"outcome"`
	Score     float64 `yaml:"score"`
	Message   string  `yaml:"message"`
	When      string  `yaml:"when"`
	Signal    string  `yaml:"signal"`
	Value     string  `yaml:"value"`     // CEL expression
	Threshold any     `yaml:"threshold"` // CEL expression or number
	StepUp    string  `yaml:"step_up"`
}

func readCELPolicies(t *testing.T) map[string]celPolicy {
	t.Helper()
	fsys := policies.CEL()
	files, err := fs.Glob(fsys, "*.cel.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CEL policies: %v", err)
	}
	out := map[string]celPolicy{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		var p celPolicy
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("policies/cel/%s: %v", f, err)
		}
		if want := p.Action + ".cel.yaml"; f != want {
			t.Errorf("policies/cel/%s: action %q belongs in %s", f, p.Action, want)
		}
		out[p.Action] = p
	}
	return out
}

// celReasonRules returns the CEL rules in the shape of the Rego reason rules.
func celReasonRules(t *testing.T) []reasonRule {
	t.Helper()
	var out []reasonRule
	for action, p := range readCELPolicies(t) {
		for i, r := range p.Rules {
			out = append(out, reasonRule{
				Action: action, Code: r.Code, Outcome: r.Outcome, Score: r.Score,
				Message: r.Message, Signal: r.Signal, StepUp: r.StepUp,
				Where: fmt.Sprintf("policies/cel/%s.cel.yaml: rules[%d]", action, i),
			})
		}
	}
	return out
}

// TestCELLoginMatchesRego checks that the CEL login policy declares the same fail mode,
// thresholds and rules (code, outcome, score, message, signal, step-up) as the Rego one.
func TestCELLoginMatchesRego(t *testing.T) {
	p := readCELPolicies(t)["login"]
	if p.FailMode != actions["login"] {
		t.Errorf("fail_mode = %q, want %q", p.FailMode, actions["login"])
	}
	if p.Version == "" {
		t.Error("version is empty")
	}

	regoDefaults := regoValue(t, "data.verdict.login.default_thresholds")
	if got, want := normalize(t, p.Thresholds), normalize(t, regoDefaults); !reflect.DeepEqual(got, want) {
		t.Errorf("thresholds = %v, Rego default_thresholds = %v", got, want)
	}

	key := func(r reasonRule) string {
		return fmt.Sprintf("%s %s score=%v step_up=%q signal=%q message=%q", r.Code, r.Outcome, r.Score, r.StepUp, r.Signal, r.Message)
	}
	var celRules, regoRules []string
	for _, r := range celReasonRules(t) {
		if r.Action == "login" {
			celRules = append(celRules, key(r))
		}
	}
	for _, r := range regoReasonRules(t) {
		if r.Action == "login" {
			regoRules = append(regoRules, key(r))
		}
	}
	sort.Strings(celRules)
	sort.Strings(regoRules)
	if !slices.Equal(celRules, regoRules) {
		t.Errorf("CEL rules:\n%v\nRego rules:\n%v", celRules, regoRules)
	}
}

// TestCELLoginParity evaluates the CEL login policy on every login golden case, combines
// the fired rules with the engine's semantics and requires the same decision as Rego:
// outcome, reasons in order with their values and thresholds, score and step-up method.
func TestCELLoginParity(t *testing.T) {
	policy := compileCEL(t, readCELPolicies(t)["login"])
	pq := prepareRego(t)["login"]
	n := 0
	for _, c := range loadCases(t) {
		if c.action != "login" {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			want := evalRego(t, pq, c.Input)
			got := policy.decide(t, c.Input)
			if got.Outcome != c.Want.Outcome {
				t.Errorf("%s: CEL outcome = %s, want %s", c.file, got.Outcome, c.Want.Outcome)
			}
			if g, w := normalize(t, got), normalize(t, want); !reflect.DeepEqual(g, w) {
				gj, _ := json.MarshalIndent(got, "", "  ")
				wj, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("%s: CEL decision differs from Rego\nCEL:  %s\nRego: %s", c.file, gj, wj)
			}
		})
	}
	if n == 0 {
		t.Fatal("no login golden cases")
	}
}

type compiledRule struct {
	celRule
	when, value, threshold cel.Program
}

type compiledCEL struct {
	thresholds any
	rules      []compiledRule
}

func compileCEL(t *testing.T, p celPolicy) compiledCEL {
	t.Helper()
	env, err := cel.NewEnv(
		cel.Variable("action", cel.StringType),
		cel.Variable("subject", cel.DynType),
		cel.Variable("device", cel.DynType),
		cel.Variable("context", cel.DynType),
		cel.Variable("behavior", cel.DynType),
		cel.Variable("signals", cel.DynType),
		cel.Variable("thresholds", cel.DynType),
	)
	if err != nil {
		t.Fatal(err)
	}
	program := func(code, field, expr string, wantBool bool) cel.Program {
		if expr == "" {
			return nil
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s.%s: %v", code, field, iss.Err())
		}
		if wantBool && ast.OutputType() != cel.BoolType {
			t.Fatalf("%s.%s: type %v, want bool", code, field, ast.OutputType())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatalf("%s.%s: %v", code, field, err)
		}
		return prg
	}
	// Thresholds reach CEL the way JSON numbers do: as doubles.
	out := compiledCEL{thresholds: normalize(t, p.Thresholds)}
	for _, r := range p.Rules {
		cr := compiledRule{celRule: r}
		if r.When == "" {
			t.Fatalf("%s: no when", r.Code)
		}
		cr.when = program(r.Code, "when", r.When, true)
		cr.value = program(r.Code, "value", r.Value, false)
		switch th := r.Threshold.(type) {
		case nil:
		case string:
			cr.threshold = program(r.Code, "threshold", th, false)
		case int, float64:
			cr.threshold = program(r.Code, "threshold", fmt.Sprint(th), false)
		default:
			t.Fatalf("%s.threshold: %T is neither an expression nor a number", r.Code, th)
		}
		out.rules = append(out.rules, cr)
	}
	return out
}

// decide evaluates every rule and combines the fired ones as verdict.lib's decide does.
func (p compiledCEL) decide(t *testing.T, input json.RawMessage) decision {
	t.Helper()
	var in map[string]any
	if err := json.Unmarshal(input, &in); err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{"thresholds": p.thresholds}
	for _, k := range []string{"action", "subject", "device", "context", "behavior", "signals"} {
		vars[k] = in[k]
	}
	eval := func(code string, prg cel.Program) any {
		if prg == nil {
			return nil
		}
		out, _, err := prg.Eval(vars)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		return native(out)
	}
	d := decision{Outcome: "approve", Reasons: []policyReason{}}
	strongest := 0
	for _, r := range p.rules {
		if fired, _ := eval(r.Code, r.when).(bool); !fired {
			continue
		}
		score := r.Score
		d.Reasons = append(d.Reasons, policyReason{
			Code: r.Code, Outcome: r.Outcome, Message: r.Message, Score: &score,
			Signal: r.Signal, Value: eval(r.Code, r.value), Threshold: eval(r.Code, r.threshold),
			StepUp: r.StepUp,
		})
		d.Score += r.Score
		if severity[r.Outcome] > severity[d.Outcome] {
			d.Outcome = r.Outcome
		}
		if s := map[string]int{"otp": 1, "webauthn": 2, "document": 3}[r.StepUp]; r.Outcome == "step_up" && s > strongest {
			strongest, d.StepUp = s, r.StepUp
		}
	}
	d.Score = min(100, max(0, d.Score))
	if d.Outcome != "step_up" {
		d.StepUp = ""
	}
	sort.SliceStable(d.Reasons, func(i, j int) bool {
		a, b := d.Reasons[i], d.Reasons[j]
		if severity[a.Outcome] != severity[b.Outcome] {
			return severity[a.Outcome] > severity[b.Outcome]
		}
		return a.Code < b.Code
	})
	return d
}

func native(v ref.Val) any {
	if v == nil {
		return nil
	}
	return v.Value()
}

// regoValue evaluates a ground query on the bundle without input.
func regoValue(t *testing.T, query string) any {
	t.Helper()
	pq := prepareQuery(t, query)
	rs, err := pq.Eval(t.Context())
	if err != nil || len(rs) != 1 {
		t.Fatalf("%s: %v %v", query, rs, err)
	}
	return rs[0].Expressions[0].Value
}
