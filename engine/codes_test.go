package engine_test

import (
	"slices"
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
