package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/engine/policytest"
	"github.com/verdict-engine/verdict/store"
)

const goldenUsage = `Usage: verdict golden export --out DIR [--action A] [--since RFC3339] [--limit N]

Writes stored decisions as golden cases, DIR/<action>-<decision_id>.json, with personal
data removed from their input (ids pseudonymized, contact and identity fields dropped, IP
mapped to a documentation address). Decisions shaped by a fail mode (a signal source
down, a policy error) are skipped: their answer is not the policy's alone. Check them
with: verdict test --golden DIR POLICIES

Flags:
`

// decisionScanner is the store port golden export reads through.
type decisionScanner interface {
	ScanDecisions(ctx context.Context, f store.DecisionFilter, fn func(store.LabeledDecision) error) error
}

// runGolden is `verdict golden export`.
func runGolden(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprint(stderr, goldenUsage)
		if len(args) == 0 {
			return usageError{msg: "golden: missing subcommand (export)"}
		}
		return usageError{msg: fmt.Sprintf("golden: unknown subcommand %q (want export)", args[0])}
	}
	fs := newFlagSet("golden export", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, goldenUsage)
		fs.PrintDefaults()
	}
	var opts exportOptions
	var backend backendConfig
	fs.StringVar(&opts.out, "out", "", "directory to write the cases to (created if missing)")
	fs.StringVar(&opts.filter.Action, "action", "", "export only this action's decisions")
	since := fs.String("since", "", "export only decisions made at or after this time (RFC 3339)")
	fs.IntVar(&opts.limit, "limit", 0, "export at most this many decisions (0: all)")
	backendFlags(fs, &backend, getenv)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if opts.out == "" {
		return usageError{msg: "golden export: --out is required"}
	}
	if opts.limit < 0 {
		return usageError{msg: "golden export: --limit must not be negative"}
	}
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return usageError{msg: fmt.Sprintf("golden export: --since %q: want RFC 3339, like 2026-11-01T00:00:00Z", *since)}
		}
		opts.filter.From = t
	}
	st, err := openExistingStore(ctx, backend)
	if err != nil {
		return fmt.Errorf("golden export: %w", err)
	}
	defer st.Close()
	sc, ok := any(st.Store).(decisionScanner)
	if !ok {
		return fmt.Errorf("golden export: the %s store cannot scan decisions", st.kind)
	}
	return exportGolden(ctx, sc, opts, stdout)
}

type exportOptions struct {
	out    string
	filter store.DecisionFilter
	limit  int
}

var errLimit = errors.New("limit reached")

// exportGolden writes the decisions sc yields as golden cases.
func exportGolden(ctx context.Context, sc decisionScanner, opts exportOptions, stdout io.Writer) error {
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return fmt.Errorf("golden export: %w", err)
	}
	var written, degraded int
	err := sc.ScanDecisions(ctx, opts.filter, func(d store.LabeledDecision) error {
		if d.FailMode != "" {
			degraded++
			return nil
		}
		c, err := policytest.ExportCase(storedDecision(d))
		if err != nil {
			return err
		}
		if _, err := policytest.WriteCase(opts.out, c); err != nil {
			return err
		}
		written++
		if opts.limit > 0 && written >= opts.limit {
			return errLimit
		}
		return nil
	})
	if err != nil && !errors.Is(err, errLimit) {
		return fmt.Errorf("golden export: %w", err)
	}
	fmt.Fprintf(stdout, "exported %d decision(s) to %s", written, opts.out)
	if degraded > 0 {
		fmt.Fprintf(stdout, "; skipped %d shaped by a fail mode", degraded)
	}
	fmt.Fprintln(stdout)
	return nil
}

// storedDecision is what a golden case keeps of a stored decision.
func storedDecision(d store.LabeledDecision) policytest.StoredDecision {
	note := []string{"policy " + d.PolicyVersion + " " + d.PolicyHash, d.CreatedAt.UTC().Format(time.RFC3339)}
	for _, l := range d.Labels {
		note = append(note, "labeled "+l.Label)
	}
	var resp struct {
		StepUp string `json:"step_up"`
	}
	_ = json.Unmarshal(d.Response, &resp)
	return policytest.StoredDecision{
		ID: d.ID, Action: d.Action, Input: d.Input, Outcome: d.Outcome, ReasonCodes: d.ReasonCodes,
		StepUp: resp.StepUp, Note: strings.Join(note, ", "),
	}
}
