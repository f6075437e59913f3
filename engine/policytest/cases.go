package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verdict-engine/verdict/engine"
)

// Case is a golden decision case, one testdata/cases/<name>.json file: a full policy input
// document and the decision the policy for its action must give.
type Case struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Input       json.RawMessage `json:"input"`
	Want        Want            `json:"want"`
}

// Want is the decision a golden case expects.
type Want struct {
	Outcome     string   `json:"outcome"`
	ReasonCodes []string `json:"reason_codes"` // compared as a set
	StepUp      string   `json:"step_up,omitempty"`
}

// celCase is one case of an <action>.cases.yaml (or .json) file next to a CEL policy.
type celCase struct {
	Name  string         `yaml:"name" json:"name"`
	Input map[string]any `yaml:"input" json:"input"`
	Want  struct {
		Outcome string   `yaml:"outcome" json:"outcome"`
		Reasons []string `yaml:"reasons" json:"reasons"`
		StepUp  string   `yaml:"step_up" json:"step_up"`
	} `yaml:"want" json:"want"`
}

// caseSuffixes are the names a CEL case file may have after "<action>".
var caseSuffixes = []string{".cases.yaml", ".cases.yml", ".cases.json"}

// runCELCases evaluates, through the engine, the cases next to each CEL policy of r.
func runCELCases(ctx context.Context, r *root, cfg *config, cov *coverage) ([]Result, error) {
	caseFiles, err := walkFiles(r.dir, caseSuffixes...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.dir, err)
	}
	if len(caseFiles) == 0 {
		return nil, nil
	}
	// A case file belongs to the CEL policy of its action in the same directory.
	owner := map[string]*engine.Policy{}
	for _, a := range r.set.Actions() {
		p, _ := r.set.Policy(a)
		if p.Language != engine.LangCEL {
			continue
		}
		for _, s := range caseSuffixes {
			owner[path.Join(path.Dir(p.Files[0]), p.Action+s)] = p
		}
	}
	e := engine.New(r.set, engine.WithEvalTimeout(cfg.evalLimit))
	var results []Result
	for _, f := range caseFiles {
		display := r.display(f)
		p, ok := owner[f]
		if !ok {
			results = append(results, Result{Kind: KindCEL, File: display, Name: path.Base(f), Status: Fail,
				Detail: fmt.Sprintf("no CEL policy for this case file: want <action>.cel.yaml with action %q in the same directory", strings.SplitN(path.Base(f), ".", 2)[0])})
			continue
		}
		cases, lines, err := readCELCases(filepath.Join(r.dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", display, err)
		}
		for i, c := range cases {
			if !cfg.match(c.Name) {
				continue
			}
			res := Result{Kind: KindCEL, File: display, Line: lines[i], Name: c.Name, Policy: policyLabel(p)}
			if c.Name == "" {
				res.Name = fmt.Sprintf("case %d", i+1)
			}
			if problem := checkCELCase(c, p.Action); problem != "" {
				res.Status, res.Detail = Fail, problem
				results = append(results, res)
				continue
			}
			raw, err := json.Marshal(c.Input)
			if err != nil {
				res.Status, res.Detail = Fail, fmt.Sprintf("input: %v", err)
				results = append(results, res)
				continue
			}
			want := Want{Outcome: c.Want.Outcome, ReasonCodes: c.Want.Reasons, StepUp: c.Want.StepUp}
			evaluate(ctx, e, p, raw, want, &res, cov)
			results = append(results, res)
		}
	}
	return results, nil
}

// checkCELCase returns what makes a case unable to test the policy of action, or "": a
// missing or unknown want.outcome, or an input whose action is another one (the case
// would run against this file's policy all the same).
func checkCELCase(c celCase, action string) string {
	if c.Want.Outcome == "" {
		return "want.outcome is required: approve, step_up, review or block"
	}
	if _, err := engine.ParseOutcome(c.Want.Outcome); err != nil {
		return fmt.Sprintf("want.outcome %q is not approve, step_up, review or block", c.Want.Outcome)
	}
	if a, ok := c.Input["action"]; ok && a != action {
		return fmt.Sprintf("input.action %v is not the action of this case file's policy (%s)", a, action)
	}
	return ""
}

// readCELCases reads a case file and the line of each case.
func readCELCases(file string) ([]celCase, []int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	return parseCELCases(b, strings.HasSuffix(file, ".json"))
}

// parseCELCases parses a case file's content, JSON or YAML, strictly (an unknown field is an
// error), and returns the line of each case (0 where it is not known).
func parseCELCases(b []byte, isJSON bool) ([]celCase, []int, error) {
	var cases []celCase
	var lines []int
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return nil, nil, errors.New("want a JSON array of cases")
		}
		for dec.More() {
			start := int(dec.InputOffset())
			for start < len(b) && strings.IndexByte(" \t\r\n,", b[start]) >= 0 {
				start++
			}
			var c celCase
			if err := dec.Decode(&c); err != nil {
				return nil, nil, fmt.Errorf("line %d: %w", 1+bytes.Count(b[:start], []byte("\n")), err)
			}
			cases = append(cases, c)
			lines = append(lines, 1+bytes.Count(b[:start], []byte("\n")))
		}
		return cases, lines, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cases); err != nil {
		return nil, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, err
	}
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.SequenceNode {
		for _, n := range doc.Content[0].Content {
			// The decoder drops null items, which would shift every later case's line
			// and hide a case left empty by mistake.
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
				return nil, nil, fmt.Errorf("line %d: an empty case", n.Line)
			}
			lines = append(lines, n.Line)
		}
	}
	for len(lines) < len(cases) {
		lines = append(lines, 0)
	}
	return cases, lines, nil
}

// runGolden replays every *.json case of dir through the policy for its action of each
// root that has one.
func runGolden(ctx context.Context, roots []*root, dir string, cfg *config, cov *coverage) ([]Result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 && cfg.golden != "" {
		return nil, fmt.Errorf("golden: no *.json case in %s", dir)
	}
	slices.Sort(files)
	engines := make([]*engine.Engine, len(roots))
	for i, r := range roots {
		engines[i] = engine.New(r.set, engine.WithEvalTimeout(cfg.evalLimit))
	}
	var results []Result
	for _, f := range files {
		c, err := ReadCase(f)
		if err != nil {
			return nil, err
		}
		if !cfg.match(c.Name) {
			continue
		}
		var head struct {
			Action string `json:"action"`
		}
		_ = json.Unmarshal(c.Input, &head)
		ran := false
		for i, r := range roots {
			p, ok := r.set.Policy(head.Action)
			if !ok {
				continue
			}
			ran = true
			res := Result{Kind: KindGolden, File: f, Name: c.Name, Policy: policyLabel(p)}
			evaluate(ctx, engines[i], p, c.Input, c.Want, &res, cov)
			results = append(results, res)
		}
		if !ran {
			results = append(results, Result{Kind: KindGolden, File: f, Name: c.Name, Status: Fail,
				Detail: fmt.Sprintf("no policy for action %q", head.Action)})
		}
	}
	return results, ctx.Err()
}

// ReadCase reads a golden case file strictly: an unknown field is an error. A case
// without a name is named after its file.
func ReadCase(file string) (Case, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Case{}, fmt.Errorf("read golden case: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Case
	if err := dec.Decode(&c); err != nil {
		return Case{}, fmt.Errorf("golden case %s: %w", file, err)
	}
	if len(c.Input) == 0 {
		return Case{}, fmt.Errorf("golden case %s: no input", file)
	}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(file), ".json")
	}
	return c, nil
}

func policyLabel(p *engine.Policy) string {
	return p.Action + " " + p.Language + " " + p.Version
}

// evaluate evaluates p on the raw input document and fills res with the verdict.
func evaluate(ctx context.Context, e *engine.Engine, p *engine.Policy, raw json.RawMessage, want Want, res *Result, cov *coverage) {
	var in engine.Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("not a policy input document: %v", err)
		return
	}
	start := time.Now()
	d, err := e.Evaluate(ctx, p, &in)
	res.Duration = time.Since(start)
	if err != nil {
		res.Status, res.Detail = Fail, err.Error()
		return
	}
	got := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		got[i] = r.Code
	}
	cov.fire(p, got)
	if diff := decisionDiff(want, d.Outcome.String(), got, d.StepUp); diff != "" {
		res.Status, res.Detail = Fail, diff
		return
	}
	res.Status = Pass
}

// decisionDiff describes how a decision differs from what a case wants; "" when it does
// not. Reason codes are compared as sets; the step-up method only when the case names one.
func decisionDiff(want Want, outcome string, codes []string, stepUp string) string {
	var b strings.Builder
	if outcome != want.Outcome {
		fmt.Fprintf(&b, "outcome:      want %s, got %s\n", want.Outcome, outcome)
	}
	w, g := setOf(want.ReasonCodes), setOf(codes)
	if !slices.Equal(w, g) {
		fmt.Fprintf(&b, "reason codes: want %v, got %v\n", w, g)
		for _, c := range w {
			if !slices.Contains(g, c) {
				fmt.Fprintf(&b, "  - %s (wanted, not returned)\n", c)
			}
		}
		for _, c := range g {
			if !slices.Contains(w, c) {
				fmt.Fprintf(&b, "  + %s (returned, not wanted)\n", c)
			}
		}
	}
	if want.StepUp != "" && stepUp != want.StepUp {
		fmt.Fprintf(&b, "step_up:      want %s, got %q\n", want.StepUp, stepUp)
	}
	return strings.TrimRight(b.String(), "\n")
}

func setOf(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
