package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// storeDir returns a data directory holding a new, empty embedded store, as `verdict migrate`
// (or the first `verdict serve`) leaves it: the commands that read or maintain a store do
// not create one.
func storeDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, _, err := runArgs(t, nil, "migrate", "--data-dir", dir); err != nil || !strings.HasPrefix(out, "embedded store created") {
		t.Fatalf("migrate a new data directory: %q, %v", out, err)
	}
	return dir
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{[]string{"eval"}, nil, "--input is required"},
		{[]string{"eval", "--nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"serve", "--decide-timeout", "soon"}, nil, `--decide-timeout: "soon" is not a positive duration`},
		{[]string{"serve"}, nil, "no API keys"},
		{[]string{"serve"}, map[string]string{"VERDICT_API_KEYS": "a:short:decide"}, "secret must be at least 16 characters"},
		{[]string{"serve"}, map[string]string{"VERDICT_API_KEYS": "a:0123456789abcdef0123:decide,b:0123456789abcdef0123:admin"}, "entry 2: the same secret as entry 1"},
		{[]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, map[string]string{"VERDICT_PUBLIC_URL": "https://v.example.com/api?tenant=1"}, "without credentials, query or fragment"},
		{[]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, map[string]string{"VERDICT_VERIFICATION_TTL": "0"}, `VERDICT_VERIFICATION_TTL: "0" is not a positive duration`},
		{[]string{"serve"}, map[string]string{"VERDICT_DEV": "yes"}, `VERDICT_DEV: "yes" is not a boolean`},
		{[]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, map[string]string{"VERDICT_SANDBOX": "on"}, `VERDICT_SANDBOX: "on" is not a boolean`},
		{[]string{"serve", "--dev", "--source-timeout", "1s"}, nil, "--source-timeout must not exceed"},
		// A value from the environment is named by its variable, one from a flag by the flag.
		{[]string{"serve", "--dev"}, map[string]string{"VERDICT_DECIDE_TIMEOUT": "soon"}, `serve: VERDICT_DECIDE_TIMEOUT: "soon" is not a positive duration`},
		{[]string{"serve", "--dev", "--source-timeout", "x"}, map[string]string{"VERDICT_SOURCE_TIMEOUT": "10ms"}, `serve: --source-timeout: "x" is not a positive duration`},
		{[]string{"serve", "--dev"}, map[string]string{"VERDICT_SHADOW_RATE": "20/s"}, "serve: VERDICT_SHADOW_RATE must be a number"},
		{[]string{"serve", "--dev"}, map[string]string{"VERDICT_LOG_LEVEL": "loud"}, `serve: VERDICT_LOG_LEVEL: log level "loud"`},
		{[]string{"serve", "--dev", "--log-level", "loud"}, nil, `serve: --log-level: log level "loud"`},
		{[]string{"audit"}, nil, "missing subcommand"},
		{[]string{"audit", "checkpoint"}, nil, "--private-key is required"},
	}
	for _, tc := range tests {
		_, _, err := runArgs(t, tc.env, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want usage error containing %q", tc.args, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %q", tc.args, err)
		}
	}
}

func TestEval(t *testing.T) {
	dir := t.TempDir()
	in := map[string]any{
		"action": "payout", "subject": map[string]any{"id": "u1", "account_age_days": 10},
		"device": map[string]any{"id": "d1"}, "context": map[string]any{"amount": 900, "payout_method": "bank"},
		"behavior": map[string]any{},
		"signals": map[string]any{
			"verification": map[string]any{"status": "approved", "provider": "sandbox", "score": 0.9, "reason_codes": []string{}, "age_days": 3},
			"velocity":     map[string]any{"user": map[string]any{"count_1m": 1, "count_1h": 1, "count_24h": 1}, "device": map[string]any{}, "ip": map[string]any{}},
			"device":       map[string]any{"known": true, "age_hours": 100, "users_seen": 1, "flagged": false},
			"lists":        map[string]any{"deny_user": false},
			"unavailable":  []string{},
		},
	}
	b, _ := json.Marshal(in)
	path := filepath.Join(dir, "in.json")
	os.WriteFile(path, b, 0o644)
	out, _, err := runArgs(t, nil, "eval", "--input", path)
	if err != nil {
		t.Fatal(err)
	}
	d := evalAnswer(t, out)
	if d.Outcome != "review" || len(d.Reasons) == 0 || d.Reasons[0].Code != "AMOUNT_OVER_LIMIT" {
		t.Fatalf("eval = %s", out)
	}

	os.WriteFile(path, []byte(`{"action": "payout", "subjct": {}}`), 0o644)
	if _, _, err := runArgs(t, nil, "eval", "--input", path); err == nil || !strings.Contains(err.Error(), "not a policy input document") {
		t.Fatalf("bad input: err = %v", err)
	}
	os.WriteFile(path, append(bytes.Clone(b), " trailing"...), 0o644)
	if _, _, err := runArgs(t, nil, "eval", "--input", path); err == nil || !strings.Contains(err.Error(), "data after the JSON object") {
		t.Fatalf("input with trailing data: err = %v", err)
	}
	os.WriteFile(path, b, 0o644)
	bad := filepath.Join(dir, "bundle")
	os.MkdirAll(filepath.Join(bad, "x"), 0o755)
	os.WriteFile(filepath.Join(bad, "x", "x.rego"), []byte("# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\n"), 0o644)
	if _, _, err := runArgs(t, nil, "eval", "--input", path, "--policies", bad); err == nil || !strings.Contains(err.Error(), "x/x.rego:") {
		t.Fatalf("bad bundle: err = %v", err)
	}
}

func TestAuditVerifyAndCheckpointEmbedded(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VERDICT_DATA_DIR": filepath.Join(dir, "data")}
	key := filepath.Join(dir, "audit")
	if _, _, err := runArgs(t, env, "audit", "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	// A second keygen to the same prefix refuses, and the pair stays as it was.
	before, _ := os.ReadFile(key + ".key")
	if _, _, err := runArgs(t, env, "audit", "keygen", "--out", key); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("keygen over an existing pair: %v", err)
	}
	if after, _ := os.ReadFile(key + ".key"); !bytes.Equal(before, after) {
		t.Fatal("keygen replaced an existing private key")
	}
	if st, err := os.Stat(key + ".key"); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("private key file mode: %v %v", st.Mode(), err)
	}
	// The two halves of the pair cannot be swapped: both are 32 bytes of base64.
	if _, err := readKey(key+".pub", 32, privateKeyHeader); err == nil || !strings.Contains(err.Error(), "is the public key") {
		t.Fatalf("the public key read as the private one: %v", err)
	}
	if _, err := readKey(key+".key", 32, publicKeyHeader); err == nil || !strings.Contains(err.Error(), "is the private key") {
		t.Fatalf("the private key read as the public one: %v", err)
	}
	// A data directory without a store (a mistyped --data-dir) is an error, not an empty
	// chain that verifies, and nothing is created there.
	for _, args := range [][]string{{"audit", "verify"}, {"audit", "checkpoint", "--private-key", key + ".key"}} {
		if out, _, err := runArgs(t, env, args...); err == nil || !strings.Contains(err.Error(), "no embedded store at "+filepath.Join(dir, "data", "verdict.db")) {
			t.Fatalf("%v without a store: %q %v", args, out, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("audit verify created the data directory: %v", err)
	}
	if out, _, err := runArgs(t, env, "migrate"); err != nil || !strings.HasPrefix(out, "embedded store created") {
		t.Fatalf("migrate: %q %v", out, err)
	}
	out, _, err := runArgs(t, env, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit chain ok: 0 events") {
		t.Fatalf("verify empty: %q %v", out, err)
	}
	cp := filepath.Join(dir, "cp.json")
	if _, _, err := runArgs(t, env, "audit", "checkpoint", "--private-key", key+".key", "--out", cp); err != nil {
		t.Fatal(err)
	}
	out, _, err = runArgs(t, env, "audit", "verify", "--checkpoint", cp, "--public-key", key+".pub")
	if err != nil || !strings.Contains(out, "checkpoint ok") {
		t.Fatalf("verify with checkpoint: %q %v", out, err)
	}
	if _, _, err := runArgs(t, env, "audit", "verify", "--checkpoint", cp, "--public-key", key+".key"); err == nil {
		t.Fatal("a private key file was accepted as a public key")
	}
}

// TestHelpIsNotAnError: help asked of a command group prints its usage to stdout; help of a
// command is a usage error marked as help, which main exits 0 on.
func TestHelpIsNotAnError(t *testing.T) {
	for _, group := range []string{"audit", "labels", "retention", "keys", "golden", "policy"} {
		for _, h := range []string{"-h", "--help", "help"} {
			out, _, err := runArgs(t, nil, group, h)
			if err != nil || !strings.Contains(out, "verdict "+group) {
				t.Errorf("verdict %s %s: %q %v", group, h, out, err)
			}
		}
	}
	for _, args := range [][]string{{"erase", "-h"}, {"eval", "--help"}, {"audit", "verify", "-h"}, {"test", "--help"}, {"backtest", "-h"}, {"version", "-h"}, {"retention", "default", "--help"}} {
		var ue usageError
		if _, _, err := runArgs(t, nil, args...); !errors.As(err, &ue) || !ue.help {
			t.Errorf("verdict %v: %v, want a help request", args, err)
		}
	}
	for _, args := range [][]string{{"version", "--json"}, {"version", "now"}, {"retention", "default", "extra"}} {
		var ue usageError
		if _, _, err := runArgs(t, nil, args...); !errors.As(err, &ue) || ue.help {
			t.Errorf("verdict %v: %v, want a usage error", args, err)
		}
	}
}

// TestFailedStartClaimsNoPseudonymKey: a start refused for a bad setting leaves the store
// free to take the pseudonym key of the next, correct start.
func TestFailedStartClaimsNoPseudonymKey(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VERDICT_PUBLIC_URL": "verdict.example.com"} // not absolute: refused
	if _, _, err := runArgs(t, env, "serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir); err == nil {
		t.Fatal("serve with a bad VERDICT_PUBLIC_URL started")
	}
	st, err := openStore(context.Background(), backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.ClaimKeyCheck(context.Background(), "pseudonym", []byte("probe"))
	if err != nil || string(got) != "probe" {
		t.Fatalf("the failed start claimed the pseudonym key check: %q, %v", got, err)
	}
}

func TestEveryTenSeconds(t *testing.T) {
	var logged []int
	f := everyTenSeconds(func(_ error, suppressed int) { logged = append(logged, suppressed) })
	for range 5 {
		f(errors.New("down"))
	}
	if len(logged) != 1 || logged[0] != 0 {
		t.Fatalf("five failures in a row logged %v, want one line", logged)
	}
}

// TestEvalAppliesFailMode: eval answers as the server did, so a stored degraded decision
// replays to its stored outcome: unavailable sources in the input and a policy error shape
// the answer by the action's fail mode (payout fails closed), and a policy error is also
// the exit status.
func TestEvalAppliesFailMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.json")
	os.WriteFile(path, []byte(`{"action":"payout","subject":{"id":"u1","account_age_days":400},"device":{"id":"d1"},
		"context":{"amount":50},"signals":{"verification":{"status":"approved","age_days":3},
		"device":{"known":true,"age_hours":1000},"lists":{},"unavailable":["velocity","device"]}}`), 0o644)
	out, _, err := runArgs(t, nil, "eval", "--input", path)
	if err != nil {
		t.Fatal(err)
	}
	d := evalAnswer(t, out)
	if d.Outcome != "block" || !strings.Contains(out, `"SIGNALS_UNAVAILABLE"`) {
		t.Fatalf("payout with velocity unavailable: %s, want block (fail closed) with SIGNALS_UNAVAILABLE", out)
	}

	bundle := filepath.Join(dir, "bundle")
	os.MkdirAll(bundle, 0o755)
	os.WriteFile(filepath.Join(bundle, "login.cel.yaml"), []byte("action: login\nversion: login-err\nfail_mode: review\nrules:\n"+
		"  - code: DENY_LIST_USER\n    outcome: block\n    score: 100\n    message: m\n    when: context.nosuch > 3\n"), 0o644)
	os.WriteFile(path, []byte(`{"action":"login","subject":{"id":"u1"},"context":{}}`), 0o644)
	out, _, err = runArgs(t, nil, "eval", "--input", path, "--policies", bundle)
	if err == nil || !strings.Contains(err.Error(), "fail mode review") {
		t.Fatalf("policy error: err = %v, want one naming the fail mode", err)
	}
	if d = evalAnswer(t, out); d.Outcome != "review" || !strings.Contains(out, `"POLICY_ERROR"`) {
		t.Fatalf("policy error: printed %q, want the fail-mode answer review with POLICY_ERROR", out)
	}
}

// TestServeRefusesBadGOGC: the Go runtime reads a GOGC it cannot parse as 100 without a
// word (and serve then leaves its own 400 unset); serve refuses it instead.
func TestServeRefusesBadGOGC(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "off": true, "400": true, "-1": true, "400%": false, "OFF": false, "+400": false, "1e3": false} {
		_, err := parseServe([]string{"--dev"}, func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}, io.Discard)
		var ue usageError
		if ok && err != nil {
			t.Errorf("GOGC=%q: %v", v, err)
		}
		if !ok && (!errors.As(err, &ue) || !strings.Contains(err.Error(), "GOGC: ") || !strings.Contains(err.Error(), "is not a percentage (e.g. 400) or off")) {
			t.Errorf("GOGC=%q: %v, want a usage error naming GOGC", v, err)
		}
	}
}

// evalDecision is what the tests read of a decision verdict eval prints.
type evalDecision struct {
	Outcome string `json:"outcome"`
	Reasons []struct {
		Code string `json:"code"`
	} `json:"reasons"`
}

// evalAnswer decodes the decision verdict eval printed.
func evalAnswer(t *testing.T, out string) evalDecision {
	t.Helper()
	var d evalDecision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return d
}
