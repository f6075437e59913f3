package engine

import (
	"context"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// The library the engine recognizes is the one it ships.
func TestStdlibDecideIsTheShippedLibrary(t *testing.T) {
	src, err := os.ReadFile("../policies/bundle/lib/verdict.rego")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ast.ParseModuleWithOpts("verdict.rego", string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range stdlibRules {
		var found []*ast.Rule
		for _, r := range m.Rules {
			if r.Head.Name.String() == name {
				found = append(found, r)
			}
		}
		if len(found) != 1 || found[0].Compare(want) != 0 {
			t.Errorf("policies/bundle/lib/verdict.rego: rule %s differs from engine.stdlibDecide (%d definitions): keep them equal", name, len(found))
		}
	}
}

func compileModules(t testing.TB, files map[string]string) (*ast.Compiler, map[string]*ast.Module) {
	t.Helper()
	mods := map[string]*ast.Module{}
	for name, src := range files {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = m
	}
	c := newCompiler()
	if c.Compile(mods); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c, mods
}

const decidePolicy = `# METADATA
# custom:
#   fail_mode: review
package verdict.payout

import data.verdict.lib

reasons contains {"code": "A_CODE", "outcome": "block", "score": 90} if input.behavior.a == true

decision := lib.decide(reasons)
`

func TestUsesStdlibDecideOnlyForTheStandardLibrary(t *testing.T) {
	lib, err := os.ReadFile("../policies/bundle/lib/verdict.rego")
	if err != nil {
		t.Fatal(err)
	}
	shipped := string(lib)
	cases := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"shipped library", map[string]string{"lib.rego": shipped, "p.rego": decidePolicy}, true},
		{"library of the decide family only", map[string]string{"lib.rego": stdlibDecide, "p.rego": decidePolicy}, true},
		{"another severity", map[string]string{
			"lib.rego": replaceOnce(t, stdlibDecide, `"block": 3}`, `"block": 4}`), "p.rego": decidePolicy}, false},
		{"a rule added to decide from another package", map[string]string{"lib.rego": stdlibDecide, "p.rego": decidePolicy,
			"x.rego": "package verdict\n\nlib.known_outcomes := {}\n"}, false},
		{"decision with a body", map[string]string{"lib.rego": stdlibDecide,
			"p.rego": replaceOnce(t, decidePolicy, "decision := lib.decide(reasons)", "decision := lib.decide(reasons) if input.b")}, false},
		{"decision of something else", map[string]string{"lib.rego": stdlibDecide,
			"p.rego": replaceOnce(t, decidePolicy, "decision := lib.decide(reasons)", "decision := lib.decide(reasons | {1})")}, false},
		{"reasons a complete rule", map[string]string{"lib.rego": stdlibDecide,
			"p.rego": replaceOnce(t, decidePolicy, `reasons contains {"code": "A_CODE", "outcome": "block", "score": 90} if input.behavior.a == true`, `reasons := {1}`)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, mods := compileModules(t, tc.files)
			if got := usesStdlibDecide(c, mods, "payout"); got != tc.want {
				t.Fatalf("usesStdlibDecide = %v, want %v", got, tc.want)
			}
		})
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not found", old)
	}
	return strings.Replace(s, old, new, 1)
}

// reasonSet builds a set of fired reasons from r: mostly well-formed, some with unknown or
// missing outcomes, scores out of range, fractional, huge or not numbers, odd step-up
// methods, and some elements that are not objects at all.
func reasonSet(r *rand.Rand) ast.Set {
	pick := func(ts ...*ast.Term) *ast.Term { return ts[r.IntN(len(ts))] }
	outcomes := []*ast.Term{termApprove, termStepUp, termReview, termBlock, termStepUp, termBlock,
		ast.StringTerm("weird"), ast.IntNumberTerm(3), ast.NullTerm(), nil}
	scores := []*ast.Term{ast.IntNumberTerm(0), ast.IntNumberTerm(10), ast.IntNumberTerm(15), ast.IntNumberTerm(40),
		ast.IntNumberTerm(100), ast.IntNumberTerm(101), ast.IntNumberTerm(-1), ast.NumberTerm("12.5"),
		ast.NumberTerm("0.1"), ast.NumberTerm("0.2"), ast.NumberTerm("9223372036854775807"), ast.StringTerm("x"),
		ast.NullTerm(), nil}
	methods := []*ast.Term{termOTP, termWebauthn, termDocument, ast.StringTerm("sms"), ast.StringTerm("zzz"),
		ast.IntNumberTerm(1), nil}
	codes := []*ast.Term{ast.StringTerm("A"), ast.StringTerm("B"), ast.StringTerm("C"), ast.StringTerm("D")}
	s := ast.NewSet()
	for range r.IntN(6) {
		if r.IntN(8) == 0 {
			s.Add(pick(ast.StringTerm("outcome"), ast.IntNumberTerm(7), ast.ArrayTerm(ast.StringTerm("outcome")),
				ast.SetTerm(ast.StringTerm("outcome"), ast.StringTerm("score")), ast.NullTerm(), ast.BooleanTerm(true),
				ast.ObjectTerm()))
			continue
		}
		var items [][2]*ast.Term
		for _, kv := range [][2]*ast.Term{
			{keyOutcome, pick(outcomes...)}, {keyScore, pick(scores...)}, {keyStepUp, pick(methods...)},
			{ast.StringTerm("code"), pick(codes...)},
		} {
			if kv[1] != nil {
				items = append(items, kv)
			}
		}
		s.Add(ast.ObjectTerm(items...))
	}
	return s
}

type decideOracle struct {
	c *ast.Compiler
}

func newDecideOracle(t testing.TB) *decideOracle {
	c, _ := compileModules(t, map[string]string{"lib.rego": stdlibDecide})
	return &decideOracle{c: c}
}

// eval returns what OPA makes of data.verdict.lib.decide(rs): its value as JSON, whether
// it is defined, and whether it failed.
func (o *decideOracle) eval(t testing.TB, rs ast.Set) (any, bool, bool) {
	t.Helper()
	x := ast.VarTerm("x")
	body := ast.NewBody(ast.Equality.Expr(x, ast.CallTerm(ast.RefTerm(ast.VarTerm("data"), ast.StringTerm("verdict"),
		ast.StringTerm("lib"), ast.StringTerm("decide")), ast.NewTerm(rs))))
	rsets, err := rego.New(rego.ParsedQuery(body), rego.Compiler(o.c), rego.StrictBuiltinErrors(true)).Eval(context.Background())
	if err != nil {
		return nil, false, true
	}
	if len(rsets) == 0 {
		return nil, false, false
	}
	return rsets[0].Bindings["x"], true, false
}

func checkLibDecide(t *testing.T, o *decideOracle, rs ast.Set) {
	t.Helper()
	want, defined, failed := o.eval(t, rs)
	got, err := libDecide(rs)
	switch {
	case failed || err != nil:
		if failed != (err != nil) {
			t.Fatalf("decide(%v): OPA failed %v, libDecide error %v", rs, failed, err)
		}
	case !defined || got == nil:
		if defined != (got != nil) {
			t.Fatalf("decide(%v): OPA defined %v, libDecide %v", rs, defined, got)
		}
	default:
		g, err := ast.JSON(got.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("decide(%v):\n libDecide %v\n OPA       %v", rs, g, want)
		}
	}
}

// libDecide gives what the standard library's Rego gives, on generated reason sets.
func TestLibDecideMatchesRego(t *testing.T) {
	o := newDecideOracle(t)
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		checkLibDecide(t, o, reasonSet(r))
	}
}

func FuzzLibDecide(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7+1)
	}
	o := newDecideOracle(f)
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkLibDecide(t, o, reasonSet(rand.New(rand.NewPCG(a, b))))
	})
}

// The engine takes the native path with the standard library, and decides through OPA
// with any other; both decide the same here.
func TestEngineDecidesWithEitherLibrary(t *testing.T) {
	for _, tc := range []struct {
		lib    string
		native bool
	}{
		{stdlibDecide, true},
		{replaceOnce(t, stdlibDecide, `"block": 3}`, `"block": 3, "extra": 9}`), false},
	} {
		set, err := Load(fstest.MapFS{"lib/verdict.rego": {Data: []byte(tc.lib)}, "payout/p.rego": {Data: []byte(decidePolicy)}})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := set.Policy("payout")
		if got := p.eval.(*regoEvaluator).native; got != tc.native {
			t.Fatalf("native = %v, want %v", got, tc.native)
		}
		e := New(set)
		for _, a := range []bool{false, true} {
			d, err := e.Decide(context.Background(), &Input{Action: "payout", Subject: map[string]any{"id": "u"},
				Context: map[string]any{}, Behavior: map[string]any{"a": a}})
			want := Approve
			if a {
				want = Block
			}
			if err != nil || d.Outcome != want || d.Score != map[bool]float64{false: 0, true: 90}[a] {
				t.Fatalf("native %v, a=%v: %+v, %v; want %v", tc.native, a, d, err, want)
			}
		}
	}
}
