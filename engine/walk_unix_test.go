//go:build unix

package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// TestLoadReadsRegularFilesOnly: symbolic links to files are followed, hidden files are
// skipped, and a FIFO is refused at once instead of blocking the load for ever.
func TestLoadReadsRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib/verdict.rego", libRego)
	// The policy lives in a hidden directory, which the walk skips, and the bundle links to
	// it; a hidden file that does not compile is skipped too.
	write(".real/payout.rego", payoutRego)
	write("payout/.old.rego", "package verdict.payout\nbroken {{")
	if err := os.Symlink(filepath.Join("..", ".real", "payout.rego"), filepath.Join(dir, "payout", "payout.rego")); err != nil {
		t.Fatal(err)
	}
	set, err := engine.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("load with a linked policy and a hidden broken file: %v", err)
	}
	if _, ok := set.Policy("payout"); !ok {
		t.Fatal("the linked payout policy was not loaded")
	}

	if err := syscall.Mkfifo(filepath.Join(dir, "payout", "evil.rego"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := engine.Load(os.DirFS(dir)); done <- err }()
	select {
	case err := <-done:
		var le *engine.LoadError
		if !errors.As(err, &le) || le.Problems[0].File != "payout/evil.rego" || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("load with a FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("load blocked on a FIFO")
	}
}
