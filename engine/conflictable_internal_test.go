package engine

import (
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The shipped policies define no rule or function that can conflict (the library's at has
// one body per combination of null arguments): partial evaluation inlines all of them, as
// the published benchmarks assume.
func TestShippedBundleHasNoConflictableRules(t *testing.T) {
	mods := map[string]*ast.Module{}
	for _, f := range []string{"lib/verdict.rego", "payout/payout.rego", "login/login.rego", "onboarding/onboarding.rego"} {
		b, err := os.ReadFile("../policies/bundle/" + f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(f, string(b), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[f] = m
	}
	c := newCompiler()
	if c.Compile(mods); c.Failed() {
		t.Fatal(c.Errors)
	}
	if got := conflictableRules(c); len(got) != 0 {
		t.Errorf("conflictable rules = %v, want none", got)
	}
}
