package policies_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"gopkg.in/yaml.v3"

	"github.com/verdict-engine/verdict/engine"
)

// reasonRule is one `reasons contains lib.<helper>(...)` rule as written in a policy.
type reasonRule struct {
	Action  string
	Code    string
	Outcome string
	Score   float64
	Message string
	Signal  string // empty when the rule names none
	StepUp  string // step-up method, step_up rules only
	Where   string // file:row
}

var codePattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// regoReasonRules returns every reason rule of every action policy in the bundle. It fails
// the test for a reasons rule that is not a lib helper call with a constant code, outcome,
// score, message and signal: the reason catalogue must be readable without running policies.
func regoReasonRules(t *testing.T) []reasonRule {
	t.Helper()
	var out []reasonRule
	for file, m := range parseBundle(t, false) {
		action, _ := strings.CutPrefix(strings.TrimPrefix(m.Package.Path.String(), "data."), "verdict.")
		if action == "lib" {
			continue
		}
		for _, r := range m.Rules {
			if r.Head.Ref().String() != "reasons" {
				continue
			}
			where := fmt.Sprintf("%s:%d", file, r.Location.Row)
			rr, err := parseReasonHead(r.Head.Key)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			rr.Action, rr.Where = action, where
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		t.Fatal("no reason rules found")
	}
	return out
}

func parseReasonHead(key *ast.Term) (reasonRule, error) {
	call, ok := key.Value.(ast.Call)
	if !ok || len(call) == 0 {
		return reasonRule{}, fmt.Errorf("reasons rule must add a lib.reason/reason_at/step_up/step_up_at call, got %v", key)
	}
	helper := strings.TrimPrefix(call[0].String(), "lib.")
	args := call[1:]
	str := func(i int) (string, error) {
		if s, ok := args[i].Value.(ast.String); ok {
			return string(s), nil
		}
		if _, ok := args[i].Value.(ast.Null); ok {
			return "", nil
		}
		return "", fmt.Errorf("%s argument %d must be a constant string, got %v", helper, i+1, args[i])
	}
	num := func(i int) (float64, error) {
		if n, ok := args[i].Value.(ast.Number); ok {
			f, _ := n.Float64()
			return f, nil
		}
		return 0, fmt.Errorf("%s argument %d must be a constant number, got %v", helper, i+1, args[i])
	}
	var (
		rr    reasonRule
		err   error
		errs  []error
		check = func(e error) {
			if e != nil {
				errs = append(errs, e)
			}
		}
	)
	switch {
	case (helper == "reason" && len(args) == 4) || (helper == "reason_at" && len(args) == 7):
		rr.Code, err = str(0)
		check(err)
		rr.Outcome, err = str(1)
		check(err)
		rr.Score, err = num(2)
		check(err)
		rr.Message, err = str(3)
		check(err)
		if helper == "reason_at" {
			rr.Signal, err = str(4)
			check(err)
		}
	case (helper == "step_up" && len(args) == 4) || (helper == "step_up_at" && len(args) == 7):
		rr.Outcome = "step_up"
		rr.Code, err = str(0)
		check(err)
		rr.Score, err = num(1)
		check(err)
		rr.Message, err = str(2)
		check(err)
		rr.StepUp, err = str(3)
		check(err)
		if helper == "step_up_at" {
			rr.Signal, err = str(4)
			check(err)
		}
	default:
		return rr, fmt.Errorf("unknown reason helper %s/%d", helper, len(args))
	}
	if len(errs) > 0 {
		return rr, errs[0]
	}
	return rr, nil
}

// TestReasonRulesAreWellFormed checks the catalogue itself: stable UPPER_SNAKE codes,
// known outcomes and step-up methods, scores in range, and one meaning per code: a code
// shared by several rules or actions always has the same outcome.
func TestReasonRulesAreWellFormed(t *testing.T) {
	rules := append(regoReasonRules(t), celReasonRules(t)...)
	outcomeOf := map[string]reasonRule{}
	for _, r := range rules {
		if !codePattern.MatchString(r.Code) {
			t.Errorf("%s: code %q is not UPPER_SNAKE", r.Where, r.Code)
		}
		if _, ok := severity[r.Outcome]; !ok {
			t.Errorf("%s: %s: unknown outcome %q", r.Where, r.Code, r.Outcome)
		}
		if r.Outcome == "step_up" && !slices.Contains([]string{"otp", "webauthn", "document"}, r.StepUp) {
			t.Errorf("%s: %s: step_up method %q, want otp, webauthn or document", r.Where, r.Code, r.StepUp)
		}
		if r.Score < 0 || r.Score > 100 {
			t.Errorf("%s: %s: score %v outside 0..100", r.Where, r.Code, r.Score)
		}
		if r.Message == "" {
			t.Errorf("%s: %s: empty message", r.Where, r.Code)
		}
		if prev, ok := outcomeOf[r.Code]; ok && prev.Outcome != r.Outcome {
			t.Errorf("%s: %s is %s here but %s at %s", r.Where, r.Code, r.Outcome, prev.Outcome, prev.Where)
		}
		outcomeOf[r.Code] = r
	}
}

// TestReasonCodesDocumented checks the README's reason-code table against the policies, both ways:
// every code a policy can return is in the table with its actions, outcome and signal, and
// every code in the table is returned by some policy.
func TestReasonCodesDocumented(t *testing.T) {
	const docPath = "../README.md"
	docs := readReasonTable(t, docPath)

	type use struct {
		actions  map[string]bool
		outcomes map[string]bool
		signals  map[string]bool
	}
	uses := map[string]*use{}
	for _, r := range append(regoReasonRules(t), celReasonRules(t)...) {
		u := uses[r.Code]
		if u == nil {
			u = &use{map[string]bool{}, map[string]bool{}, map[string]bool{}}
			uses[r.Code] = u
		}
		u.actions[r.Action] = true
		u.outcomes[r.Outcome] = true
		if r.Signal != "" {
			u.signals[r.Signal] = true
		}
	}
	for code, u := range uses {
		d, ok := docs[code]
		if !ok {
			t.Errorf("%s: %s is returned by %v but not documented", docPath, code, keys(u.actions))
			continue
		}
		if got, want := keys(d.actions), keys(u.actions); !slices.Equal(got, want) {
			t.Errorf("%s: %s documented for actions %v, policies use it in %v", docPath, code, got, want)
		}
		if !u.outcomes[d.outcome] || len(u.outcomes) != 1 {
			t.Errorf("%s: %s documented as %q, policies return %v", docPath, code, d.outcome, keys(u.outcomes))
		}
		if got, want := keys(d.signals), keys(u.signals); !slices.Equal(got, want) {
			t.Errorf("%s: %s documented with signals %v, policies name %v", docPath, code, got, want)
		}
	}
	for code, d := range docs {
		if engineCodes[code] {
			if !d.actions["any"] {
				t.Errorf("%s: engine code %s must be documented for action \"any\"", docPath, code)
			}
			continue
		}
		if uses[code] == nil {
			t.Errorf("%s: %s is documented but no policy returns it", docPath, code)
		}
	}
}

// engineCodes are added by the engine's fail modes, not by a policy rule.
var engineCodes = map[string]bool{
	engine.CauseSignalsUnavailable: true,
	engine.CausePolicyError:        true,
	engine.CauseStoreUnavailable:   true,
}

type docRow struct {
	actions map[string]bool
	outcome string
	signals map[string]bool
}

// readReasonTable parses the rows `| `CODE` | actions | outcome | signals | meaning |` of
// the "## Reason codes" section.
func readReasonTable(t *testing.T, name string) map[string]docRow {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]docRow{}
	sc := bufio.NewScanner(f)
	in := false
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "## ") {
			in = text == "## Reason codes"
			continue
		}
		if !in || !strings.HasPrefix(text, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), "|")
		if len(cells) != 5 {
			t.Errorf("%s:%d: want 5 columns (code, actions, outcome, signal, meaning), got %d", name, line, len(cells))
			continue
		}
		code := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if _, dup := rows[code]; dup {
			t.Errorf("%s:%d: %s listed twice", name, line, code)
		}
		if strings.TrimSpace(cells[4]) == "" {
			t.Errorf("%s:%d: %s has no meaning", name, line, code)
		}
		rows[code] = docRow{
			actions: list(cells[1]),
			outcome: strings.Trim(strings.TrimSpace(cells[2]), "`"),
			signals: list(cells[3]),
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no reason code rows", name)
	}
	return rows
}

// list splits a cell like "`a`, `b`" into {a, b}; "—" is the empty list.
func list(cell string) map[string]bool {
	out := map[string]bool{}
	for _, s := range strings.Split(cell, ",") {
		s = strings.Trim(strings.TrimSpace(s), "`")
		if s != "" && s != "—" {
			out[s] = true
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// severity orders outcomes as the engine does.
var severity = map[string]int{"approve": 0, "step_up": 1, "review": 2, "block": 3}

// normalize turns v into what encoding/json makes of it (numbers as float64), so that
// values from Rego and CEL compare equal when they serialise equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReasonRegistryMatchesTheREADME keeps bundle/reason_codes.yaml (what `verdict policy
// lint` checks policies against) equal to the README's table: same codes, actions and
// outcomes.
func TestReasonRegistryMatchesTheREADME(t *testing.T) {
	doc := readReasonTable(t, "../README.md")
	b, err := os.ReadFile("bundle/reason_codes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Codes map[string]struct {
			Actions []string `yaml:"actions"`
			Outcome string   `yaml:"outcome"`
			Meaning string   `yaml:"meaning"`
		} `yaml:"codes"`
	}
	if err := yaml.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	for code, row := range doc {
		r, ok := reg.Codes[code]
		if !ok {
			t.Errorf("%s is in the README's table but not in bundle/reason_codes.yaml", code)
			continue
		}
		actions := map[string]bool{}
		for _, a := range r.Actions {
			actions[a] = true
		}
		if !maps.Equal(actions, row.actions) || r.Outcome != row.outcome || r.Meaning == "" {
			t.Errorf("%s: registry has actions %v, outcome %q; README has %v, %q", code, r.Actions, r.Outcome, keys(row.actions), row.outcome)
		}
	}
	for code := range reg.Codes {
		if _, ok := doc[code]; !ok {
			t.Errorf("%s is in bundle/reason_codes.yaml but not in the README's table", code)
		}
	}
}
