package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

func commitCounts(s *postgres.Store) (fast, locked int64) {
	fast, locked, _ = s.CommitStats()
	return fast, locked
}

// verifyChain checks the whole audit chain of s and returns its length.
func verifyChain(t *testing.T, s store.Store) int64 {
	t.Helper()
	seq, _, err := store.VerifyChain(t.Context(), s)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return seq
}

func countRows(t *testing.T, schema, name string) int64 {
	t.Helper()
	var n int64
	if err := admin(t).QueryRow(t.Context(), `SELECT count(*) FROM `+table(schema, name)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// After its first write a store knows the audit head and writes a batch in one round trip;
// the records and the chain are the same as on the locking path.
func TestDecisionBatchesTakeOneRoundTripOnceTheHeadIsKnown(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, schema)
	writeN(t, s, "first", 3)
	if fast, locked := commitCounts(s); fast != 0 || locked != 1 {
		t.Fatalf("first batch: fast %d, locked %d; want 0 and 1 (the head is not known before)", fast, locked)
	}
	for i := range 5 {
		writeN(t, s, fmt.Sprintf("next%d", i), 4)
	}
	if fast, locked := commitCounts(s); fast != 5 || locked != 1 {
		t.Fatalf("fast %d, locked %d; want 5 and 1", fast, locked)
	}
	if n := verifyChain(t, s); n != 23 {
		t.Fatalf("chain of %d events, want 23", n)
	}
	if n := countRows(t, schema, "decisions"); n != 23 {
		t.Fatalf("%d decisions stored, want 23", n)
	}
	got, err := s.GetDecision(t.Context(), "next4-3")
	if err != nil || got.SubjectID != "user-3" || string(got.Input) != `{"i":3}` {
		t.Fatalf("GetDecision(next4-3) = %+v, %v", got, err)
	}
}

// Two replicas on one database: each one's cached head goes stale whenever the other
// writes. The database refuses the stale one-round-trip commit and the batch is written on
// the locking path; nothing is lost or written twice and the chain has no gap.
func TestStaleHeadFallsBackToTheLockingPath(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	for i := range 6 {
		writeN(t, a, fmt.Sprintf("a%d", i), 2)
		writeN(t, b, fmt.Sprintf("b%d", i), 2)
	}
	fa, la := commitCounts(a)
	fb, lb := commitCounts(b)
	if la != 6 || lb != 6 || fa != 0 || fb != 0 {
		t.Fatalf("alternating replicas: a fast %d locked %d, b fast %d locked %d; want every batch locked", fa, la, fb, lb)
	}
	// Each miss doubles how many batches skip the attempt: of a's six batches, the first
	// knows no head, the second and fourth try and miss, the others skip.
	if _, _, ma := a.CommitStats(); ma != 2 {
		t.Fatalf("a missed %d times, want 2", ma)
	}
	// Alone again, a gets back to one round trip within a few batches: its first attempt
	// still misses (b wrote last), the next four skip, the one after succeeds.
	for i := range 8 {
		writeN(t, a, fmt.Sprintf("alone%d", i), 2)
	}
	if fa, _ := commitCounts(a); fa != 3 {
		t.Fatalf("a wrote alone for 8 batches and %d times in one round trip, want 3 (the last three)", fa)
	}
	// Concurrent writers on both replicas.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 8 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range 5 {
				results, err := s.WriteDecisions(t.Context(), decisions(fmt.Sprintf("c%d-%d", w, i), 3))
				if err == nil {
					err = errors.Join(results...)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	want := int64(6*2*2 + 8*2 + 8*5*3)
	if n := verifyChain(t, a); n != want {
		t.Fatalf("chain of %d events, want %d", n, want)
	}
	if n := countRows(t, schema, "decisions"); n != want {
		t.Fatalf("%d decisions, want %d", n, want)
	}
}

// A batch holding an idempotency key already stored, or a subject key the subject already
// has, cannot be written in one round trip: the database refuses it whole, and the locking
// path writes the other records and refuses those alone.
func TestConflictsInABatchFallBackRecordByRecord(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, schema)
	first := decisions("k", 2)
	first[0].IdempotencyKey, first[0].RequestHash = "key-1", "h1"
	first[1].NewSubjectKey = &store.SubjectKey{UserID: first[1].SubjectID, KEKID: "kek", Wrapped: []byte("key-a")}
	if results, err := s.WriteDecisions(t.Context(), first); err != nil || errors.Join(results...) != nil {
		t.Fatalf("first batch: %v %v", results, err)
	}

	second := decisions("l", 4)
	second[0].IdempotencyKey, second[0].RequestHash = "key-1", "h1" // taken
	second[1].IdempotencyKey, second[1].RequestHash = "key-2", "h2" // new
	second[1].SubjectID = first[1].SubjectID
	second[1].NewSubjectKey = &store.SubjectKey{UserID: first[1].SubjectID, KEKID: "kek", Wrapped: []byte("key-b")}  // subject has one
	second[2].NewSubjectKey = &store.SubjectKey{UserID: second[2].SubjectID, KEKID: "kek", Wrapped: []byte("key-c")} // new
	results, err := s.WriteDecisions(t.Context(), second)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0], store.ErrDuplicateIdempotencyKey) || !errors.Is(results[1], store.ErrSubjectKeyExists) ||
		results[2] != nil || results[3] != nil {
		t.Fatalf("results %v; want duplicate key, subject key exists, ok, ok", results)
	}
	if fast, locked := commitCounts(s); fast != 0 || locked != 2 {
		t.Fatalf("fast %d, locked %d; want 0 and 2", fast, locked)
	}
	// The refused record's key was not kept: it can be used again.
	third := decisions("m", 1)
	third[0].IdempotencyKey, third[0].RequestHash = "key-2", "h2"
	if results, err := s.WriteDecisions(t.Context(), third); err != nil || results[0] != nil {
		t.Fatalf("key-2 again: %v %v", results, err)
	}
	if fast, _ := commitCounts(s); fast != 1 {
		t.Fatalf("fast %d, want 1", fast)
	}
	if n := verifyChain(t, s); n != 5 {
		t.Fatalf("chain of %d events, want 5", n)
	}
	if n := countRows(t, schema, "decisions"); n != 5 {
		t.Fatalf("%d decisions, want 5", n)
	}
	if n := countRows(t, schema, "idempotency"); n != 2 {
		t.Fatalf("%d idempotency keys, want 2", n)
	}
	if n := countRows(t, schema, "subject_keys"); n != 2 {
		t.Fatalf("%d subject keys, want 2", n)
	}
}
