package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

// lintStrings lints files with the shipped library added and returns the problems as
// file:line: message.
func lintStrings(t *testing.T, files map[string]string) []string {
	t.Helper()
	lib, err := os.ReadFile(filepath.Join("..", "policies", "bundle", "lib", "verdict.rego"))
	if err != nil {
		t.Fatal(err)
	}
	in := map[string][]byte{"lib/verdict.rego": lib}
	for name, s := range files {
		in[name] = []byte(s)
	}
	var out []string
	for _, p := range engine.LintFiles(in) {
		out = append(out, p.String())
	}
	return out
}

func wantProblems(t *testing.T, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("lint lacks %q; got:\n%q", w, got)
		}
	}
}

// An outcome the engine does not know, written literally, fails every decision its rule
// fires on (the fail mode answers): lint names it, with its line, before it is published.
func TestLintFilesInvalidLiteralOutcome(t *testing.T) {
	got := lintStrings(t, map[string]string{"x/x.rego": `package verdict.x

import data.verdict.lib

reasons contains lib.reason("DENY_LIST_USER", "deny", 100, "on the deny list") if input.a

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT",
	"Review", 40, "over", "context.amount", input.context.amount, 10) if input.b

reasons contains {"code": "OBJECT_CODE", "outcome": "reject", "score": 1} if input.c

reasons contains lib.reason("GOOD_CODE", "review", 1, "fine") if input.d

decision := lib.decide(reasons)
`})
	wantProblems(t, got,
		`x/x.rego:5: reason code "DENY_LIST_USER": invalid outcome "deny" (want approve, step_up, review or block)`,
		`x/x.rego:8: reason code "AMOUNT_OVER_LIMIT": invalid outcome "Review" (want approve, step_up, review or block)`,
		`x/x.rego:10: reason code "OBJECT_CODE": invalid outcome "reject" (want approve, step_up, review or block)`,
	)
	if len(got) != 3 {
		t.Errorf("lint = %q, want the three invalid outcomes only", got)
	}
}

// reason_codes.yaml declares each code's outcome and actions: a literal use with another
// outcome (a deny-list hit sent to review) or in another action is refused, in Rego and
// CEL alike, at the line of the use; engine codes ("any", outcome "—") are not checked.
func TestLintFilesRegistryOutcomeAndActions(t *testing.T) {
	registry := `codes:
  DENY_LIST_USER:
    actions: [x, y]
    outcome: block
    meaning: The user is on the deny list.
  NEW_BENEFICIARY:
    actions: [x]
    outcome: step_up
    meaning: New beneficiary.
  LOGIN_ONLY:
    actions: [y]
    outcome: review
    meaning: Login only.
  POLICY_ERROR:
    actions: [any]
    outcome: —
    meaning: Added by the engine.
`
	got := lintStrings(t, map[string]string{
		"reason_codes.yaml": registry,
		"x/x.rego": `package verdict.x

import data.verdict.lib

reasons contains lib.reason("DENY_LIST_USER", "review", 100, "on the deny list") if input.a

reasons contains lib.step_up("NEW_BENEFICIARY", 15, "new beneficiary", "otp") if input.b

reasons contains lib.reason("LOGIN_ONLY", "review", 1, "m") if input.c

reasons contains lib.reason("POLICY_ERROR", "block", 1, "m") if input.d

reasons contains lib.reason("DENY_LIST_USER", "block", 100, "right") if input.e

decision := lib.decide(reasons)
`,
		"y.cel.yaml": "action: y\nfail_mode: review\nrules:\n  - code: DENY_LIST_USER\n    outcome: step_up\n    message: m\n    when: context.flag == true\n  - code: LOGIN_ONLY\n    outcome: review\n    message: m\n    when: context.flag == true\n",
	})
	wantProblems(t, got,
		`x/x.rego:5: reason code "DENY_LIST_USER" is used with outcome review; reason_codes.yaml declares it block`,
		`x/x.rego:9: reason code "LOGIN_ONLY" is used by action x; reason_codes.yaml declares it for y only`,
		`y.cel.yaml:5: reason code "DENY_LIST_USER" is used with outcome step_up; reason_codes.yaml declares it block`,
	)
	if len(got) != 3 {
		t.Errorf("lint = %q, want the three mismatches only", got)
	}
}

// JSON and YAML files that are not named data.json, data.yaml or data.yml are not data
// (README, Data files): the loader and `opa eval -b` ignore them, and so does lint, whatever
// they hold. A data file that does not parse is the loader's to refuse.
func TestLintFilesIgnoresFilesThatAreNotData(t *testing.T) {
	got := lintStrings(t, map[string]string{
		"x/x.rego": `package verdict.x

import data.verdict.lib

reasons contains lib.reason("SOME_CODE", "review", 1, "m") if input.a

decision := lib.decide(reasons)
`,
		"x/notes.json":           `{"draft": `,
		"x/x.cases.yaml":         "cases:\n  - name: [\n",
		"testdata/cases/a.json":  `not json`,
		"docs/changelog.yml":     "- a\n b: [",
		"thresholds/x/data.json": `{"max": `,
	})
	if len(got) != 0 {
		t.Errorf("lint = %q, want nothing", got)
	}
}
