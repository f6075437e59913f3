package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

const thresholdPayout = `# METADATA
# custom:
#   fail_mode: review
package verdict.payout

import data.verdict.lib

default_thresholds := {"max_amount": 1000}

thresholds := object.union(default_thresholds, {k: v | some k, v in data.thresholds.payout})

reasons contains lib.reason("AMOUNT_HIGH", "review", 30, "amount over limit") if input.context.amount > thresholds.max_amount

decision := lib.decide(reasons)
`

// TestDataFilesAreLoaded: a bundle's data.json and data.yaml files are data, each at its
// directory's path, as in an OPA bundle; they override thresholds of Rego and CEL policies.
func TestDataFilesAreLoaded(t *testing.T) {
	ctx := context.Background()
	decide := func(t *testing.T, extra map[string]string, opts ...engine.LoadOption) (string, string) {
		t.Helper()
		fs := bundle(extra)
		fs["payout/payout.rego"].Data = []byte(thresholdPayout)
		set, err := engine.Load(fs, opts...)
		if err != nil {
			t.Fatal(err)
		}
		e := engine.New(set)
		in := input("payout")
		in.Context["amount"] = 500.0
		pp, _ := set.Policy("payout")
		payout, err := e.Evaluate(ctx, pp, in)
		if err != nil {
			t.Fatal(err)
		}
		login := input("login")
		login.Signals.Velocity.User.Count1m = 2
		lp, _ := set.Policy("login")
		l, err := e.Evaluate(ctx, lp, login)
		if err != nil {
			t.Fatal(err)
		}
		return payout.Outcome.String(), l.Outcome.String()
	}
	for _, tc := range []struct {
		name          string
		files         map[string]string
		opts          []engine.LoadOption
		payout, login string
	}{
		{"no data", nil, nil, "approve", "approve"},
		{"data.json at the root", map[string]string{"data.json": `{"thresholds":{"payout":{"max_amount":100},"login":{"max_user_1m":1}}}`}, nil, "review", "step_up"},
		{"data.yaml in a directory", map[string]string{"thresholds/payout/data.yaml": "max_amount: 100\n"}, nil, "review", "approve"},
		{"files merged", map[string]string{"thresholds/payout/data.json": `{"max_amount":100}`, "thresholds/login/data.yml": "max_user_1m: 1"}, nil, "review", "step_up"},
		{"other JSON is not data", map[string]string{"payout/thresholds.json": `{"thresholds":{"payout":{"max_amount":100}}}`}, nil, "approve", "approve"},
		{"WithData wins", map[string]string{"data.json": `{"thresholds":{"payout":{"max_amount":100}}}`},
			[]engine.LoadOption{engine.WithData(map[string]any{"thresholds": map[string]any{"payout": map[string]any{"max_amount": 1000.0}}})}, "approve", "approve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payout, login := decide(t, tc.files, tc.opts...)
			if payout != tc.payout || login != tc.login {
				t.Fatalf("payout %s, login %s; want %s, %s", payout, login, tc.payout, tc.login)
			}
		})
	}
}

func TestDataFileProblems(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"not JSON":          {"data.json": `{"thresholds":`},
		"trailing data":     {"data.json": `{} {}`},
		"not an object":     {"payout/data.json": `[1, 2]`},
		"not YAML":          {"data.yaml": "a: [1"},
		"non-string key":    {"data.yaml": "1: a\n? [x]\n: b\n"},
		"conflicting keys":  {"data.json": `{"thresholds":{"payout":{"max_amount":100}}}`, "thresholds/payout/data.json": `{"max_amount":200}`},
		"object over value": {"data.json": `{"thresholds":5}`, "thresholds/data.json": `{"payout":{}}`},
		// OPA refuses these bundles, so a decision made with them would not replay there.
		"empty JSON":        {"data.json": ``},
		"null JSON":         {"data.json": `null`},
		"policies' names":   {"data.json": `{"verdict":{"payout":{"decision":{"outcome":"approve"}}}}`},
		"policies' subtree": {"verdict/lib/data.json": `{"x":1}`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := engine.Load(bundle(files))
			var le *engine.LoadError
			if !errors.As(err, &le) || le.Problems[0].File == "" || !strings.Contains(le.Error(), "data") ||
				(strings.Contains(name, "over") || strings.Contains(name, "conflict")) && !strings.Contains(le.Error(), "set by data.json") {
				t.Fatalf("err = %v, want a load error naming a data file", err)
			}
		})
	}
}

// TestDataFilesAreInTheVersionHash: data changes what a policy decides, so it changes the
// hash the decision names, for Rego and CEL policies alike.
func TestDataFilesAreInTheVersionHash(t *testing.T) {
	hashes := func(extra map[string]string) (string, string) {
		t.Helper()
		set, err := engine.Load(bundle(extra))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := set.Policy("payout")
		l, _ := set.Policy("login")
		return p.Hash, l.Hash
	}
	p0, l0 := hashes(nil)
	p1, l1 := hashes(map[string]string{"data.json": `{"thresholds":{"payout":{"max_amount":100}}}`})
	p2, l2 := hashes(map[string]string{"data.json": `{"thresholds":{"payout":{"max_amount":200}}}`})
	if p0 == p1 || p1 == p2 || l0 == l1 || l1 == l2 {
		t.Fatalf("hashes do not follow the data: payout %s %s %s, login %s %s %s", p0, p1, p2, l0, l1, l2)
	}
	if p3, l3 := hashes(map[string]string{"notes.json": `{"x":1}`}); p3 != p0 || l3 != l0 {
		t.Fatal("a JSON file that is not data changed the hashes")
	}
}

// TestThresholdOverridesAreChecked: an override that names no threshold of the policy (a
// typo) or gives another type than the default ("10" for 10 switches a comparison off for
// every amount) is refused at load, for Rego and CEL policies, from files and WithData.
func TestThresholdOverridesAreChecked(t *testing.T) {
	load := func(data string, opts ...engine.LoadOption) error {
		fs := bundle(map[string]string{"data.json": data})
		fs["payout/payout.rego"].Data = []byte(thresholdPayout)
		_, err := engine.Load(fs, opts...)
		return err
	}
	if err := load(`{"thresholds":{"payout":{"max_amount":500}}}`); err != nil {
		t.Fatalf("a valid override: %v", err)
	}
	for data, want := range map[string]string{
		`{"thresholds":{"payout":{"max_amout":500}}}`:    "thresholds.payout.max_amout: the payout policy has no such threshold (it has max_amount)",
		`{"thresholds":{"payout":{"max_amount":"500"}}}`: "thresholds.payout.max_amount is a string; the policy's default is a number",
		`{"thresholds":{"payuot":{"max_amount":500}}}`:   `the bundle has no policy for action "payuot"`,
		`{"thresholds":{"payout":500}}`:                  "thresholds.payout must be an object",
		`{"thresholds":500}`:                             "data thresholds must be an object of actions",
		`{"thresholds":[{"payout":{"max_amount":5}}]}`:   "data thresholds must be an object of actions",
		`{"thresholds":{"login":{"max_user_1n":3}}}`:     "thresholds.login.max_user_1n: the login policy has no such threshold (it has max_user_1m)",
	} {
		if err := load(data); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", data, err, want)
		}
	}
	if err := load(`{}`, engine.WithData(map[string]any{"thresholds": map[string]any{"payout": map[string]any{"max_amount": "9"}}})); err == nil {
		t.Error("WithData giving a string for a number: loaded")
	}
}
