package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// TestShadowResultsLeaveTheWriterDurable checks that the writer connection is back to
// synchronous=FULL after a shadow-result write (which runs with NORMAL), so decisions
// committed next are still fsynced.
func TestShadowResultsLeaveTheWriterDurable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	synchronous := func() int {
		t.Helper()
		var v int
		if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := synchronous(); got != 2 {
		t.Fatalf("writer opens with synchronous=%d, want 2 (FULL)", got)
	}
	rs := []store.ShadowResult{{DecisionID: "d1", Action: "payout", Hash: "sha256:ab", Outcome: "approve", CreatedAt: time.Now()}}
	if err := s.WriteShadowResults(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if got := synchronous(); got != 2 {
		t.Fatalf("after a shadow write the writer runs with synchronous=%d, want 2 (FULL)", got)
	}
	// A cancelled write restores it too.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = s.WriteShadowResults(cctx, rs)
	if got := synchronous(); got != 2 {
		t.Fatalf("after a cancelled shadow write the writer runs with synchronous=%d, want 2 (FULL)", got)
	}
}
