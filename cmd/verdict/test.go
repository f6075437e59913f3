package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/policytest"
)

const testUsage = `Usage: verdict test [flags] [DIR]

Tests the policies in DIR (default: the current directory) with no server and no
database: compiles them as the server would, runs every Rego test_ rule, every case of
the <action>.cases.yaml files next to CEL policies, and replays every golden decision
case of DIR/testdata/cases. DIR is a bundle, or a folder holding bundle/, cel/ and
testdata/cases/ (like policies/). Exit status: 0 all passed, 1 a failure or a policy that
does not compile, 2 a usage error.

Flags:
`

// runTest is `verdict test [DIR]`.
func runTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("test", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, testUsage)
		fs.PrintDefaults()
	}
	golden := fs.String("golden", "", "replay the golden cases of this directory (*.json, directly or in testdata/cases) instead of DIR's")
	coverage := fs.Bool("coverage", false, "print coverage per policy file: Rego lines evaluated by the tests, CEL rules fired by a case")
	runPattern := fs.String("run", "", "run only the tests whose name matches this regular expression")
	verbose := fs.Bool("v", false, "verbose: print output, traces of failing Rego tests, lines not covered")
	dir, err := parseWithDir(fs, args)
	if err != nil {
		return err
	}
	if dir == "" {
		dir = "."
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageError{msg: fmt.Sprintf("test: %s is not a directory", dir)}
	}
	var opts []policytest.Option
	if *runPattern != "" {
		re, err := regexp.Compile(*runPattern)
		if err != nil {
			return usageError{msg: fmt.Sprintf("test: --run: %v", strings.ReplaceAll(err.Error(), "\n", " "))}
		}
		opts = append(opts, policytest.WithFilter(re))
	}
	if *golden != "" {
		if st, err := os.Stat(*golden); err != nil || !st.IsDir() {
			return usageError{msg: fmt.Sprintf("test: --golden: %s is not a directory", *golden)}
		}
		opts = append(opts, policytest.WithGolden(*golden))
	}
	if *coverage {
		opts = append(opts, policytest.WithCoverage())
	}
	if *verbose {
		opts = append(opts, policytest.WithTrace())
	}
	rep, err := policytest.Run(ctx, dir, opts...)
	var le *engine.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		return fmt.Errorf("test: %d compile error(s)", len(le.Problems))
	}
	if err != nil {
		return fmt.Errorf("test: %w", err)
	}
	if err := rep.WriteText(stdout, *verbose); err != nil {
		return err
	}
	if n := rep.Failed(); n > 0 {
		return fmt.Errorf("test: %d failed", n)
	}
	if *runPattern != "" && rep.Passed() == 0 {
		// A mistyped pattern would otherwise pass by testing nothing.
		return fmt.Errorf("test: no test matches --run %q", *runPattern)
	}
	return nil
}

// parseWithDir parses flags placed before or after one optional positional argument.
func parseWithDir(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return "", usageError{help: true}
		}
		return "", usageError{msg: strings.TrimSpace(err.Error())}
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	dir := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[1:]); err != nil {
		return "", err
	}
	return dir, nil
}
