package engine

import (
	"bytes"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"gopkg.in/yaml.v3"
)

// CodeUse is a reason code a policy file gives literally, and the line it is on.
type CodeUse struct {
	Code string
	Line int
	// Outcome is the outcome given with the code, when it is a literal too: the outcome
	// argument of lib.reason and lib.reason_at, "step_up" for lib.step_up and
	// lib.step_up_at, the "outcome" of an object literal, a CEL rule's outcome. It is ""
	// when the outcome is not a literal (a variable, a rule) or not given.
	Outcome string
	// OutcomeLine is the line of Outcome (for the step_up helpers, the call's).
	OutcomeLine int
}

// reasonHelpers are the library's helpers whose first argument is a reason code.
var reasonHelpers = map[string]bool{"reason": true, "reason_at": true, "step_up": true, "step_up_at": true}

// LiteralReasonCodes returns the reason codes a policy file (Rego, or a CEL *.cel.yaml)
// gives as literals: in Rego, the first argument of a verdict.lib reason helper
// (lib.reason("CODE", ...), however the call is laid out) and the "code" of an object
// literal; in CEL, each rule's code, in block or flow style. Comments are not code. Codes
// built at run time (a variable, sprintf) are not found here; the engine refuses a malformed
// one when the policy emits it. A file that does not parse gives none: loading reports it.
func LiteralReasonCodes(file string, src []byte) []CodeUse {
	if strings.HasSuffix(file, ".cel.yaml") || strings.HasSuffix(file, ".cel.yml") {
		return celCodes(src)
	}
	m, err := ast.ParseModuleWithOpts(file, string(bytes.TrimPrefix(src, utf8BOM)), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil
	}
	var out []CodeUse
	add := func(t, outcome *ast.Term, stepUp bool) {
		s, ok := t.Value.(ast.String)
		if !ok || t.Location == nil {
			return
		}
		u := CodeUse{Code: string(s), Line: t.Location.Row}
		switch {
		case stepUp:
			u.Outcome, u.OutcomeLine = StepUp.String(), t.Location.Row
		case outcome != nil && outcome.Location != nil:
			if o, ok := outcome.Value.(ast.String); ok {
				u.Outcome, u.OutcomeLine = string(o), outcome.Location.Row
			}
		}
		out = append(out, u)
	}
	ast.WalkTerms(m, func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Call:
			if len(v) >= 2 {
				switch reasonHelper(v[0]) {
				case "reason", "reason_at":
					var outcome *ast.Term
					if len(v) >= 3 {
						outcome = v[2]
					}
					add(v[1], outcome, false)
				case "step_up", "step_up_at":
					add(v[1], nil, true)
				}
			}
		case ast.Object:
			if c := v.Get(ast.InternedTerm("code")); c != nil {
				add(c, v.Get(ast.InternedTerm("outcome")), false)
			}
		}
		return false
	})
	return out
}

// reasonHelper returns the name of the verdict.lib reason helper op names (lib.reason,
// the import's alias, or data.verdict.lib.reason), or "" when it names none.
func reasonHelper(op *ast.Term) string {
	ref, ok := op.Value.(ast.Ref)
	if !ok || len(ref) < 2 {
		return ""
	}
	last, ok := ref[len(ref)-1].Value.(ast.String)
	if !ok || !reasonHelpers[string(last)] {
		return ""
	}
	if s := ref[:len(ref)-1].String(); s != "lib" && s != "data.verdict.lib" {
		return ""
	}
	return string(last)
}

// celCodes returns each rule's code of a CEL policy file with its line.
func celCodes(src []byte) []CodeUse {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return nil
	}
	_, rules := topLevel(&doc, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode {
		return nil
	}
	var out []CodeUse
	for _, rule := range rules.Content {
		if rule.Kind != yaml.MappingNode {
			continue
		}
		var u CodeUse
		for j := 0; j+1 < len(rule.Content); j += 2 {
			k, v := rule.Content[j].Value, rule.Content[j+1]
			if v.Kind != yaml.ScalarNode {
				continue
			}
			switch k {
			case "code":
				u.Code, u.Line = v.Value, v.Line
			case "outcome":
				u.Outcome, u.OutcomeLine = v.Value, v.Line
			}
		}
		if u.Line > 0 {
			out = append(out, u)
		}
	}
	return out
}
