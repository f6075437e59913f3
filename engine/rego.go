package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// SandboxCapabilities returns the OPA capabilities policies are compiled against: this
// OPA version's builtins minus every non-deterministic one (time.now_ns, rand.intn,
// uuid.rfc4122, http.send, ...), every net.* builtin and opa.runtime. A policy that calls
// one of them is refused at load, so a stored decision always replays to the same answer.
func SandboxCapabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if b.Nondeterministic || strings.HasPrefix(b.Name, "net.") || b.Name == "opa.runtime" || b.Name == "http.send" {
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	return caps
}

func loadRego(fsys fs.FS, files []string, cfg loadConfig) ([]*Policy, []Problem) {
	var problems []Problem
	modules := make(map[string]*ast.Module, len(files))
	contents := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			problems = append(problems, Problem{File: f, Message: err.Error()})
			continue
		}
		// An editor's byte order mark would hide the package's METADATA comment (and with
		// it the fail mode) from the parser.
		m, err := ast.ParseModuleWithOpts(f, string(bytes.TrimPrefix(b, utf8BOM)), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			problems = append(problems, astProblems(f, err)...)
			continue
		}
		modules[f] = m
		contents[f] = b
	}
	if len(problems) > 0 {
		return nil, problems
	}
	compiler := newCompiler()
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, astProblems("", compiler.Errors)
	}

	// Group modules by action: package verdict.<action> with a decision rule.
	actionFiles := map[string][]string{}
	libFiles := map[string][]byte{}
	for f, m := range modules {
		if a, ok := policyAction(m); ok {
			actionFiles[a] = append(actionFiles[a], f)
		} else {
			libFiles[f] = contents[f]
		}
	}
	var store storage.Store
	if cfg.data != nil {
		store = inmem.NewFromObject(cfg.data)
	} else {
		store = inmem.New()
	}
	deps := actionDeps(compiler, actionFiles)
	var out []*Policy
	for action, fl := range actionFiles {
		if !ValidAction(action) || action == "lib" {
			problems = append(problems, Problem{File: fl[0], Message: fmt.Sprintf("invalid action name %q: want lowercase letters, digits and _", action)})
			continue
		}
		hashed := make(map[string][]byte, len(libFiles)+len(fl))
		for f, b := range libFiles {
			hashed[f] = b
		}
		for _, f := range fl {
			hashed[f] = contents[f]
		}
		// Another action's package this one reads (a threshold of login's, say) is part of
		// what it decides with: a change there is a new version of this one too.
		for _, other := range deps[action] {
			for _, f := range actionFiles[other] {
				hashed[f] = contents[f]
			}
		}
		for f, b := range cfg.dataFiles {
			hashed[f] = b
		}
		p := &Policy{Action: action, Hash: contentHash(hashed), Language: LangRego, Files: fl}
		declared := ""
		for _, f := range fl {
			meta, probs := packageMetadata(f, modules[f])
			problems = append(problems, probs...)
			if v, ok := meta["version"]; ok {
				p.Version = v.value
			}
			if v, ok := meta["fail_mode"]; ok {
				fm, err := ParseFailMode(v.value)
				if err != nil {
					problems = append(problems, Problem{File: f, Line: v.line, Message: err.Error()})
				}
				p.FailMode, declared = fm, f // OPA refuses a package annotated in two files
				p.failModeAt = Problem{File: f, Line: v.line}
			}
		}
		if declared == "" {
			// The fail mode decides what a caller gets when a source or the store is down; a
			// default would silently replace one lost to a typo (failmode:, Custom:) or to a
			// METADATA comment the parser did not attach.
			problems = append(problems, Problem{File: fl[0], Line: modules[fl[0]].Package.Location.Row,
				Message: fmt.Sprintf("action %q declares no fail_mode: add a METADATA comment above the package with custom: {fail_mode: open|closed|review}", action)})
		}
		if p.Version == "" {
			p.Version = shortHash(p.Hash)
		}
		out = append(out, p)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	for _, p := range out {
		ev := prepareRego(compiler, modules, store, p.Ref())
		p.eval, p.reads = ev, shapeSources(ev.input.shape)
		p.thresholds = defaultThresholds(compiler, store, p.Action)
	}
	return out, nil
}

// prepareRego builds the evaluator of a policy's decision.
//
// The decision is first partially evaluated with the input unknown: everything that does
// not depend on the request (thresholds and their data overrides, library calls on
// constant arguments, rule bodies that only read constants) is computed once, here, and
// what is left is compiled, with the bundle, into the compiler the policy evaluates with.
// This is an evaluation strategy only: the files stay the source of truth and give the
// same answers under plain OPA. When partial evaluation fails (a builtin erring on
// constants, a construct it cannot handle, the load-time budget, a residue the type
// checker refuses), the policy evaluates its decision rule as written on the bundle's
// compiler, so the error, if any, surfaces on evaluation like any other policy error.
func prepareRego(compiler *ast.Compiler, modules map[string]*ast.Module, store storage.Store, ref PolicyRef) *regoEvaluator {
	// With the standard library's decide, OPA evaluates the set of reasons and libDecide
	// combines them (libdecide.go).
	rule, native := "decision", usesStdlibDecide(compiler, modules, ref.Action)
	if native {
		rule = "reasons"
	}
	target, c := ast.MustParseRef("data.verdict."+ref.Action+"."+rule), compiler
	if residue, err := partialEval(compiler, store, ref.Action, target); err == nil {
		if pc := compileWith(modules, residue); pc != nil {
			target, c = ast.MustParseRef("data."+partialNamespace+ref.Action+".__result__"), pc
		}
	}
	// The query only makes OPA evaluate the decision (decision = null fails unless the
	// decision is null, which the engine rejects anyway); the evaluator reads the value
	// from the cache of rule results. A query binding a variable to the decision would
	// have OPA copy the whole decision object once more to hand it back, and a query with
	// no result saves OPA making one. It names one fully qualified ref and no variable,
	// so it needs no compiling (the type checker would refuse comparing an object to null).
	query, bind := ast.NewBody(ast.Equality.Expr(ast.NewTerm(target), ast.InternedNullTerm)), false
	if !cachedWhole(c, target) {
		// Rules define parts of the decision (decision.outcome := ...): OPA assembles it
		// without caching it whole, so the query asks for its value.
		q, err := c.QueryCompiler().Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(resultVar), ast.NewTerm(target))))
		if err == nil {
			query, bind = q, true
		}
	}
	return &regoEvaluator{
		decision: target,
		store:    store,
		input:    newInputPlan(readInputShape(c, target)),
		ref:      ref,
		bind:     bind,
		native:   native,
		base: topdown.NewQuery(query).
			WithCompiler(c).
			WithStore(store).
			WithStrictBuiltinErrors(true).
			WithMetrics(noMetrics).
			// Passed to custom builtins, of which the engine registers none: it stays
			// empty, and sharing it saves OPA making one per evaluation.
			WithRequestMetadata(map[string]any{}),
	}
}

// resultVar is bound to the decision by the queries that ask for its value.
var resultVar = ast.Var("__verdict_decision__")

// cachedWhole reports whether evaluating target leaves its value in the cache of rule
// results: every rule under target must define target itself (a complete rule, or a set
// or an object built key by key).
func cachedWhole(c *ast.Compiler, target ast.Ref) bool {
	rules := c.GetRules(target)
	for _, r := range rules {
		if !r.Path().Equal(target) {
			return false
		}
	}
	return len(rules) > 0
}

// compileWith compiles modules and the residue of a partial evaluation, or returns nil
// when they do not compile (the type checker can refuse what partial evaluation left:
// a rule it knows to be a string compared to null, say).
func compileWith(modules, residue map[string]*ast.Module) *ast.Compiler {
	all := maps.Clone(modules)
	maps.Copy(all, residue)
	c := newCompiler()
	if c.Compile(all); c.Failed() {
		return nil
	}
	return c
}

func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(SandboxCapabilities()).
		WithEnablePrintStatements(false).
		WithDefaultRegoVersion(ast.RegoV1)
}

// partialEvalBudget bounds the partial evaluation of one decision at load: it computes
// whatever does not depend on the request, which a policy can make arbitrarily
// expensive. Past the budget the action is evaluated as written, under the evaluation
// deadline.
const partialEvalBudget = 500 * time.Millisecond

// partialNamespace prefixes the packages holding what is left of each action's decision
// after partial evaluation (verdict_partial_payout...): outside verdict, so that no policy
// can clash with it.
const partialNamespace = "verdict_partial_"

// partialEval partially evaluates one action's decision (or its reasons), target, on
// compiler c, which it does not change, and returns the modules holding what is left: a
// rule __result__ in package verdict_partial_<action>, and the rules it needs.
func partialEval(c *ast.Compiler, store storage.Store, action string, target ast.Ref) (map[string]*ast.Module, error) {
	ctx, cancel := context.WithTimeout(context.Background(), partialEvalBudget)
	defer cancel()
	ns := partialNamespace + action
	result := ast.NewTerm(resultVar)
	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.Equality.Expr(result, ast.NewTerm(target)))),
		rego.Compiler(c),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.PartialNamespace(ns),
		rego.DisableInlining(conflictableRules(c)),
	).Partial(ctx)
	if err != nil {
		return nil, err
	}
	if len(pq.Queries) == 0 {
		return nil, errors.New("partial evaluation: decision is always undefined")
	}
	// As rego.PartialResult does: each residual query binds the decision.
	id := "__verdict_partial__" + action
	m, err := ast.ParseModuleWithOpts(id, "package "+ns, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	for _, body := range pq.Queries {
		m.Rules = append(m.Rules, &ast.Rule{
			Head:   ast.NewHead(ast.Var("__result__"), nil, result),
			Body:   body,
			Module: m,
		})
	}
	out := map[string]*ast.Module{id: m}
	for i, m := range pq.Support {
		locateSupport(c, m)
		out[fmt.Sprintf("__verdict_partial__%s__%d", action, i)] = m
	}
	return out, nil
}

// locateSupport gives the rules of a support module of a partial evaluation the location
// of the rule they were made from, which partial evaluation leaves out: a conflict
// between two of them (eval_conflict_error) then names the policy's file:line, and lists
// the conflicting values with theirs, as plain OPA does. A support rule is made from the
// rule at its path without the partial namespace: the one, in the file of its body's
// first located expression, that starts last at or before it; or, for a body with no
// location, the only one with the same value.
func locateSupport(c *ast.Compiler, m *ast.Module) {
	for _, r := range m.Rules {
		if r.Location != nil {
			continue
		}
		ref := r.Ref()
		if len(ref) < 3 {
			continue
		}
		orig := c.GetRulesExact(append(ast.Ref{ref[0]}, ref[2:]...))
		var at *ast.Location
		for _, e := range r.Body {
			if e.Location != nil && e.Location.File != "" {
				at = e.Location
				break
			}
		}
		var from *ast.Rule
		same := 0
		for _, o := range orig {
			switch {
			case o.Location == nil:
			case at != nil:
				if o.Location.File == at.File && o.Location.Row <= at.Row && (from == nil || o.Location.Row > from.Location.Row) {
					from = o
				}
			case r.Head.Value != nil && o.Head.Value != nil && r.Head.Value.Equal(o.Head.Value):
				from = o
				same++
			}
		}
		if at == nil && same > 1 {
			continue // several rules give that value: which one is not known
		}
		if from != nil {
			loc := *from.Location
			r.Location = &loc
		}
	}
}

// userNames returns err with the rules it names under the partial namespace (data.
// verdict_partial_payout.verdict.payout.limit) named as the policy names them
// (data.verdict.payout.limit).
func userNames(err error, action string) error {
	te, ok := err.(*topdown.Error)
	if !ok {
		return err
	}
	prefix := "data." + partialNamespace + action + "."
	if !strings.Contains(te.Message, prefix) {
		return err
	}
	cp := *te
	cp.Message = strings.ReplaceAll(te.Message, prefix, "data.")
	return &cp
}

// conflictableRules returns the paths of the complete rules and functions defined more
// than once (two bodies, not an else chain; for functions, bodies that are not plainly
// exclusive): when two of them hold with different values, OPA raises
// eval_conflict_error. Partial evaluation inlines each body on its own and would drop that
// error (the decision would go on without the rule, or with one of the values, where plain
// OPA fails), so they are kept as rules, evaluated and checked as written.
func conflictableRules(c *ast.Compiler) []string {
	var out []string
	c.RuleTree.DepthFirst(func(n *ast.TreeNode) bool {
		complete := 0
		var functions []*ast.Rule
		for _, r := range n.Values {
			switch {
			case r.Default || r.Head.RuleKind() != ast.SingleValue:
			case len(r.Head.Args) > 0:
				functions = append(functions, r)
			default:
				complete++
			}
		}
		if complete > 1 || !pairwiseExclusive(functions) {
			out = append(out, n.Values[0].Path().GroundPrefix().String())
		}
		return false
	})
	return out
}

// pairwiseExclusive reports whether no two of the function definitions fs can hold for
// the same arguments, as the library's at(s, v, t) (one body per combination of null
// arguments): two definitions are exclusive when they test one argument against a constant
// in contradicting ways (a == null and a != null; a == "x" and a == "y"). Anything else may
// conflict.
func pairwiseExclusive(fs []*ast.Rule) bool {
	tests := make([]map[argTest]bool, len(fs))
	for i, f := range fs {
		tests[i] = argTests(f)
	}
	for i := range fs {
		for j := i + 1; j < len(fs); j++ {
			if !contradict(tests[i], tests[j]) {
				return false
			}
		}
	}
	return true
}

// argTest is a test of a function's argument (by position) against a constant: equal to
// it, or not.
type argTest struct {
	arg   int
	value string // the constant, as Rego
	equal bool
}

// argTests returns the tests of f's body that compare one of its arguments to a scalar
// constant with ==, = or !=.
func argTests(f *ast.Rule) map[argTest]bool {
	args := map[ast.Var]int{}
	for i, a := range f.Head.Args {
		if v, ok := a.Value.(ast.Var); ok {
			args[v] = i
		}
	}
	out := map[argTest]bool{}
	for _, e := range f.Body {
		if e.Negated || len(e.With) > 0 || !e.IsCall() || len(e.Operands()) != 2 {
			continue
		}
		var equal bool
		switch e.Operator().String() {
		case ast.Equal.Name, ast.Equality.Name:
			equal = true
		case ast.NotEqual.Name:
		default:
			continue
		}
		ops := e.Operands()
		for k := range 2 {
			v, isVar := ops[k].Value.(ast.Var)
			i, isArg := args[v]
			if isVar && isArg && ast.IsScalar(ops[1-k].Value) {
				out[argTest{arg: i, value: ops[1-k].Value.String(), equal: equal}] = true
			}
		}
	}
	return out
}

// contradict reports whether two sets of argument tests cannot both hold.
func contradict(a, b map[argTest]bool) bool {
	for t := range a {
		if !t.equal {
			if b[argTest{arg: t.arg, value: t.value, equal: true}] {
				return true
			}
			continue
		}
		for u := range b {
			if u.arg == t.arg && ((u.equal && u.value != t.value) || (!u.equal && u.value == t.value)) {
				return true
			}
		}
	}
	return false
}

// readInputShape returns the part of the input document the rules behind query can
// read: the rules query names and, transitively, every rule they depend on (the
// compiler's dependency graph), scanned for refs to input. A ref reads its constant
// prefix and everything under it (input.context.amount reads amount whole); a variable
// key (input.signals.lists[x]) stops the prefix there. object.get(input, path, default)
// with a constant path reads that path as the ref would. input passed as a value
// otherwise, or a with modifier anywhere, means the whole input. It also returns a term
// for every string constant of those rules.
func readInputShape(c *ast.Compiler, query ast.Ref) (*inputShape, map[string]*ast.Term) {
	shape := &inputShape{}
	strs := map[string]*ast.Term{}
	seen := map[*ast.Rule]bool{}
	var queue []*ast.Rule
	push := func(r *ast.Rule) {
		for ; r != nil; r = r.Else {
			if !seen[r] {
				seen[r] = true
				queue = append(queue, r)
			}
		}
	}
	for _, r := range c.GetRules(query) {
		push(r)
	}
	if len(queue) == 0 {
		return wholeInput, strs
	}
	// The compiler moves an input passed to a function into a local variable
	// (__local1__ = input; object.get(__local1__, ...)): aliases holds the current rule's.
	aliases := map[ast.Var]bool{}
	findAliases := ast.NewGenericVisitor(func(x any) bool {
		if e, ok := x.(*ast.Expr); ok {
			if v, ok := inputAlias(e); ok {
				aliases[v] = true
			}
		}
		return false
	})
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Ref:
			if !x[0].Equal(ast.InputRootDocument) {
				return false
			}
			path := make([]string, 0, len(x)-1)
			for _, t := range x[1:] {
				s, ok := t.Value.(ast.String)
				if !ok {
					break
				}
				path = append(path, string(s))
			}
			shape.add(path)
			for _, t := range x[1:] {
				vis.Walk(t)
			}
			return true
		case ast.String:
			if _, ok := strs[string(x)]; !ok {
				strs[string(x)] = ast.StringTerm(string(x))
			}
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) || aliases[x] {
				shape.add(nil)
			}
		case *ast.Expr:
			if len(x.With) > 0 {
				shape.add(nil)
			}
			if _, ok := inputAlias(x); ok {
				return true // what reads the alias is what reads input
			}
			if x.IsCall() {
				if path, ok := objectGetInputPath(x.Operator(), x.Operands(), aliases); ok {
					shape.add(path)
					for _, t := range x.Operands()[1:] {
						vis.Walk(t)
					}
					return true
				}
			}
		case ast.Call:
			if path, ok := objectGetInputPath(x[0].Value.(ast.Ref), x[1:], aliases); ok {
				shape.add(path)
				for _, t := range x[2:] {
					vis.Walk(t)
				}
				return true
			}
		}
		return false
	})
	for len(queue) > 0 {
		r := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for dep := range c.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok {
				push(d)
			}
		}
		clear(aliases)
		findAliases.Walk(r)
		vis.Walk(r)
	}
	if shape.all {
		return wholeInput, strs
	}
	return shape, strs
}

// isInput reports whether t is input itself.
func isInput(t *ast.Term) bool {
	switch v := t.Value.(type) {
	case ast.Var:
		return v.Equal(ast.InputRootDocument.Value)
	case ast.Ref:
		return len(v) == 1 && v[0].Equal(ast.InputRootDocument)
	}
	return false
}

// inputAlias returns v when e is the compiler's __localN__ = input.
func inputAlias(e *ast.Expr) (ast.Var, bool) {
	if !e.IsEquality() && !e.IsAssignment() {
		return "", false
	}
	ops := e.Operands()
	if len(ops) != 2 {
		return "", false
	}
	for i, t := range ops {
		if v, ok := t.Value.(ast.Var); ok && v.IsGenerated() && isInput(ops[1-i]) {
			return v, true
		}
	}
	return "", false
}

// objectGetInputPath returns the part of input a call reads when it is
// object.get(input, path, default) (input or one of its aliases) with path a constant
// key or array of keys: the keys up to the first one that is not a constant string
// (object.get(input, [], d) is input whole, an empty path). ok is false for any other
// call.
func objectGetInputPath(op ast.Ref, args []*ast.Term, aliases map[ast.Var]bool) ([]string, bool) {
	if len(args) < 2 || !op.Equal(ast.ObjectGet.Ref()) {
		return nil, false
	}
	if v, ok := args[0].Value.(ast.Var); !isInput(args[0]) && (!ok || !aliases[v]) {
		return nil, false
	}
	var keys []*ast.Term
	switch p := args[1].Value.(type) {
	case ast.String:
		keys = []*ast.Term{args[1]}
	case *ast.Array:
		for i := range p.Len() {
			keys = append(keys, p.Elem(i))
		}
	default:
		return nil, true // a path computed at run time: input whole
	}
	path := make([]string, 0, len(keys))
	for _, k := range keys {
		s, ok := k.Value.(ast.String)
		if !ok {
			break
		}
		path = append(path, string(s))
	}
	return path, true
}

func policyAction(m *ast.Module) (string, bool) {
	path := m.Package.Path
	if len(path) != 3 {
		return "", false
	}
	v, ok1 := path[1].Value.(ast.String)
	a, ok2 := path[2].Value.(ast.String)
	if !ok1 || !ok2 || v != "verdict" {
		return "", false
	}
	for _, r := range m.Rules {
		if r.Head.Name == "decision" || (len(r.Head.Reference) == 1 && r.Head.Reference[0].Value.Compare(ast.Var("decision")) == 0) {
			return string(a), true
		}
	}
	return "", false
}

// defaultThresholds evaluates data.verdict.<action>.default_thresholds, the convention of
// the shipped policies (overridden key by key by data.thresholds.<action>); nil when the
// policy has no such object.
func defaultThresholds(compiler *ast.Compiler, store storage.Store, action string) map[string]any {
	rs, err := rego.New(rego.Compiler(compiler), rego.Store(store), rego.Query("data.verdict."+action+".default_thresholds")).
		Eval(context.Background())
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil
	}
	m, _ := rs[0].Expressions[0].Value.(map[string]any)
	return m
}

// actionDeps returns, for each action, the other actions whose packages its modules read
// (data.verdict.<other>...), directly or through one another. A reference that picks the
// package by a variable (data.verdict[x]) reads them all.
func actionDeps(compiler *ast.Compiler, actionFiles map[string][]string) map[string][]string {
	direct := map[string]map[string]bool{}
	for action, fl := range actionFiles {
		seen := map[string]bool{}
		for _, f := range fl {
			m := compiler.Modules[f]
			if m == nil {
				continue
			}
			ast.WalkRefs(m, func(r ast.Ref) bool {
				if len(r) < 2 || !r[0].Equal(ast.DefaultRootDocument) || r[1].Value.Compare(ast.String("verdict")) != 0 {
					return false
				}
				if len(r) == 2 {
					for other := range actionFiles {
						seen[other] = true
					}
					return false
				}
				switch v := r[2].Value.(type) {
				case ast.String:
					if _, ok := actionFiles[string(v)]; ok {
						seen[string(v)] = true
					}
				case ast.Var:
					for other := range actionFiles {
						seen[other] = true
					}
				}
				return false
			})
		}
		direct[action] = seen
	}
	out := make(map[string][]string, len(actionFiles))
	for action := range actionFiles {
		reach := map[string]bool{action: true}
		queue := []string{action}
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			for other := range direct[a] {
				if !reach[other] {
					reach[other] = true
					queue = append(queue, other)
				}
			}
		}
		for other := range reach {
			if other != action {
				out[action] = append(out[action], other)
			}
		}
	}
	return out
}

var utf8BOM = []byte("\xef\xbb\xbf")

// metaValue is a string value of a package annotation's custom block, and its line.
type metaValue struct {
	value string
	line  int
}

// packageMetadata returns the string values of the package annotation's custom block,
// each with the line of its key (the annotation's, when it cannot be told).
func packageMetadata(file string, m *ast.Module) (map[string]metaValue, []Problem) {
	out := map[string]metaValue{}
	var problems []Problem
	for _, a := range m.Annotations {
		if a.Scope != "package" || a.Custom == nil {
			continue
		}
		for _, k := range []string{"version", "fail_mode"} {
			v, ok := a.Custom[k]
			if !ok {
				continue
			}
			line := customKeyLine(m, a, k)
			s, isStr := v.(string)
			if !isStr {
				problems = append(problems, Problem{File: file, Line: line, Message: fmt.Sprintf("metadata custom.%s must be a string", k)})
				continue
			}
			out[k] = metaValue{value: s, line: line}
		}
	}
	return out, problems
}

// customKeyLine returns the line of key under custom: in annotation a of m: the METADATA
// comment block is the run of comment lines from the annotation's line, and key the first
// one under (or on) its custom: line. It returns the annotation's line when a has no
// location and the package's when the key is not found.
func customKeyLine(m *ast.Module, a *ast.Annotations, key string) int {
	if a.Location == nil {
		return m.Package.Location.Row
	}
	rows := map[int]string{}
	for _, c := range m.Comments {
		if c.Location != nil && c.Location.File == a.Location.File {
			rows[c.Location.Row] = string(c.Text)
		}
	}
	custom := -1 // indentation of the custom: line, once seen
	for row := a.Location.Row; ; row++ {
		text, ok := rows[row]
		if !ok {
			return a.Location.Row
		}
		trimmed := strings.TrimLeft(text, " ")
		indent := len(text) - len(trimmed)
		switch {
		case custom < 0:
			if strings.HasPrefix(trimmed, "custom:") {
				custom = indent
				if strings.Contains(trimmed, key) {
					return row // flow style: custom: {fail_mode: closed}
				}
			}
		case trimmed == "":
		case indent <= custom:
			return a.Location.Row // out of the custom block
		case strings.HasPrefix(trimmed, key+":") || strings.HasPrefix(trimmed, key+" :") ||
			strings.HasPrefix(trimmed, `"`+key+`":`) || strings.HasPrefix(trimmed, "'"+key+"':"):
			return row
		}
	}
}

// RegoProblems turns an error from parsing or compiling Rego (ast.Errors, *ast.Error, or
// anything else) into problems with file:line, file standing in where OPA names none.
func RegoProblems(file string, err error) []Problem { return astProblems(file, err) }

func astProblems(file string, err error) []Problem {
	var errs ast.Errors
	if errors.As(err, &errs) {
		out := make([]Problem, 0, len(errs))
		for _, e := range errs {
			p := Problem{File: file, Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				if e.Location.File != "" {
					p.File = e.Location.File
				}
				p.Line = e.Location.Row
			}
			out = append(out, p)
		}
		return out
	}
	var one *ast.Error
	if errors.As(err, &one) {
		return astProblems(file, ast.Errors{one})
	}
	return []Problem{{File: file, Message: err.Error()}}
}

// regoEvaluator evaluates one action's compiled decision query with OPA's evaluator
// (topdown) directly: the rego package's per-call setup (options, result sets, a
// goroutine watching the context) costs more than the small policies it runs here.
type regoEvaluator struct {
	decision ast.Ref // the rule holding the decision
	store    storage.Store
	input    *inputPlan
	ref      PolicyRef
	bind     bool // the query binds resultVar to the decision
	// native: the query evaluates the policy's set of reasons, which libDecide combines
	// into the decision as the standard library's decide does.
	native bool
	// base is the query with everything but the request's state set: each evaluation
	// copies it.
	base *topdown.Query
	// states holds *evalState for reuse.
	states sync.Pool
}

func (r *regoEvaluator) eval(ec evalContext, in *Input) (Decision, error) {
	txn, err := r.store.NewTransaction(ec.ctx)
	if err != nil {
		return Decision{}, err
	}
	defer r.store.Abort(ec.ctx, txn)
	st, _ := r.states.Get().(*evalState)
	if st == nil {
		st = newEvalState()
	}
	defer r.release(st)
	st.cancel.ctx = ec.ctx
	q := *r.base
	q.WithTransaction(txn).
		WithInput(inputTerm(in, r.input, st.terms(r.input.terms))).
		WithTime(ec.now).
		WithVirtualCache(&st.virtual).
		WithBaseCache(&st.base).
		WithCancel(&st.cancel)
	var result *ast.Term
	if r.bind {
		result, err = boundResult(ec.ctx, &q)
	} else {
		err = q.Iter(ec.ctx, ignoreResult)
		result, _ = st.virtual.Get(r.decision)
	}
	if err != nil {
		return Decision{}, userNames(err, r.ref.Action)
	}
	if result != nil && r.native {
		set, ok := result.Value.(ast.Set)
		if !ok {
			return Decision{}, fmt.Errorf("data.verdict.%s.reasons is %s, want a set", r.ref.Action, ast.ValueName(result.Value))
		}
		if result, err = libDecide(set); err != nil {
			return Decision{}, err
		}
	}
	if result == nil {
		return Decision{}, errors.New("policy produced no decision (data.verdict." + r.ref.Action + ".decision is undefined)")
	}
	return decisionFromTerm(result)
}

var noMetrics = metrics.NoOp()

func ignoreResult(topdown.QueryResult) error { return nil }

// boundResult runs a query binding resultVar and returns its value.
func boundResult(ctx context.Context, q *topdown.Query) (*ast.Term, error) {
	var result *ast.Term
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		result = qr[resultVar]
		return nil
	})
	return result, err
}

// ctxCancel stops an evaluation once its context is done. OPA polls Cancelled before
// every expression and inside long-running builtins; Err is an atomic load, which
// replaces the goroutine OPA's rego package would otherwise start per evaluation to
// wait on the context.
type ctxCancel struct{ ctx context.Context }

func (c *ctxCancel) Cancel() {}

func (c *ctxCancel) Cancelled() bool { return c.ctx.Err() != nil }

// evalState is what one evaluation needs besides OPA's own state: its caches, and the
// terms of its input value. Evaluations reuse them: once the decision is read into Go
// values, nothing refers to them any more.
type evalState struct {
	virtual virtualCache
	base    baseCache
	cancel  ctxCancel
	entries [8]cacheEntry
	keys    [32]*ast.Term
	block   []ast.Term
}

// terms returns a block of n terms for the input value.
func (s *evalState) terms(n int) []ast.Term {
	if cap(s.block) < n {
		s.block = make([]ast.Term, n)
	}
	return s.block[:n]
}

func newEvalState() *evalState {
	s := &evalState{}
	s.reset()
	return s
}

func (s *evalState) reset() {
	clear(s.block)
	clear(s.virtual.entries)
	clear(s.virtual.keys)
	clear(s.base.entries)
	s.virtual.entries = s.entries[:0]
	s.virtual.keys = s.keys[:0]
	s.virtual.frames = s.virtual.frame0[:1]
	s.base.entries = s.base.entries[:0]
	s.cancel.ctx = nil
}

func (r *regoEvaluator) release(s *evalState) {
	s.reset()
	r.states.Put(s)
}

// virtualCache is the cache of rule and function results for one evaluation, with the
// contract of topdown's default (a stack of frames, lookups in the top frame only) but
// kept as a flat list rather than a trie of hash maps: an evaluation caches a few dozen
// refs at most, and a linear scan over them is cheaper than hashing and allocating a
// map per ref element.
type virtualCache struct {
	entries []cacheEntry
	frames  []int // start of each frame in entries
	frame0  [4]int
	keys    []*ast.Term
}

type cacheEntry struct {
	ref       ast.Ref // a copy: callers reuse the slice they pass
	value     *ast.Term
	undefined bool
}

func (c *virtualCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *virtualCache) Pop() {
	top := c.frames[len(c.frames)-1]
	c.frames = c.frames[:len(c.frames)-1]
	clear(c.entries[top:])
	c.entries = c.entries[:top]
}

func (c *virtualCache) find(ref ast.Ref) *cacheEntry {
	for i := len(c.entries) - 1; i >= c.frames[len(c.frames)-1]; i-- {
		if refEqual(c.entries[i].ref, ref) {
			return &c.entries[i]
		}
	}
	return nil
}

// refEqual compares from the last term, where refs to sibling rules differ.
func refEqual(a, b ast.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] != b[i] && !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if e := c.find(ref); e != nil {
		return e.value, e.undefined
	}
	return nil, false
}

func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	e := c.find(ref)
	if e == nil {
		start := len(c.keys)
		c.keys = append(c.keys, ref...)
		c.entries = append(c.entries, cacheEntry{ref: ast.Ref(c.keys[start:len(c.keys):len(c.keys)])})
		e = &c.entries[len(c.entries)-1]
	}
	e.value, e.undefined = value, value == nil
}

func (c *virtualCache) Keys() []ast.Ref {
	var out []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			out = append(out, e.ref)
		}
	}
	return out
}

// baseCache caches what an evaluation read from the store. Policies read data rarely
// (partial evaluation folds it into the query), so it allocates only when used.
type baseCache struct {
	entries []baseEntry
}

type baseEntry struct {
	ref   ast.Ref
	value ast.Value
}

func (c *baseCache) Get(ref ast.Ref) ast.Value {
	for _, e := range c.entries {
		if len(e.ref) <= len(ref) && refEqual(e.ref, ref[:len(e.ref)]) {
			v, err := e.value.Find(ref[len(e.ref):])
			if err != nil {
				return nil
			}
			return v
		}
	}
	return nil
}

func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	c.entries = append(c.entries, baseEntry{ref: ref.Copy(), value: value})
}

var (
	keyOutcome   = ast.StringTerm("outcome")
	keyReasons   = ast.StringTerm("reasons")
	keyScore     = ast.StringTerm("score")
	keyStepUp    = ast.StringTerm("step_up")
	keyCode      = ast.StringTerm("code")
	keyMessage   = ast.StringTerm("message")
	keySignal    = ast.StringTerm("signal")
	keyValue     = ast.StringTerm("value")
	keyThreshold = ast.StringTerm("threshold")
)

// decisionFromTerm validates the policy's decision object and converts it.
func decisionFromTerm(t *ast.Term) (Decision, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", ast.ValueName(t.Value))
	}
	var d Decision
	o, err := termString(obj, keyOutcome, true)
	if err != nil {
		return Decision{}, err
	}
	if d.Outcome, err = ParseOutcome(o); err != nil {
		return Decision{}, fmt.Errorf("decision: %w", err)
	}
	if st := obj.Get(keyScore); st != nil {
		n, ok := st.Value.(ast.Number)
		if !ok {
			return Decision{}, errors.New("decision: score must be a number")
		}
		d.Score, _ = n.Float64()
	}
	if d.StepUp, err = termString(obj, keyStepUp, false); err != nil {
		return Decision{}, err
	}
	if rt := obj.Get(keyReasons); rt != nil {
		switch rv := rt.Value.(type) {
		case *ast.Array:
			d.Reasons = make([]Reason, rv.Len())
			for i := range d.Reasons {
				if d.Reasons[i], err = reasonFromTerm(rv.Elem(i)); err != nil {
					return Decision{}, err
				}
			}
		case ast.Set:
			d.Reasons = make([]Reason, rv.Len())
			for i, e := range rv.Slice() {
				if d.Reasons[i], err = reasonFromTerm(e); err != nil {
					return Decision{}, err
				}
			}
		default:
			return Decision{}, errors.New("decision: reasons must be an array")
		}
	}
	sortReasons(d.Reasons)
	return d, nil
}

func reasonFromTerm(t *ast.Term) (Reason, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return Reason{}, fmt.Errorf("decision: reason is %s, want an object", ast.ValueName(t.Value))
	}
	var r Reason
	var err error
	if r.Code, err = termString(obj, keyCode, true); err != nil {
		return Reason{}, err
	}
	o, err := termString(obj, keyOutcome, true)
	if err != nil {
		return Reason{}, fmt.Errorf("reason %s: %w", r.Code, err)
	}
	if r.Outcome, err = ParseOutcome(o); err != nil {
		return Reason{}, fmt.Errorf("reason %s: %w", r.Code, err)
	}
	if r.Message, err = termString(obj, keyMessage, false); err != nil {
		return Reason{}, err
	}
	if r.Signal, err = termString(obj, keySignal, false); err != nil {
		return Reason{}, err
	}
	if v := obj.Get(keyValue); v != nil {
		r.Value, _ = ast.JSON(v.Value)
	}
	if v := obj.Get(keyThreshold); v != nil {
		r.Threshold, _ = ast.JSON(v.Value)
	}
	if st := obj.Get(keyScore); st != nil {
		if n, ok := st.Value.(ast.Number); ok {
			r.Score, _ = n.Float64()
		}
	}
	return r, nil
}

func termString(obj ast.Object, key *ast.Term, required bool) (string, error) {
	v := obj.Get(key)
	if v == nil {
		if required {
			return "", fmt.Errorf("decision: missing %s", key.Value)
		}
		return "", nil
	}
	if _, null := v.Value.(ast.Null); null && !required {
		// An optional field set to null is absent: policies pass null for "not applicable".
		return "", nil
	}
	s, ok := v.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("decision: %s must be a string, got %s", key.Value, ast.ValueName(v.Value))
	}
	return string(s), nil
}
