package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPoliciesErrorsNameTheSetting(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.json")
	os.WriteFile(in, []byte(`{"action":"payout","subject":{"id":"u1"}}`), 0o644)
	bad := filepath.Join(t.TempDir(), "bundle")
	os.MkdirAll(filepath.Join(bad, "x"), 0o755)
	os.WriteFile(filepath.Join(bad, "x", "x.rego"), []byte("package verdict.x\n\ndecision := {\n"), 0o644)
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"eval", "--input", in, "--policies", bad}, "eval: --policies " + bad + ": load policies:"},
		{map[string]string{"VERDICT_POLICIES": bad}, []string{"eval", "--input", in}, "eval: VERDICT_POLICIES=" + bad + ": load policies:"},
		{map[string]string{"VERDICT_POLICIES": in}, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, "serve: VERDICT_POLICIES=" + in + ": not a directory"},
		{nil, []string{"seed", "--policies", bad + "-missing", "--out", filepath.Join(t.TempDir(), "x.jsonl")}, "seed: --policies " + bad + "-missing: no such directory"},
	} {
		_, _, err := runArgs(t, c.env, c.args...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v: %v, want it to start with %q", c.args, err, c.want)
		}
	}
}
