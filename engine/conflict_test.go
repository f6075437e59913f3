package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

// Two definitions of one complete rule that both hold fail the decision (the fail mode
// answers, as before), and the error names the policy's rule and where its conflicting
// values come from, as plain OPA does, not the package the engine's load-time partial
// evaluation put it in (data.verdict_partial_x...).
func TestConflictErrorNamesPolicyRule(t *testing.T) {
	for name, decide := range map[string]string{
		"lib.decide":   "import data.verdict.lib\n\nreasons contains lib.reason(\"K\", \"block\", 100, \"k\") if kind == \"huge\"\n\ndecision := lib.decide(reasons)\n",
		"own decision": "reasons contains {\"code\": \"K\", \"outcome\": \"block\", \"score\": 100} if kind == \"huge\"\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [r | some r in reasons], \"score\": 0}\n",
	} {
		t.Run(name, func(t *testing.T) {
			src := "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\n" +
				"kind := \"small\" if input.context.amount < 1000\n\n" + // line 6
				"kind := \"large\" if input.context.amount > 20\n\n" + // line 8
				decide
			set, err := engine.Load(bundle(map[string]string{"x/x.rego": src}))
			if err != nil {
				t.Fatal(err)
			}
			d, err := engine.New(set).Decide(context.Background(), input("x"))
			var ee *engine.EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *EvalError (decision %+v)", err, d)
			}
			msg := err.Error()
			for _, want := range []string{
				"eval_conflict_error: rule data.verdict.x.kind produced conflicting values",
				`"large" at x/x.rego:8`,
				`"small" at x/x.rego:6`,
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "verdict_partial") {
				t.Errorf("error %q names the engine's partial-evaluation package", msg)
			}
		})
	}
}

// A function defined twice whose bodies both hold for one argument is a conflict in OPA
// (eval_conflict_error), so the decision fails to its fail mode; the load-time partial
// evaluation inlined one body and the engine approved. Definitions that test an argument
// against constants in contradicting ways (as the library's at does) cannot conflict and
// still decide.
func TestFunctionConflictNeverApproves(t *testing.T) {
	head := "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\nimport data.verdict.lib\n\n"
	conflicting := head +
		"cap(a) := 100 if a > 5\n\n" + // line 8
		"cap(a) := 200 if a > 7\n\n" + // line 10
		"reasons contains lib.reason(\"K\", \"block\", 100, \"k\") if input.context.amount > cap(input.context.amount)\n\ndecision := lib.decide(reasons)\n"
	set, err := engine.Load(bundle(map[string]string{"x/x.rego": conflicting}))
	if err != nil {
		t.Fatal(err)
	}
	d, err := engine.New(set).Decide(context.Background(), input("x")) // amount 50
	var ee *engine.EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want *EvalError (outcome %s)", err, d.Outcome)
	}
	for _, want := range []string{"function data.verdict.x.cap produced conflicting values", "100 at x/x.rego:8", "200 at x/x.rego:10"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	exclusive := head +
		"kind(a) := \"none\" if a == null\n\n" +
		"kind(a) := \"some\" if a != null\n\n" +
		"tier(a) := 1 if a == \"gold\"\n\n" +
		"tier(a) := 2 if a == \"silver\"\n\n" +
		"reasons contains lib.reason(\"KIND_SOME\", \"review\", 10, \"k\") if {\n\tkind(input.context.amount) == \"some\"\n\tnot tier(input.context.amount)\n}\n\ndecision := lib.decide(reasons)\n"
	set, err = engine.Load(bundle(map[string]string{"x/x.rego": exclusive}))
	if err != nil {
		t.Fatal(err)
	}
	d, err = engine.New(set).Decide(context.Background(), input("x"))
	if err != nil || d.Outcome != engine.Review {
		t.Fatalf("exclusive definitions: outcome %s, err %v; want review", d.Outcome, err)
	}
}
