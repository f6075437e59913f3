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

decision := lib.decide(reasons)
`
	got := engine.LiteralReasonCodes("payout/payout.rego", []byte(rego))
	want := []engine.CodeUse{{"MULTI_LINE", 8}, {"LITERAL_OBJECT", 10}, {"FULL_PATH", 12}}
	slices.SortFunc(got, func(a, b engine.CodeUse) int { return a.Line - b.Line })
	if !slices.Equal(got, want) {
		t.Errorf("Rego codes = %v, want %v", got, want)
	}
	cel := "action: login\nfail_mode: review\nrules:\n  # - code: COMMENTED_OUT\n  - code: BLOCK_STYLE\n    outcome: review\n    when: 'true'\n  - {code: FLOW_STYLE, outcome: review, when: 'true'}\n"
	if got, want := engine.LiteralReasonCodes("login/login.cel.yaml", []byte(cel)), []engine.CodeUse{{"BLOCK_STYLE", 5}, {"FLOW_STYLE", 8}}; !slices.Equal(got, want) {
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
