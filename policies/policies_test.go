package policies_test

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/verdict-engine/verdict/policies"
)

// actions are the shipped actions with the fail mode each must declare.
var actions = map[string]string{
	"login":      "review",
	"onboarding": "review",
	"payout":     "closed",
}

// TestRegoUnitTests runs every test_ rule of the embedded bundle, with the capabilities the
// engine grants (no network, clock or randomness) and builtin errors raised, and fails on
// any failing or erroring Rego test.
func TestRegoUnitTests(t *testing.T) {
	modules := parseBundle(t, true)
	compiler := ast.NewCompiler().WithCapabilities(capabilities())
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetModules(modules).
		RaiseBuiltinErrors(true)

	ch, err := runner.RunTests(context.Background(), nil)
	if err != nil {
		t.Fatalf("compile bundle: %v", err)
	}
	ran := map[string]int{}
	for r := range ch {
		ran[r.Package]++
		loc := "?"
		if r.Location != nil {
			loc = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		switch {
		case r.Error != nil:
			t.Errorf("%s: %s.%s: error: %v", loc, r.Package, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s: %s.%s: FAIL", loc, r.Package, r.Name)
		case r.Skip:
			t.Logf("%s: %s.%s: skipped", loc, r.Package, r.Name)
		}
	}
	for _, pkg := range []string{"data.verdict.lib_test", "data.verdict.login_test", "data.verdict.onboarding_test", "data.verdict.payout_test"} {
		if ran[pkg] == 0 {
			t.Errorf("no Rego tests ran in %s", pkg)
		}
	}
	t.Logf("Rego tests run per package: %v", ran)
}

// TestPolicyMetadata checks what the engine reads from each action's package annotation.
func TestPolicyMetadata(t *testing.T) {
	modules := parseBundle(t, false)
	seen := map[string]bool{}
	for file, m := range modules {
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		action, ok := strings.CutPrefix(pkg, "verdict.")
		if !ok {
			t.Errorf("%s: package %s is outside verdict.", file, pkg)
			continue
		}
		if action == "lib" {
			continue
		}
		seen[action] = true
		if dir := path.Base(path.Dir(file)); dir != action {
			t.Errorf("%s: package %s lives in directory %s", file, pkg, dir)
		}
		want, known := actions[action]
		if !known {
			t.Errorf("%s: unexpected action %q", file, action)
			continue
		}
		a := packageAnnotation(m)
		if a == nil {
			t.Errorf("%s: no package METADATA", file)
			continue
		}
		if a.Title == "" || a.Description == "" {
			t.Errorf("%s: METADATA needs a title and a description", file)
		}
		version, _ := a.Custom["version"].(string)
		if !strings.HasPrefix(version, action+"-") {
			t.Errorf("%s: custom.version = %q, want %q-<label>", file, version, action)
		}
		if got, _ := a.Custom["fail_mode"].(string); got != want {
			t.Errorf("%s: custom.fail_mode = %q, want %q", file, got, want)
		}
		if !definesRule(m, "decision") || !definesRule(m, "default_thresholds") || !definesRule(m, "thresholds") {
			t.Errorf("%s: must define decision, default_thresholds and thresholds", file)
		}
	}
	for action := range actions {
		if !seen[action] {
			t.Errorf("no policy for action %q", action)
		}
	}
}

func ExampleBundle() {
	_ = fs.WalkDir(policies.Bundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.rego") {
			fmt.Println(p)
		}
		return err
	})
	// Output:
	// lib/verdict.rego
	// login/login.rego
	// onboarding/onboarding.rego
	// payout/payout.rego
	// reason_codes.yaml
}

func ExampleCEL() {
	files, _ := fs.Glob(policies.CEL(), "*.cel.yaml")
	fmt.Println(files)
	// Output:
	// [login.cel.yaml]
}

// parseBundle parses the bundle's Rego files (test files too when withTests), keyed by
// their path in the repository so that locations read policies/bundle/....
func parseBundle(t *testing.T, withTests bool) map[string]*ast.Module {
	t.Helper()
	fsys := policies.Bundle()
	files, err := regoFiles(fsys, withTests)
	if err != nil {
		t.Fatal(err)
	}
	modules := make(map[string]*ast.Module, len(files))
	for _, f := range files {
		src, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		name := path.Join("policies/bundle", f)
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			ProcessAnnotation: true,
		})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		modules[name] = m
	}
	if len(modules) == 0 {
		t.Fatal("bundle has no Rego files")
	}
	return modules
}

// regoFiles lists the bundle's .rego files in lexical order.
func regoFiles(fsys fs.FS, withTests bool) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		if withTests || !strings.HasSuffix(p, "_test.rego") {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// capabilities are OPA's minus what the engine removes: anything non-deterministic
// (clock, randomness, HTTP, DNS, runtime) and the net.* builtins.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool {
		return b.IsNondeterministic() ||
			strings.HasPrefix(b.Name, "net.") ||
			strings.HasPrefix(b.Name, "rand.") ||
			b.Name == "time.now_ns" || b.Name == "http.send" || b.Name == "opa.runtime"
	})
	return c
}

func packageAnnotation(m *ast.Module) *ast.Annotations {
	for _, a := range m.Annotations {
		if a.Scope == "package" {
			return a
		}
	}
	return nil
}

func definesRule(m *ast.Module, name string) bool {
	for _, r := range m.Rules {
		if r.Head.Ref().String() == name {
			return true
		}
	}
	return false
}
