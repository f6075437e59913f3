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
	add := func(t *ast.Term) {
		if s, ok := t.Value.(ast.String); ok && t.Location != nil {
			out = append(out, CodeUse{Code: string(s), Line: t.Location.Row})
		}
	}
	ast.WalkTerms(m, func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Call:
			if len(v) >= 2 && isReasonHelper(v[0]) {
				add(v[1])
			}
		case ast.Object:
			if c := v.Get(ast.InternedTerm("code")); c != nil {
				add(c)
			}
		}
		return false
	})
	return out
}

// isReasonHelper reports whether op names a verdict.lib reason helper: lib.reason (the
// import's alias) or data.verdict.lib.reason.
func isReasonHelper(op *ast.Term) bool {
	ref, ok := op.Value.(ast.Ref)
	if !ok || len(ref) < 2 {
		return false
	}
	last, ok := ref[len(ref)-1].Value.(ast.String)
	if !ok || !reasonHelpers[string(last)] {
		return false
	}
	s := ref[:len(ref)-1].String()
	return s == "lib" || s == "data.verdict.lib"
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
		for j := 0; j+1 < len(rule.Content); j += 2 {
			if rule.Content[j].Value == "code" && rule.Content[j+1].Kind == yaml.ScalarNode {
				out = append(out, CodeUse{Code: rule.Content[j+1].Value, Line: rule.Content[j+1].Line})
			}
		}
	}
	return out
}
