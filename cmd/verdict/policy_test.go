package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

func runPolicyArgs(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runPolicy(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// copyDir copies the directory src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

var fullHash = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestPolicyLifecycle(t *testing.T) {
	env := map[string]string{"VERDICT_DATA_DIR": storeDir(t), "USER": "alice"}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, err := runPolicyArgs(t, env, args...)
		if err != nil {
			t.Fatalf("policy %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
		}
		return out
	}

	bundle := copyDir(t, filepath.Join("..", "..", "policies", "bundle"))
	if out := run("lint", bundle); !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "payout@") || !strings.Contains(out, "login@") {
		t.Errorf("lint = %q", out)
	}

	h1 := strings.TrimSpace(run("publish", bundle, "--label", "shipped", "--changelog", "the shipped bundle"))
	if !fullHash.MatchString(h1) {
		t.Fatalf("publish printed %q, want a hash", h1)
	}
	files, err := readBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if want := engine.BundleHash(files); h1 != want {
		t.Errorf("published hash %s, want engine.BundleHash %s", h1, want)
	}
	if _, ok := files["payout/payout_test.rego"]; !ok {
		t.Error("the published files leave out the Rego tests")
	}
	if again := strings.TrimSpace(run("publish", bundle, "--label", "other", "--changelog", "again")); again != h1 {
		t.Errorf("republishing gave %s, want %s", again, h1)
	}

	// A copy with one threshold changed is another version.
	payout := filepath.Join(bundle, "payout", "payout.rego")
	src, err := os.ReadFile(payout)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(src, []byte(`"max_crypto_amount": 1000,`), []byte(`"max_crypto_amount": 1500,`), 1)
	if bytes.Equal(changed, src) {
		t.Fatal("threshold max_crypto_amount not found in payout.rego")
	}
	if err := os.WriteFile(payout, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := strings.TrimSpace(run("publish", "--label", "crypto-1500", bundle, "--changelog", "raise the crypto limit", "--author", "carol"))
	if h2 == h1 || !fullHash.MatchString(h2) {
		t.Fatalf("publish of the changed copy = %q (first %s)", h2, h1)
	}
	cel := strings.TrimSpace(run("publish", filepath.Join("..", "..", "policies", "cel"), "--label", "login-cel", "--changelog", "login in CEL"))

	list := run("list")
	for _, want := range []string{"crypto-1500", "shipped", "login-cel", shortHash(h2), "carol"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	if strings.Index(list, "login-cel") > strings.Index(list, "shipped") {
		t.Errorf("list is not newest first:\n%s", list)
	}
	if show := run("show", h2[:len("sha256:")+12]); !strings.Contains(show, "payout/payout.rego") || !strings.Contains(show, "raise the crypto limit") {
		t.Errorf("show by prefix =\n%s", show)
	}

	diff := run("diff", h1, strings.TrimPrefix(h2, "sha256:")[:14])
	for _, want := range []string{"--- a/payout/payout.rego", "+++ b/payout/payout.rego", `-	"max_crypto_amount": 1000,`, `+	"max_crypto_amount": 1500,`, "@@ -"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	changes := 0
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "---")) || (strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++")) {
			changes++
		}
	}
	if strings.Contains(diff, "login.rego") || changes != 2 {
		t.Errorf("diff shows more than the one changed line:\n%s", diff)
	}

	// Activation with approval: pending is not live, the requester cannot approve.
	out := run("activate", "payout", h2, "--require-approval")
	m := regexp.MustCompile(`activation (\S+) of`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("activate --require-approval = %q", out)
	}
	id := m[1]
	if st := openTestStore(t, env); st.Active["payout"] != "" {
		t.Errorf("pending activation is live: %v", st.Active)
	}
	if _, _, err := runPolicyArgs(t, env, "approve", id); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approve by the requester = %v, want ErrConflict", err)
	}
	if out := run("approve", id, "--actor", "bob"); !strings.Contains(out, "approved by bob") {
		t.Errorf("approve = %q", out)
	}
	if st := openTestStore(t, env); st.Active["payout"] != h2 {
		t.Errorf("after approval live = %v, want payout %s", st.Active, h2)
	}
	if _, _, err := runPolicyArgs(t, env, "activate", "payout", cel); err == nil || !strings.Contains(err.Error(), `defines no policy for "payout"`) {
		t.Errorf("activating a version without the action = %v", err)
	}
	run("activate", "login", cel)
	// Shadowing checks what activating checks: the version must serve the action, once.
	if _, _, err := runPolicyArgs(t, env, "shadow", "nosuchaction", h1); err == nil || !strings.Contains(err.Error(), `defines no policy for "nosuchaction"`) {
		t.Errorf("shadowing a version for an action it lacks = %v", err)
	}
	if _, _, err := runPolicyArgs(t, env, "shadow", "payout", h1, h1); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("shadowing one version twice = %v", err)
	}
	run("shadow", "payout", h1)
	if st := openTestStore(t, env); len(st.Shadow["payout"]) != 1 || st.Shadow["payout"][0] != h1 || st.Active["login"] != cel {
		t.Errorf("live state = %+v", st)
	}
	// Clearing a misspelt action says it changed nothing and names the shadowed ones.
	if out := run("shadow", "paytout"); strings.Contains(out, "cleared") || !strings.Contains(out, "nothing changed (actions with shadow versions: payout)") {
		t.Errorf("clearing the shadow versions of an action without any = %q", out)
	}

	hist := run("history", "payout")
	if !strings.Contains(hist, id) || !strings.Contains(hist, "active") || !strings.Contains(hist, "bob") {
		t.Errorf("history =\n%s", hist)
	}
	if out := run("rollback", "payout"); !strings.Contains(out, "the default bundle") {
		t.Errorf("rollback = %q", out)
	}
	if st := openTestStore(t, env); st.Active["payout"] != "" {
		t.Errorf("after rollback live = %v", st.Active)
	}
	if _, _, err := runPolicyArgs(t, env, "rollback", "payout"); err == nil || !strings.HasSuffix(err.Error(), `action "payout" runs the default bundle: nothing to roll back`) {
		t.Errorf("rollback of the default bundle = %v, want it to say there is nothing to roll back, once", err)
	}
	if out := run("shadow", "payout"); !strings.Contains(out, "cleared") {
		t.Errorf("shadow with no hash = %q", out)
	}
	if st := openTestStore(t, env); len(st.Shadow["payout"]) != 0 {
		t.Errorf("after clearing, shadow = %v", st.Shadow)
	}
	if out := run("shadow", "payout"); !strings.Contains(out, "nothing changed (actions with shadow versions: none)") {
		t.Errorf("clearing again = %q", out)
	}
}

// openTestStore returns the live state of the embedded store the CLI used.
func openTestStore(t *testing.T, env map[string]string) store.LivePolicies {
	t.Helper()
	st, err := openStore(t.Context(), backendConfig{dataDir: env["VERDICT_DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lp, err := st.LivePolicies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

func TestPolicyLintProblems(t *testing.T) {
	dir := t.TempDir()
	lib, err := os.ReadFile(filepath.Join("..", "..", "policies", "bundle", "lib", "verdict.rego"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib/verdict.rego", string(lib))
	write("x/x.rego", `# METADATA
# custom:
#   fail_mode: review
package verdict.x

import data.verdict.lib

reasons contains lib.reason("lower_case", "review", 10, "not a code") if {
	input.context.flag
}

decision := lib.decide(reasons)
`)
	write("x/data.json", `{"thresholds": `)
	out, _, err := runPolicyArgs(t, nil, "lint", dir)
	if err == nil {
		t.Fatalf("lint of a bad bundle succeeded: %s", out)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	for _, want := range []string{
		filepath.ToSlash(dir) + `/x/x.rego:8: reason code "lower_case" must be UPPER_SNAKE`,
		"x/data.json: data file is not valid JSON",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "x/data.json:"); n != 1 {
		t.Errorf("the bad data file is reported %d times, want once:\n%s", n, out)
	}

	// A file that does not compile is reported as file:line by the engine.
	write("x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\n")
	write("x/data.json", `{}`)
	if out, _, err := runPolicyArgs(t, nil, "lint", dir); err == nil || !strings.Contains(out, "x/x.rego:") {
		t.Errorf("lint of a syntax error = %v:\n%s", err, out)
	}

	// With a reason-code registry, a code the registry does not list is refused, in Rego
	// and in CEL alike; registered codes pass.
	write("x/x.rego", `# METADATA
# custom:
#   fail_mode: review
package verdict.x

import data.verdict.lib

reasons contains lib.reason("NEW_SIGNAL_X", "review", 10, "registered") if {
	input.context.flag
}

reasons contains lib.reason("UNLISTED_CODE", "review", 10, "not registered") if {
	input.context.other
}

decision := lib.decide(reasons)
`)
	write("y.cel.yaml", "action: y\nrules:\n  - code: CEL_UNLISTED\n    outcome: review\n    message: m\n    when: context.flag == true\n")
	write("reason_codes.yaml", "codes:\n  NEW_SIGNAL_X:\n    actions: [x]\n    outcome: review\n    meaning: A new signal fired.\n")
	out, _, err = runPolicyArgs(t, nil, "lint", dir)
	if err == nil {
		t.Fatalf("lint with unregistered codes succeeded: %s", out)
	}
	for _, want := range []string{
		`x/x.rego:12: reason code "UNLISTED_CODE" is not in reason_codes.yaml`,
		`y.cel.yaml:3: reason code "CEL_UNLISTED" is not in reason_codes.yaml`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "NEW_SIGNAL_X") {
		t.Errorf("a registered code was refused:\n%s", out)
	}

	// A CEL code that is not UPPER_SNAKE is one problem, said once (the engine refuses it
	// at compile time), not also as a lint finding.
	write("y.cel.yaml", "action: y\nfail_mode: review\nrules:\n  - code: Card-Add\n    outcome: review\n    message: m\n    when: context.flag == true\n")
	write("x/x.rego", "# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.x\n\ndecision := {\"outcome\": \"approve\", \"reasons\": [], \"score\": 0}\n")
	out, _, err = runPolicyArgs(t, nil, "lint", dir)
	if err == nil {
		t.Fatalf("lint of a bad CEL code succeeded: %s", out)
	}
	if n := strings.Count(out, `"Card-Add"`); n != 1 {
		t.Errorf("the bad CEL code is reported %d times, want once:\n%s", n, out)
	}
}

func TestPolicyUsageErrors(t *testing.T) {
	env := map[string]string{"VERDICT_DATA_DIR": storeDir(t)}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing subcommand"},
		{[]string{"frob"}, `unknown subcommand "frob"`},
		{[]string{"lint"}, "want DIR"},
		{[]string{"publish", "dir"}, "--label and --changelog are required"},
		{[]string{"publish", "--label", "x", "--changelog", "y"}, "want DIR"},
		{[]string{"activate", "login"}, "want ACTION HASH"},
		{[]string{"activate", "Login!", "abc"}, "invalid action"},
		{[]string{"show", "xyz"}, "is not a version hash"},
		{[]string{"show", "abcdef"}, "too short"},
		{[]string{"list", "extra"}, "want no arguments"},
		{[]string{"history", "login", "--nope"}, "flag provided but not defined: -nope"},
	} {
		_, _, err := runPolicyArgs(t, env, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want usage error containing %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := runPolicyArgs(t, env, "show", "sha256:0123456789abcdef"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("show of an unknown prefix = %v, want ErrNotFound", err)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"
	b := "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13"
	var out bytes.Buffer
	writeUnified(&out, splitLines([]byte(a)), splitLines([]byte(b)), 3)
	want := "@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n" +
		"@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n\\ No newline at end of file\n"
	if out.String() != want {
		t.Errorf("unified diff =\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	writeUnified(&out, nil, splitLines([]byte("x\n")), 3)
	if out.String() != "@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("diff from empty = %q", out.String())
	}
}

// TestReloadKeepsEveryAction: a SIGHUP reload of a bundle that lost an action is refused;
// one that compiles and keeps them (adding one is fine) is taken.
func TestReloadKeepsEveryAction(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "policies", "bundle"))); err != nil {
		t.Fatal(err)
	}
	running, err := loadPolicies(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "payout")); err != nil {
		t.Fatal(err)
	}
	if _, err := reloadPolicies(dir, running); err == nil || !strings.Contains(err.Error(), "no longer defines payout") {
		t.Fatalf("reload without payout: %v", err)
	}
	if err := os.CopyFS(filepath.Join(dir, "payout"), os.DirFS(filepath.Join("..", "..", "policies", "bundle", "payout"))); err != nil {
		t.Fatal(err)
	}
	if set, err := reloadPolicies(dir, running); err != nil || len(set.Actions()) != len(running.Actions()) {
		t.Fatalf("reload of the whole bundle: %v", err)
	}
}
