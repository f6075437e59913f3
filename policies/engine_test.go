package policies_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

type engineCase struct {
	Name  string       `json:"name"`
	Input engine.Input `json:"input"`
	Want  struct {
		Outcome     string   `json:"outcome"`
		ReasonCodes []string `json:"reason_codes"`
		StepUp      string   `json:"step_up"`
	} `json:"want"`
}

func loadEngineCases(t *testing.T, prefix string) []engineCase {
	t.Helper()
	files, err := filepath.Glob("testdata/cases/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	var out []engineCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c engineCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if prefix == "" || c.Input.Action == prefix {
			out = append(out, c)
		}
	}
	return out
}

func codes(d engine.Decision) []string {
	out := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		out[i] = r.Code
	}
	return out
}

// TestEngineGoldenCases runs every golden case through the engine (the same path the
// server takes) and checks outcome, reasons and step-up method.
func TestEngineGoldenCases(t *testing.T) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set, engine.WithEvalTimeout(10*time.Second)) // correctness, not speed: no deadline flake under load
	for _, c := range loadEngineCases(t, "") {
		t.Run(c.Name, func(t *testing.T) {
			in := c.Input
			d, err := e.Decide(context.Background(), &in)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(c.Want.ReasonCodes)
			got := codes(d)
			slices.Sort(want)
			slices.Sort(got)
			if d.Outcome.String() != c.Want.Outcome || !slices.Equal(got, want) || d.StepUp != c.Want.StepUp {
				t.Fatalf("got %s %v %q, want %s %v %q", d.Outcome, got, d.StepUp, c.Want.Outcome, want, c.Want.StepUp)
			}
		})
	}
}

// TestEngineParityRegoCEL proves the login policy means the same in both languages:
// through the engine, on every login case, the Rego and CEL versions give the same
// outcome, reasons (in order, with values and thresholds), score and step-up method.
func TestEngineParityRegoCEL(t *testing.T) {
	regoSet, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	celSet, err := engine.Load(policies.CEL())
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := celSet.Policy("login"); p.Language != engine.LangCEL {
		t.Fatalf("CEL bundle login is %s", p.Language)
	}
	re, ce := engine.New(regoSet, engine.WithEvalTimeout(10*time.Second)), engine.New(celSet, engine.WithEvalTimeout(10*time.Second))
	cases := loadEngineCases(t, "login")
	if len(cases) < 10 {
		t.Fatalf("only %d login cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			in1, in2 := c.Input, c.Input
			rd, err := re.Decide(context.Background(), &in1)
			if err != nil {
				t.Fatal(err)
			}
			cd, err := ce.Decide(context.Background(), &in2)
			if err != nil {
				t.Fatal(err)
			}
			rd.Policy, cd.Policy = engine.PolicyRef{}, engine.PolicyRef{}
			norm := func(d engine.Decision) string { b, _ := json.Marshal(d); return string(b) }
			if diff := cmp.Diff(norm(rd), norm(cd)); diff != "" {
				t.Fatalf("rego and cel differ (-rego +cel):\n%s", strings.ReplaceAll(diff, "\\\"", "\""))
			}
		})
	}
}
