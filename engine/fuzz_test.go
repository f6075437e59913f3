package engine_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/verdict-engine/verdict/engine"
)

// FuzzLoadCEL: any policy file is compiled or refused with a *LoadError; a compiled one
// evaluates to a valid decision or an *EvalError. Never a panic.
func FuzzLoadCEL(f *testing.F) {
	f.Add([]byte(loginCEL))
	f.Add([]byte("action: x\nrules:\n  - code: A_B\n    outcome: block\n    when: context.amount > 10.0\n"))
	f.Add([]byte("action: x\nrules: [{code: X_Y, outcome: review, when: 'size(subject) > 0', value: subject, threshold: 'thresholds'}]\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, src []byte) {
		fuzzLoad(t, "p.cel.yaml", src)
	})
}

// FuzzLoadRego: the same for Rego files.
func FuzzLoadRego(f *testing.F) {
	f.Add([]byte(payoutRego))
	f.Add([]byte("package verdict.x\n\ndecision := {\"outcome\": input.context.o, \"reasons\": []}\n"))
	f.Add([]byte("package verdict.x\ndecision := 1/0\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		fuzzLoad(t, "x/p.rego", src)
	})
}

// FuzzLoadData: a bundle's data file (JSON or YAML, at the root or in a directory) is
// loaded or refused with a *LoadError, and what loads decides validly.
func FuzzLoadData(f *testing.F) {
	f.Add("data.json", []byte(`{"thresholds":{"payout":{"max_amount":100}}}`))
	f.Add("thresholds/payout/data.yaml", []byte("max_amount: 100\n"))
	f.Add("data.yaml", []byte("thresholds: {payout: {max_amount: [1, {a: b}]}}\n"))
	f.Add("data.yml", []byte("? [a]\n: b\n"))
	f.Add("x/data.json", []byte(`[1]`))
	f.Fuzz(func(t *testing.T, name string, src []byte) {
		if !fs.ValidPath(name) || name == "." || strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, ".cel.yaml") || strings.HasPrefix(name, "payout/") || strings.HasPrefix(name, "lib/") {
			return
		}
		fuzzLoad(t, name, src, "payout/payout.rego", thresholdPayout)
	})
}

// fuzzLoad loads a bundle of the test library, name holding src, and the extra files
// (name, content pairs), and checks that it is refused with a *LoadError or decides validly.
func fuzzLoad(t *testing.T, name string, src []byte, extra ...string) {
	fsys := fstest.MapFS{"lib/verdict.rego": {Data: []byte(libRego)}, name: {Data: src}}
	for i := 0; i+1 < len(extra); i += 2 {
		fsys[extra[i]] = &fstest.MapFile{Data: []byte(extra[i+1])}
	}
	set, err := engine.Load(fsys)
	if err != nil {
		var le *engine.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("err = %T %v, want *LoadError", err, err)
		}
		return
	}
	e := engine.New(set)
	for _, a := range set.Actions() {
		in := input(a)
		in.Context["o"] = "block"
		d, err := e.Decide(context.Background(), in)
		var ee *engine.EvalError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("decide %s: %T %v", a, err, err)
		}
		if err == nil && !d.Outcome.Valid() {
			t.Fatalf("invalid outcome %v", d.Outcome)
		}
	}
}
