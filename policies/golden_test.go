package policies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/verdict-engine/verdict/policies"
)

var update = flag.Bool("update", false, "rewrite the want of every golden case from the Rego bundle")

// goldenCase is one testdata/cases/*.json file: a full policy input document and the
// decision it must get. The same cases prove Rego/CEL parity for login.
type goldenCase struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Input       json.RawMessage `json:"input"`
	Want        goldenWant      `json:"want"`

	file   string
	action string
}

type goldenWant struct {
	Outcome     string   `json:"outcome"`
	ReasonCodes []string `json:"reason_codes"` // compared as a set
	StepUp      string   `json:"step_up,omitempty"`
}

// decision is data.verdict.<action>.decision as the engine reads it.
type decision struct {
	Outcome string         `json:"outcome"`
	Score   float64        `json:"score"`
	StepUp  string         `json:"step_up,omitempty"`
	Reasons []policyReason `json:"reasons"`
}

type policyReason struct {
	Code      string   `json:"code"`
	Outcome   string   `json:"outcome"`
	Message   string   `json:"message"`
	Score     *float64 `json:"score"`
	Signal    string   `json:"signal,omitempty"`
	Value     any      `json:"value,omitempty"`
	Threshold any      `json:"threshold,omitempty"`
	StepUp    string   `json:"step_up,omitempty"`
}

func (d decision) codes() []string {
	out := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		out[i] = r.Code
	}
	return out
}

func TestGoldenCases(t *testing.T) {
	queries := prepareRego(t)
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			pq, ok := queries[c.action]
			if !ok {
				t.Fatalf("%s: no policy for action %q", c.file, c.action)
			}
			d := evalRego(t, pq, c.Input)
			checkDecision(t, d)
			if *update {
				c.Want = goldenWant{Outcome: d.Outcome, ReasonCodes: d.codes()}
				if d.Outcome == "step_up" {
					c.Want.StepUp = d.StepUp
				}
				writeCase(t, c)
				return
			}
			if d.Outcome != c.Want.Outcome {
				t.Errorf("%s: outcome = %s, want %s (reasons %v)", c.file, d.Outcome, c.Want.Outcome, d.codes())
			}
			if got, want := sorted(d.codes()), sorted(c.Want.ReasonCodes); !slices.Equal(got, want) {
				t.Errorf("%s: reason codes = %v, want %v", c.file, got, want)
			}
			if c.Want.StepUp != "" && d.StepUp != c.Want.StepUp {
				t.Errorf("%s: step_up = %q, want %q", c.file, d.StepUp, c.Want.StepUp)
			}
		})
	}
}

// TestGoldenCasesCoverEveryReasonCode keeps the cases rich enough to prove parity: each
// code an action's policy can return is expected by at least one case of that action.
func TestGoldenCasesCoverEveryReasonCode(t *testing.T) {
	expected := map[string]map[string]bool{}
	perAction := map[string]int{}
	for _, c := range loadCases(t) {
		perAction[c.action]++
		if expected[c.action] == nil {
			expected[c.action] = map[string]bool{}
		}
		for _, code := range c.Want.ReasonCodes {
			expected[c.action][code] = true
		}
	}
	for action := range actions {
		if perAction[action] < 10 {
			t.Errorf("action %s has %d golden cases, want at least 10", action, perAction[action])
		}
	}
	for _, r := range regoReasonRules(t) {
		if !expected[r.Action][r.Code] {
			t.Errorf("%s: no golden case of %s expects %s", r.Where, r.Action, r.Code)
		}
	}
}

// prepareRego compiles the bundle once per action, as the engine does, with the engine's
// capabilities and builtin errors raised.
func prepareRego(t *testing.T) map[string]rego.PreparedEvalQuery {
	t.Helper()
	queries := map[string]rego.PreparedEvalQuery{}
	for action := range actions {
		queries[action] = prepareQuery(t, "data.verdict."+action+".decision")
	}
	return queries
}

// prepareQuery compiles query against the bundle's policies (not its tests).
func prepareQuery(t *testing.T, query string) rego.PreparedEvalQuery {
	t.Helper()
	fsys := policies.Bundle()
	files, err := regoFiles(fsys, false)
	if err != nil {
		t.Fatal(err)
	}
	var modules []func(*rego.Rego)
	for _, f := range files {
		src, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		modules = append(modules, rego.Module("policies/bundle/"+f, string(src)))
	}
	opts := append([]func(*rego.Rego){
		rego.Query(query),
		rego.Capabilities(capabilities()),
		rego.StrictBuiltinErrors(true),
	}, modules...)
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("prepare %s: %v", query, err)
	}
	return pq
}

// evalRego evaluates a prepared decision query on a JSON input document and decodes the
// decision strictly: a field the engine does not expect fails the test.
func evalRego(t *testing.T, pq rego.PreparedEvalQuery, input json.RawMessage) decision {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var in any
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decode input: %v", err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalInput(in))
	if err != nil {
		t.Fatalf("eval: %v", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		t.Fatalf("decision is undefined or ambiguous: %v", rs)
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	var d decision
	if err := strict.Decode(&d); err != nil {
		t.Fatalf("decision %s: %v", raw, err)
	}
	return d
}

// checkDecision checks the invariants every decision keeps, whatever the input.
func checkDecision(t *testing.T, d decision) {
	t.Helper()
	if _, ok := severity[d.Outcome]; !ok {
		t.Errorf("outcome %q is not an outcome", d.Outcome)
	}
	worst, sum := "approve", 0.0
	for i, r := range d.Reasons {
		if !codePattern.MatchString(r.Code) {
			t.Errorf("reason code %q is not UPPER_SNAKE", r.Code)
		}
		if _, ok := severity[r.Outcome]; !ok {
			t.Errorf("%s: outcome %q is not an outcome", r.Code, r.Outcome)
		}
		if r.Message == "" || r.Score == nil {
			t.Errorf("%s: reason needs a message and a score", r.Code)
		} else {
			sum += *r.Score
		}
		if (r.Outcome == "step_up") != (r.StepUp != "") {
			t.Errorf("%s: step_up method %q on a %s reason", r.Code, r.StepUp, r.Outcome)
		}
		if severity[r.Outcome] > severity[worst] {
			worst = r.Outcome
		}
		if i > 0 {
			p := d.Reasons[i-1]
			if severity[p.Outcome] < severity[r.Outcome] || (p.Outcome == r.Outcome && p.Code > r.Code) {
				t.Errorf("reasons out of order: %s (%s) before %s (%s)", p.Code, p.Outcome, r.Code, r.Outcome)
			}
		}
	}
	if d.Outcome != worst {
		t.Errorf("outcome %s, but the most severe reason is %s", d.Outcome, worst)
	}
	if want := min(100, max(0, sum)); d.Score != want {
		t.Errorf("score %v, want %v", d.Score, want)
	}
	if (d.Outcome == "step_up") != (d.StepUp != "") {
		t.Errorf("step_up %q with outcome %s", d.StepUp, d.Outcome)
	}
}

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden cases in testdata/cases")
	}
	var cases []goldenCase
	names := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var c goldenCase
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var head struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal(c.Input, &head); err != nil {
			t.Fatalf("%s: input: %v", f, err)
		}
		c.file, c.action = f, head.Action
		if c.Name == "" || strings.TrimSuffix(filepath.Base(f), ".json") != c.Name {
			t.Errorf("%s: name %q must match the file name", f, c.Name)
		}
		if !strings.HasPrefix(c.Name, c.action+"-") {
			t.Errorf("%s: name %q must start with its action %q", f, c.Name, c.action)
		}
		if prev, dup := names[c.Name]; dup {
			t.Errorf("%s: name %q already used by %s", f, c.Name, prev)
		}
		names[c.Name] = f
		cases = append(cases, c)
	}
	return cases
}

func writeCase(t *testing.T, c goldenCase) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
