package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
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
		m, err := ast.ParseModuleWithOpts(f, string(b), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
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
	compiler := ast.NewCompiler().
		WithCapabilities(SandboxCapabilities()).
		WithEnablePrintStatements(false).
		WithDefaultRegoVersion(ast.RegoV1)
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
		p := &Policy{Action: action, Hash: contentHash(hashed), Language: LangRego, FailMode: FailReview, Files: fl}
		for _, f := range fl {
			meta, probs := packageMetadata(f, modules[f])
			problems = append(problems, probs...)
			if v, ok := meta["version"]; ok {
				p.Version = v
			}
			if v, ok := meta["fail_mode"]; ok {
				fm, err := ParseFailMode(v)
				if err != nil {
					problems = append(problems, Problem{File: f, Line: modules[f].Package.Location.Row, Message: err.Error()})
				}
				p.FailMode = fm
			}
		}
		if p.Version == "" {
			p.Version = shortHash(p.Hash)
		}
		pq, err := rego.New(
			rego.Query("data.verdict."+action+".decision"),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.StrictBuiltinErrors(true),
			rego.GenerateJSON(keepTerm),
		).PrepareForEval(context.Background())
		if err != nil {
			problems = append(problems, astProblems(fl[0], err)...)
			continue
		}
		p.eval = &regoEvaluator{pq: pq, ref: p.Ref()}
		out = append(out, p)
	}
	return out, problems
}

// keepTerm hands the result term to the engine as is: the decision is read straight from
// the AST, skipping OPA's conversion of the result to Go maps.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

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

// packageMetadata returns the string values of the package annotation's custom block.
func packageMetadata(file string, m *ast.Module) (map[string]string, []Problem) {
	out := map[string]string{}
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
			s, isStr := v.(string)
			if !isStr {
				line := 0
				if a.Location != nil {
					line = a.Location.Row
				}
				problems = append(problems, Problem{File: file, Line: line, Message: fmt.Sprintf("metadata custom.%s must be a string", k)})
				continue
			}
			out[k] = s
		}
	}
	return out, problems
}

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

type regoEvaluator struct {
	pq  rego.PreparedEvalQuery
	ref PolicyRef
}

func (r *regoEvaluator) eval(ec evalContext, in *Input) (Decision, error) {
	rs, err := r.pq.Eval(ec.ctx,
		rego.EvalParsedInput(inputValue(in)),
		rego.EvalTime(ec.now),
		rego.EvalMetrics(metrics.NoOp()),
	)
	if err != nil {
		return Decision{}, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, errors.New("policy produced no decision (data.verdict." + r.ref.Action + ".decision is undefined)")
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{}, fmt.Errorf("unexpected result type %T", rs[0].Expressions[0].Value)
	}
	return decisionFromTerm(t)
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
		var iterErr error
		visit := func(rt *ast.Term) {
			if iterErr != nil {
				return
			}
			r, err := reasonFromTerm(rt)
			if err != nil {
				iterErr = err
				return
			}
			d.Reasons = append(d.Reasons, r)
		}
		switch rv := rt.Value.(type) {
		case *ast.Array:
			d.Reasons = make([]Reason, 0, rv.Len())
			rv.Foreach(visit)
		case ast.Set:
			d.Reasons = make([]Reason, 0, rv.Len())
			rv.Foreach(visit)
		default:
			return Decision{}, errors.New("decision: reasons must be an array")
		}
		if iterErr != nil {
			return Decision{}, iterErr
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
	s, ok := v.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("decision: %s must be a string, got %s", key.Value, ast.ValueName(v.Value))
	}
	return string(s), nil
}
