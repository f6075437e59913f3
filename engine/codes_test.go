package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

func TestLiteralReasonCodes(t *testing.T) {
	rego := `package verdict.payout

import data.verdict.lib

# Old rule, removed: lib.reason("legacy_code", "review", 1, "x")

reasons contains lib.reason(
	"MULTI_LINE", "review", 10, "laid out over lines") if input.a

reasons contains {"code": "LITERAL_OBJECT", "outcome": "review"} if input.b

reasons contains data.verdict.lib.step_up_at("FULL_PATH", 5, "m", "otp", "s", 1, null) if input.c

reasons contains other.reason("NOT_THE_LIBRARY", "review", 1, "m") if input.d

reasons contains lib.reason("VARIABLE_OUTCOME", o, 1, "m") if { o := input.o }

reasons contains lib.reason_at("BAD_OUTCOME",
	"deny", 1, "m", null, null, null) if input.e

decision := lib.decide(reasons)
`
	got := engine.LiteralReasonCodes("payout/payout.rego", []byte(rego))
	want := []engine.CodeUse{
		{Code: "MULTI_LINE", Line: 8, Outcome: "review", OutcomeLine: 8},
		{Code: "LITERAL_OBJECT", Line: 10, Outcome: "review", OutcomeLine: 10},
		{Code: "FULL_PATH", Line: 12, Outcome: "step_up", OutcomeLine: 12},
		{Code: "VARIABLE_OUTCOME", Line: 16},
		{Code: "BAD_OUTCOME", Line: 18, Outcome: "deny", OutcomeLine: 19},
	}
	slices.SortFunc(got, func(a, b engine.CodeUse) int { return a.Line - b.Line })
	if !slices.Equal(got, want) {
		t.Errorf("Rego codes = %v, want %v", got, want)
	}
	cel := "action: login\nfail_mode: review\nrules:\n  # - code: COMMENTED_OUT\n  - code: BLOCK_STYLE\n    outcome: review\n    when: 'true'\n  - {code: FLOW_STYLE, outcome: review, when: 'true'}\n"
	if got, want := engine.LiteralReasonCodes("login/login.cel.yaml", []byte(cel)), []engine.CodeUse{{Code: "BLOCK_STYLE", Line: 5, Outcome: "review", OutcomeLine: 6}, {Code: "FLOW_STYLE", Line: 8, Outcome: "review", OutcomeLine: 8}}; !slices.Equal(got, want) {
		t.Errorf("CEL codes = %v, want %v", got, want)
	}
}

// FuzzLiteralReasonCodes: any file content gives codes on lines the file has, never a panic.
func FuzzLiteralReasonCodes(f *testing.F) {
	f.Add("payout/payout.rego", "package verdict.payout\n\nimport data.verdict.lib\n\nreasons contains lib.reason(\n\"A_B\", \"review\", 1, \"m\") if input.a\n")
	f.Add("login/login.cel.yaml", "action: login\nrules:\n  - {code: X_Y, outcome: review, when: 'true'}\n")
	f.Add("x/x.rego", "package verdict.x\nr := {\"code\": 1}\n")
	f.Fuzz(func(t *testing.T, name, src string) {
		lines := 1 + strings.Count(src, "\n")
		for _, u := range engine.LiteralReasonCodes(name, []byte(src)) {
			if u.Line < 1 || u.Line > lines {
				t.Fatalf("code %q on line %d of a %d-line file", u.Code, u.Line, lines)
			}
		}
	})
}
