package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/policytest"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

type command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

func runArgsDirect(t *testing.T, cmd command, args ...string) (string, string, error) {
	t.Helper()
	return runEnvDirect(t, cmd, nil, args...)
}

func runEnvDirect(t *testing.T, cmd command, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cmd(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// storedDecisions decides every shipped golden case with the embedded bundle, as the
// server would, with personal data added to the input, and returns the records the
// server would store.
func storedDecisions(t *testing.T) []store.DecisionRecord {
	t.Helper()
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set, engine.WithEvalTimeout(time.Second))
	files, _ := filepath.Glob(filepath.Join("..", "..", "policies", "testdata", "cases", "*.json"))
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	var recs []store.DecisionRecord
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i, f := range files {
		c, err := policytest.ReadCase(f)
		if err != nil {
			t.Fatal(err)
		}
		var in engine.Input
		if err := json.Unmarshal(c.Input, &in); err != nil {
			t.Fatal(err)
		}
		in.Subject["email"] = fmt.Sprintf("user%d@example.com", i)
		in.Subject["phone"] = "+336000000" + fmt.Sprint(10+i)
		if in.Context == nil {
			in.Context = map[string]any{}
		}
		in.Context["user_agent"] = "Mozilla/5.0"
		d, err := e.Decide(context.Background(), &in)
		if err != nil {
			t.Fatal(err)
		}
		codes := make([]string, len(d.Reasons))
		for j, r := range d.Reasons {
			codes[j] = r.Code
		}
		input, _ := json.Marshal(&in)
		resp, _ := json.Marshal(map[string]any{"outcome": d.Outcome, "step_up": d.StepUp})
		subject, _ := in.Subject["id"].(string)
		recs = append(recs, store.DecisionRecord{
			ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), Action: in.Action, SubjectID: subject,
			Outcome: d.Outcome.String(), Score: d.Score, ReasonCodes: codes,
			PolicyVersion: d.Policy.Version, PolicyHash: d.Policy.Hash, Input: input, Response: resp,
			CreatedAt: at.Add(time.Duration(i) * time.Minute), Actor: "test", CorrelationID: fmt.Sprint("req-", i),
		})
	}
	return recs
}

// TestGoldenExportReplays exports decisions from the embedded store and checks that the
// export passes `verdict test --golden` against the policies that made them, and holds no
// email or phone.
func TestGoldenExportReplays(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	recs := storedDecisions(t)
	degraded := recs[0]
	degraded.ID, degraded.FailMode = "01900000-0000-7000-8000-999999999999", "review"
	degraded.CreatedAt = degraded.CreatedAt.Add(-time.Hour)
	st, err := sqlite.Open(context.Background(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := st.WriteDecisions(context.Background(), append(recs, degraded))
	if err == nil {
		err = errors.Join(errs...)
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"VERDICT_DATA_DIR": dataDir}
	out := filepath.Join(dir, "golden")
	stdout, _, err := runEnvDirect(t, runGolden, env, "export", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("exported %d decision(s) to %s; skipped 1 shaped by a fail mode\n", len(recs), out); stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != len(recs) {
		t.Fatalf("%d files, want %d", len(files), len(recs))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("@example.com")) || bytes.Contains(b, []byte("+33600")) || bytes.Contains(b, []byte("Mozilla")) {
			t.Fatalf("%s holds personal data:\n%s", f, b)
		}
	}
	if _, err := os.Stat(filepath.Join(out, recs[0].Action+"-"+recs[0].ID+".json")); err != nil {
		t.Errorf("file name: %v", err)
	}

	testOut, _, err := runArgsDirect(t, runTest, "--golden", out, filepath.Join("..", "..", "policies", "bundle"))
	if err != nil {
		t.Fatalf("verdict test --golden: %v\n%s", err, testOut)
	}

	// --action, --since and --limit select what is exported.
	out2 := filepath.Join(dir, "golden2")
	stdout, _, err = runEnvDirect(t, runGolden, env, "export", "--out", out2, "--action", "payout",
		"--since", recs[0].CreatedAt.Format(time.RFC3339), "--limit", "3")
	if err != nil || !strings.HasPrefix(stdout, "exported 3 decision(s)") {
		t.Fatalf("export --limit: %v %q", err, stdout)
	}
	files, _ = filepath.Glob(filepath.Join(out2, "payout-*.json"))
	if len(files) != 3 {
		t.Errorf("--action payout --limit 3 wrote %d payout cases", len(files))
	}

	var ue usageError
	for _, args := range [][]string{{}, {"import"}, {"export"}, {"export", "--out", out, "--since", "yesterday"}, {"export", "--out", out, "--limit", "-1"}} {
		if _, _, err := runEnvDirect(t, runGolden, env, args...); !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
