package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestCommandExitStatus(t *testing.T) {
	policiesDir := filepath.Join("..", "..", "policies")
	out, _, err := runArgsDirect(t, runTest, policiesDir)
	if err != nil {
		t.Fatalf("verdict test policies: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, " passed, 0 failed") {
		t.Errorf("last line %q", last)
	}
	if !strings.Contains(out, "PASS  "+filepath.Join(policiesDir, "bundle", "payout", "payout_test.rego")+":") {
		t.Errorf("no Rego test line:\n%s", out[:min(len(out), 2000)])
	}

	// A failing test: exit status 1 (an error that is not a usage error).
	bundle := t.TempDir()
	os.MkdirAll(filepath.Join(bundle, "x"), 0o755)
	os.WriteFile(filepath.Join(bundle, "x", "x.rego"), []byte("# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"score\": 0, \"reasons\": []}\n"), 0o644)
	os.WriteFile(filepath.Join(bundle, "x", "x_test.rego"), []byte("package verdict.x_test\n\nimport data.verdict.x\n\ntest_blocks if x.decision.outcome == \"block\"\n\ntest_approves if x.decision.outcome == \"approve\"\n"), 0o644)
	out, _, err = runArgsDirect(t, runTest, "--coverage", bundle)
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.HasSuffix(out, "1 passed, 1 failed\n") || !strings.Contains(out, "COVERED") {
		t.Fatalf("failing test: err = %v\n%s", err, out)
	}
	// --run selects the passing one: exit status 0; flags after DIR work too.
	if out, _, err = runArgsDirect(t, runTest, bundle, "--run", "approves$"); err != nil || !strings.HasSuffix(out, "1 passed, 0 failed\n") {
		t.Fatalf("--run: err = %v\n%s", err, out)
	}
	// A pattern that selects nothing (a typo) does not pass by testing nothing.
	if _, _, err = runArgsDirect(t, runTest, bundle, "--run", "aproves$"); err == nil || !strings.Contains(err.Error(), "no test matches") {
		t.Fatalf("--run matching nothing: err = %v", err)
	}

	// A policy that does not compile: exit status 1, file:line on stderr.
	os.WriteFile(filepath.Join(bundle, "x", "x.rego"), []byte("# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\n"), 0o644)
	_, errOut, err := runArgsDirect(t, runTest, bundle)
	if err == nil || errors.As(err, &ue) || !strings.Contains(errOut, filepath.Join(bundle, "x", "x.rego")+":") {
		t.Fatalf("compile error: err = %v, stderr %q", err, errOut)
	}

	// Usage errors: exit status 2.
	for _, args := range [][]string{
		{"--nope"},
		{filepath.Join(bundle, "missing")},
		{"--run", "("},
		{bundle, "extra"},
		{"--golden", filepath.Join(bundle, "missing"), bundle},
	} {
		if _, _, err := runArgsDirect(t, runTest, args...); !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
