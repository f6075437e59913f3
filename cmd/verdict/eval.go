package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/engine"
)

func runEval(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	action := fs.String("action", "", "action whose policy to evaluate (default: the input's action)")
	inputPath := fs.String("input", "", "policy input document (JSON; - for stdin), e.g. the input of GET /v1/decisions/{id}")
	policiesDir := fs.String("policies", envOr(getenv, "VERDICT_POLICIES", ""), "policy bundle directory (default: the embedded bundle) [VERDICT_POLICIES]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *inputPath == "" {
		return usageError{msg: "eval: --input is required"}
	}
	var raw []byte
	var err error
	if *inputPath == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(*inputPath)
	}
	if err != nil {
		return fmt.Errorf("eval: read input: %w", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return fmt.Errorf("eval: %s is empty: want a policy input document (JSON), e.g. the input of GET /v1/decisions/{id}", *inputPath)
	}
	var in engine.Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("eval: %s: not a policy input document: %v", *inputPath, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("eval: %s: not a policy input document: data after the JSON object", *inputPath)
	}
	// The request sections are checked, and normalised, as POST /v1/decide does: an input
	// the server refuses with 400 (a numeric subject.id) has no answer to show.
	if bad := httpapi.CheckInput(&in); len(bad) > 0 {
		msgs := make([]string, len(bad))
		for i, f := range bad {
			msgs[i] = f.Pointer + " " + f.Detail
		}
		return fmt.Errorf("eval: %s: the server would refuse this input (400): %s", *inputPath, strings.Join(msgs, "; "))
	}
	if *action != "" {
		in.Action = *action
	}
	if in.Action == "" {
		return usageError{msg: "eval: no action: pass --action or set \"action\" in the input"}
	}
	set, err := loadPolicies(*policiesDir, policiesSetting(fs, *policiesDir))
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	p, ok := set.Policy(in.Action)
	if !ok {
		return fmt.Errorf("eval: unknown action %q (the bundle has %s)", in.Action, strings.Join(set.Actions(), ", "))
	}
	// The answer is the server's: a policy error, and signal sources the policy reads that
	// the input names as unavailable or not gathered, shape it by the action's fail mode
	// (as /v1/decide, shadow evaluation and backtests do), so a stored degraded decision
	// replays to its stored outcome.
	d, evalErr := engine.New(set).Evaluate(ctx, p, &in)
	if evalErr != nil {
		d = engine.ApplyFailMode(d, p.FailMode, engine.CausePolicyError, true)
	}
	if len(engine.Degraded(p, &in.Signals)) > 0 {
		d = engine.ApplyFailMode(d, p.FailMode, engine.CauseSignalsUnavailable, false)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	if evalErr != nil {
		// The fail-mode answer is printed, and the exit status says the policy failed.
		return fmt.Errorf("eval: %w (answered by fail mode %s)", evalErr, p.FailMode)
	}
	return nil
}
