// Package policytest tests a policy bundle the way `verdict test` does, with no server and
// no database: it compiles the bundle with the engine's loader, runs the Rego unit tests
// through OPA's tester with the engine's sandbox capabilities, evaluates the CEL case files
// and replays golden decision cases through the engine, optionally measuring coverage.
//
// A directory is either a bundle (Rego files and *.cel.yaml files, as `verdict serve
// --policies` loads it, with golden cases in its testdata/cases when present) or a folder
// holding bundle/, cel/ and testdata/cases/ like the repository's policies/ folder; bundle/
// and cel/ are then loaded as two separate bundles.
//
// It also turns stored decisions into golden cases: Scrub removes personal data from a
// policy input document and ExportCase builds the case.
package policytest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// Kind says what a Result tested.
type Kind string

// The kinds of tests.
const (
	KindRego   Kind = "rego"   // a test_ rule of a *_test.rego file
	KindCEL    Kind = "cel"    // a case of an <action>.cases.yaml file
	KindGolden Kind = "golden" // a testdata/cases/*.json decision replayed through a policy
)

// Status is a test's result.
type Status uint8

// The statuses.
const (
	Pass Status = iota + 1
	Fail
	Skip // a Rego todo_test_ rule
)

// String returns "PASS", "FAIL" or "SKIP".
func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Skip:
		return "SKIP"
	}
	return "????"
}

// Result is the outcome of one test.
type Result struct {
	Kind Kind
	// File is the test's file as the caller can open it: the directory given to Run
	// joined with the file's path in it.
	File string
	// Line is the line of the test rule or case in File; 0 for a golden case, which is
	// the whole file.
	Line int
	// Name is the Rego rule name (test_...), or the case's name.
	Name string
	// Policy names what was tested: the Rego test package (data.verdict.payout_test), or
	// for cases the policy "<action> <language> <version>".
	Policy   string
	Status   Status
	Duration time.Duration
	// Detail says why a test failed: the failing expression and its values, the
	// evaluation error, or the difference between the wanted and the actual decision.
	Detail string
	// Trace is the evaluation trace of a failing Rego test (WithTrace only).
	Trace string
	// Output is what a Rego test printed with print().
	Output string
}

// Location returns "file:line", or the file alone when the test is a whole file.
func (r Result) Location() string {
	if r.Line > 0 {
		return fmt.Sprintf("%s:%d", r.File, r.Line)
	}
	return r.File
}

// Report is what Run found.
type Report struct {
	// Results lists Rego tests (by file and line), then CEL cases, then golden cases.
	Results []Result
	// Files is the coverage of each policy file (WithCoverage only), in path order.
	Files []FileCoverage
	// Policies is the coverage of each policy (WithCoverage only): its files together.
	Policies []PolicyCoverage
}

// Passed returns how many tests passed.
func (r *Report) Passed() int { return r.count(Pass) }

// Failed returns how many tests failed.
func (r *Report) Failed() int { return r.count(Fail) }

// Skipped returns how many Rego tests were skipped (todo_test_ rules).
func (r *Report) Skipped() int { return r.count(Skip) }

func (r *Report) count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// FileCoverage is the coverage of one policy file: lines of a Rego file evaluated by at
// least one Rego test, or rules of a CEL policy that fired in at least one case.
type FileCoverage struct {
	File     string
	Policy   string // the action, or the package of a Rego library (verdict.lib)
	Language string // engine.LangRego or engine.LangCEL
	Unit     string // "lines" or "rules"
	Covered  int
	Total    int
	// Missed lists what was not covered: "file:line" ranges for Rego, "CODE (file:line)"
	// for the CEL rules that never fired.
	Missed []string
}

// Percent returns the covered share in percent; 100 when there is nothing to cover.
func (c FileCoverage) Percent() float64 { return percent(c.Covered, c.Total) }

// PolicyCoverage is the coverage of one policy, all its files together.
type PolicyCoverage struct {
	Policy   string
	Language string
	Unit     string
	Covered  int
	Total    int
}

// Percent returns the covered share in percent; 100 when there is nothing to cover.
func (c PolicyCoverage) Percent() float64 { return percent(c.Covered, c.Total) }

func percent(n, total int) float64 {
	if total == 0 {
		return 100
	}
	return 100 * float64(n) / float64(total)
}

type config struct {
	filter    *regexp.Regexp
	golden    string
	coverage  bool
	trace     bool
	evalLimit time.Duration
}

// Option configures Run.
type Option func(*config)

// WithFilter runs only the tests whose name matches re: the full name of a Rego test
// (data.verdict.payout_test.test_new_beneficiary), the name of a case.
func WithFilter(re *regexp.Regexp) Option { return func(c *config) { c.filter = re } }

// WithGolden replays the golden cases of dir instead of those found in the tested
// directory: dir holds *.json cases, directly or in testdata/cases.
func WithGolden(dir string) Option { return func(c *config) { c.golden = dir } }

// WithCoverage measures coverage: Rego lines evaluated by the Rego tests, CEL rules fired
// by the CEL and golden cases.
func WithCoverage() Option { return func(c *config) { c.coverage = true } }

// WithTrace records the full evaluation trace of every failing Rego test.
func WithTrace() Option { return func(c *config) { c.trace = true } }

// WithEvalTimeout bounds the evaluation of one case (default 1 s: generous, so that a
// slow test machine never fails a case; the server's own deadline is much shorter).
func WithEvalTimeout(d time.Duration) Option { return func(c *config) { c.evalLimit = d } }

func (c *config) match(name string) bool { return c.filter == nil || c.filter.MatchString(name) }

// root is one bundle: a directory loaded with engine.Load.
type root struct {
	dir string // as given, joined: what file names are displayed relative to
	set *engine.PolicySet
}

func (r *root) display(rel string) string { return filepath.Join(r.dir, filepath.FromSlash(rel)) }

// Run tests the policies in dir (see the package documentation for the layouts it
// accepts) and returns every test's result. Failing tests are results, not errors.
//
// Run returns an *engine.LoadError, with file names relative to the working directory
// (dir joined), when a bundle does not load as the server would load it, or when a Rego
// test file does not compile; and an error when dir or the golden directory cannot be
// read or a case file is malformed.
func Run(ctx context.Context, dir string, opts ...Option) (*Report, error) {
	cfg := config{evalLimit: time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	dirs, goldenDir, err := resolveLayout(dir, cfg.golden)
	if err != nil {
		return nil, err
	}
	var roots []*root
	var problems []engine.Problem
	for _, d := range dirs {
		set, err := engine.Load(os.DirFS(d))
		var le *engine.LoadError
		switch {
		case errors.As(err, &le):
			for _, p := range le.Problems {
				if p.File != "" {
					p.File = filepath.Join(d, filepath.FromSlash(p.File))
				} else {
					p.File = d
				}
				problems = append(problems, p)
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("load %s: %w", d, err)
		}
		roots = append(roots, &root{dir: d, set: set})
	}
	if len(problems) > 0 {
		return nil, &engine.LoadError{Problems: problems}
	}

	rep := &Report{}
	cov := newCoverage()
	for _, r := range roots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := runRego(ctx, r, &cfg, cov)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res...)
	}
	for _, r := range roots {
		res, err := runCELCases(ctx, r, &cfg, cov)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res...)
	}
	if goldenDir != "" {
		res, err := runGolden(ctx, roots, goldenDir, &cfg, cov)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res...)
	}
	if cfg.coverage {
		if err := cov.celRules(roots); err != nil {
			return nil, err
		}
		rep.Files, rep.Policies = cov.report()
	}
	return rep, nil
}

// resolveLayout returns the bundle directories to load and the golden case directory
// ("" when there is none).
func resolveLayout(dir, golden string) ([]string, string, error) {
	if err := isDir(dir); err != nil {
		return nil, "", err
	}
	var dirs []string
	if isDir(filepath.Join(dir, "bundle")) == nil {
		dirs = append(dirs, filepath.Join(dir, "bundle"))
		if isDir(filepath.Join(dir, "cel")) == nil {
			dirs = append(dirs, filepath.Join(dir, "cel"))
		}
	} else {
		dirs = append(dirs, dir)
	}
	goldenDir := ""
	if golden != "" {
		if err := isDir(golden); err != nil {
			return nil, "", err
		}
		goldenDir = golden
		if isDir(filepath.Join(golden, "testdata", "cases")) == nil {
			goldenDir = filepath.Join(golden, "testdata", "cases")
		}
	} else if isDir(filepath.Join(dir, "testdata", "cases")) == nil {
		goldenDir = filepath.Join(dir, "testdata", "cases")
	}
	return slices.Clip(dirs), goldenDir, nil
}

func isDir(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

// walkFiles lists the files of root with one of the suffixes, skipping hidden
// directories as engine.Load does, in lexical order.
func walkFiles(dir string, suffixes ...string) ([]string, error) {
	var out []string
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && len(d.Name()) > 0 && d.Name()[0] == '.' {
				return fs.SkipDir
			}
			return nil
		}
		for _, s := range suffixes {
			if len(p) > len(s) && p[len(p)-len(s):] == s {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	return out, err
}
