package engine

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The standard library's data.verdict.lib.decide, which combines a policy's fired reasons
// into its decision, is a handful of comprehensions, sorts and sums: in OPA it costs about
// as much as all of a payout policy's rules together when two or more reasons fire. When a
// policy's decision is exactly `decision := lib.decide(reasons)` over a set of reasons, and
// the bundle's library defines decide and what it calls exactly as the standard library
// does (stdlibDecide below, kept equal to policies/bundle/lib/verdict.rego by a test), the
// engine evaluates only `reasons` with OPA and combines them with libDecide, which follows
// the Rego line by line, reusing OPA's own builtins and term ordering where the Rego calls
// them. The files stay the source of truth: `opa eval` of the decision gives the same value,
// which TestLibDecideMatchesRego checks on generated reason sets. Any other decision rule,
// or a library that differs in any rule of the family, is evaluated by OPA as written.

// stdlibDecide is the part of package verdict.lib that decide depends on, as shipped.
const stdlibDecide = `package verdict.lib

severity := {"approve": 0, "step_up": 1, "review": 2, "block": 3}

outcomes := ["approve", "step_up", "review", "block"]

decide(rs) := {"outcome": "approve", "reasons": [], "score": 0} if {
	count(rs) == 0
} else := {"outcome": "step_up", "reasons": [r], "score": r.score, "step_up": r.step_up} if {
	count(rs) == 1
	some r in rs
	r.outcome == "step_up"
	is_string(r.step_up)
	r.score >= 0
	r.score <= 100
} else := {"outcome": r.outcome, "reasons": [r], "score": r.score} if {
	count(rs) == 1
	some r in rs
	r.outcome in {"approve", "review", "block"}
	r.score >= 0
	r.score <= 100
} else := decide_all(rs)

decide_all(rs) := decision_of(object.get(known_outcomes, ordered[0].outcome, "approve"), ordered, total) if {
	sorted := sort(rs)
	ordered := array.concat(
		[r | some o in ["block", "review", "step_up", "approve"]; some r in sorted; r.outcome == o],
		[r | some r in sorted; not severity[r.outcome]],
	)
	total := sum([r.score | some r in rs])
}

known_outcomes := {o: o | some o in outcomes}

decision_of(outcome, ordered, total) := {
	"outcome": outcome,
	"reasons": ordered,
	"score": sort([0, total, 100])[1],
	"step_up": strongest_step_up(ordered),
} if {
	outcome == "step_up"
} else := {
	"outcome": outcome,
	"reasons": ordered,
	"score": sort([0, total, 100])[1],
}

strongest_step_up(rs) := strongest_method({r.step_up | some r in rs; r.outcome == "step_up"; is_string(r.step_up)})

strongest_method(methods) := "document" if {
	"document" in methods
} else := "webauthn" if {
	"webauthn" in methods
} else := "otp" if {
	"otp" in methods
} else := max(methods) if {
	count(methods) > 0
} else := "otp"
`

// stdlibRules holds the rules of stdlibDecide by name, parsed once.
var stdlibRules = func() map[string]*ast.Rule {
	m := ast.MustParseModuleWithOpts(stdlibDecide, ast.ParserOptions{RegoVersion: ast.RegoV1})
	out := make(map[string]*ast.Rule, len(m.Rules))
	for _, r := range m.Rules {
		out[r.Head.Name.String()] = r
	}
	return out
}()

var libPackage = ast.MustParseRef("data.verdict.lib")

// usesStdlibDecide reports whether the action's decision, on compiler c built from modules,
// is `decision := lib.decide(reasons)` with reasons a set built by partial set rules, and
// the bundle's library defines every rule of stdlibDecide as the standard library does,
// each once and nowhere else.
func usesStdlibDecide(c *ast.Compiler, modules map[string]*ast.Module, action string) bool {
	reasons := ast.MustParseRef("data.verdict." + action + ".reasons")
	rules := c.GetRules(ast.MustParseRef("data.verdict." + action + ".decision"))
	if len(rules) != 1 || !isDecideCall(rules[0], reasons) {
		return false
	}
	sets := c.GetRules(reasons)
	if len(sets) == 0 {
		return false
	}
	for _, r := range sets {
		if r.Head.RuleKind() != ast.MultiValue || !r.Ref().Equal(reasons) {
			return false
		}
	}
	// The library, as parsed: each rule of the family once, equal to the standard one.
	found := map[string]int{}
	for _, m := range modules {
		if !m.Package.Path.Equal(libPackage) {
			continue
		}
		for _, r := range m.Rules {
			name := r.Head.Name.String()
			want, ok := stdlibRules[name]
			if len(r.Head.Reference) != 1 || !ok {
				continue
			}
			found[name]++
			if r.Compare(want) != 0 {
				return false
			}
		}
	}
	for name := range stdlibRules {
		// Once in the library's own modules, and defined nowhere else (a ref head in
		// another package could add a rule to the same path).
		if found[name] != 1 || len(c.GetRules(libPackage.Append(ast.StringTerm(name)))) != 1 {
			return false
		}
	}
	return true
}

// isDecideCall reports whether r is `decision := lib.decide(reasons)` as the compiler
// leaves it: `decision := v if { a = <reasons>; data.verdict.lib.decide(a, v) }`.
func isDecideCall(r *ast.Rule, reasons ast.Ref) bool {
	if r.Default || r.Else != nil || len(r.Head.Args) != 0 || len(r.Body) != 2 {
		return false
	}
	v, ok := r.Head.Value.Value.(ast.Var)
	if !ok {
		return false
	}
	bind, call := r.Body[0], r.Body[1]
	if bind.Negated || call.Negated || len(bind.With) != 0 || len(call.With) != 0 || !bind.IsEquality() || !call.IsCall() {
		return false
	}
	a, ok := bind.Operand(0).Value.(ast.Var)
	if !ok || !bind.Operand(1).Equal(ast.NewTerm(reasons)) {
		return false
	}
	ops := call.Operands()
	return call.Operator().Equal(libPackage.Append(ast.StringTerm("decide"))) && len(ops) == 2 &&
		ops[0].Equal(ast.VarTerm(string(a))) && ops[1].Equal(ast.VarTerm(string(v)))
}

var (
	termApprove   = ast.StringTerm("approve")
	termStepUp    = ast.StringTerm("step_up")
	termReview    = ast.StringTerm("review")
	termBlock     = ast.StringTerm("block")
	termDocument  = ast.StringTerm("document")
	termWebauthn  = ast.StringTerm("webauthn")
	termOTP       = ast.StringTerm("otp")
	termZero      = ast.IntNumberTerm(0)
	termHundred   = ast.IntNumberTerm(100)
	bySeverity    = []*ast.Term{termBlock, termReview, termStepUp, termApprove}
	knownOutcomes = ast.ObjectTerm(
		ast.Item(termApprove, termApprove), ast.Item(termStepUp, termStepUp),
		ast.Item(termReview, termReview), ast.Item(termBlock, termBlock))
	builtinSum       = topdown.GetBuiltin(ast.Sum.Name)
	builtinObjectGet = topdown.GetBuiltin(ast.ObjectGet.Name)
)

// field returns r.key as Rego reads it: an object's value, or key itself when r is a set
// holding it; nil (undefined) otherwise.
func field(r, key *ast.Term) *ast.Term {
	switch v := r.Value.(type) {
	case ast.Object:
		return v.Get(key)
	case ast.Set:
		if v.Contains(key) {
			return key
		}
	}
	return nil
}

// isOneOf reports whether t is defined and equal to one of of.
func isOneOf(t *ast.Term, of ...*ast.Term) bool {
	return t != nil && slices.ContainsFunc(of, t.Equal)
}

// isString is is_string(t) for a possibly undefined t.
func isString(t *ast.Term) bool {
	if t == nil {
		return false
	}
	_, ok := t.Value.(ast.String)
	return ok
}

// inScore reports r.score >= 0; r.score <= 100 (OPA compares any two values).
func inScore(score *ast.Term) bool {
	return score != nil && ast.Compare(score.Value, termZero.Value) >= 0 && ast.Compare(score.Value, termHundred.Value) <= 0
}

// callBuiltin runs one of OPA's builtins and returns its single output.
func callBuiltin(f topdown.BuiltinFunc, args ...*ast.Term) (*ast.Term, error) {
	var out *ast.Term
	err := f(topdown.BuiltinContext{}, args, func(t *ast.Term) error { out = t; return nil })
	return out, err
}

// libDecide is stdlibDecide's decide(rs) for a set rs. It returns nil, nil where the Rego is
// undefined, and an error where a builtin would fail.
func libDecide(rs ast.Set) (*ast.Term, error) {
	switch rs.Len() {
	case 0:
		return ast.ObjectTerm(
			ast.Item(keyOutcome, termApprove), ast.Item(keyReasons, ast.ArrayTerm()), ast.Item(keyScore, termZero)), nil
	case 1:
		r := rs.Slice()[0]
		outcome, score := field(r, keyOutcome), field(r, keyScore)
		if m := field(r, keyStepUp); isOneOf(outcome, termStepUp) && isString(m) && inScore(score) {
			return ast.ObjectTerm(ast.Item(keyOutcome, termStepUp), ast.Item(keyReasons, ast.ArrayTerm(r)),
				ast.Item(keyScore, score), ast.Item(keyStepUp, m)), nil
		}
		if isOneOf(outcome, termApprove, termReview, termBlock) && inScore(score) {
			return ast.ObjectTerm(ast.Item(keyOutcome, outcome), ast.Item(keyReasons, ast.ArrayTerm(r)), ast.Item(keyScore, score)), nil
		}
	}
	return decideAll(rs)
}

// decideAll is stdlibDecide's decide_all and decision_of.
func decideAll(rs ast.Set) (*ast.Term, error) {
	sorted := rs.Sorted() // sort(rs)
	ordered := make([]*ast.Term, 0, sorted.Len())
	for _, o := range bySeverity {
		sorted.Foreach(func(r *ast.Term) {
			if isOneOf(field(r, keyOutcome), o) {
				ordered = append(ordered, r)
			}
		})
	}
	sorted.Foreach(func(r *ast.Term) {
		// not severity[r.outcome], which OPA runs as `o := r.outcome; not severity[o]`: an
		// element without an outcome is left out (its score still counts).
		if o := field(r, keyOutcome); o != nil && !isOneOf(o, termApprove, termStepUp, termReview, termBlock) {
			ordered = append(ordered, r)
		}
	})
	var scores []*ast.Term
	rs.Foreach(func(r *ast.Term) {
		if s := field(r, keyScore); s != nil {
			scores = append(scores, s)
		}
	})
	total, err := callBuiltin(builtinSum, ast.ArrayTerm(scores...))
	if err != nil {
		return nil, fmt.Errorf("data.verdict.lib.decide_all: sum: %w", err)
	}
	if len(ordered) == 0 { // ordered[0] is undefined
		return nil, nil
	}
	first := field(ordered[0], keyOutcome)
	outcome, err := callBuiltin(builtinObjectGet, knownOutcomes, first, termApprove)
	if err != nil || outcome == nil {
		return nil, err
	}
	score := ast.NewArray(termZero, total, termHundred).Sorted().Elem(1) // sort([0, total, 100])[1]
	fields := [][2]*ast.Term{{keyOutcome, outcome}, {keyReasons, ast.ArrayTerm(ordered...)}, {keyScore, score}}
	if outcome.Equal(termStepUp) {
		fields = append(fields, [2]*ast.Term{keyStepUp, strongestStepUp(ordered)})
	}
	return ast.ObjectTerm(fields...), nil
}

// strongestStepUp is stdlibDecide's strongest_step_up and strongest_method.
func strongestStepUp(ordered []*ast.Term) *ast.Term {
	methods := ast.NewSet()
	for _, r := range ordered {
		if m := field(r, keyStepUp); isOneOf(field(r, keyOutcome), termStepUp) && isString(m) {
			methods.Add(m)
		}
	}
	for _, m := range []*ast.Term{termDocument, termWebauthn, termOTP} {
		if methods.Contains(m) {
			return m
		}
	}
	if methods.Len() > 0 {
		return slices.MaxFunc(methods.Slice(), ast.TermValueCompare)
	}
	return termOTP
}
