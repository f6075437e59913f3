package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

// A fail mode the engine refuses is reported at the line that declares it, not at the
// package line under the METADATA block: a long description puts them far apart.
func TestLoadFailModeProblemLine(t *testing.T) {
	lib, err := os.ReadFile(filepath.Join("..", "policies", "bundle", "lib", "verdict.rego"))
	if err != nil {
		t.Fatal(err)
	}
	policy := func(action, failMode string) []byte {
		return []byte(`# METADATA
# title: A policy
# description: |
#   fail_mode: this line is prose, not the declaration
# custom:
#   version: v1
#   fail_mode: ` + failMode + `
#   owner: risk
package verdict.` + action + `

import data.verdict.lib

reasons contains lib.reason("SOME_CODE", "review", 1, "m") if input.context.flag

decision := lib.decide(reasons)
`)
	}
	for _, tc := range []struct {
		action, failMode, want string
	}{
		{"login", "shut", `x/x.rego:7: invalid fail_mode "shut" (want open, closed or review)`},
		{"login", "3", `x/x.rego:7: metadata custom.fail_mode must be a string`},
		{"payout", "open", `x/x.rego:7: action "payout" may not declare fail_mode open`},
	} {
		_, err := engine.LoadVersion("", map[string][]byte{"lib/verdict.rego": lib, "x/x.rego": policy(tc.action, tc.failMode)})
		var le *engine.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("fail_mode %s: err = %v, want a LoadError", tc.failMode, err)
		}
		var got []string
		for _, p := range le.Problems {
			got = append(got, p.String())
		}
		if !slices.Contains(got, tc.want) {
			t.Errorf("fail_mode %s: problems = %q, want %q", tc.failMode, got, tc.want)
		}
	}
}
