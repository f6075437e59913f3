package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/engine"
)

const libRego = `package verdict.lib

severity := {"approve": 0, "step_up": 1, "review": 2, "block": 3}

reason(code, outcome, score, msg) := {"code": code, "outcome": outcome, "score": score, "message": msg}

decide(rs) := {"outcome": o, "reasons": [r | some r in rs], "score": min([100, sum([r.score | some r in rs])])} if {
	count(rs) > 0
	top := max({severity[r.outcome] | some r in rs})
	some o, s in severity
	s == top
}

decide(rs) := {"outcome": "approve", "reasons": [], "score": 0} if count(rs) == 0
`

const payoutRego = `# METADATA
# title: test payout
# custom:
#   version: payout-test-1
#   fail_mode: closed
package verdict.payout

import data.verdict.lib

reasons contains lib.reason("AMOUNT_HIGH", "review", 30, "amount over limit") if input.context.amount > 1000
reasons contains lib.reason("DENY_LIST_USER", "block", 100, "user denied") if input.signals.lists.deny_user

decision := lib.decide(reasons)
`

const loginCEL = `action: login
version: login-cel-test
fail_mode: review
thresholds: {max_user_1m: 3}
rules:
  - code: DENY_LIST_USER
    outcome: block
    score: 100
    message: user denied
    when: has(signals.lists.deny_user) && signals.lists.deny_user
  - code: USER_VELOCITY_1M
    outcome: step_up
    score: 20
    step_up: otp
    message: too many attempts
    signal: velocity.user.count_1m
    value: signals.velocity.user.count_1m
    threshold: thresholds.max_user_1m
    when: signals.velocity.user.count_1m > thresholds.max_user_1m
`

func bundle(extra map[string]string) fstest.MapFS {
	fs := fstest.MapFS{
		"lib/verdict.rego":     {Data: []byte(libRego)},
		"payout/payout.rego":   {Data: []byte(payoutRego)},
		"login/login.cel.yaml": {Data: []byte(loginCEL)},
	}
	for k, v := range extra {
		fs[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return fs
}

func input(action string) *engine.Input {
	return &engine.Input{
		Action:  action,
		Subject: map[string]any{"id": "u1"},
		Context: map[string]any{"amount": 50.0},
		Signals: engine.Signals{Lists: map[string]bool{"deny_user": false}, Verification: engine.Verification{Status: "none"}},
	}
}

func TestDecideRegoAndCEL(t *testing.T) {
	set, err := engine.Load(bundle(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Actions(); !cmp.Equal(got, []string{"login", "payout"}) {
		t.Fatalf("actions = %v", got)
	}
	e := engine.New(set)
	ctx := context.Background()

	tests := []struct {
		name    string
		in      func() *engine.Input
		outcome engine.Outcome
		codes   []string
		stepUp  string
	}{
		{"payout approve", func() *engine.Input { return input("payout") }, engine.Approve, nil, ""},
		{"payout review", func() *engine.Input {
			in := input("payout")
			in.Context["amount"] = 5000.0
			return in
		}, engine.Review, []string{"AMOUNT_HIGH"}, ""},
		{"payout most severe wins, all reasons kept", func() *engine.Input {
			in := input("payout")
			in.Context["amount"] = 5000.0
			in.Signals.Lists["deny_user"] = true
			return in
		}, engine.Block, []string{"DENY_LIST_USER", "AMOUNT_HIGH"}, ""},
		{"cel approve", func() *engine.Input { return input("login") }, engine.Approve, nil, ""},
		{"cel step up", func() *engine.Input {
			in := input("login")
			in.Signals.Velocity.User.Count1m = 4
			return in
		}, engine.StepUp, []string{"USER_VELOCITY_1M"}, "otp"},
		{"cel most severe wins", func() *engine.Input {
			in := input("login")
			in.Signals.Velocity.User.Count1m = 4
			in.Signals.Lists["deny_user"] = true
			return in
		}, engine.Block, []string{"DENY_LIST_USER", "USER_VELOCITY_1M"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in()
			d, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
			}
			if d.Outcome != tc.outcome || !cmp.Equal(codes, tc.codes) || d.StepUp != tc.stepUp {
				t.Fatalf("got %s %v step_up=%q, want %s %v %q", d.Outcome, codes, d.StepUp, tc.outcome, tc.codes, tc.stepUp)
			}
			p, _ := set.Policy(in.Action)
			if d.Policy != p.Ref() || !strings.HasPrefix(d.Policy.Hash, "sha256:") {
				t.Fatalf("policy ref = %+v", d.Policy)
			}
		})
	}
}

func TestCELReasonValueAndThreshold(t *testing.T) {
	set, err := engine.Load(bundle(nil))
	if err != nil {
		t.Fatal(err)
	}
	in := input("login")
	in.Signals.Velocity.User.Count1m = 7
	d, err := engine.New(set).Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	r := d.Reasons[0]
	if r.Value != int64(7) || r.Threshold != int64(3) || r.Signal != "velocity.user.count_1m" {
		t.Fatalf("reason = %+v", r)
	}
}

func TestVersionsAndFailModes(t *testing.T) {
	set, err := engine.Load(bundle(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Policy("payout")
	if p.Version != "payout-test-1" || p.FailMode != engine.FailClosed || p.Language != engine.LangRego {
		t.Fatalf("payout = %+v", p)
	}
	l, _ := set.Policy("login")
	if l.Version != "login-cel-test" || l.FailMode != engine.FailReview || l.Language != engine.LangCEL {
		t.Fatalf("login = %+v", l)
	}
	// The hash is a content hash: a change in the library changes the payout version.
	set2, err := engine.Load(bundle(map[string]string{"lib/verdict.rego": libRego + "\nextra := 1\n"}))
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := set2.Policy("payout")
	if p2.Hash == p.Hash {
		t.Fatal("hash did not change with the library")
	}
	l2, _ := set2.Policy("login")
	if l2.Hash != l.Hash {
		t.Fatal("CEL hash changed though its file did not")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"rego syntax", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\n"}, "x/x.rego:"},
		{"http.send refused", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := http.send({\"method\": \"get\", \"url\": \"http://x\"})\n"}, "x/x.rego:6: rego_type_error: undefined function http.send"},
		{"net.* refused", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := net.cidr_contains(\"10.0.0.0/8\", \"10.1.1.1\")\n"}, "x/x.rego:6: rego_type_error: undefined function net.cidr_contains"},
		{"time.now_ns refused", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := time.now_ns()\n"}, "undefined function time.now_ns"},
		{"opa.runtime refused", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := opa.runtime()\n"}, "undefined function opa.runtime"},
		{"bad fail mode", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   fail_mode: sometimes\npackage verdict.x\n\ndecision := {}\n"}, "x/x.rego:3: invalid fail_mode"},
		{"payout may not fail open", map[string]string{"payout/payout.rego": strings.Replace(payoutRego, "fail_mode: closed", "fail_mode: open", 1)}, `action "payout" may not declare fail_mode open`},
		{"cel syntax", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: block\n    when: signals.lists.(\n"}, "x/x.cel.yaml:5: rule 1 when:"},
		{"cel bad outcome", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: maybe\n    when: 'true'\n"}, "x/x.cel.yaml:4: rule 1: invalid outcome"},
		// One line per problem, each issue once, placed in the expression.
		{"cel type error on one line", map[string]string{"x/x.cel.yaml": "action: x\nfail_mode: review\nrules:\n  - code: A_B\n    outcome: block\n    when: 1 + \"a\" == 2\n"},
			`x/x.cel.yaml:6: rule 1 when: column 3: found no matching overload for '_+_' applied to '(int, string)'`},
		{"cel not bool", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: block\n    when: '1 + 2'\n"}, "must be a bool expression"},
		{"cel unknown field", map[string]string{"x/x.cel.yaml": "action: x\nrulez: []\n"}, "x/x.cel.yaml:2:"},
		{"cel bad code", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: lower\n    outcome: block\n    when: 'true'\n"}, "must be UPPER_SNAKE"},
		{"cel negative score", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: review\n    score: -50\n    when: 'true'\n"}, "x/x.cel.yaml:5: rule 1: score -50: want 0 to 100"},
		{"cel score over 100", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: review\n    score: 150\n    when: 'true'\n"}, "score 150: want 0 to 100"},
		{"duplicate action", map[string]string{"p/p.cel.yaml": "action: payout\nfail_mode: closed\nrules:\n  - code: A_B\n    outcome: block\n    when: 'true'\n"}, `action "payout" is already defined`},
		// A fail mode lost to a typo or a METADATA comment the parser did not attach is an
		// error, never a quiet default.
		{"no fail mode", map[string]string{"x/x.rego": "package verdict.x\n\ndecision := {}\n"}, `x/x.rego:1: action "x" declares no fail_mode`},
		{"fail mode misspelt", map[string]string{"x/x.rego": "# METADATA\n# custom:\n#   failmode: closed\npackage verdict.x\n\ndecision := {}\n"}, `x/x.rego:4: action "x" declares no fail_mode`},
		{"custom capitalised", map[string]string{"x/x.rego": "# METADATA\n# Custom:\n#   fail_mode: closed\npackage verdict.x\n\ndecision := {}\n"}, `declares no fail_mode`},
		{"package annotated twice", map[string]string{
			"x/a.rego": "# METADATA\n# custom:\n#   fail_mode: closed\npackage verdict.x\n\ndecision := {}\n",
			"x/b.rego": "# METADATA\n# custom:\n#   fail_mode: open\npackage verdict.x\n",
		}, `package annotation redeclared`},
		{"cel no fail mode", map[string]string{"x/x.cel.yaml": "action: x\nrules:\n  - code: A_B\n    outcome: block\n    when: 'true'\n"}, `x/x.cel.yaml:1: action "x" declares no fail_mode`},
		{"cel bad fail mode", map[string]string{"x/x.cel.yaml": "action: x\nfail_mode: sometimes\nrules:\n  - code: A_B\n    outcome: block\n    when: 'true'\n"}, `x/x.cel.yaml:2: invalid fail_mode`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.Load(bundle(tc.files))
			var le *engine.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *LoadError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
			for _, p := range le.Problems {
				if strings.Contains(p.Message, "\n") {
					t.Fatalf("problem spans lines: %q", p)
				}
			}
		})
	}
}

func TestRuntimeErrorsNeverApprove(t *testing.T) {
	tests := []struct {
		name string
		file string
		src  string
	}{
		{"invalid outcome", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"allow\", \"reasons\": []}\n"},
		{"outcome lower than reasons", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [{\"code\": \"A\", \"outcome\": \"block\"}]}\n"},
		{"undefined decision", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := 1 if input.never\n"},
		{"builtin error", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"score\": to_number(\"x\")}\n"},
		{"not an object", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := \"approve\"\n"},
		// Two definitions of one complete rule that both hold: OPA raises eval_conflict_error
		// (plain opa eval on the bundle does), whatever a partial evaluation at load inlines.
		{"conflicting complete rule", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\nkind := \"small\" if input.context.amount < 1000\n\nkind := \"large\" if input.context.amount > 20\n\nreasons contains {\"code\": \"K\", \"outcome\": \"block\", \"score\": 100} if kind == \"huge\"\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [r | some r in reasons], \"score\": 0}\n"},
		{"conflicting complete rule with lib", "x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\nimport data.verdict.lib\n\nkind := \"small\" if input.context.amount < 1000\n\nkind := \"large\" if input.context.amount > 20\n\nreasons contains lib.reason(\"K\", \"block\", 100, \"k\") if kind == \"huge\"\n\ndecision := lib.decide(reasons)\n"},
		{"cel missing key", "x/x.cel.yaml", "action: x\nfail_mode: review\nrules:\n  - code: A_B\n    outcome: block\n    when: context.nope > 1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := engine.Load(bundle(map[string]string{tc.file: tc.src}))
			if err != nil {
				t.Fatal(err)
			}
			d, err := engine.New(set).Decide(context.Background(), input("x"))
			var ee *engine.EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *EvalError (decision %+v)", err, d)
			}
			if d.Outcome == engine.Approve || d.Policy.Action != "x" {
				t.Fatalf("decision on error = %+v", d)
			}
		})
	}
}

func TestEvalDeadline(t *testing.T) {
	slow := "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"n\": count([1 | some i in numbers.range(1, 100000000)])}\n"
	set, err := engine.Load(bundle(map[string]string{"x/x.rego": slow}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = engine.New(set, engine.WithEvalTimeout(20*time.Millisecond)).Decide(context.Background(), input("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestUnknownAction(t *testing.T) {
	set, _ := engine.Load(bundle(nil))
	if _, err := engine.New(set).Decide(context.Background(), input("nope")); !errors.Is(err, engine.ErrUnknownAction) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyFailMode(t *testing.T) {
	d := engine.Decision{Outcome: engine.StepUp, StepUp: "otp", Reasons: []engine.Reason{{Code: "NEW_DEVICE", Outcome: engine.StepUp}}}
	tests := []struct {
		mode   engine.FailMode
		failed bool
		want   engine.Outcome
	}{
		{engine.FailClosed, false, engine.Block},
		{engine.FailClosed, true, engine.Block},
		{engine.FailReview, false, engine.Review},
		{engine.FailReview, true, engine.Review},
		{engine.FailOpen, false, engine.StepUp},
		{engine.FailOpen, true, engine.Approve},
	}
	for _, tc := range tests {
		got := engine.ApplyFailMode(d, tc.mode, engine.CausePolicyError, tc.failed)
		if got.Outcome != tc.want {
			t.Errorf("%s failed=%v: outcome %s, want %s", tc.mode, tc.failed, got.Outcome, tc.want)
		}
		found := false
		for _, r := range got.Reasons {
			found = found || r.Code == engine.CausePolicyError
		}
		if !found {
			t.Errorf("%s: cause reason missing: %+v", tc.mode, got.Reasons)
		}
	}
}

func TestCELCostLimit(t *testing.T) {
	src := "action: x\nfail_mode: review\nrules:\n  - code: QUADRATIC\n    outcome: review\n    when: context.items.exists(a, context.items.exists(b, a == b + 1000000.0))\n"
	set, err := engine.Load(fstest.MapFS{"x.cel.yaml": {Data: []byte(src)}}, engine.WithCELCostLimit(10_000))
	if err != nil {
		t.Fatal(err)
	}
	in := input("x")
	items := make([]any, 500)
	for i := range items {
		items[i] = float64(i)
	}
	in.Context["items"] = items
	// A generous deadline: only the cost limit may stop this evaluation, even on a loaded
	// machine under the race detector.
	_, err = engine.New(set, engine.WithEvalTimeout(10*time.Second)).Decide(context.Background(), in)
	var ee *engine.EvalError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("err = %v, want a cost limit EvalError", err)
	}
	in.Context["items"] = items[:3]
	if d, err := engine.New(set, engine.WithEvalTimeout(10*time.Second)).Decide(context.Background(), in); err != nil || d.Outcome != engine.Approve {
		t.Fatalf("small input: %+v %v", d, err)
	}
}

// TestByteOrderMarkKeepsTheFailMode: a UTF-8 byte order mark, which some editors write,
// must not hide the package's METADATA and with it payout's fail mode.
func TestByteOrderMarkKeepsTheFailMode(t *testing.T) {
	src := "\xef\xbb\xbf# METADATA\n# custom:\n#   fail_mode: closed\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n"
	set, err := engine.Load(bundle(map[string]string{"x/x.rego": src}))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := set.Policy("x"); p.FailMode != engine.FailClosed {
		t.Fatalf("fail mode %v, want closed", p.FailMode)
	}
}

// TestHashCoversActionsItReads: a policy that reads another action's package (a threshold
// of login's) gets a new hash when that package changes, and keeps it when an action it
// does not read changes.
func TestHashCoversActionsItReads(t *testing.T) {
	const meta = "# METADATA\n# custom:\n#   fail_mode: review\n"
	files := func(limit string) map[string]string {
		return map[string]string{
			"signin/signin.rego": meta + "package verdict.signin\n\nlimit := " + limit + "\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n",
			"payout/payout.rego": meta + "package verdict.payout\n\nimport data.verdict.signin\n\n" +
				"decision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0} if input.context.amount < signin.limit\n",
			"other/other.rego": meta + "package verdict.other\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n",
		}
	}
	hash := func(fs map[string]string, action string) string {
		t.Helper()
		mfs := fstest.MapFS{}
		for k, v := range fs {
			mfs[k] = &fstest.MapFile{Data: []byte(v)}
		}
		set, err := engine.Load(mfs)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := set.Policy(action)
		return p.Hash
	}
	base := files("20")
	changedLogin := files("2000")
	changedOther := files("20")
	changedOther["other/other.rego"] += "\nextra := 1\n"
	if hash(base, "payout") == hash(changedLogin, "payout") {
		t.Error("payout's hash did not change with the login threshold it reads")
	}
	if hash(base, "payout") != hash(changedOther, "payout") {
		t.Error("payout's hash changed with an action it does not read")
	}
	if hash(base, "other") != hash(changedLogin, "other") {
		t.Error("other's hash changed with login, which it does not read")
	}
}
