package policytest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/policytest"
)

// writeFiles writes files (path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const xPolicy = `# METADATA
# title: x
# custom:
#   version: x-1
#   fail_mode: review
package verdict.x

default_thresholds := {"max_n": 10}

reasons contains {"code": "N_TOO_HIGH", "outcome": "review", "message": "n above max_n", "score": 40} if {
	input.context.n > default_thresholds.max_n
}

decision := {"outcome": "review", "score": 40, "reasons": [r | some r in reasons]} if {
	count(reasons) > 0
} else := {"outcome": "approve", "score": 0, "reasons": []}
`

const xTests = `package verdict.x_test

import data.verdict.x

test_small_n_approved if {
	d := x.decision with input as {"context": {"n": 1}}
	d.outcome == "approve"
}

test_large_n_reviewed if {
	d := x.decision with input as {"context": {"n": 50}}
	d.outcome == "review"
}

# Wrong on purpose: 5 is under max_n.
test_five_reviewed if {
	d := x.decision with input as {"context": {"n": 5}}
	d.outcome == "review"
}
`

const yPolicy = `action: y
version: y-1
fail_mode: review
thresholds: {max_amount: 100}
rules:
  - code: AMOUNT_HIGH
    outcome: review
    score: 30
    message: amount above max_amount
    when: has(context.amount) && context.amount > thresholds.max_amount
  - code: DENY_LIST_USER
    outcome: block
    score: 100
    message: deny list
    when: has(signals.lists.deny_user) && signals.lists.deny_user
`

const yCases = `- name: small amount approved
  input: {action: y, subject: {id: u1}, context: {amount: 5}}
  want: {outcome: approve, reasons: []}

- name: large amount reviewed
  input: {action: y, subject: {id: u1}, context: {amount: 500}}
  want: {outcome: review, reasons: [AMOUNT_HIGH]}

- name: wrong on purpose
  input: {action: y, subject: {id: u1}, context: {amount: 50}}
  want: {outcome: review, reasons: [AMOUNT_HIGH]}
`

const xGolden = `{
  "name": "x-twenty",
  "input": {"action": "x", "subject": {"id": "u1"}, "device": {}, "context": {"n": 20}, "behavior": {},
            "signals": {"verification": {"status": "none", "provider": "", "score": 0, "reason_codes": [], "age_days": 0},
                        "velocity": {"user": {}, "device": {}, "ip": {}}, "device": {"known": true, "age_hours": 1, "users_seen": 1, "flagged": false},
                        "lists": {}, "unavailable": []}},
  "want": {"outcome": "review", "reason_codes": ["N_TOO_HIGH"]}
}
`

func tempBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"x/x.rego":                 xPolicy,
		"x/x_test.rego":            xTests,
		"y/y.cel.yaml":             yPolicy,
		"y/y.cases.yaml":           yCases,
		"testdata/cases/x-20.json": xGolden,
	})
	return dir
}

func byName(t *testing.T, rep *policytest.Report, name string) []policytest.Result {
	t.Helper()
	var out []policytest.Result
	for _, r := range rep.Results {
		if r.Name == name {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no result named %q", name)
	}
	return out
}

func TestRunTempBundle(t *testing.T) {
	dir := tempBundle(t)
	rep, err := policytest.Run(context.Background(), dir, policytest.WithCoverage(), policytest.WithTrace())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]policytest.Status{
		"test_small_n_approved": policytest.Pass,
		"test_large_n_reviewed": policytest.Pass,
		"test_five_reviewed":    policytest.Fail,
		"small amount approved": policytest.Pass,
		"large amount reviewed": policytest.Pass,
		"wrong on purpose":      policytest.Fail,
		"x-twenty":              policytest.Pass,
	}
	for name, st := range want {
		for _, r := range byName(t, rep, name) {
			if r.Status != st {
				t.Errorf("%s: %s, want %s (%s)", name, r.Status, st, r.Detail)
			}
		}
	}
	if rep.Passed() != 5 || rep.Failed() != 2 {
		t.Errorf("passed %d failed %d, want 5 and 2", rep.Passed(), rep.Failed())
	}

	rego := byName(t, rep, "test_five_reviewed")[0]
	if rego.File != filepath.Join(dir, "x", "x_test.rego") || rego.Line != 16 {
		t.Errorf("rego failure at %s, want x/x_test.rego:16", rego.Location())
	}
	if !strings.Contains(rego.Detail, "x_test.rego:18:") || !strings.Contains(rego.Detail, `"review"`) {
		t.Errorf("rego failure detail does not name the failing expression:\n%s", rego.Detail)
	}
	if rego.Trace == "" {
		t.Error("no trace recorded WithTrace")
	}
	cel := byName(t, rep, "wrong on purpose")[0]
	if cel.Line != 9 || !strings.Contains(cel.Detail, "outcome:      want review, got approve") || !strings.Contains(cel.Detail, "- AMOUNT_HIGH") {
		t.Errorf("cel failure at line %d:\n%s", cel.Line, cel.Detail)
	}

	// Coverage: both Rego branches are tested; one CEL rule of two fired.
	if len(rep.Files) != 2 {
		t.Fatalf("coverage files = %+v", rep.Files)
	}
	for _, f := range rep.Files {
		switch f.Language {
		case engine.LangRego:
			if f.Total == 0 || f.Percent() <= 50 || f.Percent() > 100 || f.Policy != "x" {
				t.Errorf("rego coverage %+v", f)
			}
		case engine.LangCEL:
			if f.Covered != 1 || f.Total != 2 || f.Percent() != 50 || len(f.Missed) != 1 || !strings.HasPrefix(f.Missed[0], "DENY_LIST_USER (") {
				t.Errorf("cel coverage %+v", f)
			}
		}
	}

	var out bytes.Buffer
	if err := rep.WriteText(&out, false); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.HasSuffix(text, "\n5 passed, 2 failed\n") {
		t.Errorf("output does not end with the summary:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^FAIL  \S+x_test\.rego:16  test_five_reviewed \(\d+\.\dms\)$`).MatchString(text) {
		t.Errorf("no FAIL line for the Rego test:\n%s", text)
	}
}

// TestGoldenFlipsWithThreshold is what an analyst sees: raising a threshold changes a
// known decision, and its golden case fails until it is updated on purpose.
func TestGoldenFlipsWithThreshold(t *testing.T) {
	dir := tempBundle(t)
	writeFiles(t, dir, map[string]string{
		"x/x.rego": strings.Replace(xPolicy, `"max_n": 10`, `"max_n": 30`, 1),
	})
	rep, err := policytest.Run(context.Background(), dir, policytest.WithFilter(regexp.MustCompile(`^x-`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("filter ran %d tests, want the golden case only", len(rep.Results))
	}
	r := rep.Results[0]
	if r.Status != policytest.Fail || r.Kind != policytest.KindGolden || r.File != filepath.Join(dir, "testdata", "cases", "x-20.json") {
		t.Fatalf("golden result %+v", r)
	}
	for _, want := range []string{"outcome:      want review, got approve", "reason codes: want [N_TOO_HIGH], got []", "- N_TOO_HIGH (wanted, not returned)"} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, r.Detail)
		}
	}
}

func TestRunLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\n",
	})
	_, err := policytest.Run(context.Background(), dir)
	var le *engine.LoadError
	if !errors.As(err, &le) || le.Problems[0].File != filepath.Join(dir, "x", "x.rego") || le.Problems[0].Line == 0 {
		t.Fatalf("err = %v, want a load error at x/x.rego:line", err)
	}

	// A policy the server would refuse (a non-deterministic builtin) fails here too.
	writeFiles(t, dir, map[string]string{
		"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"t\": time.now_ns()}\n",
	})
	if _, err := policytest.Run(context.Background(), dir); !errors.As(err, &le) || le.Problems[0].Line != 6 {
		t.Fatalf("err = %v, want a load error at line 6", err)
	}

	// A test file that does not compile is named with its line.
	dir = tempBundle(t)
	writeFiles(t, dir, map[string]string{"x/x_test.rego": "package verdict.x_test\n\ntest_bad if {\n\tundefined_fn(1)\n}\n"})
	if _, err := policytest.Run(context.Background(), dir); !errors.As(err, &le) || !strings.Contains(le.Problems[0].String(), "x_test.rego:4:") {
		t.Fatalf("err = %v, want a compile error at x_test.rego:4", err)
	}
}

// TestRunShippedPolicies runs `verdict test policies`: everything shipped passes, and
// each kind of test ran.
func TestRunShippedPolicies(t *testing.T) {
	dir := filepath.Join("..", "..", "policies")
	rep, err := policytest.Run(context.Background(), dir, policytest.WithCoverage())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[policytest.Kind]int{}
	for _, r := range rep.Results {
		kinds[r.Kind]++
		if r.Status == policytest.Fail {
			t.Errorf("%s %s %s:\n%s", r.Status, r.Location(), r.Name, r.Detail)
		}
	}
	if kinds[policytest.KindRego] < 100 || kinds[policytest.KindGolden] < 61 {
		t.Errorf("tests run per kind: %v", kinds)
	}
	for _, f := range rep.Files {
		if f.Total == 0 || f.Percent() < 50 || f.Percent() > 100 {
			t.Errorf("coverage of %s: %d/%d", f.File, f.Covered, f.Total)
		}
	}
	if len(rep.Policies) < 5 {
		t.Errorf("coverage per policy: %+v", rep.Policies)
	}
}

// TestLoginCELCases runs the case file shipped for the CEL login policy next to a copy
// of it, as it will live in policies/cel/.
func TestLoginCELCases(t *testing.T) {
	dir := t.TempDir()
	policy, err := os.ReadFile(filepath.Join("..", "..", "policies", "cel", "login.cel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadFile(filepath.Join("testdata", "login.cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"cel/login.cel.yaml": string(policy), "cel/login.cases.yaml": string(cases)})
	rep, err := policytest.Run(context.Background(), filepath.Join(dir, "cel"), policytest.WithCoverage())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed() < 10 || rep.Failed() != 0 {
		var out bytes.Buffer
		rep.WriteText(&out, false)
		t.Fatalf("login CEL cases:\n%s", out.String())
	}
	if len(rep.Files) != 1 || rep.Files[0].Percent() != 100 {
		t.Errorf("the login cases do not fire every rule: %+v", rep.Files)
	}
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// TestSlowFailingTestIsNotTraced: a failing test is run again with tracing on to say which
// expression failed; a trace records every step, and of a test that ran a third of a second
// it exhausted 6 GB. A failure slower than maxTracedDuration (here: any) is reported
// without one; a fast one still gets its failing expression.
func TestSlowFailingTestIsNotTraced(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\n" +
			"n := 2\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n",
		"x/x_test.rego": "package verdict.x_test\n\nimport data.verdict.x\n\ntest_wrong if x.n == 1\n",
	})
	run := func() policytest.Result {
		t.Helper()
		rep, err := policytest.Run(context.Background(), dir, policytest.WithTrace())
		if err != nil {
			t.Fatal(err)
		}
		r := byName(t, rep, "test_wrong")
		if len(r) != 1 || r[0].Status != policytest.Fail {
			t.Fatalf("results %+v", r)
		}
		return r[0]
	}
	if r := run(); strings.Contains(r.Detail, "no trace") || r.Trace == "" {
		t.Fatalf("a fast failure was not traced: %+v", r)
	}
	defer policytest.SetMaxTracedDuration(0)()
	if r := run(); !strings.Contains(r.Detail, "no trace") || r.Trace != "" {
		t.Fatalf("a slow failure was traced: %+v", r)
	}
}

// TestCELCasesThatCannotTest: a case without want.outcome, with an outcome that is none, or
// whose input is another action's (it would run against this file's policy all the same)
// fails and says why.
func TestCELCasesThatCannotTest(t *testing.T) {
	dir := t.TempDir()
	policy, err := os.ReadFile(filepath.Join("..", "..", "policies", "cel", "login.cel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := `- name: no want
  input: {action: login}
- name: not an outcome
  input: {action: login}
  want: {outcome: allow}
- name: another action
  input: {action: payout}
  want: {outcome: approve}
`
	writeFiles(t, dir, map[string]string{"cel/login.cel.yaml": string(policy), "cel/login.cases.yaml": cases})
	rep, err := policytest.Run(context.Background(), filepath.Join(dir, "cel"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"no want": "want.outcome is required", "not an outcome": `"allow" is not`, "another action": "input.action payout is not the action"} {
		r := byName(t, rep, name)
		if len(r) != 1 || r[0].Status != policytest.Fail || !strings.Contains(r[0].Detail, want) {
			t.Errorf("%s: %+v, want a failure saying %q", name, r, want)
		}
	}
}

// TestRegoTestsSeeBundleData: a data.json that overrides a threshold changes what the
// loaded policy decides, so the Rego tests run against it too, as `opa test -b` does and
// as the CEL and golden cases already do.
func TestRegoTestsSeeBundleData(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"x/x.rego": strings.Replace(xPolicy, `input.context.n > default_thresholds.max_n`,
			`input.context.n > object.union(default_thresholds, {k: v | some k, v in data.thresholds.x}).max_n`, 1),
		"x/x_test.rego": `package verdict.x_test

import data.verdict.x

test_data_json_lowers_the_threshold if {
	d := x.decision with input as {"context": {"n": 5}}
	d.outcome == "review"
}
`,
		"data.json": `{"thresholds": {"x": {"max_n": 3}}}`,
	})
	rep, err := policytest.Run(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := byName(t, rep, "test_data_json_lowers_the_threshold")[0]
	if r.Status != policytest.Pass {
		t.Errorf("test under data.json: %s, want pass (%s)", r.Status, r.Detail)
	}
}
