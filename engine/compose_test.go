package engine_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

// bundleFiles returns the embedded bundle's files, tests included, as a published
// version holds them.
func bundleFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(policies.Bundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = fs.ReadFile(policies.Bundle(), p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// nextPayout returns the bundle with payout relabelled payout-2026.12.2.
func nextPayout(t *testing.T) map[string][]byte {
	t.Helper()
	files := bundleFiles(t)
	src := string(files["payout/payout.rego"])
	if !strings.Contains(src, "version: payout-2026.12.1") {
		t.Fatal("payout.rego no longer declares version payout-2026.12.1")
	}
	files["payout/payout.rego"] = []byte(strings.Replace(src, "version: payout-2026.12.1", "version: payout-2026.12.2", 1))
	return files
}

func TestFilesFS(t *testing.T) {
	fsys, err := engine.FilesFS(map[string][]byte{
		"lib/verdict.rego": []byte("package verdict.lib"), "payout/payout.rego": []byte("# METADATA\n# custom:\n#   fail_mode: review\npackage verdict.payout"),
		"payout/data/x.json": []byte("{}"), "top.cel.yaml": []byte("action: x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "lib/verdict.rego", "payout/payout.rego", "payout/data/x.json", "top.cel.yaml"); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string]map[string][]byte{
		"absolute":     {"/etc/passwd": nil},
		"dot-dot":      {"../x.rego": nil},
		"dot":          {"./x.rego": nil},
		"file-and-dir": {"a": nil, "a/b.rego": nil},
	} {
		t.Run(name, func(t *testing.T) {
			var le *engine.LoadError
			if _, err := engine.FilesFS(files); !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LoadError", err)
			}
		})
	}
}

func TestLoadVersion(t *testing.T) {
	files := nextPayout(t)
	hash := engine.BundleHash(files)
	set, err := engine.LoadVersion(hash, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"login", "onboarding", "payout"} {
		p, ok := set.Policy(a)
		if !ok || p.Hash != hash {
			t.Fatalf("%s: policy %+v, want hash %s", a, p, hash)
		}
	}
	if p, _ := set.Policy("payout"); p.Version != "payout-2026.12.2" {
		t.Errorf("payout version %q, want the file's payout-2026.12.2", p.Version)
	}
	if again, err := engine.LoadVersion("", files); err != nil || mustPolicy(t, again, "payout").Hash != hash {
		t.Errorf("empty hash: err %v, want the files' hash", err)
	}

	t.Run("hash mismatch", func(t *testing.T) {
		var le *engine.LoadError
		if _, err := engine.LoadVersion("sha256:00", files); !errors.As(err, &le) {
			t.Fatalf("err = %v, want a *LoadError", err)
		}
	})
	t.Run("compile error names file and line", func(t *testing.T) {
		bad := nextPayout(t)
		bad["payout/payout.rego"] = append(bad["payout/payout.rego"], "\nbroken := {\n"...)
		_, err := engine.LoadVersion("", bad)
		var le *engine.LoadError
		if !errors.As(err, &le) || le.Problems[0].File != "payout/payout.rego" || le.Problems[0].Line == 0 {
			t.Fatalf("err = %v, want a problem at payout/payout.rego:<line>", err)
		}
	})
}

func mustPolicy(t *testing.T, s *engine.PolicySet, action string) *engine.Policy {
	t.Helper()
	p, ok := s.Policy(action)
	if !ok {
		t.Fatalf("no %s policy", action)
	}
	return p
}

func TestCompose(t *testing.T) {
	base, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	files := nextPayout(t)
	version, err := engine.LoadVersion("", files)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := engine.Load(fstest.MapFS{"lib.rego": {Data: []byte(libRego)}, "refund.rego": {Data: []byte(strings.ReplaceAll(payoutRego, "verdict.payout", "verdict.refund"))}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := engine.Compose(base, map[string]*engine.Policy{
		"payout": mustPolicy(t, version, "payout"),
		"refund": mustPolicy(t, custom, "refund"), // an action the base lacks
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Actions(), ","); got != "login,onboarding,payout,refund" {
		t.Errorf("actions %s", got)
	}
	if mustPolicy(t, set, "payout") != mustPolicy(t, version, "payout") || mustPolicy(t, set, "login") != mustPolicy(t, base, "login") {
		t.Error("composed set does not serve the override for payout and the base for login")
	}
	if mustPolicy(t, base, "payout").Hash == engine.BundleHash(files) || len(base.Actions()) != 3 {
		t.Error("Compose changed its base")
	}

	eng := engine.New(set)
	in := &engine.Input{Action: "payout", Subject: map[string]any{"id": "u1", "account_age_days": 400.0},
		Context: map[string]any{"amount": 10.0}, Signals: engine.Signals{Verification: engine.Verification{Status: "approved"}}}
	d, err := eng.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Policy.Version != "payout-2026.12.2" || d.Policy.Hash != engine.BundleHash(files) {
		t.Errorf("payout decided by %+v, want payout-2026.12.2 @ %s", d.Policy, engine.BundleHash(files))
	}
	in.Action = "login"
	if d, err := eng.Decide(context.Background(), in); err != nil || d.Policy.Hash != mustPolicy(t, base, "login").Hash {
		t.Errorf("login decided by %+v (%v), want the base bundle", d.Policy, err)
	}

	for name, overrides := range map[string]map[string]*engine.Policy{
		"nil policy":     {"payout": nil},
		"another action": {"login": mustPolicy(t, version, "payout")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := engine.Compose(base, overrides); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := engine.Compose(nil, nil); err == nil {
		t.Error("nil base: no error")
	}
}
