package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"regexp"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"gopkg.in/yaml.v3"
)

// celFile is the YAML form of a CEL policy: one file per action, ordered rules.
type celFile struct {
	Action     string         `yaml:"action"`
	Version    string         `yaml:"version"`
	FailMode   string         `yaml:"fail_mode"`
	Title      string         `yaml:"title"`
	Thresholds map[string]any `yaml:"thresholds"`
	Rules      []celRuleSpec  `yaml:"rules"`
}

type celRuleSpec struct {
	Code      string  `yaml:"code"`
	Outcome   string  `yaml:"outcome"`
	Message   string  `yaml:"message"`
	Score     float64 `yaml:"score"`
	When      string  `yaml:"when"`
	Signal    string  `yaml:"signal"`
	Value     string  `yaml:"value"`
	Threshold any     `yaml:"threshold"`
	StepUp    string  `yaml:"step_up"`
}

var reasonCode = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,63}$`)

var stepUpMethods = map[string]int{"otp": 1, "webauthn": 2, "document": 3}

func celEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("action", cel.StringType),
		cel.Variable("subject", cel.DynType),
		cel.Variable("device", cel.DynType),
		cel.Variable("context", cel.DynType),
		cel.Variable("behavior", cel.DynType),
		cel.Variable("signals", cel.DynType),
		cel.Variable("thresholds", cel.DynType),
	)
}

func loadCEL(fsys fs.FS, file string, cfg loadConfig) (*Policy, []Problem) {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, []Problem{{File: file, Message: err.Error()}}
	}
	var spec celFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return nil, []Problem{yamlProblem(file, err)}
	}
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc)
	ruleLines := celRuleLines(&doc)
	lineOf := func(i int, field string) int {
		if i < len(ruleLines) {
			if l, ok := ruleLines[i][field]; ok {
				return l
			}
			return ruleLines[i][""]
		}
		return 0
	}

	var problems []Problem
	if !ValidAction(spec.Action) {
		problems = append(problems, Problem{File: file, Line: 1, Message: fmt.Sprintf("action %q: want lowercase letters, digits and _", spec.Action)})
	}
	fm := FailReview
	if spec.FailMode == "" {
		problems = append(problems, Problem{File: file, Line: 1, Message: fmt.Sprintf("action %q declares no fail_mode: add fail_mode: open|closed|review", spec.Action)})
	} else if fm, err = ParseFailMode(spec.FailMode); err != nil {
		problems = append(problems, Problem{File: file, Line: topLevelLine(&doc, "fail_mode"), Message: err.Error()})
	}
	if len(spec.Rules) == 0 {
		problems = append(problems, Problem{File: file, Message: "policy has no rules"})
	}
	thresholds := maps.Clone(spec.Thresholds)
	if thresholds == nil {
		thresholds = map[string]any{}
	}
	if t, ok := cfg.data["thresholds"].(map[string]any); ok {
		if over, ok := t[spec.Action].(map[string]any); ok {
			maps.Copy(thresholds, over)
		}
	}
	env, err := celEnv()
	if err != nil {
		return nil, []Problem{{File: file, Message: err.Error()}}
	}
	var reads Sources
	compile := func(i int, field, expr string, wantBool bool) celProgram {
		ast, iss := env.Compile(expr)
		if iss != nil && iss.Err() != nil {
			problems = append(problems, Problem{File: file, Line: lineOf(i, field), Message: fmt.Sprintf("rule %d %s: %s", i+1, field, celIssues(iss))})
			return celProgram{}
		}
		reads |= celReads(ast.NativeRep().Expr())
		if wantBool && !ast.OutputType().IsExactType(types.BoolType) && !ast.OutputType().IsExactType(types.DynType) {
			problems = append(problems, Problem{File: file, Line: lineOf(i, field), Message: fmt.Sprintf("rule %d when: must be a bool expression, is %s", i+1, ast.OutputType())})
			return celProgram{}
		}
		// Runtime cost tracking costs 5-8x on small expressions, so only expressions
		// whose static worst case exceeds the limit (comprehensions over inputs of
		// unknown size) pay for it; the others are bounded by construction.
		opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
		bounded := false
		if est, err := env.EstimateCost(ast, noSizeHints{}); err == nil && est.Max <= cfg.celCostLimit {
			bounded = true
		} else {
			opts = append(opts, cel.CostLimit(cfg.celCostLimit), cel.InterruptCheckFrequency(100))
		}
		prg, err := env.Program(ast, opts...)
		if err != nil {
			problems = append(problems, Problem{File: file, Line: lineOf(i, field), Message: fmt.Sprintf("rule %d %s: %v", i+1, field, err)})
			return celProgram{}
		}
		return celProgram{prg: prg, bounded: bounded}
	}
	rules := make([]celRule, 0, len(spec.Rules))
	seen := map[string]bool{}
	for i, rs := range spec.Rules {
		r := celRule{reason: Reason{Code: rs.Code, Message: rs.Message, Signal: rs.Signal, Score: rs.Score}}
		if !reasonCode.MatchString(rs.Code) {
			problems = append(problems, Problem{File: file, Line: lineOf(i, "code"), Message: fmt.Sprintf("rule %d: code %q must be UPPER_SNAKE", i+1, rs.Code)})
		}
		if seen[rs.Code] {
			problems = append(problems, Problem{File: file, Line: lineOf(i, "code"), Message: fmt.Sprintf("rule %d: duplicate code %s", i+1, rs.Code)})
		}
		seen[rs.Code] = true
		if rs.Score < 0 || rs.Score > 100 || math.IsNaN(rs.Score) {
			// A decision's score is 0..100; a negative one would fail every decision the
			// rule fires in (and the sum is capped at 100 anyway).
			problems = append(problems, Problem{File: file, Line: lineOf(i, "score"), Message: fmt.Sprintf("rule %d: score %v: want 0 to 100", i+1, rs.Score)})
		}
		if r.reason.Outcome, err = ParseOutcome(rs.Outcome); err != nil {
			problems = append(problems, Problem{File: file, Line: lineOf(i, "outcome"), Message: fmt.Sprintf("rule %d: %v", i+1, err)})
		}
		if rs.StepUp != "" {
			if _, ok := stepUpMethods[rs.StepUp]; !ok {
				problems = append(problems, Problem{File: file, Line: lineOf(i, "step_up"), Message: fmt.Sprintf("rule %d: step_up %q: want otp, webauthn or document", i+1, rs.StepUp)})
			}
			r.stepUp = rs.StepUp
		}
		if rs.When == "" {
			problems = append(problems, Problem{File: file, Line: lineOf(i, ""), Message: fmt.Sprintf("rule %d: when is required", i+1)})
			continue
		}
		r.when = compile(i, "when", rs.When, true)
		if rs.Value != "" {
			r.value = compile(i, "value", rs.Value, false)
		}
		switch th := rs.Threshold.(type) {
		case nil:
		case string:
			r.threshold = compile(i, "threshold", th, false)
		case int, float64:
			r.reason.Threshold = th
		default:
			problems = append(problems, Problem{File: file, Line: lineOf(i, "threshold"), Message: fmt.Sprintf("rule %d: threshold must be a number or a CEL expression", i+1)})
		}
		rules = append(rules, r)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	p := &Policy{
		Action:     spec.Action,
		Version:    spec.Version,
		Hash:       contentHash(hashedWithData(file, b, cfg.dataFiles)),
		Language:   LangCEL,
		FailMode:   fm,
		Files:      []string{file},
		failModeAt: Problem{File: file, Line: topLevelLine(&doc, "fail_mode")},
		reads:      reads,
	}
	if p.Version == "" {
		p.Version = shortHash(p.Hash)
	}
	p.eval = &celEvaluator{rules: rules, thresholds: thresholds}
	if spec.Thresholds != nil {
		p.thresholds = spec.Thresholds
	}
	return p, nil
}

func yamlProblem(file string, err error) Problem {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	line := 0
	var n int
	if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &n); scanErr == nil {
		line = n
	} else if _, scanErr := fmt.Sscanf(msg, "line %d:", &n); scanErr == nil {
		line = n
	}
	return Problem{File: file, Line: line, Message: msg}
}

// celRuleLines returns, per rule, the line of the rule ("") and of each of its fields.
func celRuleLines(doc *yaml.Node) []map[string]int {
	if doc.Kind != yaml.DocumentNode {
		return nil
	}
	_, rules := topLevel(doc, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode {
		return nil
	}
	var out []map[string]int
	for _, rn := range rules.Content {
		m := map[string]int{"": rn.Line}
		for j := 0; j+1 < len(rn.Content); j += 2 {
			m[rn.Content[j].Value] = rn.Content[j+1].Line
		}
		out = append(out, m)
	}
	return out
}

type celRule struct {
	reason    Reason
	stepUp    string
	when      celProgram
	value     celProgram
	threshold celProgram
}

// celProgram is a compiled expression. A bounded one has a static worst-case cost under
// the limit and runs without runtime cost tracking or interrupt checks; the evaluator
// checks the deadline between expressions.
type celProgram struct {
	prg     cel.Program
	bounded bool
}

func (p celProgram) eval(ctx context.Context, act interpreter.Activation) (ref.Val, error) {
	if p.bounded {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, _, err := p.prg.Eval(act)
		return out, err
	}
	out, _, err := p.prg.ContextEval(ctx, act)
	return out, err
}

// noSizeHints gives the cost estimator no size information: anything iterating over an
// input of unknown size is unbounded.
type noSizeHints struct{}

func (noSizeHints) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }
func (noSizeHints) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

type celEvaluator struct {
	rules      []celRule
	thresholds map[string]any
}

// celActivation resolves the policy's variables straight from the Input, building the
// signals map only if a rule reads it.
type celActivation struct {
	in         *Input
	thresholds map[string]any
	signals    map[string]any
}

func (a *celActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "action":
		return a.in.Action, true
	case "subject":
		return orEmpty(a.in.Subject), true
	case "device":
		return orEmpty(a.in.Device), true
	case "context":
		return orEmpty(a.in.Context), true
	case "behavior":
		return orEmpty(a.in.Behavior), true
	case "thresholds":
		return a.thresholds, true
	case "signals":
		if a.signals == nil {
			a.signals = signalsMap(&a.in.Signals)
		}
		return a.signals, true
	}
	return nil, false
}

func (a *celActivation) Parent() interpreter.Activation { return nil }

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (c *celEvaluator) eval(ec evalContext, in *Input) (Decision, error) {
	act := &celActivation{in: in, thresholds: c.thresholds}
	var d Decision
	var stepRank int
	for i := range c.rules {
		r := &c.rules[i]
		out, err := r.when.eval(ec.ctx, act)
		if err != nil {
			return Decision{}, fmt.Errorf("rule %s: %w", r.reason.Code, err)
		}
		fired, ok := out.(types.Bool)
		if !ok {
			return Decision{}, fmt.Errorf("rule %s: when yielded %s, want bool", r.reason.Code, out.Type())
		}
		if !fired {
			continue
		}
		reason := r.reason
		if r.value.prg != nil {
			if reason.Value, err = celNative(ec, r.value, act); err != nil {
				return Decision{}, fmt.Errorf("rule %s value: %w", r.reason.Code, err)
			}
		}
		if r.threshold.prg != nil {
			if reason.Threshold, err = celNative(ec, r.threshold, act); err != nil {
				return Decision{}, fmt.Errorf("rule %s threshold: %w", r.reason.Code, err)
			}
		}
		d.Reasons = append(d.Reasons, reason)
		d.Score += reason.Score
		if reason.Outcome > d.Outcome {
			d.Outcome = reason.Outcome
		}
		if reason.Outcome == StepUp && stepUpMethods[r.stepUp] > stepRank {
			stepRank = stepUpMethods[r.stepUp]
			d.StepUp = r.stepUp
		}
	}
	if d.Outcome == 0 {
		d.Outcome = Approve
	}
	if d.Outcome != StepUp {
		d.StepUp = ""
	} else if d.StepUp == "" {
		d.StepUp = "otp"
	}
	d.Score = min(d.Score, 100)
	sortReasons(d.Reasons)
	return d, nil
}

func celNative(ec evalContext, p celProgram, act interpreter.Activation) (any, error) {
	out, err := p.eval(ec.ctx, act)
	if err != nil {
		return nil, err
	}
	return refNative(out), nil
}

func refNative(v ref.Val) any {
	switch x := v.(type) {
	case types.Int:
		return int64(x)
	case types.Double:
		return float64(x)
	case types.String:
		return string(x)
	case types.Bool:
		return bool(x)
	}
	return v.Value()
}

// signalsMap is the CEL view of Signals; keys match the JSON document.
func signalsMap(s *Signals) map[string]any {
	win := func(w *Window) map[string]any {
		return map[string]any{
			"count_1m": w.Count1m, "count_1h": w.Count1h, "count_24h": w.Count24h,
			"distinct_users_24h": w.DistinctUsers24h, "distinct_devices_24h": w.DistinctDevices24h,
		}
	}
	lists := make(map[string]any, len(s.Lists))
	for k, v := range s.Lists {
		lists[k] = v
	}
	rc := make([]any, len(s.Verification.ReasonCodes))
	for i, c := range s.Verification.ReasonCodes {
		rc[i] = c
	}
	un := make([]any, len(s.Unavailable))
	for i, c := range s.Unavailable {
		un[i] = c
	}
	out := map[string]any{
		"verification": map[string]any{
			"status": s.Verification.Status, "provider": s.Verification.Provider,
			"score": s.Verification.Score, "reason_codes": rc, "age_days": s.Verification.AgeDays,
		},
		"velocity": map[string]any{"user": win(&s.Velocity.User), "device": win(&s.Velocity.Device), "ip": win(&s.Velocity.IP)},
		"device": map[string]any{
			"known": s.Device.Known, "age_hours": s.Device.AgeHours,
			"users_seen": s.Device.UsersSeen, "flagged": s.Device.Flagged,
		},
		"lists":       lists,
		"unavailable": un,
	}
	if len(s.NotGathered) > 0 {
		// A source not gathered is left out, as in the JSON document.
		ng := make([]any, len(s.NotGathered))
		for i, name := range s.NotGathered {
			ng[i] = name
			if SourceNamed(name) != 0 {
				delete(out, name)
			}
		}
		out["not_gathered"] = ng
	}
	return out
}

// hashedWithData returns the files a CEL policy's hash covers: its file and the bundle's
// data files.
func hashedWithData(file string, b []byte, data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, 1+len(data))
	for f, d := range data {
		out[f] = d
	}
	out[file] = b
	return out
}

// topLevelLine returns the line of a top-level key of a YAML document, or 0.
func topLevelLine(doc *yaml.Node, key string) int {
	if k, _ := topLevel(doc, key); k != nil {
		return k.Line
	}
	return 0
}

// topLevel returns the key and value nodes of a top-level key of a YAML document whose
// root is a mapping, or nils.
func topLevel(doc *yaml.Node, key string) (k, v *yaml.Node) {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// celIssues describes CEL compile issues on one line, each with its place in the
// expression ("column 3: found no matching overload ..."), each once: cel-go's own
// text spans three lines per issue (the message, the expression, a caret) and names
// the expression "<input>", which a Problem's file:line already locates.
func celIssues(iss *cel.Issues) string {
	var parts []string
	seen := map[string]bool{}
	for _, e := range iss.Errors() {
		at := fmt.Sprintf("column %d", e.Location.Column()+1)
		if l := e.Location.Line(); l > 1 {
			at = fmt.Sprintf("expression line %d column %d", l, e.Location.Column()+1)
		}
		msg := at + ": " + strings.Join(strings.Fields(e.Message), " ")
		if !seen[msg] {
			seen[msg] = true
			parts = append(parts, msg)
		}
	}
	if len(parts) == 0 {
		return strings.Join(strings.Fields(iss.Err().Error()), " ")
	}
	return strings.Join(parts, "; ")
}
