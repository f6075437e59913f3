package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageError is a command-line mistake: exit status 2.
// usageError is a command line the program cannot run (exit status 2), or a request for
// help (help set: the usage was printed, exit status 0).
type usageError struct {
	msg  string
	help bool
}

func (e usageError) Error() string { return e.msg }

const usage = `verdict — decisioning engine for identity verification and fraud

Usage:
  verdict serve [flags]                       serve the HTTP API
  verdict eval --action A --input FILE        evaluate one policy input document, print the decision
  verdict migrate                             apply Postgres migrations (VERDICT_DATABASE_URL)
  verdict audit verify|checkpoint|keygen      check the tamper-evident audit log
  verdict test [flags] [DIR]                  run Rego tests, CEL cases and golden cases of a bundle (default DIR: .)
  verdict golden export --out DIR [flags]     write stored decisions as PII-scrubbed golden cases
  verdict policy lint|publish|list|show|diff|activate|approve|rollback|history|shadow
                                              version, activate and shadow policies
  verdict labels import FILE.csv              attach outcome labels (fraud, chargeback, legit, false_positive)
  verdict seed --decisions N [--days 90]      generate a labelled synthetic decision history
  verdict backtest --policies DIR [flags]     replay stored decisions through a candidate bundle
  verdict retention run [--dry-run] [flags]   delete what retention policies say is due
  verdict erase USER_ID [flags]               erase a subject (crypto-shredding), audited
  verdict keys rotate [flags]                 rewrap subject keys under the newest master key
  verdict version                             print the version

Run "verdict <command> -h" for a command's flags.
`

// run is the whole program: main only maps its error to an exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{}
	}
	cmd, rest := args[0], args[1:]
	groups := map[string]string{"audit": auditUsage, "labels": labelsUsage, "retention": retentionUsage, "keys": keysUsage, "golden": goldenUsage}
	if u, ok := groups[cmd]; ok && len(rest) == 1 && isHelp(rest[0]) {
		fmt.Fprint(stdout, u)
		return nil
	}
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "eval":
		return runEval(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, getenv, stdout, stderr)
	case "test":
		return runTest(ctx, rest, getenv, stdout, stderr)
	case "golden":
		return runGolden(ctx, rest, getenv, stdout, stderr)
	case "policy":
		return runPolicy(ctx, rest, getenv, stdout, stderr)
	case "labels":
		return runLabels(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "backtest":
		return runBacktest(ctx, rest, getenv, stdout, stderr)
	case "retention":
		return runRetention(ctx, rest, getenv, stdout, stderr)
	case "erase":
		return runErase(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "version":
		if err := parseFlags(newFlagSet("version", stderr), rest); err != nil {
			return err // -h is help, like every other command's
		}
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{msg: fmt.Sprintf("unknown command %q", cmd)}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("verdict "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning flag errors into one-line usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return usageError{help: true}
		}
		return usageError{msg: strings.TrimSpace(err.Error())}
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "verdict "), fs.Arg(0))}
	}
	return nil
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// envOr returns the environment variable's value, or def when unset.
func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
