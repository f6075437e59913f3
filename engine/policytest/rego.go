package policytest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/verdict-engine/verdict/engine"
)

// regoSource is one Rego file of a bundle.
type regoSource struct {
	rel, display string
	src          string
	test         bool
}

// runRego runs the test_ rules of r's Rego files with OPA's tester, compiled against the
// engine's sandbox capabilities with builtin errors raised. Failing tests are run a
// second time with tracing on, to say which expression failed.
func runRego(ctx context.Context, r *root, cfg *config, cov *coverage) ([]Result, error) {
	files, err := walkFiles(r.dir, ".rego")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.dir, err)
	}
	var srcs []regoSource
	hasTests := false
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("read rego: %w", err)
		}
		t := strings.HasSuffix(f, "_test.rego")
		hasTests = hasTests || t
		srcs = append(srcs, regoSource{rel: f, display: r.display(f), src: string(b), test: t})
	}
	if !hasTests {
		return nil, nil
	}

	modules, err := parseRego(srcs)
	if err != nil {
		return nil, err
	}
	// The tests see the bundle's data files, as the policies do once loaded (and as
	// `opa test -b` does): a test of a threshold that data.json overrides tests what runs.
	data, err := engine.BundleData(os.DirFS(r.dir))
	if err != nil {
		return nil, fmt.Errorf("read data of %s: %w", r.dir, err)
	}
	var cv *cover.Cover
	runner := newRegoRunner(modules, data)
	if cfg.filter != nil {
		runner.Filter(cfg.filter.String())
	}
	if cfg.coverage {
		cv = cover.New()
		runner.SetCoverageQueryTracer(cv)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, compileProblems(err)
	}
	var results []Result
	var failed []string
	for tr := range ch {
		res := Result{
			Kind:     KindRego,
			Name:     tr.Name,
			Policy:   tr.Package,
			Duration: tr.Duration,
			Output:   string(tr.Output),
		}
		if tr.Location != nil {
			res.File, res.Line = tr.Location.File, tr.Location.Row
		}
		switch {
		case tr.Skip:
			res.Status = Skip
		case tr.Error != nil:
			res.Status = Fail
			res.Detail = "error: " + tr.Error.Error()
		case tr.Fail && tr.Duration > maxTracedDuration:
			// A trace records every step: of a test this long, gigabytes (one that ran
			// 0.3 s exhausted 6 GB). Say so instead.
			res.Status = Fail
			res.Detail = fmt.Sprintf("no trace: the test ran %s; trace it alone with opa test -v --run", tr.Duration.Round(time.Millisecond))
		case tr.Fail:
			res.Status = Fail
			failed = append(failed, tr.Package+"."+tr.Name)
		default:
			res.Status = Pass
		}
		results = append(results, res)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(results, func(a, b Result) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	if len(failed) > 0 {
		traces, err := traceFailures(ctx, srcs, data, failed)
		if err != nil {
			return nil, err
		}
		for i := range results {
			t, ok := traces[results[i].Policy+"."+results[i].Name]
			if !ok {
				continue
			}
			results[i].Detail = t.failure
			if cfg.trace {
				results[i].Trace = t.full
			}
		}
	}
	if cv != nil {
		policyModules := map[string]*ast.Module{}
		fresh, err := parseRego(srcs)
		if err != nil {
			return nil, err
		}
		for _, s := range srcs {
			if !s.test {
				policyModules[s.display] = fresh[s.display]
			}
		}
		cov.addRego(r, srcs, policyModules, cv.Report(policyModules))
	}
	return results, nil
}

// maxTracedDuration is the longest a failing test may have run to be run again with
// tracing on (to say which expression failed). A variable for the tests.
var maxTracedDuration = 100 * time.Millisecond

func newRegoRunner(modules map[string]*ast.Module, data map[string]any) *tester.Runner {
	compiler := ast.NewCompiler().
		WithCapabilities(engine.SandboxCapabilities()).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)
	store := inmem.New()
	if data != nil {
		store = inmem.NewFromObject(data)
	}
	return tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetDefaultRegoVersion(ast.RegoV1).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true)
}

// parseRego parses every source, keyed by its display name so that locations, errors
// and coverage name files as the caller can open them.
func parseRego(srcs []regoSource) (map[string]*ast.Module, error) {
	modules := make(map[string]*ast.Module, len(srcs))
	var problems []engine.Problem
	for _, s := range srcs {
		m, err := ast.ParseModuleWithOpts(s.display, s.src, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			problems = append(problems, engine.RegoProblems(s.display, err)...)
			continue
		}
		modules[s.display] = m
	}
	if len(problems) > 0 {
		return nil, &engine.LoadError{Problems: problems}
	}
	return modules, nil
}

// compileProblems turns the tester's compile error into an *engine.LoadError.
func compileProblems(err error) error {
	return &engine.LoadError{Problems: engine.RegoProblems("", err)}
}

type regoTrace struct {
	failure string // the failing expression, with its variables' values
	full    string // the whole trace
}

// traceFailures runs the named tests again with tracing on and returns, per test, the
// expression that failed and the full trace, as `opa test -v` shows them.
func traceFailures(ctx context.Context, srcs []regoSource, data map[string]any, names []string) (map[string]regoTrace, error) {
	modules, err := parseRego(srcs)
	if err != nil {
		return nil, err
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	runner := newRegoRunner(modules, data).
		EnableTracing(true).
		Filter("^(" + strings.Join(quoted, "|") + ")$")
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, compileProblems(err)
	}
	out := map[string]regoTrace{}
	for tr := range ch {
		var t regoTrace
		var full bytes.Buffer
		topdown.PrettyTraceWithOpts(&full, tr.Trace, topdown.PrettyTraceOptions{Locations: true, ExprVariables: true})
		t.full = full.String()
		t.failure = failingExpr(tr.Trace)
		out[tr.Package+"."+tr.Name] = t
	}
	return out, ctx.Err()
}

// failingExpr describes the last expression that failed in a test's trace: the one that
// made the test fail.
func failingExpr(trace []*topdown.Event) string {
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		expr, isExpr := e.Node.(*ast.Expr)
		if !isExpr {
			continue
		}
		if _, isEvery := expr.Terms.(*ast.Every); isEvery {
			continue // the failing expression inside the every body comes first
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s:%d: failed:\n", e.Location.File, e.Location.Row)
		if err := topdown.PrettyEvent(&b, e, topdown.PrettyEventOpts{PrettyVars: true}); err != nil {
			fmt.Fprintf(&b, "%s\n", e.Location.Text)
		}
		return strings.TrimRight(b.String(), "\n")
	}
	return "the test rule is undefined or false"
}
