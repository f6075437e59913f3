package sqlite

import (
	"context"
	"database/sql"
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

// TestWriteEndsWithItsContext checks that a write transaction still ends with its context
// although its statements run on statementContext: a context that ends after BEGIN rolls
// the whole transaction back, and nothing it wrote stays.
func TestWriteEndsWithItsContext(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := func(id string) store.DecisionRecord {
		return store.DecisionRecord{ID: id, Action: "login", SubjectID: "u1", Outcome: "approve",
			Input: []byte(`{}`), Response: []byte(`{}`), CreatedAt: time.Now(), Actor: "test"}
	}
	recs, events, _, err := store.PrepareDecisions([]store.DecisionRecord{rec("d1"), rec("d2")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	err = s.writeTx(ctx, "test write", func(tx *sql.Tx, c *chain) error {
		sctx := statementContext(ctx)
		if _, err := tx.StmtContext(sctx, s.insDecision).ExecContext(sctx, recs[0].ID, recs[0].Action, recs[0].SubjectID,
			recs[0].Outcome, 0.0, "[]", "", "", "", "{}", "{}", "", "", micros(recs[0].CreatedAt), "test", "", nil); err != nil {
			return err
		}
		if err := c.append(sctx, events[0]); err != nil {
			return err
		}
		cancel()
		// database/sql rolls the transaction back once its context ends; wait for that.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := c.append(sctx, events[1])
			if err != nil {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatal("the transaction outlived its context")
			}
			// The append went in before the rollback; the next one links onto it.
			events[1].Seq, events[1].PrevHash, events[1].Hash = 0, nil, nil
			time.Sleep(time.Millisecond)
		}
	})
	if err == nil {
		t.Fatal("write with an ended context succeeded")
	}
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM decisions) + (SELECT count(*) FROM audit_events)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows stayed after the transaction's context ended (%v), want none", n, err)
	}
}
